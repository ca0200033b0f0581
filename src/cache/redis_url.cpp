#include "pythmata/cache/redis_url.hpp"

#include <charconv>

namespace pythmata::cache {

namespace {

Error bad_url(const std::string& why) {
    return Error::invalid_argument("redis_url: " + why, "INVALID_SETTING");
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/// Decodes %XX escapes; fails on a truncated or non-hex escape.
bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        if (i + 2 >= in.size()) {
            return false;
        }
        const int high = hex_value(in[i + 1]);
        const int low = hex_value(in[i + 2]);
        if (high < 0 || low < 0) {
            return false;
        }
        out += static_cast<char>(high * 16 + low);
        i += 2;
    }
    return true;
}

bool all_digits(std::string_view text) {
    if (text.empty()) {
        return false;
    }
    for (char c : text) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    return true;
}

}  // namespace

Result<RedisEndpoint> parse_redis_url(std::string_view url) {
    constexpr std::string_view kScheme = "redis://";
    if (url.substr(0, kScheme.size()) != kScheme) {
        // The URL is not echoed: it may carry a password.
        return bad_url("must start with redis:// (TLS and unix sockets are not supported)");
    }
    std::string_view rest = url.substr(kScheme.size());
    RedisEndpoint endpoint;

    // Credentials end at the last '@', so a password may contain '@' unescaped.
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        const std::string_view userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        const auto colon = userinfo.find(':');
        if (colon == std::string_view::npos) {
            return bad_url("credentials must be ':password@' or 'username:password@'");
        }
        if (!percent_decode(userinfo.substr(0, colon), endpoint.username) ||
            !percent_decode(userinfo.substr(colon + 1), endpoint.password)) {
            return bad_url("bad percent-escape in the credentials");
        }
        if (endpoint.password.empty()) {
            return bad_url("empty password after ':'");
        }
    }

    std::string_view path;
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
        path = rest.substr(slash + 1);
        rest = rest.substr(0, slash);
    }

    std::string_view port_text;
    if (!rest.empty() && rest.front() == '[') {
        const auto close = rest.find(']');
        if (close == std::string_view::npos) {
            return bad_url("unterminated '[' in the IPv6 host");
        }
        endpoint.host = std::string(rest.substr(1, close - 1));
        const std::string_view after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                return bad_url("unexpected text after the IPv6 host");
            }
            port_text = after.substr(1);
            if (port_text.empty()) {
                return bad_url("empty port");
            }
        }
    } else {
        const auto colon = rest.find(':');
        endpoint.host = std::string(rest.substr(0, colon));
        if (colon != std::string_view::npos) {
            port_text = rest.substr(colon + 1);
            if (port_text.empty()) {
                return bad_url("empty port");
            }
        }
    }
    if (endpoint.host.empty()) {
        return bad_url("missing host");
    }
    if (!port_text.empty()) {
        unsigned port = 0;
        const auto [end, ec] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (!all_digits(port_text) || ec != std::errc{} || end != port_text.end() || port == 0 ||
            port > 65535) {
            return bad_url("port must be a number from 1 to 65535, got '" + std::string(port_text) +
                           "'");
        }
        endpoint.port = static_cast<std::uint16_t>(port);
    }

    if (!path.empty()) {
        int db = 0;
        const auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), db);
        if (!all_digits(path) || ec != std::errc{} || end != path.end()) {
            return bad_url("database must be a non-negative number, got '" + std::string(path) +
                           "'");
        }
        endpoint.db = db;
    }
    return endpoint;
}

}  // namespace pythmata::cache
