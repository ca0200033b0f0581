#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pythmata/common/result.hpp"

namespace pythmata::test {

/// Why the harness could not do what was asked; the message is written for a test failure.
struct HarnessFailure {
    std::string message;
};

/// The path of the `pythmata` binary under test (compile definition PYTHMATA_BINARY).
[[nodiscard]] std::string pythmata_binary();

/// How a child process ended: `code` when it exited, `signal` when a signal killed it.
struct ExitStatus {
    bool exited = false;
    int code = -1;
    int signal = 0;

    [[nodiscard]] bool success() const { return exited && code == 0; }
    /// "exit code 3" or "killed by signal 9", for failure messages.
    [[nodiscard]] std::string describe() const;
};

/// What a one-shot command (`pythmata version`, `validate`, `config`) printed and how it ended.
struct CommandOutput {
    ExitStatus status;
    std::string out;  ///< stdout
    std::string err;  ///< stderr
};

/// Runs `pythmata ARGS...` to completion with `env` added to (and overriding) the environment,
/// PYTHMATA_* variables of the test process removed, in `working_dir` (default: the current
/// directory). Kills it and fails when it takes longer than `timeout`.
[[nodiscard]] Result<CommandOutput, HarnessFailure> run_pythmata(
    const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
    std::chrono::milliseconds timeout = std::chrono::seconds(20),
    const std::optional<std::filesystem::path>& working_dir = std::nullopt);

/// The real `pythmata serve` as a child process on a free loopback port.
///
/// The server runs in its own temp dir (its working directory, removed by the destructor), with
/// the test process's environment minus any PYTHMATA_* variables, plus defaults
/// PYTHMATA_HTTP_HOST=127.0.0.1, PYTHMATA_HTTP_PORT=0 and
/// PYTHMATA_DB_URL=sqlite://<dir>/pythmata.db, plus Options::env (which wins). start() waits,
/// bounded, for the one stdout line "listening on 127.0.0.1:PORT"; stderr (the logs) goes to
/// <dir>/stderr.log and its tail is part of every failure message. The child gets
/// PR_SET_PDEATHSIG, so it dies with the thread that started it. The destructor stops a
/// running server with SIGKILL. Not thread-safe; use it from the thread that created it.
class ServerProcess {
  public:
    struct Options {
        std::map<std::string, std::string> env;           ///< extra environment, wins over defaults
        std::vector<std::string> args = {"serve"};        ///< arguments after the binary
        std::chrono::milliseconds start_timeout{30'000};  ///< bound on the wait for "listening on"
        /// Sets PYTHMATA_DB_URL to a SQLite file in the temp dir unless `env` names one; off
        /// for tests where a config file chooses the store.
        bool default_store = true;
    };

    /// Starts the server and waits until it listens. Fails with the exit status and the stderr
    /// tail when it exits first or does not listen in time.
    [[nodiscard]] static Result<std::unique_ptr<ServerProcess>, HarnessFailure> start(
        Options options);
    [[nodiscard]] static Result<std::unique_ptr<ServerProcess>, HarnessFailure> start() {
        return start(Options{});
    }

    ~ServerProcess();
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;

    /// The port it listens on (kept by restart()).
    [[nodiscard]] std::uint16_t port() const { return port_; }
    /// PID of the running server, or -1.
    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] bool running() const { return pid_ > 0; }
    /// The server's own temp dir (its working directory and default SQLite location).
    [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }
    /// "http://127.0.0.1:PORT"-less address "127.0.0.1:PORT", for messages.
    [[nodiscard]] std::string address() const;

    /// SIGKILL (a crash) and reap.
    void kill9();
    /// Sends `signal` without waiting (SIGTERM/SIGINT for a graceful stop the test observes).
    void send_signal(int signal);
    /// Waits up to `timeout` for the server to exit and returns how it ended; fails (leaving it
    /// running) when it did not exit in time.
    [[nodiscard]] Result<ExitStatus, HarnessFailure> wait_exit(std::chrono::milliseconds timeout);
    /// SIGTERM, then wait_exit(timeout); on timeout the server is killed and that is a failure.
    [[nodiscard]] Result<ExitStatus, HarnessFailure> terminate(
        std::chrono::milliseconds timeout = std::chrono::seconds(20));
    /// Starts the stopped server again with the same options, on the same port and store.
    [[nodiscard]] Result<void, HarnessFailure> restart();

    /// Everything the server wrote to stdout so far.
    [[nodiscard]] std::string stdout_text();
    /// The last `bytes` of its stderr (the logs).
    [[nodiscard]] std::string stderr_tail(std::size_t bytes = 4000) const;

  private:
    ServerProcess(Options options, std::filesystem::path dir);
    [[nodiscard]] Result<void, HarnessFailure> launch(std::uint16_t port);
    void drain_stdout();
    void close_stdout();

    Options options_;
    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
    int stdout_fd_ = -1;
    std::string stdout_;
};

}  // namespace pythmata::test
