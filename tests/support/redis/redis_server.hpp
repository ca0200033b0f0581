#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "pythmata/common/result.hpp"

namespace pythmata::test {

/// Why the harness could not do what was asked, for a test failure message.
struct HarnessError {
    std::string message;
};

/// A throwaway redis-server (/usr/bin/redis-server from Debian) for integration tests: listens on
/// a free port on 127.0.0.1 only, keeps no data on disk, runs in its own temp dir and is stopped
/// by PID (SIGTERM, then SIGKILL) in the destructor. Every wait is bounded. Not thread-safe.
class RedisServer {
  public:
    struct Options {
        std::string password;                             ///< --requirepass when non-empty
        std::chrono::milliseconds start_timeout{10'000};  ///< bound on the wait for PING
    };

    /// Starts a server and waits until it answers PING. Fails with a readable reason (and the
    /// tail of the server's log) when redis-server is missing or does not come up in time.
    [[nodiscard]] static Result<std::unique_ptr<RedisServer>, HarnessError> start(Options options);
    [[nodiscard]] static Result<std::unique_ptr<RedisServer>, HarnessError> start() {
        return start(Options{});
    }

    ~RedisServer();
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    /// The loopback port the server listens on (kept across restarts).
    [[nodiscard]] std::uint16_t port() const { return port_; }
    /// PID of the running server, or -1 when it is not running.
    [[nodiscard]] pid_t pid() const { return pid_; }
    /// redis://[:password@]127.0.0.1:PORT/DB
    [[nodiscard]] std::string url(int db = 0) const;

    /// Kills the server with SIGKILL (no shutdown, like a crash) and reaps it.
    void kill();
    /// Starts the server again on the same port (after kill()) and waits for PING.
    [[nodiscard]] Result<void, HarnessError> restart();

    /// Runs one command on a fresh connection to database `db` and renders the reply as text:
    /// integers in decimal, strings and status as-is, nil as "(nil)", arrays as space-joined
    /// elements. Errors (connection or server) are returned as the error string.
    [[nodiscard]] Result<std::string, HarnessError> command(const std::vector<std::string>& argv,
                                                            int db = 0) const;

  private:
    RedisServer(Options options, std::filesystem::path dir);
    [[nodiscard]] Result<void, HarnessError> launch();
    void stop();
    [[nodiscard]] std::string log_tail() const;

    Options options_;
    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace pythmata::test
