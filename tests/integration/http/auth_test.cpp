// Auth over the real binary: 401 with a Bearer challenge, 403 by role over the route table,
// JWT HS256, open operations endpoints, and the secure-default bind rule.

#include <array>
#include <chrono>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "bpmn_samples.hpp"
#include "http_test_support.hpp"

namespace pythmata::test {
namespace {

using Headers = HttpClient::Headers;

const std::map<std::string, std::string> kAuthEnv = {
    {"PYTHMATA_API_KEYS", "admin:admin-key-1,operator:operator-key-1,viewer:viewer-key-1"},
    {"PYTHMATA_JWT_HS256_SECRET", "integration-secret"},
    {"PYTHMATA_JWT_ISSUER", "test-idp"},
    {"PYTHMATA_CLOCK_CONTROL", "true"},
};

Headers bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}};
}

std::string b64url(std::string_view in) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (const unsigned char c : in) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(kAlphabet[(acc >> bits) & 63u]);
        }
    }
    if (bits > 0)
        out.push_back(kAlphabet[(acc << (6 - bits)) & 63u]);
    return out;
}

std::string jwt(const std::string& role, std::int64_t exp_offset, const std::string& secret) {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const nlohmann::json claims = {{"iss", "test-idp"}, {"exp", now + exp_offset}, {"role", role}};
    const std::string input =
        b64url(R"({"alg":"HS256","typ":"JWT"})") + "." + b64url(claims.dump());
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(), &len);
    return input + "." + b64url(std::string_view(reinterpret_cast<const char*>(mac.data()), len));
}

class AuthApi : public ::testing::Test {
  protected:
    void SetUp() override {
        auto started = ServerProcess::start({.env = kAuthEnv});
        ASSERT_TRUE(started.ok()) << started.error().message;
        server = std::move(started).value();
        client = std::make_unique<HttpClient>(server->port());
    }
    std::unique_ptr<ServerProcess> server;
    std::unique_ptr<HttpClient> client;
};

TEST_F(AuthApi, NoTokenIs401WithChallengeAndBadTokenSaysInvalidToken) {
    PYTHMATA_ASSERT_OK(missing, client->get("/api/v1/processes"));
    EXPECT_EQ(missing.status, 401) << missing.describe();
    EXPECT_EQ(missing.header("WWW-Authenticate").value_or(""), "Bearer realm=\"pythmata\"");
    EXPECT_EQ(missing.json()["code"], "UNAUTHORIZED");
    PYTHMATA_ASSERT_OK(bad, client->get("/api/v1/processes", bearer("admin-key-2")));
    EXPECT_EQ(bad.status, 401) << bad.describe();
    EXPECT_EQ(bad.header("WWW-Authenticate").value_or(""),
              "Bearer realm=\"pythmata\", error=\"invalid_token\"");
    PYTHMATA_ASSERT_OK(expired, client->get("/api/v1/processes",
                                            bearer(jwt("admin", -3600, "integration-secret"))));
    EXPECT_EQ(expired.status, 401) << expired.describe();
    PYTHMATA_ASSERT_OK(
        forged, client->get("/api/v1/processes", bearer(jwt("admin", 600, "guessed-secret"))));
    EXPECT_EQ(forged.status, 401) << forged.describe();
    // A deploy without a token has no effect.
    PYTHMATA_ASSERT_OK(
        deploy, client->request("POST", "/api/v1/processes", bpmn::user_task_process("sneaky"),
                                {{"Content-Type", "application/xml"}}));
    EXPECT_EQ(deploy.status, 401);
    PYTHMATA_ASSERT_OK(list, client->get("/api/v1/processes", bearer("viewer-key-1")));
    EXPECT_EQ(list.status, 200) << list.describe();
    EXPECT_EQ(list.body.find("sneaky"), std::string::npos);
}

TEST_F(AuthApi, WebSocketUpgradeNeedsAToken) {
    const std::string upgrade =
        "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
        "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    HttpClient anonymous(server->port());
    ASSERT_TRUE(anonymous.send_raw(upgrade + "\r\n").ok());
    PYTHMATA_ASSERT_OK(refused, anonymous.read_response());
    EXPECT_EQ(refused.status, 401) << refused.describe();
    HttpClient viewer(server->port());
    ASSERT_TRUE(viewer.send_raw(upgrade + "Authorization: Bearer viewer-key-1\r\n\r\n").ok());
    PYTHMATA_ASSERT_OK(accepted, viewer.read_response());
    EXPECT_EQ(accepted.status, 101) << accepted.describe();
}

TEST_F(AuthApi, OperationsEndpointsAreOpen) {
    for (const char* path : {"/health", "/health/ready", "/metrics"}) {
        PYTHMATA_ASSERT_OK(r, client->get(path));
        EXPECT_EQ(r.status, 200) << path << " " << r.describe();
    }
}

TEST_F(AuthApi, EachRoleReachesItsRoutesAndIsForbiddenAbove) {
    // Deploy one process as admin so that reads can succeed.
    Headers xml = bearer("admin-key-1");
    xml[1].second = "application/xml";
    PYTHMATA_ASSERT_OK(deployed, client->request("POST", "/api/v1/processes",
                                                 bpmn::user_task_process("authp"), xml));
    ASSERT_EQ(deployed.status, 201) << deployed.describe();

    struct Call {
        const char* method;
        std::string target;
        std::string body;
        int role;  // 1 viewer, 2 operator, 3 admin
    };
    const std::string id = "00000000-0000-4000-8000-000000000000";
    const std::vector<Call> calls = {
        {"GET", "/api/v1/processes", "", 1},
        {"GET", "/api/v1/processes/authp", "", 1},
        {"GET", "/api/v1/processes/authp/versions", "", 1},
        {"GET", "/api/v1/processes/authp/versions/1", "", 1},
        {"GET", "/api/v1/instances", "", 1},
        {"GET", "/api/v1/instances/" + id, "", 1},
        {"GET", "/api/v1/instances/" + id + "/variables", "", 1},
        {"GET", "/api/v1/tasks", "", 1},
        {"GET", "/api/v1/timers", "", 1},
        {"GET", "/api/v1/incidents", "", 1},
        {"GET", "/api/v1/stats", "", 1},
        {"GET", "/api/v1/clock", "", 1},
        {"POST", "/api/v1/processes/authp/instances", "{}", 2},
        {"DELETE", "/api/v1/instances/" + id, "", 2},
        {"POST", "/api/v1/instances/" + id + "/suspend", "", 2},
        {"POST", "/api/v1/instances/" + id + "/resume", "", 2},
        {"PATCH", "/api/v1/instances/" + id + "/variables", R"({"a":1})", 2},
        {"POST", "/api/v1/tasks/" + id + "/claim", R"({"assignee":"x"})", 2},
        {"POST", "/api/v1/tasks/" + id + "/complete", "{}", 2},
        {"POST", "/api/v1/messages", R"({"name":"nobody"})", 2},
        {"POST", "/api/v1/signals", R"({"name":"nobody"})", 2},
        {"POST", "/api/v1/jobs/activate", R"({"type":"t","worker":"w","max_jobs":1})", 2},
        {"POST", "/api/v1/jobs/" + id + "/complete", "{}", 2},
        {"POST", "/api/v1/incidents/" + id + "/resolve", "{}", 2},
        {"POST", "/api/v1/clock/advance", R"({"duration":"PT1S"})", 3},
        {"PUT", "/api/v1/processes/authp", "", 3},
        {"DELETE", "/api/v1/processes/nothere", "", 3},
        {"POST", "/api/v1/processes", "", 3},
    };
    const std::array<std::string, 3> tokens = {"viewer-key-1", "operator-key-1",
                                               jwt("admin", 600, "integration-secret")};
    for (int t = 0; t < 3; ++t) {
        for (const auto& call : calls) {
            PYTHMATA_ASSERT_OK(r, client->request(call.method, call.target, call.body,
                                                  bearer(tokens[static_cast<std::size_t>(t)])));
            const std::string what =
                std::string(call.method) + " " + call.target + " as role " + std::to_string(t + 1);
            EXPECT_NE(r.status, 401) << what << " " << r.describe();
            EXPECT_LT(r.status, 500) << what << " " << r.describe();
            if (t + 1 < call.role) {
                EXPECT_EQ(r.status, 403) << what << " " << r.describe();
                EXPECT_EQ(r.json()["code"], "FORBIDDEN") << what;
            } else {
                EXPECT_NE(r.status, 403) << what << " " << r.describe();
            }
        }
    }
    // The JWT admin redeploys: a real write.
    PYTHMATA_ASSERT_OK(
        v2, client->request("PUT", "/api/v1/processes/authp",
                            bpmn::user_task_process("authp", "Order", "v2"),
                            {{"Authorization", "Bearer " + jwt("admin", 600, "integration-secret")},
                             {"Content-Type", "application/xml"}}));
    EXPECT_EQ(v2.status / 100, 2) << v2.describe();
}

TEST(AuthBind, NonLoopbackWithoutAuthRefusesToStart) {
    PYTHMATA_ASSERT_OK(out, run_pythmata({"serve"}, {{"PYTHMATA_HTTP_HOST", "0.0.0.0"},
                                                     {"PYTHMATA_HTTP_PORT", "0"},
                                                     {"PYTHMATA_DB_URL", "sqlite://./never.db"}}));
    EXPECT_TRUE(out.status.exited) << out.status.describe();
    EXPECT_EQ(out.status.code, 2) << out.err;
    EXPECT_NE(out.err.find("http_host"), std::string::npos) << out.err;
    EXPECT_NE(out.err.find("allow_unauthenticated"), std::string::npos) << out.err;
    EXPECT_EQ(out.out.find("listening on"), std::string::npos);
}

TEST(AuthBind, AllowUnauthenticatedOrAuthPermitsANonLoopbackBind) {
    for (const auto& extra : std::vector<std::map<std::string, std::string>>{
             {{"PYTHMATA_ALLOW_UNAUTHENTICATED", "true"}},
             {{"PYTHMATA_API_KEYS", "viewer:bind-key"}}}) {
        auto env = extra;
        env["PYTHMATA_HTTP_HOST"] = "0.0.0.0";
        auto started = ServerProcess::start({.env = env});
        ASSERT_TRUE(started.ok()) << started.error().message;
        HttpClient client(started.value()->port());
        PYTHMATA_ASSERT_OK(health, client.get("/health"));
        EXPECT_EQ(health.status, 200);
        PYTHMATA_ASSERT_OK(list, client.get("/api/v1/processes"));
        EXPECT_EQ(list.status, extra.count("PYTHMATA_API_KEYS") != 0 ? 401 : 200);
        PYTHMATA_ASSERT_OK(stopped, started.value()->terminate());
        EXPECT_TRUE(stopped.success()) << stopped.describe();
    }
}

TEST(AuthConfig, SecretsAreNotPrinted) {
    PYTHMATA_ASSERT_OK(out,
                       run_pythmata({"config"}, {{"PYTHMATA_API_KEYS", "admin:topsecret1"},
                                                 {"PYTHMATA_JWT_HS256_SECRET", "topsecret2"}}));
    ASSERT_TRUE(out.status.success()) << out.err;
    EXPECT_EQ(out.out.find("topsecret"), std::string::npos) << out.out;
    EXPECT_NE(out.out.find("api_keys = <set>"), std::string::npos) << out.out;
    EXPECT_NE(out.out.find("jwt_hs256_secret = <set>"), std::string::npos) << out.out;
}

TEST(AuthConfig, ABadApiKeyEntryStopsStartUp) {
    PYTHMATA_ASSERT_OK(out, run_pythmata({"serve"}, {{"PYTHMATA_API_KEYS", "superuser:k"},
                                                     {"PYTHMATA_HTTP_PORT", "0"}}));
    EXPECT_EQ(out.status.code, 2) << out.status.describe();
    EXPECT_NE(out.err.find("api_keys"), std::string::npos) << out.err;
    EXPECT_EQ(out.err.find("superuser:k"), std::string::npos) << "the key itself is not echoed";
}

}  // namespace
}  // namespace pythmata::test
