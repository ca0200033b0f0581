// The definitions API (API.md, "Process definitions") through the real `pythmata serve` on
// loopback, once on the embedded SQLite store and once on PostgreSQL with the Redis L2 cache.
#include <chrono>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "bpmn_samples.hpp"
#include "http_test_support.hpp"

namespace pythmata::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

enum class Backend { kSqlite, kPostgresRedis };

void PrintTo(Backend backend, std::ostream* out) {
    *out << (backend == Backend::kSqlite ? "sqlite" : "postgresql+redis");
}

std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
    return info.param == Backend::kSqlite ? "Sqlite" : "PostgresRedis";
}

/// The largest BPMN document the servers of this suite accept (PYTHMATA_MAX_BPMN_SIZE).
constexpr std::size_t kMaxBpmnSize = 64 * 1024;

class DefinitionsApi : public ::testing::TestWithParam<Backend> {
  protected:
    void SetUp() override {
        ServerProcess::Options options;
        options.env["PYTHMATA_MAX_BPMN_SIZE"] = std::to_string(kMaxBpmnSize);
        options.env["PYTHMATA_LOG_LEVEL"] = "warn";
        if (GetParam() == Backend::kPostgresRedis) {
            std::string why;
            PostgresServer* postgres = shared_postgres(why);
            if (postgres == nullptr) {
                GTEST_SKIP() << "PostgreSQL backend skipped: " << why;
            }
            ASSERT_TRUE(postgres->running() || postgres->start()) << postgres->log_tail();
            // A schema per test keeps the tests apart on one server.
            const std::string schema = unique_name("http");
            ASSERT_TRUE(postgres->execute("CREATE SCHEMA " + schema)) << postgres->log_tail();
            RedisServer* redis = shared_redis(why);
            ASSERT_NE(redis, nullptr) << "redis-server: " << why;
            options.env["PYTHMATA_DB_URL"] = postgres->schema_url(schema);
            options.env["PYTHMATA_REDIS_URL"] = redis->url();
        }
        auto started = ServerProcess::start(options);
        ASSERT_TRUE(started.ok()) << started.error().message;
        server_ = std::move(started).value();
        client_ = std::make_unique<HttpClient>(server_->port());
    }

    void TearDown() override {
        if (HasFailure() && server_) {
            std::cerr << "server stderr:\n" << server_->stderr_tail() << "\n";
        }
        client_.reset();
        server_.reset();
    }

    /// POSTs `xml` as application/xml and returns the response (status 0 on transport failure).
    HttpResponse deploy(const std::string& xml) {
        return call(client_->send_xml("POST", kBase, xml));
    }

    HttpResponse get(const std::string& target) { return call(client_->get(target)); }

    static HttpResponse call(Result<HttpResponse, HarnessFailure> result) {
        if (!result) {
            ADD_FAILURE() << result.error().message;
            return {};
        }
        return std::move(result).value();
    }

    static constexpr const char* kBase = "/api/v1/processes";

    std::unique_ptr<ServerProcess> server_;
    std::unique_ptr<HttpClient> client_;
};

TEST_P(DefinitionsApi, DeployingRawXmlAnswers201WithTheDefinition) {
    const std::string key = unique_name("Order");
    const auto response = deploy(bpmn::user_task_process(key, "Order handling"));
    ASSERT_EQ(response.status, 201) << response.describe();
    ASSERT_TRUE(response.header("Content-Type").value_or("").starts_with("application/json"));
    const json data = response.json()["data"];
    EXPECT_EQ(data["key"], key);
    EXPECT_EQ(data["name"], "Order handling");
    EXPECT_EQ(data["version"], 1);
    ASSERT_TRUE(data["id"].is_string());
    EXPECT_TRUE(is_uuid(data["id"].get<std::string>())) << data["id"];
    ASSERT_TRUE(data["created_at"].is_string());
    EXPECT_TRUE(is_rfc3339_utc(data["created_at"].get<std::string>())) << data["created_at"];
    ASSERT_TRUE(data["deployed"].is_array()) << response.describe();
    ASSERT_EQ(data["deployed"].size(), 1u);
    EXPECT_EQ(data["deployed"][0]["key"], key);
    EXPECT_EQ(data["deployed"][0]["version"], 1);
    EXPECT_EQ(data["deployed"][0]["id"], data["id"]);
}

TEST_P(DefinitionsApi, DeployingJsonWithANameOverridesTheProcessName) {
    const std::string key = unique_name("Named");
    const json body = {{"bpmn_xml", bpmn::user_task_process(key, "From the document")},
                       {"name", "Given by the client"}};
    const auto response = call(client_->send_json("POST", kBase, body));
    ASSERT_EQ(response.status, 201) << response.describe();
    EXPECT_EQ(response.json()["data"]["name"], "Given by the client");
    const auto fetched = get(std::string(kBase) + "/" + key);
    ASSERT_EQ(fetched.status, 200) << fetched.describe();
    EXPECT_EQ(fetched.json()["data"]["name"], "Given by the client");
}

TEST_P(DefinitionsApi, DeployingJsonWithoutTheDocumentIs400) {
    const auto response = call(client_->send_json("POST", kBase, {{"name", "no document"}}));
    EXPECT_TRUE(is_error(response, 400, "INVALID_ARGUMENT"));
    const auto wrong_type = call(client_->send_json("POST", kBase, {{"bpmn_xml", 42}}));
    EXPECT_TRUE(is_error(wrong_type, 400, "INVALID_ARGUMENT"));
}

TEST_P(DefinitionsApi, AnIdenticalRedeployAnswers200WithTheSameVersion) {
    const std::string key = unique_name("Same");
    const std::string xml = bpmn::user_task_process(key);
    const auto first = deploy(xml);
    ASSERT_EQ(first.status, 201) << first.describe();
    const auto again = deploy(xml);
    ASSERT_EQ(again.status, 200) << again.describe();
    EXPECT_EQ(again.json()["data"]["version"], 1);
    EXPECT_EQ(again.json()["data"]["id"], first.json()["data"]["id"]);
    const auto versions = get(std::string(kBase) + "/" + key + "/versions");
    ASSERT_EQ(versions.status, 200) << versions.describe();
    EXPECT_EQ(versions.json()["data"]["total"], 1);
}

TEST_P(DefinitionsApi, AChangedDocumentBecomesTheNextVersion) {
    const std::string key = unique_name("Versioned");
    const std::string v1 = bpmn::user_task_process(key, "Order", "first");
    const std::string v2 = bpmn::user_task_process(key, "Order", "second");
    ASSERT_EQ(deploy(v1).status, 201);
    const auto second = deploy(v2);
    ASSERT_EQ(second.status, 201) << second.describe();
    EXPECT_EQ(second.json()["data"]["version"], 2);

    const auto latest = get(std::string(kBase) + "/" + key);
    ASSERT_EQ(latest.status, 200) << latest.describe();
    EXPECT_EQ(latest.json()["data"]["version"], 2);
    EXPECT_EQ(latest.json()["data"]["bpmn_xml"], v2);
    const auto old = get(std::string(kBase) + "/" + key + "/versions/1");
    ASSERT_EQ(old.status, 200) << old.describe();
    EXPECT_EQ(old.json()["data"]["version"], 1);
    EXPECT_EQ(old.json()["data"]["bpmn_xml"], v1);
    // Going back to the first document is a change too: version 3, not version 1 again.
    const auto back = deploy(v1);
    ASSERT_EQ(back.status, 201) << back.describe();
    EXPECT_EQ(back.json()["data"]["version"], 3);
}

TEST_P(DefinitionsApi, AMultiProcessDocumentDeploysEveryExecutableProcess) {
    const std::string first = unique_name("Buyer");
    const std::string second = unique_name("Seller");
    const std::string idle = unique_name("Drawing");
    const auto response = deploy(bpmn::collaboration(first, second, idle));
    ASSERT_EQ(response.status, 201) << response.describe();
    const json data = response.json()["data"];
    EXPECT_EQ(data["key"], first);
    ASSERT_TRUE(data["deployed"].is_array()) << response.describe();
    ASSERT_EQ(data["deployed"].size(), 2u) << response.describe();
    std::set<std::string> keys;
    for (const auto& d : data["deployed"]) {
        keys.insert(d["key"].get<std::string>());
        EXPECT_EQ(d["version"], 1);
        EXPECT_TRUE(is_uuid(d["id"].get<std::string>()));
    }
    EXPECT_EQ(keys, (std::set<std::string>{first, second}));
    EXPECT_EQ(get(std::string(kBase) + "/" + second).status, 200);
    EXPECT_TRUE(is_error(get(std::string(kBase) + "/" + idle), 404, "PROCESS_NOT_FOUND"));
}

TEST_P(DefinitionsApi, TheListShowsTheLatestVersionOfEachKeyPagedAndFiltered) {
    const std::string token = unique_name("ListToken");
    const std::string a = unique_name("ListA");
    const std::string b = unique_name("ListB");
    const std::string c = unique_name("ListC");
    ASSERT_EQ(deploy(bpmn::user_task_process(a, token + " alpha", "1")).status, 201);
    ASSERT_EQ(deploy(bpmn::user_task_process(b, token + " beta")).status, 201);
    ASSERT_EQ(deploy(bpmn::user_task_process(c, "gamma " + token)).status, 201);
    ASSERT_EQ(deploy(bpmn::user_task_process(a, token + " alpha", "2")).status, 201);
    ASSERT_EQ(deploy(bpmn::user_task_process(unique_name("Other"), "unrelated")).status, 201);

    const auto page1 = get(std::string(kBase) + "?name=" + token + "&page_size=2");
    ASSERT_EQ(page1.status, 200) << page1.describe();
    const json d1 = page1.json()["data"];
    EXPECT_EQ(d1["total"], 3);
    EXPECT_EQ(d1["page"], 1);
    EXPECT_EQ(d1["pageSize"], 2);
    EXPECT_EQ(d1["totalPages"], 2);
    ASSERT_EQ(d1["items"].size(), 2u) << page1.describe();

    const auto page2 = get(std::string(kBase) + "?name=" + token + "&page_size=2&page=2");
    ASSERT_EQ(page2.status, 200) << page2.describe();
    const json d2 = page2.json()["data"];
    EXPECT_EQ(d2["page"], 2);
    ASSERT_EQ(d2["items"].size(), 1u) << page2.describe();

    std::set<std::string> keys;
    std::string previous_created;
    for (const auto& page : {d1, d2}) {
        for (const auto& item : page["items"]) {
            keys.insert(item["key"].get<std::string>());
            if (item["key"] == a) {
                EXPECT_EQ(item["version"], 2) << "the list shows the latest version";
            }
            // Newest first.
            const std::string created = item["created_at"].get<std::string>();
            if (!previous_created.empty()) {
                EXPECT_LE(created, previous_created);
            }
            previous_created = created;
        }
    }
    EXPECT_EQ(keys, (std::set<std::string>{a, b, c}));

    // The name filter is a case-insensitive substring; the key filter is exact.
    std::string upper = token;
    for (auto& ch : upper) {
        ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    const auto shouted = get(std::string(kBase) + "?name=" + upper);
    ASSERT_EQ(shouted.status, 200) << shouted.describe();
    EXPECT_EQ(shouted.json()["data"]["total"], 3);
    const auto by_key = get(std::string(kBase) + "?key=" + b);
    ASSERT_EQ(by_key.status, 200) << by_key.describe();
    ASSERT_EQ(by_key.json()["data"]["total"], 1);
    EXPECT_EQ(by_key.json()["data"]["items"][0]["key"], b);
    const auto prefix_only = get(std::string(kBase) + "?key=" + b.substr(0, b.size() - 1));
    ASSERT_EQ(prefix_only.status, 200);
    EXPECT_EQ(prefix_only.json()["data"]["total"], 0);
    EXPECT_TRUE(prefix_only.json()["data"]["items"].empty());
}

TEST_P(DefinitionsApi, TheListFromMemoryFollowsEveryDeployAndDelete) {
    const std::string token = unique_name("MemoToken");
    const std::string a = unique_name("MemoA");
    const std::string b = unique_name("MemoB");
    const std::string target = std::string(kBase) + "?name=" + token;
    ASSERT_EQ(deploy(bpmn::user_task_process(a, token + " a", "1")).status, 201);
    const auto first = get(target);
    ASSERT_EQ(first.status, 200) << first.describe();
    const auto again = get(target);  // the page is now held in memory
    ASSERT_EQ(again.status, 200) << again.describe();
    EXPECT_EQ(again.body, first.body) << "the same answer from memory";
    EXPECT_EQ(again.header("Content-Type"), first.header("Content-Type"));
    const json d = again.json()["data"];
    EXPECT_EQ(d["total"], 1);
    EXPECT_EQ(d["page"], 1);
    EXPECT_EQ(d["pageSize"], 20);
    EXPECT_EQ(d["totalPages"], 1);
    ASSERT_EQ(d["items"].size(), 1u);
    std::set<std::string> fields;
    for (const auto& [field, value] : d["items"][0].items()) {
        fields.insert(field);
    }
    EXPECT_EQ(fields, (std::set<std::string>{"id", "key", "name", "version", "created_at"}));

    // A new version, a new key and a delete each show in the very next list.
    ASSERT_EQ(deploy(bpmn::user_task_process(a, token + " a", "2")).status, 201);
    auto listed = get(target).json()["data"];
    ASSERT_EQ(listed["items"].size(), 1u);
    EXPECT_EQ(listed["items"][0]["version"], 2);
    ASSERT_EQ(deploy(bpmn::user_task_process(b, token + " b")).status, 201);
    EXPECT_EQ(get(target).json()["data"]["total"], 2);
    ASSERT_EQ(call(client_->request("DELETE", std::string(kBase) + "/" + a)).status, 204);
    listed = get(target).json()["data"];
    EXPECT_EQ(listed["total"], 1);
    ASSERT_EQ(listed["items"].size(), 1u);
    EXPECT_EQ(listed["items"][0]["key"], b);

    // A bad query is refused the same way whether or not the page is cached.
    EXPECT_TRUE(is_error(get(target + "&page=0"), 400, "INVALID_ARGUMENT"));
}

TEST_P(DefinitionsApi, BadPagingParametersAre400) {
    for (const char* query :
         {"?page=0", "?page=-1", "?page_size=0", "?page_size=1001", "?page_size=ten", "?page=1x"}) {
        EXPECT_TRUE(is_error(get(std::string(kBase) + query), 400, "INVALID_ARGUMENT")) << query;
    }
    const auto largest = get(std::string(kBase) + "?page_size=1000");
    EXPECT_EQ(largest.status, 200) << largest.describe();
}

TEST_P(DefinitionsApi, VersionsAreListedNewestFirstAndEachCanBeFetched) {
    const std::string key = unique_name("ThreeVersions");
    std::vector<std::string> documents;
    for (int i = 1; i <= 3; ++i) {
        documents.push_back(bpmn::user_task_process(key, "V", "v" + std::to_string(i)));
        ASSERT_EQ(deploy(documents.back()).status, 201);
    }
    const auto versions = get(std::string(kBase) + "/" + key + "/versions");
    ASSERT_EQ(versions.status, 200) << versions.describe();
    const json data = versions.json()["data"];
    EXPECT_EQ(data["total"], 3);
    ASSERT_EQ(data["items"].size(), 3u);
    EXPECT_EQ(data["items"][0]["version"], 3);
    EXPECT_EQ(data["items"][1]["version"], 2);
    EXPECT_EQ(data["items"][2]["version"], 1);

    for (int i = 1; i <= 3; ++i) {
        const auto one = get(std::string(kBase) + "/" + key + "/versions/" + std::to_string(i));
        ASSERT_EQ(one.status, 200) << one.describe();
        EXPECT_EQ(one.json()["data"]["version"], i);
        EXPECT_EQ(one.json()["data"]["key"], key);
        EXPECT_EQ(one.json()["data"]["bpmn_xml"], documents[static_cast<std::size_t>(i - 1)]);
    }
    EXPECT_TRUE(is_error(get(std::string(kBase) + "/" + key + "/versions/4"), 404,
                         "PROCESS_VERSION_NOT_FOUND"));
}

TEST_P(DefinitionsApi, AnUnknownKeyIs404) {
    const std::string key = unique_name("Missing");
    EXPECT_TRUE(is_error(get(std::string(kBase) + "/" + key), 404, "PROCESS_NOT_FOUND"));
    EXPECT_TRUE(
        is_error(get(std::string(kBase) + "/" + key + "/versions"), 404, "PROCESS_NOT_FOUND"));
    const auto version = get(std::string(kBase) + "/" + key + "/versions/1");
    EXPECT_EQ(version.status, 404) << version.describe();
}

TEST_P(DefinitionsApi, PutDeploysANewVersionOfTheKey) {
    const std::string key = unique_name("Put");
    const auto created = call(client_->send_xml("PUT", std::string(kBase) + "/" + key,
                                                bpmn::user_task_process(key, "P", "one")));
    ASSERT_EQ(created.status, 201) << created.describe();
    EXPECT_EQ(created.json()["data"]["version"], 1);

    const auto second =
        call(client_->send_json("PUT", std::string(kBase) + "/" + key,
                                {{"bpmn_xml", bpmn::user_task_process(key, "P", "two")}}));
    ASSERT_EQ(second.status, 201) << second.describe();
    EXPECT_EQ(second.json()["data"]["version"], 2);
    EXPECT_EQ(second.json()["data"]["key"], key);

    const auto same = call(client_->send_xml("PUT", std::string(kBase) + "/" + key,
                                             bpmn::user_task_process(key, "P", "two")));
    ASSERT_EQ(same.status, 200) << same.describe();
    EXPECT_EQ(same.json()["data"]["version"], 2);
}

TEST_P(DefinitionsApi, PutOfADocumentForAnotherKeyIs409) {
    const std::string key = unique_name("Mine");
    const std::string other = unique_name("Theirs");
    const auto response = call(
        client_->send_xml("PUT", std::string(kBase) + "/" + other, bpmn::user_task_process(key)));
    EXPECT_TRUE(is_error(response, 409, "PROCESS_KEY_MISMATCH"));
    EXPECT_TRUE(is_error(get(std::string(kBase) + "/" + key), 404, "PROCESS_NOT_FOUND"))
        << "a refused PUT stores nothing";
    EXPECT_TRUE(is_error(get(std::string(kBase) + "/" + other), 404, "PROCESS_NOT_FOUND"));
}

TEST_P(DefinitionsApi, PutOfAMultiProcessDocumentAnswersWithTheKeyOfThePath) {
    const std::string first = unique_name("First");
    const std::string second = unique_name("Second");
    const auto response =
        call(client_->send_xml("PUT", std::string(kBase) + "/" + second,
                               bpmn::collaboration(first, second, unique_name("Idle"))));
    ASSERT_EQ(response.status, 201) << response.describe();
    EXPECT_EQ(response.json()["data"]["key"], second);
    EXPECT_EQ(response.json()["data"]["deployed"].size(), 2u);
}

TEST_P(DefinitionsApi, DeleteAnswers204AndTheKeyIsGone) {
    const std::string key = unique_name("Doomed");
    const std::string token = unique_name("DoomedName");
    ASSERT_EQ(deploy(bpmn::user_task_process(key, token, "1")).status, 201);
    ASSERT_EQ(deploy(bpmn::user_task_process(key, token, "2")).status, 201);
    ASSERT_EQ(get(std::string(kBase) + "/" + key).status, 200);  // now cached

    const auto deleted = call(client_->request("DELETE", std::string(kBase) + "/" + key));
    ASSERT_EQ(deleted.status, 204) << deleted.describe();
    EXPECT_TRUE(deleted.body.empty());
    EXPECT_TRUE(is_error(get(std::string(kBase) + "/" + key), 404, "PROCESS_NOT_FOUND"));
    EXPECT_TRUE(
        is_error(get(std::string(kBase) + "/" + key + "/versions"), 404, "PROCESS_NOT_FOUND"));
    EXPECT_EQ(get(std::string(kBase) + "/" + key + "/versions/1").status, 404);
    const auto listed = get(std::string(kBase) + "?name=" + token);
    ASSERT_EQ(listed.status, 200);
    EXPECT_EQ(listed.json()["data"]["total"], 0);
    EXPECT_TRUE(is_error(call(client_->request("DELETE", std::string(kBase) + "/" + key)), 404,
                         "PROCESS_NOT_FOUND"));

    // Deploying the key again starts over at version 1.
    const auto again = deploy(bpmn::user_task_process(key, token, "3"));
    ASSERT_EQ(again.status, 201) << again.describe();
    EXPECT_EQ(again.json()["data"]["version"], 1);
}

TEST_P(DefinitionsApi, DeleteWithCascadeOfAKeyWithoutInstancesAnswers204) {
    const std::string key = unique_name("Cascade");
    ASSERT_EQ(deploy(bpmn::user_task_process(key)).status, 201);
    const auto deleted =
        call(client_->request("DELETE", std::string(kBase) + "/" + key + "?cascade=true"));
    ASSERT_EQ(deleted.status, 204) << deleted.describe();
    EXPECT_EQ(get(std::string(kBase) + "/" + key).status, 404);
    const auto bad_flag =
        call(client_->request("DELETE", std::string(kBase) + "/" + key + "?cascade=maybe"));
    EXPECT_TRUE(is_error(bad_flag, 400, "INVALID_ARGUMENT"));
}

TEST_P(DefinitionsApi, DeleteWhileInstancesRunIs409UnlessCascade) {
    const std::string key = unique_name("Busy");
    ASSERT_EQ(deploy(bpmn::user_task_process(key)).status, 201);
    const auto started = call(client_->send_json(
        "POST", std::string(kBase) + "/" + key + "/instances", {{"variables", {{"n", 1}}}}));
    ASSERT_EQ(started.status, 201) << started.describe();
    ASSERT_EQ(started.json()["data"]["status"], "RUNNING") << "waits at the user task";
    const std::string instance = started.json()["data"]["id"].get<std::string>();

    const auto refused = call(client_->request("DELETE", std::string(kBase) + "/" + key));
    ASSERT_TRUE(is_error(refused, 409, "PROCESS_HAS_INSTANCES"));
    EXPECT_EQ(refused.json()["context"]["instances"], 1) << refused.describe();
    EXPECT_EQ(get(std::string(kBase) + "/" + key).status, 200) << "nothing was deleted";
    EXPECT_EQ(get("/api/v1/instances/" + instance).status, 200);

    const auto cascaded =
        call(client_->request("DELETE", std::string(kBase) + "/" + key + "?cascade=true"));
    ASSERT_EQ(cascaded.status, 204) << cascaded.describe();
    EXPECT_TRUE(is_error(get(std::string(kBase) + "/" + key), 404, "PROCESS_NOT_FOUND"));
    EXPECT_TRUE(is_error(get("/api/v1/instances/" + instance), 404, "INSTANCE_NOT_FOUND"));
}

TEST_P(DefinitionsApi, InvalidBpmnIs422NamingTheElements) {
    const std::string key = unique_name("Broken");
    const auto response = deploy(bpmn::dangling_flow(key, "flow_to_nowhere"));
    ASSERT_TRUE(is_error(response, 422, "INVALID_BPMN"));
    const json errors = response.json()["context"]["errors"];
    ASSERT_TRUE(errors.is_array()) << response.describe();
    ASSERT_FALSE(errors.empty());
    bool named = false;
    for (const auto& e : errors) {
        EXPECT_TRUE(e["message"].is_string());
        named = named || e["element_id"] == "flow_to_nowhere";
    }
    EXPECT_TRUE(named) << "no error names the flow: " << response.describe();
    EXPECT_TRUE(is_error(get(std::string(kBase) + "/" + key), 404, "PROCESS_NOT_FOUND"))
        << "an invalid document stores nothing";
}

TEST_P(DefinitionsApi, DocumentsThatAreNotExecutableBpmnAre422) {
    const std::string key = unique_name("Garbage");
    EXPECT_TRUE(is_error(deploy("this is not XML at all"), 422, "INVALID_BPMN"));
    EXPECT_TRUE(is_error(deploy("<definitions><process id=\"" + key + "\""), 422, "INVALID_BPMN"));
    // Well-formed, but not the BPMN 2.0 namespace.
    EXPECT_TRUE(is_error(deploy("<definitions xmlns=\"urn:not-bpmn\"><process id=\"" + key +
                                "\" isExecutable=\"true\"/></definitions>"),
                         422, "INVALID_BPMN"));
    // BPMN, but nothing executable.
    std::string idle = bpmn::user_task_process(key);
    idle.replace(idle.find("isExecutable=\"true\""), 19, "isExecutable=\"false\"");
    EXPECT_TRUE(is_error(deploy(idle), 422, "INVALID_BPMN"));
    // Duplicate ids.
    std::string duplicate = bpmn::user_task_process(key);
    duplicate.replace(duplicate.find("id=\"approve\""), 12, "id=\"start\"");
    EXPECT_TRUE(is_error(deploy(duplicate), 422, "INVALID_BPMN"));
    EXPECT_EQ(get(std::string(kBase) + "/" + key).status, 404);
}

TEST_P(DefinitionsApi, EntityExpansionIsRefusedWith422) {
    const std::string key = unique_name("Laughs");
    const auto started = std::chrono::steady_clock::now();
    const auto response = deploy(bpmn::billion_laughs(key));
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "entities were expanded?";
    ASSERT_TRUE(is_error(response, 422, "INVALID_BPMN"));
    EXPECT_NE(response.body.find("DOCTYPE"), std::string::npos) << response.describe();
    EXPECT_EQ(response.body.find("lollol"), std::string::npos);
    EXPECT_EQ(get(std::string(kBase) + "/" + key).status, 404);
}

TEST_P(DefinitionsApi, ExternalEntitiesAreRefusedWith422) {
    const std::string key = unique_name("Xxe");
    const auto response = deploy(bpmn::external_entity(key));
    ASSERT_TRUE(is_error(response, 422, "INVALID_BPMN"));
    EXPECT_EQ(response.body.find("root:"), std::string::npos) << "leaked /etc/passwd";
    EXPECT_EQ(get(std::string(kBase) + "/" + key).status, 404);
}

TEST_P(DefinitionsApi, AnyDoctypeIsRefusedWith422) {
    const std::string key = unique_name("Doctype");
    const auto response = deploy(bpmn::plain_doctype(key));
    ASSERT_TRUE(is_error(response, 422, "INVALID_BPMN"));
    EXPECT_NE(response.body.find("DOCTYPE"), std::string::npos) << response.describe();
}

TEST_P(DefinitionsApi, TooDeeplyNestedXmlIs422) {
    const std::string shallow = unique_name("Shallow");
    const auto fine = deploy(bpmn::deeply_nested(shallow, 100));
    EXPECT_EQ(fine.status, 201) << "100 levels are within the limit: " << fine.describe();

    const std::string key = unique_name("Deep");
    const auto response = deploy(bpmn::deeply_nested(key, 5000));
    ASSERT_TRUE(is_error(response, 422, "INVALID_BPMN"));
    EXPECT_NE(response.body.find("deep"), std::string::npos) << response.describe();
    EXPECT_EQ(get(std::string(kBase) + "/" + key).status, 404);
}

TEST_P(DefinitionsApi, ABpmnDocumentOverMaxBpmnSizeIs413) {
    const std::string fits = unique_name("Fits");
    const auto small = deploy(bpmn::padded_process(fits, kMaxBpmnSize - 1024));
    EXPECT_EQ(small.status, 201) << small.describe();

    const std::string key = unique_name("Huge");
    const std::string huge = bpmn::padded_process(key, kMaxBpmnSize + 1);
    const auto response = deploy(huge);
    EXPECT_TRUE(is_error(response, 413, "BPMN_TOO_LARGE"));
    // The same document in a JSON body.
    const auto wrapped = call(client_->send_json("POST", kBase, {{"bpmn_xml", huge}}));
    EXPECT_TRUE(is_error(wrapped, 413, "BPMN_TOO_LARGE"));
    EXPECT_EQ(get(std::string(kBase) + "/" + key).status, 404);
}

INSTANTIATE_TEST_SUITE_P(Backends, DefinitionsApi,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgresRedis),
                         backend_name);

}  // namespace
}  // namespace pythmata::test
