#pragma once

#include <chrono>
#include <string>

#include "pythmata/common/result.hpp"

namespace pythmata::store {

/// Checks a PostgreSQL URL (postgresql:// or postgres://, or a libpq key=value string) and
/// returns the connection string the pool uses, with our defaults for what the URL does not set:
/// `connect_timeout` (whole seconds, rounded up, at least 1); and unless `tcp_timeout` is 0
/// (db_tcp_timeout_ms), TCP keepalives (`keepalives=1`, `keepalives_idle` and
/// `keepalives_interval` a third of it in whole seconds, at least 1, `keepalives_count=2`) and
/// `tcp_user_timeout` (ms), so that a connection to a peer gone silent fails after about
/// `tcp_timeout` instead of the OS's hours. Fails with INVALID_DB_URL (kInvalidArgument)
/// when libpq cannot parse it, or when the port or sslmode is invalid (libpq would only notice
/// at each connect, which would look like an endless outage). libpq's own text goes to
/// Error::internal.
[[nodiscard]] Result<std::string> postgres_conninfo(const std::string& url,
                                                    std::chrono::milliseconds connect_timeout,
                                                    std::chrono::milliseconds tcp_timeout);

}  // namespace pythmata::store
