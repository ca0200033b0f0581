#pragma once

#include <span>
#include <string_view>

namespace pythmata::store {

/// One numbered schema change of one backend, embedded at build time from
/// src/store/<backend>/migrations/NNNN_name.sql (see embed_migrations.cmake).
struct Migration {
    int version = 0;
    std::string_view name;
    std::string_view sql;
};

/// PostgreSQL migrations in ascending version order.
[[nodiscard]] std::span<const Migration> postgres_migrations();
/// SQLite migrations in ascending version order.
[[nodiscard]] std::span<const Migration> sqlite_migrations();

}  // namespace pythmata::store
