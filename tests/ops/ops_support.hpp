#pragma once

// Helpers of the ops tests: running a tool with a bound, temp dirs, nginx.conf adapted to
// loopback, and traffic that gives every metric family of the server a sample.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "http_client.hpp"
#include "pythmata/common/result.hpp"
#include "server_process.hpp"

namespace pythmata::test {

inline constexpr const char* kNginx = "/usr/sbin/nginx";

/// How a command ended and what it wrote (stdout and stderr together).
struct CommandResult {
    int code = -1;  ///< exit code; -1 when killed (by the bound or a signal)
    std::string output;
};

/// Runs `argv` (no shell), killing it after `timeout`.
[[nodiscard]] CommandResult run_command(
    const std::vector<std::string>& argv,
    std::chrono::milliseconds timeout = std::chrono::seconds(60));

/// A fresh directory under the system temp dir, removed by the destructor.
class TempDir {
  public:
    explicit TempDir(const std::string& prefix);
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path path_;
};

void write_text(const std::filesystem::path& path, const std::string& text);

/// A loopback TCP port that was free a moment ago.
[[nodiscard]] std::uint16_t free_port();

/// docker/nginx.conf with its three `server NAME:8000` backends replaced by 127.0.0.1:`backends`,
/// `listen 8080` by 127.0.0.1:`listen_port`, and its /tmp paths (pid, temp dirs) moved into
/// `dir`. Fails when the file does not have exactly three backends or the listen line.
[[nodiscard]] Result<std::string, HarnessFailure> loopback_nginx_conf(
    std::string conf, const std::filesystem::path& dir, std::uint16_t listen_port,
    const std::vector<std::uint16_t>& backends);

/// nginx in the foreground (daemon off) with `dir`/nginx.conf as its prefix and config, its
/// stderr in `dir`/nginx.stderr. Stopped by PID (SIGTERM, then reaped) in the destructor.
class NginxProcess {
  public:
    explicit NginxProcess(const std::filesystem::path& dir);
    ~NginxProcess();
    NginxProcess(const NginxProcess&) = delete;
    NginxProcess& operator=(const NginxProcess&) = delete;
    [[nodiscard]] pid_t pid() const { return pid_; }

  private:
    pid_t pid_ = -1;
};

/// ServerProcess options for ops tests: fast scheduler and housekeeping (state_check_interval
/// and maintenance_interval 0.2 s), plus `env`.
[[nodiscard]] ServerProcess::Options ops_server_options(
    std::map<std::string, std::string> env = {});

/// Deploys and runs a user-task model (instances started and ended), a timer model (timers
/// fired), a failing Lua script (an incident), and an http service task to a closed port (a
/// failed service call: pythmata_errors_total), reads a definition twice (cache hits), so that
/// every metric family has a sample. Bounded (about 10 s).
[[nodiscard]] Result<void, HarnessFailure> produce_every_metric_family(HttpClient& client);

/// A BPMN document holding `process_body`.
[[nodiscard]] std::string bpmn_document(const std::string& process_body);

}  // namespace pythmata::test
