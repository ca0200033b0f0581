#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace pythmata::test {

/// A throw-away PostgreSQL 15 server for integration tests: a cluster in a temp dir owned by
/// the `postgres` user (initdb via runuser when running as root), listening on a free loopback
/// port with fsync on. Temp dirs go under $PYTHMATA_TEST_PG_ROOT, else /dev/shm when it is a
/// tmpfs with room (fast, and kill -9 of the server still loses only what it never wrote),
/// else the system temp dir. The first server on a machine initdb's a template cluster, under
/// a file lock, that later test processes reuse: each server copies it, so that a start takes
/// well under a second. stop() and start() restart it on the same port (outage tests). The
/// destructor stops it by PID and removes the directory; the child also gets PR_SET_PDEATHSIG,
/// so it dies with the test process, and dirs of dead test processes are swept at the next
/// start. Not thread-safe; use it from the thread that created it (the death signal follows
/// the creating thread).
class PostgresServer {
  public:
    /// A database every server has from the start (besides `postgres`), owned by the superuser
    /// `postgres`, which needs no password on loopback.
    static constexpr const char* kDatabase = "pythmata_test";

    /// Starts a server, or returns nullptr with `why` set when PostgreSQL 15 is not installed or
    /// cannot start (tests then GTEST_SKIP / fail with that reason).
    [[nodiscard]] static std::unique_ptr<PostgresServer> start_new(std::string& why);

    ~PostgresServer();
    PostgresServer(const PostgresServer&) = delete;
    PostgresServer& operator=(const PostgresServer&) = delete;

    /// Creates database `name` (owned by the postgres superuser). False on failure.
    [[nodiscard]] bool create_database(const std::string& name);
    /// Runs `sql` as the superuser in `database`. False on failure.
    [[nodiscard]] bool execute(const std::string& sql, const std::string& database = kDatabase);

    /// postgresql://postgres@127.0.0.1:PORT/DATABASE (by default the ready-made test database).
    [[nodiscard]] std::string url(const std::string& database = kDatabase) const;
    /// A URL whose sessions use `schema` (search_path): a cheap isolated namespace per test.
    [[nodiscard]] std::string schema_url(const std::string& schema,
                                         const std::string& database = kDatabase) const;
    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] bool running() const { return pid_ > 0; }

    /// How stop() ends the server: kFast (SIGINT: disconnect clients, checkpoint, exit) or
    /// kImmediate (SIGQUIT: exit at once, like a crash; the next start() recovers from WAL).
    enum class Shutdown { kFast, kImmediate };

    /// Stops the server, waiting up to `timeout`, then SIGKILL. True when it stopped in time.
    bool stop(Shutdown mode = Shutdown::kFast,
              std::chrono::milliseconds timeout = std::chrono::seconds(20));
    /// Starts it again on the same port and waits until it accepts connections (bounded).
    [[nodiscard]] bool start();

    /// The server's log, for failure messages.
    [[nodiscard]] std::string log_tail(std::size_t bytes = 4000) const;

  private:
    PostgresServer(std::filesystem::path dir, std::uint16_t port);
    bool wait_ready(std::chrono::milliseconds timeout);

    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace pythmata::test
