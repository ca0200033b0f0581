#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pythmata/app/ports/definition_store.hpp"
#include "pythmata/app/ports/runtime_store.hpp"
#include "pythmata/app/settings.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/common/time.hpp"

namespace pythmata::metrics {
class Registry;
}

namespace pythmata::store {

/// One applied schema migration, as recorded in the `schema_migrations` table.
struct AppliedMigration {
    int version = 0;
    std::string name;
    TimePoint applied_at;
};

/// The storage adapter: one object implements every storage port of app (definitions, the
/// runtime's instances and waits, health). Backed by SQLite (`sqlite://PATH`: WAL,
/// synchronous=FULL, one writer connection, a few reader connections) or PostgreSQL
/// (`postgresql://...`: a bounded libpqxx pool). Thread-safe; calls block (run them off I/O
/// threads). Every failure is a value: DB_UNAVAILABLE (cannot connect, connection broken, disk
/// error), DB_POOL_TIMEOUT (no connection within db_pool_timeout), DB_TIMEOUT (a statement, or its
/// wait for a lock, ran past db_statement_timeout), all ErrorKind::kUnavailable with
/// retry_after_seconds; DB_CONFLICT (kConflict) when concurrent writers still collide after bounded
/// retries. Vendor text and SQL only ever in Error::internal.
class Store : public app::DefinitionStore, public app::RuntimeStore, public app::HealthCheck {
  public:
    ~Store() override = default;

    /// "sqlite" or "postgresql".
    [[nodiscard]] virtual std::string_view backend() const = 0;

    /// The migrations recorded in `schema_migrations`, ascending by version. On PostgreSQL this
    /// also applies them first when the database was unreachable until now.
    [[nodiscard]] virtual Result<std::vector<AppliedMigration>> applied_migrations() = 0;

    /// Session settings in effect on the store's connections, as (name, value) pairs read back
    /// from the database, for diagnostics and tests. SQLite: journal_mode, synchronous,
    /// busy_timeout, foreign_keys of the writer ("writer.NAME") and of a reader ("reader.NAME").
    /// PostgreSQL: statement_timeout, default_transaction_isolation.
    [[nodiscard]] virtual Result<std::vector<std::pair<std::string, std::string>>>
    connection_settings() = 0;
};

/// Opens the store named by `settings.url`, creating the SQLite file (and its parent
/// directories) when missing, and applies pending migrations. PostgreSQL being unreachable is
/// not an error here: the store then answers DB_UNAVAILABLE, migrates on its first successful
/// connection and recovers by itself. Fails with INVALID_DB_URL (kInvalidArgument) for a URL it
/// cannot use, and with the migration's error when the schema cannot be brought up to date.
/// Declares the pool metrics (pythmata_db_pool_*) on `registry`, which must outlive the store.
[[nodiscard]] Result<std::unique_ptr<Store>> open_store(const app::DbSettings& settings,
                                                        metrics::Registry& registry);

}  // namespace pythmata::store
