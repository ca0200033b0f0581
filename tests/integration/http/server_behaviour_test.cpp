// How the real server behaves at the HTTP edge: routing errors, limits, content types, request
// ids, compression, keep-alive and pipelining, timeouts, the connection cap, graceful shutdown,
// durability across restarts, and the health endpoints. SQLite store, loopback only.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bpmn_samples.hpp"
#include "http_test_support.hpp"

namespace pythmata::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

class ServerBehaviour : public ::testing::Test {
  protected:
    /// Starts the server with `env` on top of the harness defaults.
    void start(std::map<std::string, std::string> env = {}) {
        ServerProcess::Options options;
        options.env = std::move(env);
        if (!options.env.contains("PYTHMATA_LOG_LEVEL")) {
            options.env["PYTHMATA_LOG_LEVEL"] = "warn";
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

    static HttpResponse call(Result<HttpResponse, HarnessFailure> result) {
        if (!result) {
            ADD_FAILURE() << result.error().message;
            return {};
        }
        return std::move(result).value();
    }

    HttpResponse get(const std::string& target, const HttpClient::Headers& headers = {}) {
        return call(client_->get(target, headers));
    }

    HttpResponse deploy(const std::string& xml) {
        return call(client_->send_xml("POST", "/api/v1/processes", xml));
    }

    /// A raw GET request with an X-Request-Id, for pipelining.
    static std::string raw_get(const std::string& target, const std::string& id) {
        return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: " + id + "\r\n\r\n";
    }

    std::unique_ptr<ServerProcess> server_;
    std::unique_ptr<HttpClient> client_;
};

// ---- routing -------------------------------------------------------------------------------

TEST_F(ServerBehaviour, UnknownPathsAre404WithTheErrorBody) {
    start();
    for (const char* target :
         {"/nope", "/api/v1/nope", "/api/v2/processes", "/api/v1/processes/a/b/c/d", "/"}) {
        const auto response = get(target);
        EXPECT_TRUE(is_error(response, 404, "NOT_FOUND")) << target;
    }
}

TEST_F(ServerBehaviour, AWrongMethodIs405NamingTheAllowedOnes) {
    start();
    const auto on_collection = call(client_->request("DELETE", "/api/v1/processes"));
    ASSERT_TRUE(is_error(on_collection, 405, "METHOD_NOT_ALLOWED"));
    const std::string allow = on_collection.header("Allow").value_or("");
    EXPECT_NE(allow.find("GET"), std::string::npos) << allow;
    EXPECT_NE(allow.find("POST"), std::string::npos) << allow;
    EXPECT_EQ(allow.find("DELETE"), std::string::npos) << allow;

    const auto on_key = call(client_->request("PATCH", "/api/v1/processes/SomeKey", "{}",
                                              {{"Content-Type", "application/json"}}));
    ASSERT_TRUE(is_error(on_key, 405, "METHOD_NOT_ALLOWED"));
    const std::string key_allow = on_key.header("Allow").value_or("");
    for (const char* method : {"GET", "PUT", "DELETE"}) {
        EXPECT_NE(key_allow.find(method), std::string::npos) << key_allow;
    }
    EXPECT_EQ(key_allow.find("PATCH"), std::string::npos) << key_allow;

    const auto on_health = call(client_->request("POST", "/health"));
    ASSERT_TRUE(is_error(on_health, 405, "METHOD_NOT_ALLOWED"));
    EXPECT_NE(on_health.header("Allow").value_or("").find("GET"), std::string::npos);
}

TEST_F(ServerBehaviour, HeadIsAnsweredLikeGetWithoutABody) {
    start();
    const auto head = call(client_->request("HEAD", "/health"));
    EXPECT_EQ(head.status, 200) << head.describe();
    EXPECT_TRUE(head.body.empty());
    EXPECT_TRUE(head.keep_alive);
    EXPECT_EQ(get("/health").status, 200) << "the connection is still in step";
    EXPECT_EQ(client_->connections_opened(), 1);
}

TEST_F(ServerBehaviour, MalformedRequestsAre400AndTheConnectionCloses) {
    start();
    const std::vector<std::string> malformed = {
        "GARBAGE\r\n\r\n",
        "GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
        // Both framings at once is how requests are smuggled past proxies.
        "POST /api/v1/processes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "GET /health HTTP/1.1\r\nHost: x\r\nBad Header Name: y\r\n\r\n",
    };
    for (const auto& bytes : malformed) {
        HttpClient raw(server_->port());
        ASSERT_TRUE(raw.send_raw(bytes).ok());
        PYTHMATA_ASSERT_OK(seen, raw.read_until_close(10s));
        EXPECT_TRUE(seen.closed) << bytes;
        EXPECT_TRUE(seen.bytes.starts_with("HTTP/1.1 400")) << bytes << " answered:\n"
                                                            << seen.bytes;
    }
    EXPECT_EQ(get("/health").status, 200);
}

// ---- limits --------------------------------------------------------------------------------

TEST_F(ServerBehaviour, ABodyOverMaxBodySizeIs413AndTheConnectionCloses) {
    start({{"PYTHMATA_MAX_BODY_SIZE", "4096"}});
    // At the limit the body is read and judged on its content (not JSON here: 400).
    const auto at_limit = call(client_->request("POST", "/api/v1/processes", std::string(4096, 'x'),
                                                {{"Content-Type", "application/json"}}));
    EXPECT_TRUE(is_error(at_limit, 400, "INVALID_JSON"));

    const auto over = call(client_->request("POST", "/api/v1/processes", std::string(8192, 'x'),
                                            {{"Content-Type", "application/json"}}));
    EXPECT_TRUE(is_error(over, 413, "BODY_TOO_LARGE"));
    EXPECT_FALSE(over.keep_alive) << "the rest of the body is not read, so the connection closes";

    // The same with a chunked body, whose size is not announced.
    HttpClient raw(server_->port());
    const std::string chunk(3000, 'y');
    std::string request =
        "POST /api/v1/processes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) {
        request += "bb8\r\n" + chunk + "\r\n";
    }
    request += "0\r\n\r\n";
    ASSERT_TRUE(raw.send_raw(request).ok());
    const auto chunked = call(raw.read_response());
    EXPECT_TRUE(is_error(chunked, 413, "BODY_TOO_LARGE"));

    EXPECT_EQ(get("/health").status, 200) << "the server still serves";
}

TEST_F(ServerBehaviour, OversizedHeadersAre431) {
    start({{"PYTHMATA_MAX_HEADER_SIZE", "4096"}});
    const auto fits = get("/health", {{"X-Padding", std::string(2000, 'a')}});
    EXPECT_EQ(fits.status, 200) << fits.describe();
    const auto over = get("/health", {{"X-Padding", std::string(8000, 'a')}});
    EXPECT_EQ(over.status, 431) << over.describe();
    EXPECT_TRUE(over.header("X-Request-Id").has_value());
    // Many small headers add up the same way.
    HttpClient::Headers many;
    for (int i = 0; i < 200; ++i) {
        many.emplace_back("X-H" + std::to_string(i), std::string(40, 'b'));
    }
    EXPECT_EQ(get("/health", many).status, 431);
    EXPECT_EQ(get("/health").status, 200);
}

// ---- request bodies ------------------------------------------------------------------------

TEST_F(ServerBehaviour, MalformedJsonIs400InvalidJson) {
    start();
    const auto response = call(client_->request("POST", "/api/v1/processes", R"({"bpmn_xml": )",
                                                {{"Content-Type", "application/json"}}));
    ASSERT_TRUE(is_error(response, 400, "INVALID_JSON"));
    EXPECT_TRUE(response.json()["context"].contains("position")) << response.describe();
    const auto not_object = call(client_->request("POST", "/api/v1/processes", "[1, 2]",
                                                  {{"Content-Type", "application/json"}}));
    EXPECT_EQ(not_object.status, 400) << not_object.describe();
}

TEST_F(ServerBehaviour, DeeplyNestedJsonIs400JsonTooDeep) {
    start();
    const std::string deep = std::string(200'000, '[') + std::string(200'000, ']');
    const auto response = call(client_->request("POST", "/api/v1/processes", deep,
                                                {{"Content-Type", "application/json"}}));
    EXPECT_TRUE(is_error(response, 400, "JSON_TOO_DEEP"));
    const std::string objects = [] {
        std::string s;
        for (int i = 0; i < 100; ++i) {
            s += R"({"a":)";
        }
        s += "1";
        s += std::string(100, '}');
        return s;
    }();
    const auto nested_objects = call(client_->request("POST", "/api/v1/processes", objects,
                                                      {{"Content-Type", "application/json"}}));
    EXPECT_TRUE(is_error(nested_objects, 400, "JSON_TOO_DEEP"));
    EXPECT_EQ(get("/health").status, 200) << "the server survived";
}

TEST_F(ServerBehaviour, OtherContentTypesAre415) {
    start();
    const std::string key = unique_name("Typed");
    const std::string xml = bpmn::user_task_process(key);
    for (const char* type :
         {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"}) {
        const auto response =
            call(client_->request("POST", "/api/v1/processes", xml, {{"Content-Type", type}}));
        EXPECT_TRUE(is_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")) << type;
    }
    EXPECT_EQ(get("/api/v1/processes/" + key).status, 404);
    // Parameters and case do not matter for the accepted types.
    const auto with_charset = call(client_->request(
        "POST", "/api/v1/processes", xml, {{"Content-Type", "Application/XML; charset=UTF-8"}}));
    EXPECT_EQ(with_charset.status, 201) << with_charset.describe();
    const auto json_charset =
        call(client_->request("POST", "/api/v1/processes", json{{"bpmn_xml", xml}}.dump(),
                              {{"Content-Type", "application/json; charset=utf-8"}}));
    EXPECT_EQ(json_charset.status, 200) << json_charset.describe();
}

// ---- request ids and compression -----------------------------------------------------------

TEST_F(ServerBehaviour, EveryResponseCarriesARequestId) {
    start();
    const auto first = get("/health");
    const auto second = get("/api/v1/unknown");
    const auto id1 = first.header("X-Request-Id");
    const auto id2 = second.header("X-Request-Id");
    ASSERT_TRUE(id1 && !id1->empty()) << first.describe();
    ASSERT_TRUE(id2 && !id2->empty()) << second.describe();
    EXPECT_NE(*id1, *id2);

    const auto echoed = get("/health", {{"X-Request-Id", "trace-42_ABC.def"}});
    EXPECT_EQ(echoed.header("X-Request-Id").value_or(""), "trace-42_ABC.def");
    // Ids that could forge log lines or bloat them are replaced.
    for (const std::string& bad : {std::string("two words"), std::string("<script>"),
                                   std::string(1000, 'x'), std::string("quote\"d")}) {
        const auto replaced = get("/health", {{"X-Request-Id", bad}});
        const auto id = replaced.header("X-Request-Id");
        ASSERT_TRUE(id && !id->empty()) << replaced.describe();
        EXPECT_NE(*id, bad);
    }
}

TEST_F(ServerBehaviour, LargeResponsesAreGzippedWhenTheClientAcceptsIt) {
    start({{"PYTHMATA_GZIP_MIN_SIZE", "512"}});
    const std::string key = unique_name("Big");
    ASSERT_EQ(deploy(bpmn::padded_process(key, 8000)).status, 201);
    const std::string target = "/api/v1/processes/" + key;

    const auto plain = get(target);
    ASSERT_EQ(plain.status, 200) << plain.describe();
    EXPECT_FALSE(plain.header("Content-Encoding").has_value());
    ASSERT_TRUE(plain.json().is_object());

    const auto zipped = get(target, {{"Accept-Encoding", "br, gzip;q=0.8, deflate"}});
    ASSERT_EQ(zipped.status, 200);
    EXPECT_EQ(zipped.header("Content-Encoding").value_or(""), "gzip") << zipped.describe();
    EXPECT_NE(zipped.header("Vary").value_or("").find("Accept-Encoding"), std::string::npos)
        << zipped.describe();
    EXPECT_LT(zipped.body.size(), plain.body.size() / 2);
    const auto unzipped = gunzip(zipped.body);
    ASSERT_TRUE(unzipped.has_value()) << "not gzip";
    EXPECT_EQ(json::parse(*unzipped), plain.json());

    const auto refused = get(target, {{"Accept-Encoding", "gzip;q=0"}});
    EXPECT_FALSE(refused.header("Content-Encoding").has_value()) << refused.describe();
    const auto other = get(target, {{"Accept-Encoding", "deflate, br"}});
    EXPECT_FALSE(other.header("Content-Encoding").has_value()) << other.describe();
    // Small bodies are not worth it.
    const auto small = get("/health", {{"Accept-Encoding", "gzip"}});
    EXPECT_FALSE(small.header("Content-Encoding").has_value()) << small.describe();
}

TEST_F(ServerBehaviour, GzipIsOffWhenGzipMinSizeIsZero) {
    start({{"PYTHMATA_GZIP_MIN_SIZE", "0"}});
    const std::string key = unique_name("Big");
    ASSERT_EQ(deploy(bpmn::padded_process(key, 8000)).status, 201);
    const auto response = get("/api/v1/processes/" + key, {{"Accept-Encoding", "gzip"}});
    ASSERT_EQ(response.status, 200);
    EXPECT_FALSE(response.header("Content-Encoding").has_value());
}

// ---- connections ---------------------------------------------------------------------------

TEST_F(ServerBehaviour, ManyRequestsShareOneKeepAliveConnection) {
    start();
    const std::string key = unique_name("Alive");
    ASSERT_EQ(deploy(bpmn::user_task_process(key)).status, 201);
    for (int i = 0; i < 200; ++i) {
        const auto response = get(i % 2 == 0 ? "/health" : "/api/v1/processes/" + key);
        ASSERT_EQ(response.status, 200) << "request " << i << ": " << response.describe();
        ASSERT_TRUE(response.keep_alive) << "request " << i;
    }
    EXPECT_EQ(client_->connections_opened(), 1);
    // An error answer keeps the connection too (it is an answer, not a broken stream).
    EXPECT_EQ(get("/api/v1/nope").status, 404);
    EXPECT_EQ(get("/health").status, 200);
    EXPECT_EQ(client_->connections_opened(), 1);
    // Connection: close is honoured.
    const auto last = get("/health", {{"Connection", "close"}});
    EXPECT_FALSE(last.keep_alive);
}

TEST_F(ServerBehaviour, PipelinedRequestsAreAnsweredInOrder) {
    start();
    const std::string key = unique_name("Piped");
    ASSERT_EQ(deploy(bpmn::user_task_process(key)).status, 201);
    HttpClient raw(server_->port());
    ASSERT_TRUE(raw.send_raw(raw_get("/health", "p1") + raw_get("/api/v1/nope", "p2") +
                             raw_get("/api/v1/processes/" + key, "p3") +
                             raw_get("/api/v1/processes?page_size=1", "p4"))
                    .ok());
    const int expected[] = {200, 404, 200, 200};
    for (int i = 0; i < 4; ++i) {
        const auto response = call(raw.read_response());
        EXPECT_EQ(response.status, expected[i]) << response.describe();
        EXPECT_EQ(response.header("X-Request-Id").value_or(""), "p" + std::to_string(i + 1));
    }
    EXPECT_EQ(raw.connections_opened(), 1);
}

TEST_F(ServerBehaviour, ASlowClientIsDisconnectedAfterTheReadTimeout) {
    start({{"PYTHMATA_HTTP_READ_TIMEOUT_MS", "300"}, {"PYTHMATA_HTTP_IDLE_TIMEOUT_MS", "30000"}});
    // Headers that never end.
    HttpClient slow_headers(server_->port());
    ASSERT_TRUE(slow_headers.send_raw("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n").ok());
    const auto began = Clock::now();
    PYTHMATA_ASSERT_OK(seen, slow_headers.read_until_close(10s));
    EXPECT_TRUE(seen.closed) << "still open after 10 s; got: " << seen.bytes;
    EXPECT_GE(Clock::now() - began, 200ms) << "closed before the read timeout";

    // A body that never completes.
    HttpClient slow_body(server_->port());
    ASSERT_TRUE(slow_body
                    .send_raw("POST /api/v1/processes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\"")
                    .ok());
    PYTHMATA_ASSERT_OK(body_seen, slow_body.read_until_close(10s));
    EXPECT_TRUE(body_seen.closed) << "still open after 10 s; got: " << body_seen.bytes;

    // Meanwhile and afterwards everyone else is served.
    EXPECT_EQ(get("/health").status, 200);
}

TEST_F(ServerBehaviour, AnIdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
    start({{"PYTHMATA_HTTP_IDLE_TIMEOUT_MS", "300"}});
    ASSERT_EQ(get("/health").status, 200);
    const auto began = Clock::now();
    PYTHMATA_ASSERT_OK(seen, client_->read_until_close(10s));
    EXPECT_TRUE(seen.closed) << "idle connection still open after 10 s";
    EXPECT_TRUE(seen.bytes.empty() || seen.bytes.starts_with("HTTP/1.1 408")) << seen.bytes;
    EXPECT_GE(Clock::now() - began, 200ms);
    // The client reconnects transparently.
    EXPECT_EQ(get("/health").status, 200);
    EXPECT_EQ(client_->connections_opened(), 2);
}

TEST_F(ServerBehaviour, ConnectionsBeyondTheLimitGet503Overloaded) {
    start({{"PYTHMATA_HTTP_MAX_CONNECTIONS", "2"}});
    HttpClient first(server_->port());
    HttpClient second(server_->port());
    ASSERT_EQ(call(first.get("/health")).status, 200);
    ASSERT_EQ(call(second.get("/health")).status, 200);
    ASSERT_TRUE(first.is_open() && second.is_open());

    HttpClient third(server_->port());
    const auto refused = call(third.get("/health"));
    EXPECT_TRUE(is_error(refused, 503, "OVERLOADED"));
    EXPECT_TRUE(refused.header("Retry-After").has_value()) << refused.describe();
    EXPECT_FALSE(refused.keep_alive);

    // The two admitted connections keep working.
    EXPECT_EQ(call(first.get("/health")).status, 200);
    EXPECT_EQ(call(second.get("/health")).status, 200);

    // Once one leaves, a newcomer gets in (the server notices the close asynchronously).
    first.close();
    EXPECT_TRUE(eventually(5s, [&] {
        HttpClient next(server_->port());
        auto r = next.get("/health");
        return r.ok() && r->status == 200;
    }));
}

// ---- slow requests -------------------------------------------------------------------------

/// Settings that keep a request busy in the server for about three seconds (a looping script).
std::map<std::string, std::string> slow_script_settings() {
    return {{"PYTHMATA_SCRIPT_TIMEOUT_MS", "3000"},
            {"PYTHMATA_SCRIPT_MAX_INSTRUCTIONS", "1000000000000"}};
}

TEST_F(ServerBehaviour, ARequestOverTheRequestTimeoutIs503RequestTimeout) {
    auto env = slow_script_settings();
    env["PYTHMATA_HTTP_REQUEST_TIMEOUT_MS"] = "300";
    start(env);
    const std::string key = unique_name("Spin");
    ASSERT_EQ(deploy(bpmn::spinning_script(key)).status, 201);
    const auto began = Clock::now();
    const auto response =
        call(client_->send_json("POST", "/api/v1/processes/" + key + "/instances", json::object()));
    const auto took = Clock::now() - began;
    EXPECT_TRUE(is_error(response, 503, "REQUEST_TIMEOUT"));
    EXPECT_TRUE(response.header("Retry-After").has_value()) << response.describe();
    EXPECT_GE(took, 250ms);
    EXPECT_LT(took, 2500ms) << "answered only when the work ended, not at the request timeout";
    // The server stays responsive meanwhile.
    EXPECT_EQ(get("/health").status, 200);
    EXPECT_EQ(get("/api/v1/processes/" + key).status, 200);
    // The definition is compiled now, so the next start goes from the I/O thread to the engine
    // with no blocking-pool thread waiting: the same limit holds for it.
    const auto began_async = Clock::now();
    const auto second =
        call(client_->send_json("POST", "/api/v1/processes/" + key + "/instances", json::object()));
    const auto took_async = Clock::now() - began_async;
    EXPECT_TRUE(is_error(second, 503, "REQUEST_TIMEOUT"));
    EXPECT_GE(took_async, 250ms);
    EXPECT_LT(took_async, 2500ms);
    EXPECT_EQ(get("/health").status, 200);
}

TEST_F(ServerBehaviour, RequestsBeyondTheQueueBoundGet503Overloaded) {
    auto env = slow_script_settings();
    env["PYTHMATA_HTTP_MAX_QUEUED_REQUESTS"] = "1";
    start(env);
    const std::string key = unique_name("Spin");
    ASSERT_EQ(deploy(bpmn::spinning_script(key)).status, 201);
    const std::string body = "{}";
    HttpClient busy(server_->port());
    ASSERT_TRUE(busy.send_raw("POST /api/v1/processes/" + key +
                              "/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n" +
                              body)
                    .ok());
    // The busy request must hold the one queue slot before the probes start, and every way to
    // observe the queue would queue itself, so give it a moment to be dispatched.
    std::this_thread::sleep_for(300ms);
    // While that one runs, the next request that needs a pool thread is refused at once.
    HttpResponse refused;
    EXPECT_TRUE(eventually(2s, [&] {
        refused = get("/api/v1/processes?page_size=1");
        return refused.status == 503;
    })) << refused.describe();
    EXPECT_TRUE(is_error(refused, 503, "OVERLOADED"));
    EXPECT_TRUE(refused.header("Retry-After").has_value());
    EXPECT_EQ(get("/health").status, 200) << "inline routes do not queue";
    // The busy request gets its answer, and then the queue has room again.
    const auto finished = call(busy.read_response());
    EXPECT_EQ(finished.status, 201) << finished.describe();

    EXPECT_EQ(get("/api/v1/processes?page_size=1").status, 200);
}

TEST_F(ServerBehaviour, ReadsRunOnTheirOwnPoolWhileEveryBlockingThreadIsBusy) {
    auto env = slow_script_settings();
    env["PYTHMATA_BLOCKING_THREADS"] = "1";
    env["PYTHMATA_HTTP_READ_THREADS"] = "1";
    start(env);
    const std::string key = unique_name("Spin");
    ASSERT_EQ(deploy(bpmn::spinning_script(key)).status, 201);
    // A start with an Idempotency-Key waits on the blocking pool for its commit: ~3 s of script.
    HttpClient busy(server_->port());
    ASSERT_TRUE(busy.send_raw("POST /api/v1/processes/" + key +
                              "/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Idempotency-Key: read-pool-test\r\n"
                              "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                    .ok());
    std::this_thread::sleep_for(300ms);
    // The one blocking thread is taken; reads are answered by the read pool meanwhile.
    const auto began = Clock::now();
    EXPECT_EQ(get("/api/v1/processes/" + key).status, 200);
    EXPECT_TRUE(is_error(get("/api/v1/instances/00000000-0000-4000-8000-000000000000"), 404,
                         "INSTANCE_NOT_FOUND"));
    EXPECT_EQ(get("/api/v1/tasks?page_size=1").status, 200);
    EXPECT_LT(Clock::now() - began, 1500ms) << "the reads waited for the blocking pool";
    // Several clients at once share the one read thread: each read waits its turn.
    std::vector<std::thread> clients;
    std::atomic<int> answered{0};
    for (int c = 0; c < 4; ++c) {
        clients.emplace_back([&] {
            HttpClient client(server_->port());
            for (int i = 0; i < 10; ++i) {
                auto r = client.get("/api/v1/processes/" + key + "/versions");
                if (r.ok() && r->status == 200)
                    ++answered;
            }
        });
    }
    for (auto& client : clients)
        client.join();
    EXPECT_EQ(answered.load(), 40);
    const auto finished = call(busy.read_response());
    EXPECT_EQ(finished.status, 201) << finished.describe();
}

// ---- shutdown and restarts -----------------------------------------------------------------

TEST_F(ServerBehaviour, SigtermLetsAnInFlightRequestFinishThenExits0) {
    start({{"PYTHMATA_SHUTDOWN_TIMEOUT_MS", "15000"}, {"PYTHMATA_LOG_LEVEL", "info"}});
    const std::string key = unique_name("InFlight");
    const std::string xml = bpmn::user_task_process(key);
    const std::string head =
        "POST /api/v1/processes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/xml\r\nContent-Length: " +
        std::to_string(xml.size()) + "\r\n\r\n";
    HttpClient in_flight(server_->port());
    ASSERT_TRUE(in_flight.send_raw(head + xml.substr(0, xml.size() / 2)).ok());
    // The server must have taken the request in before the signal; there is nothing to await
    // from outside, so give it a moment.
    std::this_thread::sleep_for(300ms);
    server_->send_signal(SIGTERM);

    // It stops accepting: new connections are refused while the request is still open.
    EXPECT_TRUE(eventually(5s, [&] {
        HttpClient late(server_->port());
        return !late.connect().ok();
    })) << "still accepting connections 5 s after SIGTERM";
    ASSERT_TRUE(server_->running());

    ASSERT_TRUE(in_flight.send_raw(xml.substr(xml.size() / 2)).ok());
    const auto response = call(in_flight.read_response());
    EXPECT_EQ(response.status, 201) << response.describe();
    EXPECT_FALSE(response.keep_alive) << "a stopping server closes after the answer";

    PYTHMATA_ASSERT_OK(status, server_->wait_exit(20s));
    EXPECT_TRUE(status.success()) << status.describe() << "\n" << server_->stderr_tail();

    // What it acknowledged is stored.
    ASSERT_TRUE(server_->restart().ok());
    HttpClient after(server_->port());
    const auto stored = call(after.get("/api/v1/processes/" + key));
    EXPECT_EQ(stored.status, 200) << stored.describe();
}

TEST_F(ServerBehaviour, SigintAndSigtermStopAnIdleServerWithExitCode0) {
    start();
    ASSERT_EQ(get("/health").status, 200);  // an idle keep-alive connection stays open
    server_->send_signal(SIGINT);
    PYTHMATA_ASSERT_OK(by_int, server_->wait_exit(15s));
    EXPECT_TRUE(by_int.success()) << by_int.describe();

    ASSERT_TRUE(server_->restart().ok());
    HttpClient again(server_->port());
    ASSERT_EQ(call(again.get("/health")).status, 200);
    PYTHMATA_ASSERT_OK(by_term, server_->terminate(15s));
    EXPECT_TRUE(by_term.success()) << by_term.describe();
    EXPECT_EQ(server_->stdout_text().find("listening on 127.0.0.1:"), 0u);
}

TEST_F(ServerBehaviour, ARestartedServerServesWhatWasDeployedOnTheSamePort) {
    start();
    const std::string key = unique_name("Durable");
    const auto deployed = deploy(bpmn::user_task_process(key));
    ASSERT_EQ(deployed.status, 201);
    const std::uint16_t port = server_->port();

    PYTHMATA_ASSERT_OK(status, server_->terminate());
    EXPECT_TRUE(status.success()) << status.describe();
    ASSERT_TRUE(server_->restart().ok());
    EXPECT_EQ(server_->port(), port);
    HttpClient after(server_->port());
    const auto fetched = call(after.get("/api/v1/processes/" + key));
    ASSERT_EQ(fetched.status, 200) << fetched.describe();
    EXPECT_EQ(fetched.json()["data"]["id"], deployed.json()["data"]["id"]);
}

TEST_F(ServerBehaviour, AnAcknowledgedDeploySurvivesKill9) {
    start();
    const std::string key = unique_name("Crash");
    const auto deployed = deploy(bpmn::user_task_process(key));
    ASSERT_EQ(deployed.status, 201);
    server_->kill9();
    ASSERT_TRUE(server_->restart().ok());
    HttpClient after(server_->port());
    const auto fetched = call(after.get("/api/v1/processes/" + key));
    ASSERT_EQ(fetched.status, 200) << fetched.describe();
    EXPECT_EQ(fetched.json()["data"]["version"], 1);
}

// ---- health --------------------------------------------------------------------------------

TEST_F(ServerBehaviour, HealthAndReadinessAnswer200WhenTheStoreIsUp) {
    start();
    const auto live = get("/health");
    ASSERT_EQ(live.status, 200) << live.describe();
    EXPECT_TRUE(live.json().is_object()) << live.describe();
    const auto ready = get("/health/ready");
    ASSERT_EQ(ready.status, 200) << ready.describe();
    EXPECT_EQ(ready.json()["data"]["status"], "ready");
    EXPECT_EQ(ready.json()["data"]["checks"]["store"], "ok") << ready.describe();
}

TEST_F(ServerBehaviour, TheServerRefusesToStartOnAPortInUse) {
    start();
    ServerProcess::Options options;
    options.env["PYTHMATA_HTTP_PORT"] = std::to_string(server_->port());
    auto second = ServerProcess::start(options);
    ASSERT_FALSE(second.ok()) << "a second server bound the same port";
    EXPECT_NE(second.error().message.find("exited before listening"), std::string::npos)
        << second.error().message;
    EXPECT_NE(second.error().message.find(std::to_string(server_->port())), std::string::npos)
        << "the error should name the address: " << second.error().message;
}

}  // namespace
}  // namespace pythmata::test
