#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "pythmata/app/records.hpp"
#include "pythmata/common/error.hpp"

namespace pythmata::store {

/// The database cannot be reached or its connection broke; the vendor text goes to `internal`.
[[nodiscard]] inline Error db_unavailable(std::string internal) {
    return Error::unavailable("DB_UNAVAILABLE", "the database is unavailable", std::move(internal),
                              1);
}

/// No pooled connection became free within db_pool_timeout.
[[nodiscard]] inline Error pool_timeout(std::chrono::milliseconds waited) {
    return Error::unavailable("DB_POOL_TIMEOUT",
                              "no database connection became free in time; retry later",
                              "pool wait " + std::to_string(waited.count()) + " ms", 1);
}

/// A statement ran into db_statement_timeout.
[[nodiscard]] inline Error statement_timeout(std::string internal) {
    return Error::unavailable("DB_TIMEOUT", "the database did not answer in time",
                              std::move(internal), 1);
}

/// Concurrent writers kept colliding on a unique key after every retry.
[[nodiscard]] inline Error write_conflict(std::string internal) {
    Error error = Error::conflict("DB_CONFLICT", "a concurrent change collided; retry");
    error.internal = std::move(internal);
    return error;
}

/// Retries of one call on unique violations, serialization failures and deadlocks.
inline constexpr int kMaxWriteAttempts = 8;

/// Offset and limit of a page, with page and page_size clamped to their documented ranges.
struct Window {
    std::int64_t limit = 20;
    std::int64_t offset = 0;
};

[[nodiscard]] inline Window window_of(const app::PageRequest& page) {
    const std::int64_t size =
        page.page_size < 1 ? 1 : (page.page_size > 1000 ? 1000 : page.page_size);
    const std::int64_t number = page.page < 1 ? 1 : page.page;
    return {size, (number - 1) * size};
}

/// Statuses of instances that have not ended.
inline constexpr const char* kUnfinishedStatuses = "('RUNNING', 'SUSPENDED', 'ERROR')";

}  // namespace pythmata::store
