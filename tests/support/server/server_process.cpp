#include "server_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace pythmata::test {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kListeningPrefix = "listening on ";

/// The environment for a child: ours without PYTHMATA_*, then `overrides` (later wins).
std::vector<std::string> child_environment(const std::map<std::string, std::string>& overrides) {
    std::map<std::string, std::string> merged;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        const std::string_view text = *entry;
        const auto eq = text.find('=');
        if (eq == std::string_view::npos || text.starts_with("PYTHMATA_")) {
            continue;
        }
        merged.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
    }
    for (const auto& [name, value] : overrides) {
        merged[name] = value;
    }
    std::vector<std::string> out;
    out.reserve(merged.size());
    for (const auto& [name, value] : merged) {
        out.push_back(name + "=" + value);
    }
    return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (auto& s : strings) {
        out.push_back(s.data());
    }
    out.push_back(nullptr);
    return out;
}

ExitStatus decode(int status) {
    ExitStatus out;
    if (WIFEXITED(status)) {
        out.exited = true;
        out.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        out.signal = WTERMSIG(status);
    }
    return out;
}

/// waitpid with a bound; nullopt when the child is still running at the deadline.
std::optional<ExitStatus> wait_child(pid_t pid, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
        int status = 0;
        const pid_t done = ::waitpid(pid, &status, WNOHANG);
        if (done == pid) {
            return decode(status);
        }
        if (done < 0 && errno != EINTR) {
            return ExitStatus{};  // not our child any more: nothing to wait for
        }
        if (Clock::now() >= deadline) {
            return std::nullopt;
        }
        // A process exit cannot be awaited portably without pidfd; a short poll is bounded.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

/// In the child after fork: die with the parent, set up stdio and exec. Never returns.
[[noreturn]] void exec_child(const std::string& binary, std::vector<std::string>& args,
                             std::vector<std::string>& env, pid_t parent, int out_fd, int err_fd,
                             const std::optional<std::filesystem::path>& working_dir) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
        ::_exit(126);  // the test process died between fork and prctl
    }
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) {
        ::dup2(null_fd, STDIN_FILENO);
    }
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    if (working_dir && ::chdir(working_dir->c_str()) != 0) {
        ::_exit(125);
    }
    std::vector<std::string> argv_strings;
    argv_strings.push_back(binary);
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    auto argv = pointers(argv_strings);
    auto envp = pointers(env);
    ::execve(binary.c_str(), argv.data(), envp.data());
    ::_exit(127);
}

std::string read_tail(const std::filesystem::path& path, std::size_t bytes) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        return "(no stderr file)";
    }
    std::ostringstream all;
    all << file.rdbuf();
    std::string text = all.str();
    if (text.size() > bytes) {
        text = "..." + text.substr(text.size() - bytes);
    }
    return text;
}

}  // namespace

std::string pythmata_binary() {
    return PYTHMATA_BINARY;
}

std::string ExitStatus::describe() const {
    if (exited) {
        return "exit code " + std::to_string(code);
    }
    if (signal != 0) {
        return std::string("killed by signal ") + std::to_string(signal) + " (" +
               ::strsignal(signal) + ")";
    }
    return "unknown exit status";
}

Result<CommandOutput, HarnessFailure> run_pythmata(
    const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
    std::chrono::milliseconds timeout, const std::optional<std::filesystem::path>& working_dir) {
    const std::string binary = pythmata_binary();
    if (::access(binary.c_str(), X_OK) != 0) {
        return HarnessFailure{"the pythmata binary is missing: " + binary};
    }
    int out_pipe[2];
    int err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
        return HarnessFailure{"pipe2 failed"};
    }
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        return HarnessFailure{"pipe2 failed"};
    }
    auto child_args = args;
    auto child_env = child_environment(env);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) {
            ::close(fd);
        }
        return HarnessFailure{"fork failed"};
    }
    if (pid == 0) {
        exec_child(binary, child_args, child_env, parent, out_pipe[1], err_pipe[1], working_dir);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);

    CommandOutput output;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&output.out, &output.err};
    int open_fds = 2;
    const auto deadline = Clock::now() + timeout;
    bool timed_out = false;
    while (open_fds > 0) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        const int ready = ::poll(fds, 2, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) {
                continue;
            }
            char buffer[4096];
            const ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
            if (n > 0) {
                sinks[i]->append(buffer, static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& fd : fds) {
        if (fd.fd >= 0) {
            ::close(fd.fd);
        }
    }
    if (timed_out) {
        ::kill(pid, SIGKILL);
        (void)wait_child(pid, std::chrono::seconds(5));
        return HarnessFailure{"pythmata did not finish within " + std::to_string(timeout.count()) +
                              " ms; stdout:\n" + output.out + "\nstderr:\n" + output.err};
    }
    auto status = wait_child(pid, timeout);
    if (!status) {
        ::kill(pid, SIGKILL);
        (void)wait_child(pid, std::chrono::seconds(5));
        return HarnessFailure{"pythmata closed its output but did not exit"};
    }
    output.status = *status;
    return output;
}

ServerProcess::ServerProcess(Options options, std::filesystem::path dir)
    : options_(std::move(options)), dir_(std::move(dir)) {}

Result<std::unique_ptr<ServerProcess>, HarnessFailure> ServerProcess::start(Options options) {
    const std::string binary = pythmata_binary();
    if (::access(binary.c_str(), X_OK) != 0) {
        return HarnessFailure{"the pythmata binary is missing: " + binary +
                              " (build the `pythmata` target)"};
    }
    std::string pattern =
        (std::filesystem::temp_directory_path() / "pythmata-server-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        return HarnessFailure{"mkdtemp failed"};
    }
    std::unique_ptr<ServerProcess> server(new ServerProcess(std::move(options), pattern));
    const auto port_setting = server->options_.env.find("PYTHMATA_HTTP_PORT");
    std::uint16_t port = 0;
    if (port_setting != server->options_.env.end()) {
        port = static_cast<std::uint16_t>(std::stoi(port_setting->second));
    }
    auto launched = server->launch(port);
    if (!launched) {
        return std::move(launched).error();
    }
    return server;
}

ServerProcess::~ServerProcess() {
    kill9();
    close_stdout();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

std::string ServerProcess::address() const {
    return "127.0.0.1:" + std::to_string(port_);
}

Result<void, HarnessFailure> ServerProcess::launch(std::uint16_t port) {
    std::map<std::string, std::string> env = {{"PYTHMATA_HTTP_HOST", "127.0.0.1"}};
    if (options_.default_store) {
        env["PYTHMATA_DB_URL"] = "sqlite://" + (dir_ / "pythmata.db").string();
    }
    for (const auto& [name, value] : options_.env) {
        env[name] = value;
    }
    env["PYTHMATA_HTTP_PORT"] = std::to_string(port);
    auto child_env = child_environment(env);
    auto child_args = options_.args;

    int out_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
        return HarnessFailure{"pipe2 failed"};
    }
    const int err_fd =
        ::open((dir_ / "stderr.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (err_fd < 0) {
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        return HarnessFailure{"cannot create " + (dir_ / "stderr.log").string()};
    }
    const std::string binary = pythmata_binary();
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        ::close(err_fd);
        return HarnessFailure{"fork failed"};
    }
    if (pid == 0) {
        exec_child(binary, child_args, child_env, parent, out_pipe[1], err_fd, dir_);
    }
    ::close(out_pipe[1]);
    ::close(err_fd);
    pid_ = pid;
    stdout_fd_ = out_pipe[0];
    stdout_.clear();

    // Read stdout until the "listening on" line, the child's exit, or the deadline.
    const auto deadline = Clock::now() + options_.start_timeout;
    while (true) {
        const auto line_end = stdout_.find('\n');
        if (line_end != std::string::npos) {
            const std::string line = stdout_.substr(0, line_end);
            const auto colon = line.rfind(':');
            if (!line.starts_with(kListeningPrefix) || colon == std::string::npos) {
                kill9();
                return HarnessFailure{
                    "the server's first stdout line is not \"listening on "
                    "HOST:PORT\" but \"" +
                    line + "\"; stderr:\n" + stderr_tail()};
            }
            const int bound = std::atoi(line.c_str() + colon + 1);
            if (bound <= 0 || bound > 65535 || (port != 0 && bound != port)) {
                kill9();
                return HarnessFailure{"the server listens on an unexpected port: \"" + line +
                                      "\" (asked for " + std::to_string(port) + ")"};
            }
            port_ = static_cast<std::uint16_t>(bound);
            return {};
        }
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            kill9();
            return HarnessFailure{"the server did not print \"listening on\" within " +
                                  std::to_string(options_.start_timeout.count()) +
                                  " ms; stdout so far: \"" + stdout_ + "\"; stderr:\n" +
                                  stderr_tail()};
        }
        pollfd fd{stdout_fd_, POLLIN, 0};
        const int ready = ::poll(&fd, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        if (ready <= 0) {
            continue;
        }
        char buffer[4096];
        const ssize_t n = ::read(stdout_fd_, buffer, sizeof(buffer));
        if (n > 0) {
            stdout_.append(buffer, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        // EOF: the server closed stdout, almost certainly because it exited.
        auto status = wait_child(pid_, std::chrono::seconds(5));
        const std::string how = status ? status->describe() : "closed stdout but still running";
        if (status) {
            pid_ = -1;
        } else {
            kill9();
        }
        close_stdout();
        return HarnessFailure{"the server exited before listening (" + how + "); stdout: \"" +
                              stdout_ + "\"; stderr:\n" + stderr_tail()};
    }
}

void ServerProcess::kill9() {
    if (pid_ <= 0) {
        return;
    }
    ::kill(pid_, SIGKILL);
    (void)wait_child(pid_, std::chrono::seconds(10));
    pid_ = -1;
}

void ServerProcess::send_signal(int signal) {
    if (pid_ > 0) {
        ::kill(pid_, signal);
    }
}

Result<ExitStatus, HarnessFailure> ServerProcess::wait_exit(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) {
        return HarnessFailure{"the server is not running"};
    }
    auto status = wait_child(pid_, timeout);
    if (!status) {
        return HarnessFailure{"the server did not exit within " + std::to_string(timeout.count()) +
                              " ms; stderr:\n" + stderr_tail()};
    }
    pid_ = -1;
    drain_stdout();
    close_stdout();
    return *status;
}

Result<ExitStatus, HarnessFailure> ServerProcess::terminate(std::chrono::milliseconds timeout) {
    send_signal(SIGTERM);
    auto status = wait_exit(timeout);
    if (!status) {
        kill9();
    }
    return status;
}

Result<void, HarnessFailure> ServerProcess::restart() {
    if (pid_ > 0) {
        return HarnessFailure{"the server is still running"};
    }
    close_stdout();
    return launch(port_);
}

std::string ServerProcess::stdout_text() {
    drain_stdout();
    return stdout_;
}

std::string ServerProcess::stderr_tail(std::size_t bytes) const {
    return read_tail(dir_ / "stderr.log", bytes);
}

void ServerProcess::drain_stdout() {
    if (stdout_fd_ < 0) {
        return;
    }
    while (true) {
        pollfd fd{stdout_fd_, POLLIN, 0};
        if (::poll(&fd, 1, 0) <= 0) {
            return;
        }
        char buffer[4096];
        const ssize_t n = ::read(stdout_fd_, buffer, sizeof(buffer));
        if (n <= 0) {
            return;
        }
        stdout_.append(buffer, static_cast<std::size_t>(n));
    }
}

void ServerProcess::close_stdout() {
    if (stdout_fd_ >= 0) {
        ::close(stdout_fd_);
        stdout_fd_ = -1;
    }
}

}  // namespace pythmata::test
