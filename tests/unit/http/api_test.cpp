// The REST handlers without sockets: Request in, Response out, over the real DefinitionCatalog
// on in-memory ports.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "api.hpp"
#include "pythmata/app/definition_catalog.hpp"
#include "pythmata/http/error_mapping.hpp"
#include "pythmata/metrics/registry.hpp"
#include "pythmata_fakes/fake_definition_store.hpp"
#include "pythmata_fakes/fake_telemetry.hpp"

namespace pythmata::http {
namespace {

std::string document(const std::string& id, const std::string& extra = "") {
    return R"(<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <process id=")" +
           id + R"(" name="Orders" isExecutable="true">
    <startEvent id="start"/>
    <userTask id="approve" name="Approve)" +
           extra + R"("/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="approve"/>
    <sequenceFlow id="f2" sourceRef="approve" targetRef="end"/>
  </process>
</definitions>)";
}

class SwitchableCheck final : public app::HealthCheck {
  public:
    bool up = true;
    Status ping() override {
        if (up)
            return {};
        return Error::unavailable("DOWN", "connection refused");
    }
};

class ApiTest : public ::testing::Test {
  protected:
    fakes::FakeDefinitionStore store;
    fakes::FakeTelemetry telemetry;
    fakes::ManualClock clock;
    app::CacheSettings cache;
    app::EngineSettings engine;
    app::HttpSettings http;
    metrics::Registry registry;
    app::DefinitionCatalog catalog{store, nullptr, telemetry, clock, cache, engine};
    SwitchableCheck store_check;
    SwitchableCheck cache_check;
    Api api{
        http, catalog, {{"store", &store_check, true}, {"cache", &cache_check, false}}, registry};
    Router router = make_router(api);

    Response call(std::string method, std::string target, std::string body = "",
                  std::vector<std::pair<std::string, std::string>> headers = {}) {
        Request request;
        request.method = std::move(method);
        request.target = std::move(target);
        request.body = std::move(body);
        request.headers = std::move(headers);
        const auto q = request.target.find('?');
        auto match = router.match(request.method, std::string_view(request.target).substr(0, q));
        if (!match)
            return error_response(match.error());
        return match->route->handler(request, match->params);
    }
    static nlohmann::json json(const Response& response) {
        return nlohmann::json::parse(response.body);
    }
};

const std::vector<std::pair<std::string, std::string>> kXml = {{"Content-Type", "application/xml"}};
const std::vector<std::pair<std::string, std::string>> kJson = {
    {"Content-Type", "application/json"}};

TEST_F(ApiTest, DeployRawXmlIs201WithLocationAndDeployedList) {
    auto response = call("POST", "/api/v1/processes", document("Order"), kXml);
    ASSERT_EQ(response.status, 201) << response.body;
    const auto data = json(response)["data"];
    EXPECT_EQ(data["key"], "Order");
    EXPECT_EQ(data["version"], 1);
    EXPECT_EQ(data["name"], "Orders");
    EXPECT_TRUE(data.contains("bpmn_xml"));
    EXPECT_EQ(data["deployed"].size(), 1u);
    EXPECT_EQ(data["deployed"][0]["id"], data["id"]);
    EXPECT_EQ(response.header("Location"), "/api/v1/processes/Order/versions/1");
}

TEST_F(ApiTest, IdenticalRedeployIs200WithTheSameVersionAndAChangeMakesTheNext) {
    ASSERT_EQ(call("POST", "/api/v1/processes", document("Order"), kXml).status, 201);
    auto again = call("POST", "/api/v1/processes", document("Order"), kXml);
    EXPECT_EQ(again.status, 200);
    EXPECT_EQ(json(again)["data"]["version"], 1);
    auto changed = call("POST", "/api/v1/processes", document("Order", " it"), kXml);
    EXPECT_EQ(changed.status, 201);
    EXPECT_EQ(json(changed)["data"]["version"], 2);
}

TEST_F(ApiTest, DeployJsonWithNameAndXmlSniffedWithoutContentType) {
    nlohmann::json body = {{"bpmn_xml", document("A")}, {"name", "Renamed"}};
    auto response = call("POST", "/api/v1/processes", body.dump(), kJson);
    ASSERT_EQ(response.status, 201) << response.body;
    EXPECT_EQ(json(response)["data"]["name"], "Renamed");
    EXPECT_EQ(call("POST", "/api/v1/processes", document("B")).status, 201);
}

TEST_F(ApiTest, DeployRejectsWrongMediaMissingFieldAndBadJson) {
    auto media = call("POST", "/api/v1/processes", "hello", {{"Content-Type", "text/plain"}});
    EXPECT_EQ(media.status, 415);
    EXPECT_EQ(json(media)["code"], "UNSUPPORTED_MEDIA_TYPE");
    auto missing = call("POST", "/api/v1/processes", R"({"name":"x"})", kJson);
    EXPECT_EQ(missing.status, 400);
    EXPECT_EQ(json(missing)["code"], "INVALID_ARGUMENT");
    auto bad = call("POST", "/api/v1/processes", R"({"bpmn_xml": )", kJson);
    EXPECT_EQ(bad.status, 400);
    EXPECT_EQ(json(bad)["code"], "INVALID_JSON");
}

TEST_F(ApiTest, InvalidBpmnIs422NamingTheElement) {
    const std::string broken = R"(<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">
  <process id="P" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="dangling" sourceRef="start" targetRef="nowhere"/>
  </process>
</definitions>)";
    auto response = call("POST", "/api/v1/processes", broken, kXml);
    ASSERT_EQ(response.status, 422) << response.body;
    const auto body = json(response);
    EXPECT_EQ(body["code"], "INVALID_BPMN");
    bool named = false;
    for (const auto& error : body["context"]["errors"]) {
        named = named || error["element_id"] == "dangling";
    }
    EXPECT_TRUE(named) << response.body;
}

TEST_F(ApiTest, ListPagesTheLatestVersions) {
    for (const char* key : {"A", "B", "C"}) {
        ASSERT_EQ(call("POST", "/api/v1/processes", document(key), kXml).status, 201);
    }
    ASSERT_EQ(call("POST", "/api/v1/processes", document("A", "2"), kXml).status, 201);
    auto response = call("GET", "/api/v1/processes?page=1&page_size=2");
    ASSERT_EQ(response.status, 200);
    const auto data = json(response)["data"];
    EXPECT_EQ(data["total"], 3);
    EXPECT_EQ(data["items"].size(), 2u);
    EXPECT_EQ(data["page"], 1);
    EXPECT_EQ(data["pageSize"], 2);
    EXPECT_EQ(data["totalPages"], 2);
    EXPECT_FALSE(data["items"][0].contains("bpmn_xml"));
    auto filtered = json(call("GET", "/api/v1/processes?key=A"))["data"];
    ASSERT_EQ(filtered["items"].size(), 1u);
    EXPECT_EQ(filtered["items"][0]["version"], 2);
    EXPECT_EQ(call("GET", "/api/v1/processes?page_size=5000").status, 400);
}

TEST_F(ApiTest, LatestVersionsAndOneVersion) {
    ASSERT_EQ(call("POST", "/api/v1/processes", document("A"), kXml).status, 201);
    ASSERT_EQ(call("POST", "/api/v1/processes", document("A", "2"), kXml).status, 201);
    EXPECT_EQ(json(call("GET", "/api/v1/processes/A"))["data"]["version"], 2);
    auto versions = json(call("GET", "/api/v1/processes/A/versions"))["data"];
    ASSERT_EQ(versions["items"].size(), 2u);
    EXPECT_EQ(versions["items"][0]["version"], 2);
    auto one = call("GET", "/api/v1/processes/A/versions/1");
    ASSERT_EQ(one.status, 200);
    EXPECT_EQ(json(one)["data"]["version"], 1);
    EXPECT_EQ(json(call("GET", "/api/v1/processes/A/versions/9"))["code"],
              "PROCESS_VERSION_NOT_FOUND");
    EXPECT_EQ(call("GET", "/api/v1/processes/A/versions/x").status, 400);
    auto unknown = call("GET", "/api/v1/processes/Nope");
    EXPECT_EQ(unknown.status, 404);
    EXPECT_EQ(json(unknown)["code"], "PROCESS_NOT_FOUND");
}

TEST_F(ApiTest, PutDeploysANewVersionOfItsKeyOnly) {
    ASSERT_EQ(call("POST", "/api/v1/processes", document("A"), kXml).status, 201);
    auto put = call("PUT", "/api/v1/processes/A", document("A", "x"), kXml);
    EXPECT_EQ(put.status, 201);
    EXPECT_EQ(json(put)["data"]["version"], 2);
    auto mismatch = call("PUT", "/api/v1/processes/A", document("B"), kXml);
    EXPECT_EQ(mismatch.status, 409);
    EXPECT_EQ(json(mismatch)["code"], "PROCESS_KEY_MISMATCH");
}

TEST_F(ApiTest, DeleteIs204ThenUnknown) {
    ASSERT_EQ(call("POST", "/api/v1/processes", document("A"), kXml).status, 201);
    EXPECT_EQ(call("DELETE", "/api/v1/processes/A?cascade=maybe").status, 400);
    auto deleted = call("DELETE", "/api/v1/processes/A");
    EXPECT_EQ(deleted.status, 204);
    EXPECT_TRUE(deleted.body.empty());
    EXPECT_EQ(call("GET", "/api/v1/processes/A").status, 404);
    EXPECT_EQ(call("DELETE", "/api/v1/processes/A").status, 404);
}

TEST_F(ApiTest, StoreDownIs503WithRetryAfter) {
    store.unavailable = true;
    auto response = call("GET", "/api/v1/processes");
    EXPECT_EQ(response.status, 503);
    EXPECT_TRUE(response.header("Retry-After"));
}

TEST_F(ApiTest, ReadinessNamesTheFailingDependency) {
    auto ok = call("GET", "/health/ready");
    ASSERT_EQ(ok.status, 200);
    EXPECT_EQ(json(ok)["data"]["checks"]["store"], "ok");

    cache_check.up = false;
    auto degraded = call("GET", "/health/ready");
    EXPECT_EQ(degraded.status, 200);
    EXPECT_EQ(json(degraded)["data"]["checks"]["cache"], "degraded");

    store_check.up = false;
    auto down = call("GET", "/health/ready");
    EXPECT_EQ(down.status, 503);
    EXPECT_TRUE(down.header("Retry-After"));
    EXPECT_EQ(json(down)["code"], "NOT_READY");
    EXPECT_EQ(json(down)["context"]["checks"]["store"], "down");
    EXPECT_EQ(call("GET", "/health").status, 200);
}

TEST_F(ApiTest, MetricsAreTextExposition) {
    auto response = call("GET", "/metrics");
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
}

TEST_F(ApiTest, UnknownPathAndMethod) {
    auto missing = call("GET", "/api/v1/unknown");
    EXPECT_EQ(missing.status, 404);
    EXPECT_EQ(json(missing)["code"], "NOT_FOUND");
    auto method = call("PATCH", "/api/v1/processes");
    EXPECT_EQ(method.status, 405);
    EXPECT_EQ(method.header("Allow"), "GET, HEAD, POST");
}

}  // namespace
}  // namespace pythmata::http

namespace pythmata::http {
namespace {

// instance_response() writes what json_response(instance_json()) would, without the JSON object:
// the same bytes for every kind of field content.
TEST(InstanceResponse, IsByteForByteTheDumpOfTheInstanceJson) {
    app::InstanceView plain;
    plain.id = "66aaf712-0ff7-458f-9c25-82c4784e735c";
    plain.process_key = "straight";
    plain.process_version = 3;
    plain.definition_id = "cf7c6854-0ff8-4066-a211-93f046d9e10d";
    plain.status = "COMPLETED";
    plain.variables = {{"amount", 150}, {"counter", 5}, {"path", "high"}};
    plain.created_at = TimePoint(std::chrono::milliseconds(1'795'000'000'123));
    plain.updated_at = plain.created_at + std::chrono::milliseconds(7);
    plain.ended_at = plain.updated_at;

    app::InstanceView waiting = plain;
    waiting.status = "RUNNING";
    waiting.ended_at.reset();
    waiting.active_elements = {"approve", "wait_paid"};
    waiting.business_key = "order-7";
    waiting.parent_instance_id = "0a1b2c3d-0000-4000-8000-000000000001";
    waiting.incidents = 2;
    waiting.variables = nlohmann::json::object();

    app::InstanceView awkward = waiting;
    awkward.business_key = "Zürich \"quoted\" back\\slash\ttab\nline \x01 ctl";
    awkward.active_elements = {"ünïcödé", "", "a\"b", "日本"};
    awkward.process_key = "k\x7f";
    awkward.incidents = -1;
    awkward.process_version = std::numeric_limits<int>::max();
    awkward.variables = {{"nested", {{"list", {1, 2.5, nullptr, true, "ß"}}}},
                         {"empty", nlohmann::json::object()}};

    app::InstanceView broken = awkward;
    broken.business_key = std::string("bad \xff\xfe utf8 \xc3");  // replaced, as the dump does
    broken.active_elements = {std::string("\xe2\x82")};

    // A start or completion answer names the tasks it opened: none, one, several, awkward.
    app::InstanceView opened_none = plain;
    opened_none.opened_tasks.emplace();
    app::InstanceView opened_one = waiting;
    opened_one.opened_tasks = std::vector<app::TaskRef>{
        {"5b0e4c1e-7d3f-4c39-9d57-6f1c2a0b9e11", "approve", "Approve order"}};
    app::InstanceView opened_two = awkward;
    opened_two.opened_tasks = std::vector<app::TaskRef>{
        {"5b0e4c1e-7d3f-4c39-9d57-6f1c2a0b9e11", "a\"b", "Zürich\ttab"},
        {"0f0e4c1e-7d3f-4c39-9d57-6f1c2a0b9e12", "日本", std::string("bad \xff")}};

    for (const app::InstanceView& view :
         {plain, waiting, awkward, broken, opened_none, opened_one, opened_two}) {
        const Response expected = json_response(201, instance_json(view));
        const Response written = instance_response(201, view);
        EXPECT_EQ(written.body, expected.body);
        EXPECT_EQ(written.status, 201);
        EXPECT_EQ(written.header("Content-Type"), expected.header("Content-Type"));
        EXPECT_TRUE(nlohmann::json::accept(written.body)) << written.body;
    }
}

}  // namespace
}  // namespace pythmata::http

namespace pythmata::http {
namespace {

TEST(TaskPageResponse, IsByteForByteTheDumpOfThePageOfTaskJson) {
    app::TaskView open;
    open.id = "7d0f3c1e-1111-4a2b-8c3d-000000000001";
    open.instance_id = "66aaf712-0ff7-458f-9c25-82c4784e735c";
    open.process_key = "usertask";
    open.element_id = "approve";
    open.name = "Approve";
    open.state = "OPEN";
    open.created_at = TimePoint(std::chrono::milliseconds(1'795'000'000'123));

    app::TaskView done = open;
    done.state = "COMPLETED";
    done.assignee = "alice";
    done.candidate_groups = {"sales", "ops"};
    done.due_at = open.created_at + std::chrono::hours(24);
    done.completed_at = open.created_at + std::chrono::seconds(3);
    done.variables = {{"approved", true}};

    app::TaskView awkward = open;
    awkward.name = "Prüfen \"jetzt\"\n\\ \x02";
    awkward.assignee = std::string("b\xffob");
    awkward.candidate_groups = {"", "日本", "a\tb"};

    const app::PageResult<app::TaskView> pages[] = {
        {{}, 0}, {{open}, 1}, {{open, done, awkward}, 41}, {{awkward}, 7}};
    const app::PageRequest requests[] = {{1, 20}, {3, 3}, {2, 1000}};
    for (const auto& page : pages) {
        for (const auto& request : requests) {
            nlohmann::json items = nlohmann::json::array();
            for (const auto& task : page.items)
                items.push_back(task_json(task));
            const Response expected =
                json_response(200, page_envelope(std::move(items), page.total, request));
            const Response written = task_page_response(page, request);
            EXPECT_EQ(written.body, expected.body);
            EXPECT_EQ(written.status, 200);
            EXPECT_EQ(written.header("Content-Type"), expected.header("Content-Type"));
            EXPECT_TRUE(nlohmann::json::accept(written.body)) << written.body;
        }
    }
}

}  // namespace
}  // namespace pythmata::http
