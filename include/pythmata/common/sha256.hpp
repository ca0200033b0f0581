#pragma once

#include <string>
#include <string_view>

namespace pythmata {

/// SHA-256 of `data` as 64 lower-case hex characters (FIPS 180-4). Used to detect identical
/// redeploys and idempotent replays; not for secrets.
[[nodiscard]] std::string sha256_hex(std::string_view data);

}  // namespace pythmata
