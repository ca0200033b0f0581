#pragma once

#include <memory>
#include <string>

#include "pythmata/app/settings.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/store/store.hpp"

namespace pythmata::store {

/// Opens (creating when missing) the SQLite database at `path`, relative to the working
/// directory, with its parent directories; applies pending migrations. WAL journal,
/// synchronous=FULL (a commit is durable), busy_timeout = db_statement_timeout, foreign keys on.
/// One writer connection behind a mutex (waits at most db_pool_timeout) and
/// clamp(db_pool_size, 1, 8) reader connections.
[[nodiscard]] Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path,
                                                               const app::DbSettings& settings,
                                                               metrics::Registry& registry);

}  // namespace pythmata::store
