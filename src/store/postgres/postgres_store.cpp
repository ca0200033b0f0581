#include "postgres/postgres_store.hpp"

#include <pqxx/pqxx>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <set>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "migrations.hpp"
#include "pool_metrics.hpp"
#include "postgres/connection_pool.hpp"
#include "postgres/conninfo.hpp"
#include "pythmata/common/uuid.hpp"
#include "store_errors.hpp"

namespace pythmata::store {
namespace {

/// pg_advisory_xact_lock key serialising migrations across replicas ("pythmata" in ASCII).
constexpr std::int64_t kMigrationLock = 0x707974686d617461;
/// First half of the two-int advisory lock serialising deploys of one key (second: hashtext).
constexpr int kDeployLockClass = 0x50594431;
/// ping() waits at most this long for a connection: /health/ready must answer within ~1 s.
constexpr std::chrono::milliseconds kPingTimeout{1'000};

constexpr std::string_view kRecordColumns = "id, key, name, version, hash, created_at";

std::int64_t now_ms() {
    return to_epoch_ms(std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now()));
}

app::DefinitionRecord read_record(const pqxx::row& row, bool with_xml) {
    app::DefinitionRecord record;
    record.id = row[0].as<std::string>();
    record.key = row[1].as<std::string>();
    record.name = row[2].as<std::string>();
    record.version = row[3].as<int>();
    record.hash = row[4].as<std::string>();
    record.created_at = from_epoch_ms(row[5].as<std::int64_t>());
    if (with_xml) {
        record.bpmn_xml = row[6].as<std::string>();
    }
    return record;
}

/// The vendor text of a failure, with SQLSTATE and statement when there are any: for logs only.
std::string describe(const std::exception& failure) {
    std::string text = failure.what();
    if (const auto* e = dynamic_cast<const pqxx::sql_error*>(&failure)) {
        if (!e->sqlstate().empty()) {
            text += " [SQLSTATE " + e->sqlstate() + "]";
        }
        if (!e->query().empty()) {
            text += " in [" + e->query().substr(0, 300) + "]";
        }
    }
    return text;
}

/// SQLSTATEs meaning the session is gone: connection exceptions (08) and operator intervention
/// such as admin_shutdown / crash_shutdown (57P0x).
bool is_session_lost(const std::string& state) {
    return state.starts_with("08") || state.starts_with("57P");
}

/// A short randomised pause before retrying a transaction that collided with another.
void backoff(int attempt) {
    thread_local std::minstd_rand random{std::random_device{}()};
    const int ceiling = std::min(5 * attempt * attempt, 100);
    std::uniform_int_distribution<int> pause(1, ceiling);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause(random)));
}

void migrate(pqxx::connection& connection) {
    pqxx::work tx(connection);
    // Replicas starting together take turns; the second one finds everything applied.
    tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLock);
    tx.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)");
    std::set<int> applied;
    for (const auto& row : tx.exec("SELECT version FROM schema_migrations")) {
        applied.insert(row[0].as<int>());
    }
    for (const Migration& migration : postgres_migrations()) {
        if (applied.contains(migration.version)) {
            continue;
        }
        tx.exec(std::string(migration.sql));
        tx.exec_params(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            migration.version, std::string(migration.name), now_ms());
    }
    tx.commit();
}

class PostgresStore final : public Store {
  public:
    PostgresStore(std::string conninfo, const app::DbSettings& settings,
                  metrics::Registry& registry)
        : settings_(settings),
          metrics_(registry, "postgres", static_cast<double>(settings.pool_size)),
          pool_(
              std::move(conninfo), settings.pool_size, settings.max_overflow,
              [timeout = settings.statement_timeout](pqxx::connection& connection) {
                  connection.set_variable("statement_timeout", std::to_string(timeout.count()));
              },
              metrics_) {}

    /// Connects once and migrates; unreachable is fine (DB_UNAVAILABLE is returned and the
    /// store retries on later calls); any other failure is returned.
    Status start() {
        auto result = run<bool>(settings_.pool_timeout, [](pqxx::connection&) { return true; });
        if (!result && result.error().code != "DB_UNAVAILABLE") {
            return std::move(result).error();
        }
        return {};
    }

    std::string_view backend() const override { return "postgresql"; }

    Result<std::vector<app::DeployedDefinition>> deploy(
        const std::vector<app::NewDefinition>& definitions, TimePoint now) override {
        return run<std::vector<app::DeployedDefinition>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                pqxx::work tx(connection);
                // Deploys of one key take turns (in key order, so that two multi-process
                // documents cannot deadlock); the unique (key, version) stays the safety net.
                std::set<std::string> keys;
                for (const auto& definition : definitions) {
                    keys.insert(definition.key);
                }
                for (const auto& key : keys) {
                    tx.exec_params("SELECT pg_advisory_xact_lock($1, hashtext($2))",
                                   kDeployLockClass, key);
                }
                std::vector<app::DeployedDefinition> deployed;
                for (const app::NewDefinition& definition : definitions) {
                    const pqxx::result latest = tx.exec_params(
                        "SELECT id, key, name, version, hash, created_at, bpmn_xml"
                        " FROM definitions WHERE key = $1 ORDER BY version DESC LIMIT 1",
                        definition.key);
                    int next_version = 1;
                    if (!latest.empty()) {
                        app::DefinitionRecord current = read_record(latest[0], true);
                        if (current.hash == definition.hash) {
                            deployed.push_back({std::move(current), false});
                            continue;
                        }
                        next_version = current.version + 1;
                    }
                    app::DefinitionRecord record{new_uuid(),   definition.key,      definition.name,
                                                 next_version, definition.bpmn_xml, definition.hash,
                                                 now};
                    tx.exec_params(
                        "INSERT INTO definitions (id, key, name, version, bpmn_xml, hash,"
                        " created_at) VALUES ($1::uuid, $2, $3, $4, $5, $6, $7)",
                        record.id, record.key, record.name, record.version, record.bpmn_xml,
                        record.hash, to_epoch_ms(record.created_at));
                    deployed.push_back({std::move(record), true});
                }
                tx.commit();
                return deployed;
            });
    }

    Result<std::optional<app::DefinitionRecord>> latest(const std::string& key) override {
        return one_definition("WHERE key = $1 ORDER BY version DESC LIMIT 1", key);
    }

    Result<std::optional<app::DefinitionRecord>> version(const std::string& key,
                                                         int version) override {
        return one_definition("WHERE key = $1 AND version = $2", key, version);
    }

    Result<std::optional<app::DefinitionRecord>> by_id(const std::string& id) override {
        if (!is_uuid(id)) {
            return std::optional<app::DefinitionRecord>();
        }
        return one_definition("WHERE id = $1::uuid", id);
    }

    Result<app::PageResult<app::DefinitionRecord>> list_latest(
        const app::DefinitionFilter& filter, const app::PageRequest& page) override {
        std::vector<std::string> params;
        std::string where =
            " WHERE NOT EXISTS (SELECT 1 FROM definitions n"
            " WHERE n.key = d.key AND n.version > d.version)";
        if (filter.key) {
            params.push_back(*filter.key);
            where += " AND d.key = $" + std::to_string(params.size());
        }
        if (filter.name) {
            params.push_back(*filter.name);
            where +=
                " AND strpos(lower(d.name), lower($" + std::to_string(params.size()) + ")) > 0";
        }
        const Window w = window_of(page);
        const std::string rows_sql =
            "SELECT d.id, d.key, d.name, d.version, d.hash, d.created_at FROM definitions d" +
            where + " ORDER BY d.created_at DESC, d.key LIMIT " + std::to_string(w.limit) +
            " OFFSET " + std::to_string(w.offset);
        return run<app::PageResult<app::DefinitionRecord>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                // One snapshot for the count and the page.
                pqxx::read_transaction tx(connection);
                app::PageResult<app::DefinitionRecord> result;
                result.total = tx.exec_params("SELECT count(*) FROM definitions d" + where,
                                              pqxx::prepare::make_dynamic_params(params))[0][0]
                                   .as<std::int64_t>();
                for (const auto& row :
                     tx.exec_params(rows_sql, pqxx::prepare::make_dynamic_params(params))) {
                    result.items.push_back(read_record(row, false));
                }
                tx.commit();
                return result;
            });
    }

    Result<app::PageResult<app::DefinitionRecord>> versions(const std::string& key,
                                                            const app::PageRequest& page) override {
        const Window w = window_of(page);
        return run<app::PageResult<app::DefinitionRecord>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                pqxx::read_transaction tx(connection);
                app::PageResult<app::DefinitionRecord> result;
                result.total =
                    tx.exec_params("SELECT count(*) FROM definitions WHERE key = $1", key)[0][0]
                        .as<std::int64_t>();
                for (const auto& row :
                     tx.exec_params(std::string("SELECT ") + std::string(kRecordColumns) +
                                        " FROM definitions WHERE key = $1 ORDER BY version DESC"
                                        " LIMIT $2 OFFSET $3",
                                    key, w.limit, w.offset)) {
                    result.items.push_back(read_record(row, false));
                }
                tx.commit();
                return result;
            });
    }

    Result<std::int64_t> count_unfinished_instances(const std::string& key) override {
        return run<std::int64_t>(settings_.pool_timeout, [&](pqxx::connection& connection) {
            pqxx::read_transaction tx(connection);
            const std::int64_t count = count_unfinished(tx, key);
            tx.commit();
            return count;
        });
    }

    Result<std::int64_t> delete_key(const std::string& key, bool cascade) override {
        return run<std::int64_t>(
            settings_.pool_timeout, [&](pqxx::connection& connection) -> Result<std::int64_t> {
                pqxx::work tx(connection);
                // Same lock as deploy: no new version appears while the key goes away.
                tx.exec_params("SELECT pg_advisory_xact_lock($1, hashtext($2))", kDeployLockClass,
                               key);
                if (!cascade) {
                    const std::int64_t running = count_unfinished(tx, key);
                    if (running > 0) {
                        return Error::conflict("PROCESS_HAS_INSTANCES",
                                               "process '" + key + "' has " +
                                                   std::to_string(running) +
                                                   " unfinished instances; delete with cascade");
                    }
                }
                // History has no foreign key (batch-written): delete it for the instances of
                // the key and their called sub-instances; the rest cascades.
                tx.exec_params(
                    "WITH RECURSIVE doomed(id) AS ("
                    " SELECT id FROM instances WHERE process_key = $1"
                    " UNION SELECT i.id FROM instances i"
                    " JOIN doomed ON i.parent_instance_id = doomed.id)"
                    " DELETE FROM history WHERE instance_id IN (SELECT id FROM doomed)",
                    key);
                tx.exec_params("DELETE FROM instances WHERE process_key = $1", key);
                const pqxx::result deleted =
                    tx.exec_params("DELETE FROM definitions WHERE key = $1", key);
                tx.commit();
                return static_cast<std::int64_t>(deleted.affected_rows());
            });
    }

    Status ping() override {
        auto result = run<bool>(std::min(settings_.pool_timeout, kPingTimeout),
                                [](pqxx::connection& connection) {
                                    pqxx::nontransaction tx(connection);
                                    tx.exec("SELECT 1");
                                    return true;
                                });
        if (!result) {
            return std::move(result).error();
        }
        return {};
    }

    Result<std::vector<AppliedMigration>> applied_migrations() override {
        return run<std::vector<AppliedMigration>>(
            settings_.pool_timeout, [](pqxx::connection& connection) {
                pqxx::read_transaction tx(connection);
                std::vector<AppliedMigration> applied;
                for (const auto& row : tx.exec("SELECT version, name, applied_at"
                                               " FROM schema_migrations ORDER BY version")) {
                    applied.push_back({row[0].as<int>(), row[1].as<std::string>(),
                                       from_epoch_ms(row[2].as<std::int64_t>())});
                }
                tx.commit();
                return applied;
            });
    }

    Result<std::vector<std::pair<std::string, std::string>>> connection_settings() override {
        using Settings = std::vector<std::pair<std::string, std::string>>;
        return run<Settings>(settings_.pool_timeout, [](pqxx::connection& connection) {
            pqxx::nontransaction tx(connection);
            Settings settings;
            for (const char* name : {"statement_timeout", "default_transaction_isolation"}) {
                settings.emplace_back(
                    name, tx.exec_params("SELECT current_setting($1)", std::string(name))[0][0]
                              .as<std::string>());
            }
            return settings;
        });
    }

  private:
    static std::int64_t count_unfinished(pqxx::transaction_base& tx, const std::string& key) {
        return tx
            .exec_params(std::string("SELECT count(*) FROM instances"
                                     " WHERE process_key = $1 AND status IN ") +
                             kUnfinishedStatuses,
                         key)[0][0]
            .as<std::int64_t>();
    }

    template <typename... Args>
    Result<std::optional<app::DefinitionRecord>> one_definition(const std::string& condition,
                                                                const Args&... args) {
        return run<std::optional<app::DefinitionRecord>>(
            settings_.pool_timeout,
            [&](pqxx::connection& connection) -> std::optional<app::DefinitionRecord> {
                pqxx::read_transaction tx(connection);
                const pqxx::result rows =
                    tx.exec_params(std::string("SELECT ") + std::string(kRecordColumns) +
                                       ", bpmn_xml FROM definitions " + condition,
                                   args...);
                tx.commit();
                if (rows.empty()) {
                    return std::nullopt;
                }
                return read_record(rows[0], true);
            });
    }

    void ensure_migrated(pqxx::connection& connection) {
        if (migrated_.load(std::memory_order_acquire)) {
            return;
        }
        std::lock_guard lock(migrate_mutex_);
        if (!migrated_.load(std::memory_order_relaxed)) {
            migrate(connection);
            migrated_.store(true, std::memory_order_release);
        }
    }

    /// Leases a connection (waiting at most `wait`), migrates if that has not happened yet, and
    /// runs `body` on it, translating libpqxx exceptions into Errors. A broken connection is
    /// discarded with the idle ones and the call retried once on a fresh connection; unique
    /// violations, serialization failures and deadlocks are retried with a short backoff.
    template <typename T, typename Body>
    Result<T> run(std::chrono::milliseconds wait, Body&& body) {
        bool reconnected = false;
        for (int attempt = 1;; ++attempt) {
            Result<ConnectionPool::Lease> lease = pool_.acquire(wait);
            if (!lease) {
                return std::move(lease).error();
            }
            try {
                ensure_migrated(lease->connection());
                return Result<T>(body(lease->connection()));
            } catch (const pqxx::in_doubt_error& e) {
                lease->discard();
                pool_.discard_idle();
                return db_unavailable(std::string("commit outcome unknown: ") + e.what());
            } catch (const pqxx::broken_connection& e) {
                lease->discard();
                pool_.discard_idle();
                if (!reconnected) {
                    reconnected = true;
                    continue;
                }
                return db_unavailable(e.what());
            } catch (const pqxx::unique_violation& e) {
                if (attempt < kMaxWriteAttempts) {
                    backoff(attempt);
                    continue;
                }
                return write_conflict(describe(e));
            } catch (const pqxx::statement_completion_unknown& e) {
                return db_unavailable(describe(e));
            } catch (const pqxx::transaction_rollback& e) {
                // serialization_failure, deadlock_detected: the whole transaction may rerun.
                if (attempt < kMaxWriteAttempts) {
                    backoff(attempt);
                    continue;
                }
                return write_conflict(describe(e));
            } catch (const pqxx::sql_error& e) {
                const std::string& state = e.sqlstate();
                if (is_session_lost(state)) {
                    lease->discard();
                    pool_.discard_idle();
                    if (!reconnected) {
                        reconnected = true;
                        continue;
                    }
                    return db_unavailable(describe(e));
                }
                if (state == "57014") {
                    return statement_timeout(describe(e));
                }
                if (state.starts_with("53")) {
                    return db_unavailable(describe(e));
                }
                return Error::internal_error(describe(e));
            } catch (const std::exception& e) {
                return Error::internal_error(std::string("postgres: ") + e.what());
            }
        }
    }

    app::DbSettings settings_;
    PoolMetrics metrics_;
    ConnectionPool pool_;
    std::mutex migrate_mutex_;
    std::atomic<bool> migrated_{false};
};

}  // namespace

Result<std::unique_ptr<Store>> open_postgres_store(const std::string& url,
                                                   const app::DbSettings& settings,
                                                   metrics::Registry& registry) {
    Result<std::string> conninfo = postgres_conninfo(url, settings.connect_timeout);
    if (!conninfo) {
        return std::move(conninfo).error();
    }
    if (settings.pool_size + settings.max_overflow == 0) {
        return Error::invalid_argument("db_pool_size + db_max_overflow must be at least 1",
                                       "INVALID_DB_SETTINGS");
    }
    auto store = std::make_unique<PostgresStore>(conninfo.value(), settings, registry);
    if (Status started = store->start(); !started) {
        return std::move(started).error();
    }
    return std::unique_ptr<Store>(std::move(store));
}

}  // namespace pythmata::store
