#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "pythmata/common/result.hpp"

namespace pythmata::cache {

/// Where and how to reach Redis, as parsed from a `redis_url` setting.
struct RedisEndpoint {
    std::string host;           ///< name or address; IPv6 literals without brackets
    std::uint16_t port = 6379;  ///< default 6379 when the URL names none
    std::string username;       ///< empty: AUTH with the password only (pre-ACL form)
    std::string password;       ///< empty: no AUTH
    int db = 0;                 ///< SELECTed on connect when not 0
};

/// Parses `redis://[[username]:password@]host[:port][/db]` (percent-escapes in the credentials
/// are decoded). Fails with INVALID_SETTING naming `redis_url` and what is wrong; the message
/// never contains the password.
[[nodiscard]] Result<RedisEndpoint> parse_redis_url(std::string_view url);

}  // namespace pythmata::cache
