// Bearer-token authentication and role checks (API.md "Auth"). OpenSSL does the cryptography:
// SHA-256 for constant-time API key comparison, HMAC for HS256, EVP_DigestVerify for RS256.

#include "pythmata/http/auth.hpp"

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <nlohmann/json.hpp>

#include "pythmata/http/error_mapping.hpp"

namespace pythmata::http {
namespace {

using Digest = std::array<unsigned char, 32>;

Digest sha256(std::string_view data) {
    Digest out{};
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

/// base64url without padding (RFC 7515 §2); nullopt on any other character or a bad length.
std::optional<std::string> base64url_decode(std::string_view in) {
    std::string out;
    out.reserve(in.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : in) {
        int v = -1;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-')
            v = 62;
        else if (c == '_')
            v = 63;
        else
            return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFFu));
        }
    }
    if (in.size() % 4 == 1)
        return std::nullopt;
    return out;
}

Error unauthorized(std::string message, bool invalid_token) {
    Error e{ErrorKind::kUnauthorized, "UNAUTHORIZED", std::move(message), {}, {}, 1};
    if (invalid_token)
        e.internal = "invalid_token";
    return e;
}

Error bad_setting(const std::string& name, const std::string& why) {
    return Error::invalid_argument(name + ": " + why);
}

bool is_ops_path(std::string_view pattern) {
    return pattern == "/health" || pattern == "/health/ready" || pattern == "/metrics";
}

struct PkeyDeleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

}  // namespace

std::optional<Role> parse_role(std::string_view name) {
    if (name == "admin")
        return Role::kAdmin;
    if (name == "operator")
        return Role::kOperator;
    if (name == "viewer")
        return Role::kViewer;
    return std::nullopt;
}

const char* role_name(Role role) {
    switch (role) {
        case Role::kAdmin:
            return "admin";
        case Role::kOperator:
            return "operator";
        case Role::kViewer:
            return "viewer";
    }
    return "viewer";
}

struct Authenticator::Impl {
    struct Key {
        Role role;
        Digest digest;
    };
    std::vector<Key> keys;
    std::string hs256_secret;
    std::unique_ptr<EVP_PKEY, PkeyDeleter> rs256_key;
    std::string issuer;
    std::string audience;
    std::int64_t leeway = 0;
    std::string role_claim;
    bool open_ops = true;

    [[nodiscard]] bool enabled() const {
        return !keys.empty() || !hs256_secret.empty() || rs256_key != nullptr;
    }
};

Result<Authenticator> Authenticator::create(const app::HttpSettings& settings) {
    auto impl = std::make_shared<Impl>();
    std::string_view rest = settings.api_keys;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string_view entry = trim(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        if (entry.empty())
            continue;
        const auto colon = entry.find(':');
        if (colon == std::string_view::npos || colon + 1 == entry.size())
            return bad_setting("api_keys",
                               "each entry must be role:key (admin, operator or viewer)");
        const auto role = parse_role(entry.substr(0, colon));
        if (!role)
            return bad_setting("api_keys", "unknown role \"" + std::string(entry.substr(0, colon)) +
                                               "\" (admin, operator or viewer)");
        impl->keys.push_back({*role, sha256(entry.substr(colon + 1))});
    }
    impl->hs256_secret = settings.jwt_hs256_secret;
    if (!settings.jwt_rs256_public_key_file.empty()) {
        const std::string& path = settings.jwt_rs256_public_key_file;
        std::FILE* f = std::fopen(path.c_str(), "rb");
        if (f == nullptr)
            return bad_setting("jwt_rs256_public_key_file", "cannot read " + path);
        EVP_PKEY* key = PEM_read_PUBKEY(f, nullptr, nullptr, nullptr);
        std::fclose(f);
        if (key == nullptr)
            return bad_setting("jwt_rs256_public_key_file", path + " is not a PEM public key");
        impl->rs256_key.reset(key);
        if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA)
            return bad_setting("jwt_rs256_public_key_file", path + " is not an RSA public key");
    }
    impl->issuer = settings.jwt_issuer;
    impl->audience = settings.jwt_audience;
    impl->leeway = settings.jwt_leeway_seconds;
    impl->role_claim = settings.jwt_role_claim.empty() ? "role" : settings.jwt_role_claim;
    impl->open_ops = settings.auth_open_ops;
    return Authenticator(std::move(impl));
}

bool Authenticator::enabled() const {
    return impl_->enabled();
}

Result<Role> Authenticator::verify_jwt(std::string_view token, std::int64_t now) const {
    const auto dot1 = token.find('.');
    const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
        return unauthorized("the token is not a valid API key or JWT", true);
    const auto header_text = base64url_decode(token.substr(0, dot1));
    const auto payload_text = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
    const auto signature = base64url_decode(token.substr(dot2 + 1));
    if (!header_text || !payload_text || !signature)
        return unauthorized("the JWT is not base64url-encoded", true);
    const auto header = nlohmann::json::parse(*header_text, nullptr, false);
    const auto claims = nlohmann::json::parse(*payload_text, nullptr, false);
    if (!header.is_object() || !claims.is_object() || !header.contains("alg") ||
        !header["alg"].is_string())
        return unauthorized("the JWT header or claims are not JSON objects", true);
    const std::string alg = header["alg"].get<std::string>();
    const std::string_view signing_input = token.substr(0, dot2);
    if (alg == "HS256" && !impl_->hs256_secret.empty()) {
        std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
        unsigned int mac_len = 0;
        HMAC(EVP_sha256(), impl_->hs256_secret.data(), static_cast<int>(impl_->hs256_secret.size()),
             reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(),
             mac.data(), &mac_len);
        if (signature->size() != mac_len ||
            CRYPTO_memcmp(signature->data(), mac.data(), mac_len) != 0)
            return unauthorized("the JWT signature is invalid", true);
    } else if (alg == "RS256" && impl_->rs256_key != nullptr) {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        bool ok = ctx != nullptr &&
                  EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr,
                                       impl_->rs256_key.get()) == 1 &&
                  EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature->data()),
                                   signature->size(),
                                   reinterpret_cast<const unsigned char*>(signing_input.data()),
                                   signing_input.size()) == 1;
        EVP_MD_CTX_free(ctx);
        if (!ok)
            return unauthorized("the JWT signature is invalid", true);
    } else {
        return unauthorized("the JWT algorithm \"" + alg + "\" is not accepted", true);
    }
    // Claims: exp is required; nbf, iss and aud as configured.
    if (!claims.contains("exp") || !claims["exp"].is_number())
        return unauthorized("the JWT has no exp claim", true);
    if (claims["exp"].get<double>() + static_cast<double>(impl_->leeway) <=
        static_cast<double>(now))
        return unauthorized("the JWT has expired", true);
    if (claims.contains("nbf")) {
        if (!claims["nbf"].is_number())
            return unauthorized("the JWT nbf claim is not a number", true);
        if (claims["nbf"].get<double>() - static_cast<double>(impl_->leeway) >
            static_cast<double>(now))
            return unauthorized("the JWT is not valid yet", true);
    }
    if (!impl_->issuer.empty()) {
        if (!claims.contains("iss") || !claims["iss"].is_string() ||
            claims["iss"].get<std::string>() != impl_->issuer)
            return unauthorized("the JWT issuer is not accepted", true);
    }
    if (!impl_->audience.empty()) {
        bool found = false;
        if (claims.contains("aud") && claims["aud"].is_string())
            found = claims["aud"].get<std::string>() == impl_->audience;
        else if (claims.contains("aud") && claims["aud"].is_array())
            for (const auto& a : claims["aud"])
                found = found || (a.is_string() && a.get<std::string>() == impl_->audience);
        if (!found)
            return unauthorized("the JWT audience is not accepted", true);
    }
    if (!claims.contains(impl_->role_claim) || !claims[impl_->role_claim].is_string())
        return unauthorized("the JWT has no " + impl_->role_claim + " claim", true);
    const auto role = parse_role(claims[impl_->role_claim].get<std::string>());
    if (!role)
        return unauthorized("the JWT role is not admin, operator or viewer", true);
    return *role;
}

Result<Role> Authenticator::authenticate(std::optional<std::string_view> authorization,
                                         std::int64_t now) const {
    if (!authorization)
        return unauthorized("this endpoint needs Authorization: Bearer <token>", false);
    std::string_view value = trim(*authorization);
    constexpr std::string_view kBearer = "bearer ";
    if (value.size() <= kBearer.size() || !iequals(value.substr(0, kBearer.size()), kBearer))
        return unauthorized("only the Bearer scheme is accepted", true);
    const std::string_view token = trim(value.substr(kBearer.size()));
    if (token.empty())
        return unauthorized("the bearer token is empty", true);
    if (!impl_->keys.empty()) {
        // Every key is compared, without an early exit, over fixed-length digests.
        const Digest given = sha256(token);
        int matched = 0;
        Role role = Role::kViewer;
        for (const auto& key : impl_->keys) {
            const int equal = CRYPTO_memcmp(given.data(), key.digest.data(), given.size()) == 0;
            if (equal != 0 && matched == 0)
                role = key.role;
            matched |= equal;
        }
        if (matched != 0)
            return role;
    }
    if (!impl_->hs256_secret.empty() || impl_->rs256_key != nullptr)
        return verify_jwt(token, now);
    return unauthorized("the token is not a valid API key", true);
}

std::optional<Response> Authenticator::check(const Route& route, const Request& request,
                                             std::int64_t now) const {
    if (!impl_->enabled())
        return std::nullopt;
    if (impl_->open_ops && is_ops_path(route.pattern))
        return std::nullopt;
    auto role = authenticate(request.header("Authorization"), now);
    if (!role) {
        Response response = error_response(role.error());
        std::string challenge = "Bearer realm=\"pythmata\"";
        if (role.error().internal == "invalid_token")
            challenge += ", error=\"invalid_token\"";
        response.set_header("WWW-Authenticate", std::move(challenge));
        response.route = route.pattern;
        return response;
    }
    if (static_cast<int>(*role) < static_cast<int>(route.role)) {
        Response response =
            error_response(Error{ErrorKind::kForbidden,
                                 "FORBIDDEN",
                                 std::string("this endpoint needs the ") + role_name(route.role) +
                                     " role; the token has " + role_name(*role),
                                 {},
                                 {},
                                 1});
        response.route = route.pattern;
        return response;
    }
    return std::nullopt;
}

std::optional<Response> Authenticator::check(const Route& route, const Request& request) const {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return check(route, request, now);
}

bool is_loopback_host(std::string_view host) {
    if (host == "localhost" || host == "::1" || host == "[::1]")
        return true;
    if (!host.starts_with("127."))
        return false;
    int dots = 0;
    for (const char c : host) {
        if (c == '.')
            ++dots;
        else if (c < '0' || c > '9')
            return false;
    }
    return dots == 3;
}

Result<void, Error> check_bind_policy(const app::HttpSettings& settings) {
    if (is_loopback_host(settings.host) || settings.allow_unauthenticated)
        return {};
    const bool auth_on = !settings.api_keys.empty() || !settings.jwt_hs256_secret.empty() ||
                         !settings.jwt_rs256_public_key_file.empty();
    if (auth_on)
        return {};
    return Error::invalid_argument(
        "http_host = \"" + settings.host +
        "\" is not a loopback address and no auth is configured (api_keys, jwt_hs256_secret or "
        "jwt_rs256_public_key_file); refusing to serve the API unauthenticated. Configure auth, "
        "bind 127.0.0.1, or set allow_unauthenticated = true");
}

}  // namespace pythmata::http
