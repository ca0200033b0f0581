#include "redis_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace pythmata::test {

namespace {

constexpr const char* kRedisServer = "/usr/bin/redis-server";

/// Asks the kernel for a free loopback port by binding port 0 and reading it back.
Result<std::uint16_t, HarnessError> free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return HarnessError{"socket() failed"};
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        return HarnessError{"could not bind a loopback port"};
    }
    ::close(fd);
    return static_cast<std::uint16_t>(ntohs(addr.sin_port));
}

/// Renders a reply as described on RedisServer::command.
std::string render(const redisReply* reply) {
    switch (reply->type) {
        case REDIS_REPLY_INTEGER:
            return std::to_string(reply->integer);
        case REDIS_REPLY_NIL:
            return "(nil)";
        case REDIS_REPLY_ARRAY: {
            std::string out;
            for (size_t i = 0; i < reply->elements; ++i) {
                if (i > 0) {
                    out += ' ';
                }
                out += render(reply->element[i]);
            }
            return out;
        }
        default:
            return std::string(reply->str, reply->len);
    }
}

}  // namespace

RedisServer::RedisServer(Options options, std::filesystem::path dir)
    : options_(std::move(options)), dir_(std::move(dir)) {}

Result<std::unique_ptr<RedisServer>, HarnessError> RedisServer::start(Options options) {
    if (::access(kRedisServer, X_OK) != 0) {
        return HarnessError{std::string(kRedisServer) +
                            " is not installed (scripts/install-deps.sh)"};
    }
    std::string pattern =
        (std::filesystem::temp_directory_path() / "pythmata-redis-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        return HarnessError{"mkdtemp failed"};
    }
    std::unique_ptr<RedisServer> server(new RedisServer(std::move(options), pattern));
    // A port found free can be taken before redis binds it; a few attempts cover that race.
    std::string last_error;
    for (int attempt = 0; attempt < 3; ++attempt) {
        auto port = free_loopback_port();
        if (!port) {
            return port.error();
        }
        server->port_ = *port;
        auto launched = server->launch();
        if (launched) {
            return server;
        }
        last_error = launched.error().message;
    }
    return HarnessError{last_error};
}

RedisServer::~RedisServer() {
    stop();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

std::string RedisServer::url(int db) const {
    std::string url = "redis://";
    if (!options_.password.empty()) {
        url += ":" + options_.password + "@";
    }
    return url + "127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
}

Result<void, HarnessError> RedisServer::launch() {
    const std::string log = (dir_ / "redis.log").string();
    std::vector<std::string> args = {
        kRedisServer, "--port", std::to_string(port_), "--bind",    "127.0.0.1",
        "--save",     "",       "--appendonly",        "no",        "--daemonize",
        "no",         "--dir",  dir_.string(),         "--logfile", log};
    if (!options_.password.empty()) {
        args.push_back("--requirepass");
        args.push_back(options_.password);
    }
    std::vector<char*> argv;
    for (auto& arg : args) {
        argv.push_back(arg.data());
    }
    argv.push_back(nullptr);

    const pid_t child = ::fork();
    if (child < 0) {
        return HarnessError{"fork failed"};
    }
    if (child == 0) {
        // In the child: die with the test process even if it crashes (no orphan servers),
        // quiet stdio, then become redis-server.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        const int null_fd = ::open("/dev/null", O_RDWR);
        if (null_fd >= 0) {
            ::dup2(null_fd, STDIN_FILENO);
            ::dup2(null_fd, STDOUT_FILENO);
            ::dup2(null_fd, STDERR_FILENO);
        }
        ::execv(kRedisServer, argv.data());
        ::_exit(127);
    }
    pid_ = child;

    const auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
    std::string last_error = "no answer";
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return HarnessError{"redis-server exited during start-up; log:\n" + log_tail()};
        }
        auto pong = command({"PING"});
        if (pong && *pong == "PONG") {
            return {};
        }
        if (!pong) {
            last_error = pong.error().message;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    stop();
    return HarnessError{"redis-server did not answer PING in time (" + last_error + "); log:\n" +
                        log_tail()};
}

void RedisServer::kill() {
    if (pid_ <= 0) {
        return;
    }
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

Result<void, HarnessError> RedisServer::restart() {
    if (pid_ > 0) {
        return HarnessError{"redis-server is still running"};
    }
    return launch();
}

void RedisServer::stop() {
    if (pid_ <= 0) {
        return;
    }
    ::kill(pid_, SIGTERM);
    // Bounded: redis with --save '' exits promptly on SIGTERM; SIGKILL if it does not.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill();
}

Result<std::string, HarnessError> RedisServer::command(const std::vector<std::string>& argv,
                                                       int db) const {
    const timeval timeout{1, 0};
    redisContext* ctx = redisConnectWithTimeout("127.0.0.1", port_, timeout);
    if (ctx == nullptr) {
        return HarnessError{"out of memory"};
    }
    if (ctx->err != 0) {
        HarnessError error{ctx->errstr};
        redisFree(ctx);
        return error;
    }
    redisSetTimeout(ctx, timeout);

    std::vector<std::vector<std::string>> commands;
    if (!options_.password.empty()) {
        commands.push_back({"AUTH", options_.password});
    }
    if (db != 0) {
        commands.push_back({"SELECT", std::to_string(db)});
    }
    commands.push_back(argv);

    Result<std::string, HarnessError> outcome = std::string();
    for (const auto& cmd : commands) {
        std::vector<const char*> parts;
        std::vector<size_t> lengths;
        for (const auto& part : cmd) {
            parts.push_back(part.data());
            lengths.push_back(part.size());
        }
        auto* reply = static_cast<redisReply*>(
            redisCommandArgv(ctx, static_cast<int>(parts.size()), parts.data(), lengths.data()));
        if (reply == nullptr) {
            outcome = HarnessError{ctx->errstr};
            break;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            outcome = HarnessError{std::string(reply->str, reply->len)};
            freeReplyObject(reply);
            break;
        }
        outcome = render(reply);
        freeReplyObject(reply);
    }
    redisFree(ctx);
    return outcome;
}

std::string RedisServer::log_tail() const {
    std::ifstream file(dir_ / "redis.log");
    std::string line;
    std::vector<std::string> lines;
    while (std::getline(file, line)) {
        lines.push_back(line);
    }
    std::ostringstream tail;
    const size_t first = lines.size() > 20 ? lines.size() - 20 : 0;
    for (size_t i = first; i < lines.size(); ++i) {
        tail << lines[i] << '\n';
    }
    return tail.str();
}

}  // namespace pythmata::test
