#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "pythmata/app/settings.hpp"
#include "pythmata/common/error.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/http/message.hpp"
#include "pythmata/http/router.hpp"

namespace pythmata::http {

/// "admin", "operator", "viewer" -> Role; anything else -> nullopt.
[[nodiscard]] std::optional<Role> parse_role(std::string_view name);
[[nodiscard]] const char* role_name(Role role);

/// Bearer-token authentication (API.md "Auth"). Tokens are static API keys from the
/// `api_keys` setting ("role:key" entries, compared in constant time over SHA-256 digests) or
/// JWTs: HS256 with `jwt_hs256_secret`, RS256 with the PEM public key in
/// `jwt_rs256_public_key_file`, checked for `jwt_issuer`, `jwt_audience`, exp and nbf (with
/// `jwt_leeway_seconds`); the role is the `jwt_role_claim` claim. Auth is off (every request
/// passes as admin) when no key, secret or public key is configured. Immutable after create():
/// thread-safe.
class Authenticator {
  public:
    /// Parses the settings; Errors (INVALID_ARGUMENT) name the setting: a malformed api_keys
    /// entry, an unknown role, an unreadable or invalid public key file.
    [[nodiscard]] static Result<Authenticator> create(const app::HttpSettings& settings);
    [[nodiscard]] bool enabled() const;
    /// The role of `authorization` (the Authorization header value, if any) at `now` (Unix
    /// seconds). Errors: kUnauthorized UNAUTHORIZED; `context.invalid_token` is true when a
    /// token was given but rejected.
    [[nodiscard]] Result<Role> authenticate(std::optional<std::string_view> authorization,
                                            std::int64_t now) const;
    /// The checks of authenticate() for one compact JWT.
    [[nodiscard]] Result<Role> verify_jwt(std::string_view token, std::int64_t now) const;

    /// The decision for one matched route: nullopt = run the handler, else the 401/403 response
    /// (with WWW-Authenticate on 401). /health, /health/ready and /metrics are open when
    /// `auth_open_ops` is set.
    [[nodiscard]] std::optional<Response> check(const Route& route, const Request& request,
                                                std::int64_t now) const;
    /// check() with the current system time.
    [[nodiscard]] std::optional<Response> check(const Route& route, const Request& request) const;

  private:
    struct Impl;
    explicit Authenticator(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;
};

/// True for 127.0.0.0/8, ::1 and "localhost": the addresses that keep the API on this machine.
[[nodiscard]] bool is_loopback_host(std::string_view host);

/// The secure-default start-up rule: binding a non-loopback http_host with auth off is an
/// error naming http_host and allow_unauthenticated, unless allow_unauthenticated is set.
[[nodiscard]] Result<void, Error> check_bind_policy(const app::HttpSettings& settings);

}  // namespace pythmata::http
