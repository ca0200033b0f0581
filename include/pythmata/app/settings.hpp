#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pythmata::app {

/// The typed settings tree, loaded once at start-up by pythmata::config (config/pythmata.toml,
/// `--config FILE`, then env `PYTHMATA_<NAME>` overrides; names are the flat TOML keys given
/// in the comments). Each part of the program receives only its own section.

struct HttpSettings {
    std::string host = "127.0.0.1";                      ///< http_host
    std::uint16_t port = 8000;                           ///< http_port (0 = any free port)
    unsigned threads = 0;                                ///< http_threads (0 = hardware threads)
    std::size_t max_body_size = 16u << 20;               ///< max_body_size, bytes
    std::size_t max_header_size = 16u << 10;             ///< max_header_size, bytes
    std::chrono::milliseconds read_timeout{30'000};      ///< http_read_timeout_ms
    std::chrono::milliseconds idle_timeout{60'000};      ///< http_idle_timeout_ms (keep-alive)
    std::chrono::milliseconds request_timeout{30'000};   ///< http_request_timeout_ms
    std::size_t max_connections = 10'000;                ///< http_max_connections
    std::chrono::milliseconds shutdown_timeout{10'000};  ///< shutdown_timeout_ms
    std::size_t gzip_min_size = 1024;                    ///< gzip_min_size, bytes (0 = never)
    unsigned blocking_threads =
        0;  ///< blocking_threads (0 = max(128, pool + overflow, batch * workers))
    /// http_read_threads: threads of the read pool, which runs the reads of the store and the
    /// cache (GET of instances, tasks, definitions, timers, incidents, stats); 0 = twice the
    /// hardware threads, at least 4.
    unsigned read_threads = 0;
    std::size_t max_queued_requests = 4096;  ///< http_max_queued_requests (beyond: 503 OVERLOADED)
    /// http_async_first: starts and task completions go from the I/O thread straight to the
    /// engine when they can (false: always through the blocking pool, as before; diagnostic).
    bool async_first = true;
    std::size_t ws_max_queued_events =
        1024;  ///< ws_max_queued_events: per WebSocket; beyond it the slow client is closed
    // Auth (off while api_keys, jwt_hs256_secret and jwt_rs256_public_key_file are all empty).
    std::string api_keys;  ///< api_keys: "role:key" entries, comma-separated (TOML: string or array
                           ///< of strings); secret
    std::string jwt_hs256_secret;           ///< jwt_hs256_secret: HS256 key; secret
    std::string jwt_rs256_public_key_file;  ///< jwt_rs256_public_key_file: PEM public key for RS256
    std::string jwt_issuer;                 ///< jwt_issuer: required "iss" (empty = not checked)
    std::string jwt_audience;  ///< jwt_audience: required in "aud" (empty = not checked)
    std::int64_t jwt_leeway_seconds = 60;  ///< jwt_leeway_seconds: clock skew allowed for exp/nbf
    std::string jwt_role_claim = "role";   ///< jwt_role_claim: claim holding admin|operator|viewer
    bool auth_open_ops = true;  ///< auth_open_ops: /health, /health/ready, /metrics need no token
    bool allow_unauthenticated =
        false;  ///< allow_unauthenticated: permit a non-loopback http_host with auth off
};

struct DbSettings {
    std::string url = "sqlite://./var/pythmata.db";  ///< db_url: sqlite://PATH or postgresql://...
    unsigned pool_size = 10;                         ///< db_pool_size
    unsigned max_overflow = 10;                      ///< db_max_overflow
    std::chrono::milliseconds pool_timeout{
        5'000};  ///< db_pool_timeout (seconds, fractions allowed)
    std::chrono::milliseconds statement_timeout{30'000};  ///< db_statement_timeout_ms
    /// db_plan_cache_mode: PostgreSQL's plan_cache_mode on every pool connection. The default,
    /// force_generic_plan, plans each prepared statement once per connection; PostgreSQL's own
    /// `auto` may keep re-planning one on every call (docs/benchmarks.md, "Session 6").
    std::string plan_cache_mode = "force_generic_plan";
    std::chrono::milliseconds connect_timeout{3'000};  ///< db_connect_timeout_ms
    /// db_tcp_timeout_ms: a PostgreSQL connection whose peer stays silent this long (no answer to
    /// TCP keepalives, data never acknowledged) fails; 0 = the OS defaults (hours).
    std::chrono::milliseconds tcp_timeout{30'000};
    /// db_overflow_idle_ms: overflow connections (beyond db_pool_size) stay open this long while
    /// the pool keeps more than db_pool_size idle; 0 = close them as soon as they are returned.
    std::chrono::milliseconds overflow_idle{30'000};
    /// sqlite_wal_autocheckpoint: WAL pages after which the SQLite writer's commit checkpoints
    /// the log into the database file.
    unsigned sqlite_wal_autocheckpoint = 10'000;
    /// db_delete_batch_size: instances deleted per transaction by DELETE /processes/{key} (with
    /// their history, called sub-instances, tasks, waits and incidents); the versions go with
    /// the last one.
    unsigned delete_batch_size = 5'000;
};

struct CacheSettings {
    std::string redis_url;                         ///< redis_url (empty = L1 only)
    unsigned redis_pool_size = 4;                  ///< redis_pool_size
    std::chrono::seconds definition_ttl{300};      ///< definition_cache_ttl (seconds)
    std::chrono::milliseconds redis_timeout{200};  ///< redis_timeout_ms
    std::size_t l1_max_entries = 1024;             ///< definition_cache_max_entries
};

struct EngineSettings {
    unsigned token_batch_size = 100;    ///< token_batch_size
    unsigned max_parallel_tokens = 50;  ///< max_parallel_tokens
    std::chrono::milliseconds state_check_interval{
        5'000};  ///< state_check_interval (seconds, fractions allowed)
    std::size_t max_variable_size = 1u << 20;      ///< max_variable_size, bytes
    std::size_t max_total_variables = 10u << 20;   ///< max_total_variables, bytes per instance
    std::size_t max_tokens_per_instance = 10'000;  ///< max_tokens_per_instance
    std::size_t max_steps_per_event = 100'000;     ///< max_steps_per_event
    unsigned max_call_depth = 32;                  ///< max_call_depth
    std::size_t max_bpmn_size = 10u << 20;         ///< max_bpmn_size, bytes
    std::size_t max_bpmn_elements = 100'000;       ///< max_bpmn_elements
    std::uint64_t script_max_instructions = 10'000'000;  ///< script_max_instructions
    std::size_t script_max_memory = 32u << 20;           ///< script_max_memory, bytes
    std::chrono::milliseconds script_timeout{1'000};     ///< script_timeout_ms
    std::string history_level = "activity";              ///< history_level: none | activity | full
    bool clock_control = false;                          ///< clock_control
    std::size_t queue_capacity = 10'000;                 ///< engine_queue_capacity
    unsigned workers = 2;  ///< engine_workers: engine threads (instances sharded by id)
    std::chrono::milliseconds max_job_wait{
        20'000};  ///< max_job_wait_ms: cap of POST /jobs/activate wait_ms
    std::chrono::milliseconds timer_lock{
        60'000};  ///< timer_lock_ms: lock on an acquired timer until it fired
    /// timer_batch_size: due timers an engine worker fires in one commit at most (a burst of
    /// timers due together is acquired timer_batch_size x engine_workers at a time).
    unsigned timer_batch_size = 1000;
    /// outbox_grace_ms: an outbox row (an effect committed but not yet delivered) older than this
    /// is re-delivered by the outbox sweeper of any replica.
    std::chrono::milliseconds outbox_grace{10'000};
    unsigned outbox_batch_size = 100;  ///< outbox_batch_size: rows one sweeper pass takes at once
    std::chrono::milliseconds outbox_lock{
        60'000};  ///< outbox_lock_ms: lock on an acquired outbox row until it is delivered
    /// outbox_deliver_inline: deliver effects right after their commit (true). Diagnostic: false
    /// leaves every effect to the outbox sweeper (crash-recovery tests); never in production.
    bool outbox_deliver_inline = true;
    std::size_t state_cache_entries =
        10'000;  ///< instance_state_cache: recent states kept in memory
    /// open_task_cache: user tasks opened on this replica remembered as task id -> (instance,
    /// wait), so that completing one needs no store read first; 0 turns it off.
    std::size_t open_task_cache_entries = 10'000;
    std::chrono::seconds idempotency_retention{86'400};  ///< idempotency_retention (seconds)
    unsigned history_retention_days = 0;  ///< history_retention_days: ended instances and their
                                          ///< history kept this long (0 = forever)
    /// history_retention_overrides ("OrderProcess=7,Audit=0"): days kept per process key,
    /// instead of history_retention_days (0 = forever for that key).
    std::map<std::string, unsigned> history_retention_overrides;
    std::size_t retention_batch_size =
        1000;  ///< retention_batch_size: ended instances deleted per transaction
    std::chrono::milliseconds maintenance_interval{
        30'000};  ///< maintenance_interval (seconds, fractions allowed): housekeeping pass period
};

struct LogSettings {
    std::string level = "info";   ///< log_level: trace|debug|info|warn|error|off
    std::string format = "text";  ///< log_format: text | json
    bool access_log = true;       ///< access_log
};

struct Settings {
    HttpSettings http;
    DbSettings db;
    CacheSettings cache;
    EngineSettings engine;
    LogSettings log;
};

}  // namespace pythmata::app
