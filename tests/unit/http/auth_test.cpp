// http/auth without sockets: API keys, JWT HS256/RS256 claims and signatures, the role check of
// a matched route, the secure-default bind rule.

#include "pythmata/http/auth.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <array>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <nlohmann/json.hpp>

#include "api.hpp"
#include "pythmata/app/definition_catalog.hpp"
#include "pythmata/metrics/registry.hpp"
#include "pythmata_fakes/fake_definition_store.hpp"
#include "pythmata_fakes/fake_telemetry.hpp"

namespace pythmata::http {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

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

std::string hs256(const std::string& input, const std::string& secret) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(), &len);
    return {reinterpret_cast<const char*>(mac.data()), len};
}

std::string jwt_hs(const nlohmann::json& claims, const std::string& secret,
                   const std::string& alg = "HS256") {
    const std::string input =
        b64url(nlohmann::json{{"alg", alg}, {"typ", "JWT"}}.dump()) + "." + b64url(claims.dump());
    return input + "." + b64url(hs256(input, secret));
}

struct KeyDeleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;

Key rsa_key() {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr);
    EVP_PKEY* key = nullptr;
    EVP_PKEY_keygen_init(ctx);
    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048);
    EVP_PKEY_keygen(ctx, &key);
    EVP_PKEY_CTX_free(ctx);
    return Key(key);
}

std::string public_pem(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
}

std::string jwt_rs(const nlohmann::json& claims, EVP_PKEY* key) {
    const std::string input = b64url(nlohmann::json{{"alg", "RS256"}, {"typ", "JWT"}}.dump()) +
                              "." + b64url(claims.dump());
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
    std::size_t len = 0;
    EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                   input.size());
    std::string sig(len, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    return input + "." + b64url(sig);
}

nlohmann::json claims(const std::string& role = "operator") {
    return {{"iss", "https://idp.example"},
            {"aud", "pythmata"},
            {"exp", kNow + 300},
            {"nbf", kNow - 10},
            {"role", role}};
}

std::optional<std::string_view> bearer(const std::string& token, std::string& storage) {
    storage = "Bearer " + token;
    return std::string_view(storage);
}

class AuthTest : public ::testing::Test {
  protected:
    void SetUp() override {
        key = rsa_key();
        ASSERT_NE(key, nullptr);
        pem_path = std::filesystem::temp_directory_path() /
                   ("pythmata_auth_test_" + std::to_string(::getpid()) + ".pem");
        std::FILE* f = std::fopen(pem_path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        pem = public_pem(key.get());
        std::fwrite(pem.data(), 1, pem.size(), f);
        std::fclose(f);
        settings.jwt_issuer = "https://idp.example";
        settings.jwt_audience = "pythmata";
        settings.jwt_leeway_seconds = 30;
    }
    void TearDown() override { std::filesystem::remove(pem_path); }

    Authenticator make() {
        auto a = Authenticator::create(settings);
        EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().message);
        return std::move(a).value();
    }
    Result<Role> auth(const Authenticator& a, const std::string& token) {
        std::string storage;
        return a.authenticate(bearer(token, storage), kNow);
    }

    Key key;
    std::string pem;
    std::filesystem::path pem_path;
    app::HttpSettings settings;
};

TEST_F(AuthTest, OffWithoutKeysOrSecrets) {
    EXPECT_FALSE(make().enabled());
    const Route route{"POST", "/api/v1/processes", Execution::kBlocking, {}, Role::kAdmin};
    EXPECT_FALSE(make().check(route, Request{}, kNow).has_value());
}

TEST_F(AuthTest, ApiKeysMatchTheirRoleAndRejectOthers) {
    settings.api_keys = " admin:alpha-key , viewer:beta-key,operator:gamma:with:colons";
    const auto a = make();
    ASSERT_TRUE(a.enabled());
    EXPECT_EQ(auth(a, "alpha-key").value(), Role::kAdmin);
    EXPECT_EQ(auth(a, "beta-key").value(), Role::kViewer);
    EXPECT_EQ(auth(a, "gamma:with:colons").value(), Role::kOperator);
    for (const char* bad : {"alpha-ke", "alpha-key2", "ALPHA-KEY", "admin:alpha-key", "x"}) {
        auto r = auth(a, bad);
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_EQ(r.error().kind, ErrorKind::kUnauthorized);
        EXPECT_EQ(r.error().code, "UNAUTHORIZED");
    }
    // Missing header, other scheme, empty token.
    EXPECT_FALSE(a.authenticate(std::nullopt, kNow).ok());
    EXPECT_FALSE(a.authenticate(std::string_view("Basic YWxwaGEta2V5"), kNow).ok());
    EXPECT_FALSE(a.authenticate(std::string_view("Bearer "), kNow).ok());
    EXPECT_EQ(a.authenticate(std::string_view("bearer alpha-key"), kNow).value(), Role::kAdmin);
}

TEST_F(AuthTest, MalformedApiKeySettingsAreErrorsNamingTheSetting) {
    for (const char* bad : {"alpha-key", "root:alpha", "admin:", "viewer:ok,nocolon"}) {
        settings.api_keys = bad;
        auto a = Authenticator::create(settings);
        ASSERT_FALSE(a.ok()) << bad;
        EXPECT_NE(a.error().message.find("api_keys"), std::string::npos);
    }
    settings.api_keys.clear();
    settings.jwt_rs256_public_key_file = "/nonexistent/key.pem";
    auto a = Authenticator::create(settings);
    ASSERT_FALSE(a.ok());
    EXPECT_NE(a.error().message.find("jwt_rs256_public_key_file"), std::string::npos);
}

TEST_F(AuthTest, Hs256GoodTokenGivesTheRoleClaim) {
    settings.jwt_hs256_secret = "s3cret";
    const auto a = make();
    EXPECT_EQ(auth(a, jwt_hs(claims("admin"), "s3cret")).value(), Role::kAdmin);
    EXPECT_EQ(auth(a, jwt_hs(claims("viewer"), "s3cret")).value(), Role::kViewer);
    // An array audience containing ours is accepted.
    auto c = claims();
    c["aud"] = {"other", "pythmata"};
    EXPECT_EQ(auth(a, jwt_hs(c, "s3cret")).value(), Role::kOperator);
    // A custom role claim.
    settings.jwt_role_claim = "pythmata_role";
    const auto custom = make();
    c = claims();
    c.erase("role");
    c["pythmata_role"] = "admin";
    EXPECT_EQ(auth(custom, jwt_hs(c, "s3cret")).value(), Role::kAdmin);
    EXPECT_FALSE(auth(custom, jwt_hs(claims("admin"), "s3cret")).ok());
}

TEST_F(AuthTest, Hs256RejectsExpiredNotYetValidWrongIssuerAudienceRoleAndSignature) {
    settings.jwt_hs256_secret = "s3cret";
    const auto a = make();
    auto expect_rejected = [&](const std::string& token, const char* what) {
        auto r = auth(a, token);
        ASSERT_FALSE(r.ok()) << what;
        EXPECT_EQ(r.error().kind, ErrorKind::kUnauthorized) << what;
    };
    auto c = claims();
    c["exp"] = kNow - 31;  // beyond the 30 s leeway
    expect_rejected(jwt_hs(c, "s3cret"), "expired");
    c["exp"] = kNow - 5;  // within the leeway
    EXPECT_TRUE(auth(a, jwt_hs(c, "s3cret")).ok());
    c = claims();
    c.erase("exp");
    expect_rejected(jwt_hs(c, "s3cret"), "no exp");
    c = claims();
    c["nbf"] = kNow + 31;
    expect_rejected(jwt_hs(c, "s3cret"), "nbf in the future");
    c = claims();
    c["iss"] = "https://evil.example";
    expect_rejected(jwt_hs(c, "s3cret"), "wrong iss");
    c = claims();
    c.erase("iss");
    expect_rejected(jwt_hs(c, "s3cret"), "no iss");
    c = claims();
    c["aud"] = "someone-else";
    expect_rejected(jwt_hs(c, "s3cret"), "wrong aud");
    expect_rejected(jwt_hs(claims("root"), "s3cret"), "unknown role");
    c = claims();
    c.erase("role");
    expect_rejected(jwt_hs(c, "s3cret"), "no role");
    expect_rejected(jwt_hs(claims(), "wrong-secret"), "bad signature");
    // A tampered payload keeps the old signature.
    std::string token = jwt_hs(claims("viewer"), "s3cret");
    const auto d1 = token.find('.');
    const auto d2 = token.find('.', d1 + 1);
    token = token.substr(0, d1 + 1) + b64url(claims("admin").dump()) + token.substr(d2);
    expect_rejected(token, "tampered payload");
    // alg none, with and without a signature.
    const std::string none_input =
        b64url(R"({"alg":"none","typ":"JWT"})") + "." + b64url(claims("admin").dump());
    expect_rejected(none_input + ".", "alg none");
    expect_rejected(none_input + "." + b64url(hs256(none_input, "s3cret")), "alg none signed");
    for (const char* garbage :
         {"a.b.c", "....", "not a token", "eyJ.eyJ.", "%%%.%%%.%%%", "a.b", "a.b.c.d"})
        expect_rejected(garbage, garbage);
    // Header and claims must be JSON objects.
    expect_rejected(b64url("[1]") + "." + b64url("{}") + ".x", "array header");
}

TEST_F(AuthTest, Rs256GoodTokenAndBadSignature) {
    settings.jwt_rs256_public_key_file = pem_path.string();
    const auto a = make();
    EXPECT_EQ(auth(a, jwt_rs(claims("admin"), key.get())).value(), Role::kAdmin);
    const Key other = rsa_key();
    EXPECT_FALSE(auth(a, jwt_rs(claims("admin"), other.get())).ok());
    auto c = claims();
    c["exp"] = kNow - 3600;
    EXPECT_FALSE(auth(a, jwt_rs(c, key.get())).ok());
    // HS256 is not accepted when only an RS256 key is configured.
    EXPECT_FALSE(auth(a, jwt_hs(claims("admin"), "anything")).ok());
}

TEST_F(AuthTest, AlgorithmConfusionHs256SignedWithThePublicKeyIsRejected) {
    settings.jwt_rs256_public_key_file = pem_path.string();
    const auto rs_only = make();
    EXPECT_FALSE(auth(rs_only, jwt_hs(claims("admin"), pem)).ok());
    // With both configured, the HMAC key is the HS256 secret, never the RSA key.
    settings.jwt_hs256_secret = "s3cret";
    const auto both = make();
    EXPECT_FALSE(auth(both, jwt_hs(claims("admin"), pem)).ok());
    EXPECT_TRUE(auth(both, jwt_hs(claims("admin"), "s3cret")).ok());
    EXPECT_TRUE(auth(both, jwt_rs(claims("admin"), key.get())).ok());
}

TEST_F(AuthTest, CheckAnswers401WithChallengeAnd403ByRole) {
    settings.api_keys = "admin:a,operator:o,viewer:v";
    const auto a = make();
    const Route deploy{"POST", "/api/v1/processes", Execution::kBlocking, {}, Role::kAdmin};
    const Route start{
        "POST", "/api/v1/processes/{key}/instances", Execution::kBlocking, {}, Role::kOperator};
    const Route list{"GET", "/api/v1/instances", Execution::kBlocking, {}, Role::kViewer};
    const Route health{"GET", "/health", Execution::kInline, {}, Role::kViewer};
    auto request = [](const char* token) {
        Request r;
        if (token != nullptr)
            r.headers.emplace_back("authorization", std::string("Bearer ") + token);
        return r;
    };
    auto missing = a.check(list, request(nullptr), kNow);
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 401);
    EXPECT_EQ(missing->header("WWW-Authenticate").value_or(""), "Bearer realm=\"pythmata\"");
    auto bad = a.check(list, request("nope"), kNow);
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 401);
    EXPECT_EQ(bad->header("WWW-Authenticate").value_or(""),
              "Bearer realm=\"pythmata\", error=\"invalid_token\"");
    EXPECT_EQ(nlohmann::json::parse(bad->body)["code"], "UNAUTHORIZED");
    const std::array<const Route*, 3> routes{&list, &start, &deploy};
    const std::array<const char*, 3> tokens{"v", "o", "a"};
    for (std::size_t t = 0; t < tokens.size(); ++t) {
        for (std::size_t r = 0; r < routes.size(); ++r) {
            auto denied = a.check(*routes[r], request(tokens[t]), kNow);
            if (r <= t) {
                EXPECT_FALSE(denied) << tokens[t] << " " << routes[r]->pattern;
            } else {
                ASSERT_TRUE(denied) << tokens[t] << " " << routes[r]->pattern;
                EXPECT_EQ(denied->status, 403);
                EXPECT_EQ(nlohmann::json::parse(denied->body)["code"], "FORBIDDEN");
            }
        }
    }
    EXPECT_FALSE(a.check(health, request(nullptr), kNow));
    settings.auth_open_ops = false;
    const auto closed = make();
    auto h = closed.check(health, request(nullptr), kNow);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, 401);
    EXPECT_FALSE(closed.check(health, request("v"), kNow));
}

TEST(AuthRoutes, EveryRouteOfTheTableHasItsRole) {
    fakes::FakeDefinitionStore store;
    fakes::FakeTelemetry telemetry;
    fakes::ManualClock clock;
    app::CacheSettings cache;
    app::EngineSettings engine;
    app::HttpSettings http;
    metrics::Registry registry;
    app::DefinitionCatalog catalog{store, nullptr, telemetry, clock, cache, engine};
    Api api{http, catalog, {}, registry};
    const Router router = make_router(api);
    const std::map<std::string, Role> expected = {
        {"GET /health", Role::kViewer},
        {"GET /health/ready", Role::kViewer},
        {"GET /metrics", Role::kViewer},
        {"POST /api/v1/processes", Role::kAdmin},
        {"GET /api/v1/processes", Role::kViewer},
        {"GET /api/v1/processes/{key}", Role::kViewer},
        {"PUT /api/v1/processes/{key}", Role::kAdmin},
        {"DELETE /api/v1/processes/{key}", Role::kAdmin},
        {"GET /api/v1/processes/{key}/versions", Role::kViewer},
        {"GET /api/v1/processes/{key}/versions/{version}", Role::kViewer},
    };
    ASSERT_EQ(router.routes().size(), expected.size());
    for (const auto& route : router.routes()) {
        const auto it = expected.find(route.method + " " + route.pattern);
        ASSERT_NE(it, expected.end()) << route.method << " " << route.pattern;
        EXPECT_EQ(route.role, it->second) << route.method << " " << route.pattern;
    }
}

TEST(BindPolicy, NonLoopbackNeedsAuthOrAllowUnauthenticated) {
    for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "localhost"})
        EXPECT_TRUE(is_loopback_host(host)) << host;
    for (const char* host :
         {"0.0.0.0", "10.0.0.1", "::", "127.0.0.1.evil", "128.0.0.1", "127.x.0.1"})
        EXPECT_FALSE(is_loopback_host(host)) << host;
    app::HttpSettings s;
    EXPECT_TRUE(check_bind_policy(s).ok());
    s.host = "0.0.0.0";
    auto refused = check_bind_policy(s);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error().message.find("http_host"), std::string::npos);
    EXPECT_NE(refused.error().message.find("allow_unauthenticated"), std::string::npos);
    s.allow_unauthenticated = true;
    EXPECT_TRUE(check_bind_policy(s).ok());
    s.allow_unauthenticated = false;
    s.api_keys = "admin:k";
    EXPECT_TRUE(check_bind_policy(s).ok());
    s.api_keys.clear();
    s.jwt_hs256_secret = "x";
    EXPECT_TRUE(check_bind_policy(s).ok());
}

}  // namespace
}  // namespace pythmata::http
