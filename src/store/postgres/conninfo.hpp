#pragma once

#include <chrono>
#include <string>

#include "pythmata/common/result.hpp"

namespace pythmata::store {

/// Checks a PostgreSQL URL (postgresql:// or postgres://, or a libpq key=value string) and
/// returns the connection string the pool uses: `connect_timeout` (whole seconds, rounded up,
/// at least 1) is added unless the URL sets one. Fails with INVALID_DB_URL (kInvalidArgument)
/// when libpq cannot parse it, or when the port or sslmode is invalid (libpq would only notice
/// at each connect, which would look like an endless outage). libpq's own text goes to
/// Error::internal.
[[nodiscard]] Result<std::string> postgres_conninfo(const std::string& url,
                                                    std::chrono::milliseconds connect_timeout);

}  // namespace pythmata::store
