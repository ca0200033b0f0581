// The hostile-input battery over the real binary: every test sends one kind of hostile input,
// asserts the answer, and then that GET /health answers 200 within a second.

#include <sys/resource.h>

#include <chrono>
#include <thread>

#include "bpmn_samples.hpp"
#include "http_test_support.hpp"

namespace pythmata::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string process(const std::string& key, const std::string& body) {
    return std::string(bpmn::kHeader) + R"(  <process id=")" + key + R"(" isExecutable="true">)" +
           "\n" + body + "  </process>\n</definitions>\n";
}

/// start -> one Lua script task -> end.
std::string lua_process(const std::string& key, const std::string& script) {
    return process(key, R"(    <startEvent id="start"/>
    <scriptTask id="s" scriptFormat="lua"><script>)" +
                            script + R"(</script></scriptTask>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="s"/>
    <sequenceFlow id="f2" sourceRef="s" targetRef="end"/>
)");
}

class Hostile : public ::testing::Test {
  protected:
    void start(std::map<std::string, std::string> env = {}) {
        env.emplace("PYTHMATA_SCRIPT_TIMEOUT_MS", "300");
        env.emplace("PYTHMATA_LOG_LEVEL", "warn");
        env.emplace("PYTHMATA_ACCESS_LOG", "false");
        auto started = ServerProcess::start({.env = env});
        ASSERT_TRUE(started.ok()) << started.error().message;
        server = std::move(started).value();
        client = std::make_unique<HttpClient>(server->port());
    }
    void TearDown() override {
        if (server == nullptr || !server->running())
            return;
        // After each: the server still serves, promptly.
        HttpClient fresh(server->port(), 1s);
        const auto before = Clock::now();
        auto health = fresh.get("/health");
        ASSERT_TRUE(health.ok()) << health.error().message;
        EXPECT_EQ(health.value().status, 200) << health.value().describe();
        EXPECT_LT(Clock::now() - before, 1s);
    }
    HttpResponse must(Result<HttpResponse, HarnessFailure> r) {
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
        return r.ok() ? std::move(r).value() : HttpResponse{};
    }
    HttpResponse deploy(const std::string& xml) {
        return must(client->send_xml("POST", "/api/v1/processes", xml));
    }
    HttpResponse start_instance(const std::string& key, const nlohmann::json& body = {}) {
        return must(client->send_json("POST", "/api/v1/processes/" + key + "/instances",
                                      body.is_null() ? nlohmann::json::object() : body));
    }
    /// The instance was stopped by a limit: a 4xx answer, or an instance with an open incident
    /// or in ERROR; never a 5xx, never COMPLETED.
    static ::testing::AssertionResult contained(const HttpResponse& r) {
        if (r.status >= 400 && r.status < 500)
            return ::testing::AssertionSuccess();
        if (r.status / 100 == 2) {
            const auto data = r.json()["data"];
            if (data.is_object() && (data.value("status", "") == "ERROR" ||
                                     (data.contains("incidents") && !data["incidents"].empty())))
                return ::testing::AssertionSuccess();
        }
        return ::testing::AssertionFailure() << "not contained: " << r.describe();
    }

    std::unique_ptr<ServerProcess> server;
    std::unique_ptr<HttpClient> client;
};

TEST_F(Hostile, EntityBombAndExternalEntityAre422) {
    start();
    const auto before = Clock::now();
    EXPECT_EQ(deploy(bpmn::billion_laughs("laughs")).status, 422);
    const auto xxe = deploy(bpmn::external_entity("xxe"));
    EXPECT_EQ(xxe.status, 422) << xxe.describe();
    EXPECT_EQ(xxe.body.find("root:"), std::string::npos);
    EXPECT_LT(Clock::now() - before, 5s);
}

TEST_F(Hostile, HundredMegabyteBodyIs413AndClosedWithoutReadingItAll) {
    start();
    ASSERT_TRUE(client
                    ->send_raw("POST /api/v1/processes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Content-Type: application/xml\r\nContent-Length: 104857600\r\n\r\n")
                    .ok());
    const std::string chunk(1 << 20, '<');
    for (int i = 0; i < 4; ++i) {
        if (!client->send_raw(chunk).ok())
            break;  // the server may already have closed: that is the point
    }
    auto read = client->read_until_close(5s);
    ASSERT_TRUE(read.ok()) << read.error().message;
    EXPECT_NE(read.value().bytes.find(" 413 "), std::string::npos)
        << read.value().bytes.substr(0, 300);
    EXPECT_TRUE(read.value().closed);
}

TEST_F(Hostile, TenThousandDeepJsonIs400JsonTooDeep) {
    start();
    const std::string deep = std::string(10'000, '[') + std::string(10'000, ']');
    auto r = must(client->request("POST", "/api/v1/processes/x/instances",
                                  R"({"variables":{"a":)" + deep + "}}",
                                  {{"Content-Type", "application/json"}}));
    EXPECT_EQ(r.status, 400) << r.describe();
    EXPECT_EQ(r.json()["code"], "JSON_TOO_DEEP") << r.describe();
}

TEST_F(Hostile, InvalidUtf8InJsonIs400) {
    start();
    ASSERT_EQ(deploy(bpmn::user_task_process("utf")).status, 201);
    auto json = must(client->request("POST", "/api/v1/processes/utf/instances",
                                     "{\"variables\":{\"a\":\"\xff\xfe\xc0\xaf\"}}",
                                     {{"Content-Type", "application/json"}}));
    EXPECT_EQ(json.status, 400) << json.describe();
    auto deploy_json =
        must(client->request("POST", "/api/v1/processes", "{\"bpmn_xml\":\"<a\xff/>\"}",
                             {{"Content-Type", "application/json"}}));
    EXPECT_EQ(deploy_json.status, 400) << deploy_json.describe();
}

// KNOWN BROKEN (reported to the lead): a BPMN document declared UTF-8 with invalid UTF-8 bytes
// in an attribute is accepted (201) instead of 422 INVALID_BPMN; the BPMN parser (pugixml) does
// not check the encoding. Reading it back does not fail. Enable once bpmn/parser checks UTF-8.
TEST_F(Hostile, InvalidUtf8InXmlIs422) {
    start();
    auto xml = must(client->send_xml("POST", "/api/v1/processes",
                                     bpmn::user_task_process("utf2", "Bad \xff\xfe\xc0\xaf name")));
    EXPECT_EQ(xml.status, 422) << xml.describe();
}

TEST_F(Hostile, InvalidUtf8InXmlNeverBreaksReads) {
    start();
    auto xml = must(client->send_xml("POST", "/api/v1/processes",
                                     bpmn::user_task_process("utf2", "Bad \xff\xfe\xc0\xaf name")));
    EXPECT_LT(xml.status, 500) << xml.describe();
    for (const char* target :
         {"/api/v1/processes", "/api/v1/processes/utf2", "/api/v1/processes/utf2/versions/1"}) {
        auto r = must(client->get(target));
        EXPECT_LT(r.status, 500) << target << " " << r.describe();
        if (r.status == 200)
            EXPECT_FALSE(r.json().is_discarded()) << target;
    }
}

TEST_F(Hostile, HeaderFloodIs431) {
    start();
    std::string request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (int i = 0; i < 5000; ++i)
        request += "X-Flood-" + std::to_string(i) + ": " + std::string(20, 'f') + "\r\n";
    request += "\r\n";
    (void)client->send_raw(request);
    auto read = client->read_until_close(5s);
    ASSERT_TRUE(read.ok()) << read.error().message;
    EXPECT_NE(read.value().bytes.find(" 431 "), std::string::npos)
        << read.value().bytes.substr(0, 300);
}

TEST_F(Hostile, SlowlorisIsClosedByTheReadTimeout) {
    start({{"PYTHMATA_HTTP_READ_TIMEOUT_MS", "300"}});
    ASSERT_TRUE(client->send_raw("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n").ok());
    const auto before = Clock::now();
    bool closed = false;
    for (int i = 0; i < 40 && !closed; ++i) {
        std::this_thread::sleep_for(100ms);
        closed = !client->send_raw("X-Slow-" + std::to_string(i) + ": 1\r\n").ok();
        if (!closed) {
            auto read = client->read_until_close(1ms);
            closed = read.ok() && read.value().closed;
        }
    }
    EXPECT_TRUE(closed) << "a trickling client kept its connection for 4 s";
    EXPECT_LT(Clock::now() - before, 3s);
}

TEST_F(Hostile, ConnectionsBeyondTheCapGet503AndTheServerKeepsServing) {
    // 2,000 connections with the cap lowered to 1,000: the refusal path beyond the cap. 10,000
    // connections accepted under a cap above them are tests/chaos/connections_test.cpp's.
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 8192);
    ::setrlimit(RLIMIT_NOFILE, &limit);
    const int total = limit.rlim_cur >= 4096 ? 2000 : 300;
    const int cap = total / 2;
    start({{"PYTHMATA_HTTP_MAX_CONNECTIONS", std::to_string(cap)}});
    std::vector<std::unique_ptr<HttpClient>> clients;
    int refused = 0;
    int opened = 0;
    for (int i = 0; i < total; ++i) {
        auto c = std::make_unique<HttpClient>(server->port(), 3s);
        if (c->connect().ok())
            ++opened;
        clients.push_back(std::move(c));
    }
    // The last ones are beyond the cap: a request on them gets 503 OVERLOADED (or a close).
    for (int i = total - 20; i < total; ++i) {
        auto r = clients[static_cast<std::size_t>(i)]->get("/health");
        if (!r.ok() || r.value().status == 503)
            ++refused;
    }
    EXPECT_GT(opened, cap);
    EXPECT_EQ(refused, 20);
    clients.clear();
    EXPECT_TRUE(eventually(5s, [&] {
        HttpClient c(server->port(), 1s);
        auto r = c.get("/health");
        return r.ok() && r.value().status == 200;
    }));
}

TEST_F(Hostile, PipelinedGarbageGets400AndClose) {
    start();
    ASSERT_TRUE(client
                    ->send_raw("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                               "\x01\x02GARBAGE \xff\xfe / HTTP/9.9\r\n\r\n"
                               "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    .ok());
    auto read = client->read_until_close(5s);
    ASSERT_TRUE(read.ok()) << read.error().message;
    const std::string& bytes = read.value().bytes;
    EXPECT_EQ(bytes.rfind("HTTP/1.1 200", 0), 0u) << bytes.substr(0, 300);
    EXPECT_NE(bytes.find("HTTP/1.1 400"), std::string::npos) << bytes;
    EXPECT_TRUE(read.value().closed);
}

TEST_F(Hostile, PathTraversalAndOddMethodsAreRefused) {
    start();
    for (const char* target :
         {"/api/v1/../../etc/passwd", "/api/v1/%2e%2e/%2e%2e/etc/passwd",
          "/api/v1/processes/..%2f..%2f..%2fetc%2fpasswd", "/../../../../etc/passwd",
          "/api/v1/processes/%00", "/api/v1/processes/%zz"}) {
        auto r = must(client->get(target));
        EXPECT_TRUE(r.status == 400 || r.status == 404) << target << " " << r.describe();
        EXPECT_EQ(r.body.find("root:"), std::string::npos) << target;
    }
    for (const char* method : {"TRACE", "OPTIONS", "PROPFIND", "BREW"}) {
        auto r = must(client->request(method, "/api/v1/processes"));
        EXPECT_GE(r.status, 400) << method << " " << r.describe();
        EXPECT_LT(r.status, 500) << method << " " << r.describe();
    }
    HttpClient raw(server->port(), 3s);
    ASSERT_TRUE(raw.send_raw("CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n").ok());
    auto connect = raw.read_until_close(3s);
    ASSERT_TRUE(connect.ok());
    EXPECT_EQ(connect.value().bytes.find("HTTP/1.1 200"), std::string::npos)
        << connect.value().bytes.substr(0, 200);
    EXPECT_NE(connect.value().bytes.find("HTTP/1.1 4"), std::string::npos)
        << connect.value().bytes.substr(0, 200);
}

TEST_F(Hostile, SqlMetacharactersInFiltersAndPathsNever500) {
    start();
    ASSERT_EQ(deploy(bpmn::user_task_process("sqlp")).status, 201);
    ASSERT_EQ(start_instance("sqlp").status, 201);
    const std::vector<std::string> evil = {"%27%20OR%201%3D1--",
                                           "%22%3B%20DROP%20TABLE%20instances%3B--",
                                           "%25",
                                           "_",
                                           "%27)%20UNION%20SELECT%20*%20FROM%20definitions--",
                                           "%5C",
                                           "1%27%3B--"};
    const std::vector<std::string> filters = {
        "/api/v1/instances?status=",        "/api/v1/instances?business_key=",
        "/api/v1/instances?process_key=",   "/api/v1/instances?created_before=",
        "/api/v1/instances?created_after=", "/api/v1/instances?sort=",
        "/api/v1/instances?order=",         "/api/v1/instances?cursor=",
        "/api/v1/instances?limit=",         "/api/v1/tasks?assignee=",
        "/api/v1/tasks?instance_id=",       "/api/v1/tasks?element_id=",
        "/api/v1/tasks?candidate_group=",   "/api/v1/incidents?instance_id=",
        "/api/v1/timers?instance_id=",      "/api/v1/processes?name=",
        "/api/v1/processes?cursor=",        "/api/v1/processes/sqlp/instances?status="};
    const std::vector<std::string> paths = {
        "/api/v1/processes/", "/api/v1/processes/sqlp/versions/",
        "/api/v1/instances/", "/api/v1/instances/{}/variables",
        "/api/v1/tasks/",     "/api/v1/processes/{}/versions"};
    for (const auto& e : evil) {
        for (const auto& f : filters) {
            auto r = must(client->get(f + e));
            EXPECT_LT(r.status, 500) << f + e << " " << r.describe();
        }
        for (const auto& p : paths) {
            std::string target = p;
            if (const auto at = target.find("{}"); at != std::string::npos)
                target.replace(at, 2, e);
            else
                target += e;
            auto r = must(client->get(target));
            EXPECT_TRUE(r.status == 200 || r.status == 400 || r.status == 404)
                << target << " " << r.describe();
        }
    }
    // Nothing was dropped.
    auto list = must(client->get("/api/v1/instances"));
    EXPECT_EQ(list.json()["data"]["total"], 1) << list.describe();
}

TEST_F(Hostile, LuaInfiniteLoopMemoryBombAndStringBombAreContained) {
    start({{"PYTHMATA_SCRIPT_MAX_MEMORY", "8388608"}});
    const std::vector<std::pair<std::string, std::string>> scripts = {
        {"spin", "local i = 0 while true do i = i + 1 end"},
        {"membomb", "local t = {} for i = 1, 1e9 do t[i] = {i, i, i, i} end"},
        {"strbomb", "local s = 'x' for i = 1, 64 do s = s .. s end result = s"},
        {"recurse", "local function f(n) return f(n + 1) + 1 end f(1)"},
    };
    for (const auto& [key, script] : scripts) {
        ASSERT_EQ(deploy(lua_process(key, script)).status, 201) << key;
        const auto before = Clock::now();
        auto r = start_instance(key);
        EXPECT_TRUE(contained(r)) << key;
        EXPECT_LT(Clock::now() - before, 10s) << key;
        HttpClient probe(server->port(), 1s);
        auto health = probe.get("/health");
        ASSERT_TRUE(health.ok()) << key;
        EXPECT_EQ(health.value().status, 200) << key;
    }
}

TEST_F(Hostile, ExpressionRecursionAndHugeExpressionsAreRefusedOrContained) {
    start();
    auto gateway = [](const std::string& key, const std::string& condition) {
        return process(key, R"(    <startEvent id="start"/>
    <exclusiveGateway id="g" default="f3"/>
    <endEvent id="a"/>
    <endEvent id="b"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="g"/>
    <sequenceFlow id="f2" sourceRef="g" targetRef="a"><conditionExpression>)" +
                                condition + R"(</conditionExpression></sequenceFlow>
    <sequenceFlow id="f3" sourceRef="g" targetRef="b"/>
)");
    };
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"nested", "${" + std::string(20'000, '(') + "1" + std::string(20'000, ')') + " == 1}"},
        {"unary", "${" + std::string(50'000, '-') + "1 == 1}"},
        {"long",
         [] {
             std::string e = "${1";
             for (int i = 0; i < 100'000; ++i)
                 e += " + 1";
             return e + " > 0}";
         }()},
        {"notnot", "${" + std::string(50'000, '!') + "true}"},
    };
    for (const auto& [key, condition] : cases) {
        const auto before = Clock::now();
        auto d = deploy(gateway(key, condition));
        EXPECT_LT(d.status, 500) << key << " " << d.describe();
        if (d.status == 201) {
            auto r = start_instance(key);
            EXPECT_LT(r.status, 500) << key << " " << r.describe();
        } else {
            EXPECT_TRUE(d.status == 413 || d.status == 422) << key << " " << d.describe();
        }
        EXPECT_LT(Clock::now() - before, 10s) << key;
    }
}

TEST_F(Hostile, HundredThousandElementBpmnIsRefusedInBoundedTime) {
    start();
    std::string body = R"(    <startEvent id="start"/>
)";
    for (int i = 0; i < 100'001; ++i)
        body += "    <task id=\"t" + std::to_string(i) + "\"/>\n";
    const auto before = Clock::now();
    auto r = deploy(process("huge", body));
    EXPECT_TRUE(r.status == 413 || r.status == 422) << r.describe();
    EXPECT_LT(Clock::now() - before, 15s);
}

TEST_F(Hostile, ParallelFanOutBombHitsTheTokenLimit) {
    start({{"PYTHMATA_MAX_TOKENS_PER_INSTANCE", "100"}});
    std::string body = R"(    <startEvent id="start"/>
    <parallelGateway id="split"/>
    <sequenceFlow id="f0" sourceRef="start" targetRef="split"/>
)";
    for (int i = 0; i < 300; ++i) {
        const std::string n = std::to_string(i);
        body += "    <userTask id=\"u" + n + "\"/>\n    <sequenceFlow id=\"s" + n +
                "\" sourceRef=\"split\" targetRef=\"u" + n + "\"/>\n";
    }
    ASSERT_EQ(deploy(process("fanout", body)).status, 201);
    EXPECT_TRUE(contained(start_instance("fanout")));
}

TEST_F(Hostile, RecursiveCallActivityHitsMaxCallDepth) {
    start({{"PYTHMATA_MAX_CALL_DEPTH", "8"}});
    ASSERT_EQ(deploy(process("again", R"(    <startEvent id="start"/>
    <callActivity id="call" calledElement="again"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="call"/>
    <sequenceFlow id="f2" sourceRef="call" targetRef="end"/>
)"))
                  .status,
              201);
    const auto before = Clock::now();
    auto r = start_instance("again");
    EXPECT_LT(Clock::now() - before, 10s);
    if (r.status == 201) {
        // The depth limit shows as an incident somewhere down the chain.
        EXPECT_TRUE(eventually(5s, [&] {
            auto incidents = client->get("/api/v1/incidents");
            return incidents.ok() && incidents.value().json()["data"]["items"].size() > 0;
        })) << r.describe();
    } else {
        EXPECT_TRUE(contained(r));
    }
    auto instances = must(client->get("/api/v1/instances?limit=100"));
    EXPECT_LE(instances.json()["data"]["total"].get<int>(), 10) << instances.describe();
}

TEST_F(Hostile, OversizedVariablesAre413) {
    start();
    ASSERT_EQ(deploy(bpmn::user_task_process("vars")).status, 201);
    auto one = start_instance("vars", {{"variables", {{"big", std::string((1u << 20) + 1, 'v')}}}});
    EXPECT_EQ(one.status, 413) << one.describe();
    EXPECT_EQ(one.json()["code"], "VARIABLE_TOO_LARGE") << one.describe();
    nlohmann::json many = nlohmann::json::object();
    for (int i = 0; i < 11; ++i)
        many["v" + std::to_string(i)] = std::string(1'000'000, 'w');
    auto total = start_instance("vars", {{"variables", many}});
    EXPECT_EQ(total.status, 413) << total.describe();
    EXPECT_EQ(total.json()["code"], "VARIABLES_TOO_LARGE") << total.describe();
}

TEST_F(Hostile, TimerCycleFiringForeverKeepsTheServerResponsive) {
    start({{"PYTHMATA_CLOCK_CONTROL", "true"}});
    auto d = deploy(process("cycle", R"(    <startEvent id="start"/>
    <userTask id="work"/>
    <boundaryEvent id="tick" attachedToRef="work" cancelActivity="false">
      <timerEventDefinition><timeCycle>R/PT1S</timeCycle></timerEventDefinition>
    </boundaryEvent>
    <endEvent id="ticked"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
    <sequenceFlow id="f3" sourceRef="tick" targetRef="ticked"/>
)"));
    ASSERT_EQ(d.status, 201) << d.describe();
    ASSERT_EQ(start_instance("cycle").status, 201);
    for (int i = 0; i < 10; ++i) {
        const auto before = Clock::now();
        auto advanced =
            must(client->send_json("POST", "/api/v1/clock/advance", {{"duration", "PT1M"}}));
        EXPECT_EQ(advanced.status, 200) << advanced.describe();
        HttpClient probe(server->port(), 1s);
        auto health = probe.get("/health");
        ASSERT_TRUE(health.ok());
        EXPECT_EQ(health.value().status, 200);
        EXPECT_LT(Clock::now() - before, 10s);
    }
    // Real seconds pass too: still serving.
    std::this_thread::sleep_for(2s);
    auto timers = must(client->get("/api/v1/timers"));
    EXPECT_EQ(timers.status, 200) << timers.describe();
}

}  // namespace
}  // namespace pythmata::test
