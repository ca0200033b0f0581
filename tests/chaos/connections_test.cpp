// 10,000 real TCP connections to the real `pythmata serve` (issue 6's battery): started with a
// soft file limit of 1024 (a common default), the server raises its own limit to honour
// http_max_connections; every connection is accepted and answered, a fresh client is served at
// once, memory stays bounded, and all close cleanly.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "chaos_support.hpp"

namespace pythmata::test::chaos {
namespace {

constexpr int kConnections = 10'000;
constexpr int kCap = 10'100;  // http_max_connections: the 10,000 plus the test's own clients

/// A TCP connection to 127.0.0.1:port (non-blocking), or -1 when it is not established
/// within `bound` (a full accept backlog makes a blocking connect retry for minutes).
int connect_to(std::uint16_t port, std::chrono::milliseconds bound) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return -1;
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        pollfd p{fd, POLLOUT, 0};
        int error = 0;
        socklen_t length = sizeof error;
        if (errno != EINPROGRESS || ::poll(&p, 1, static_cast<int>(bound.count())) != 1 ||
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
            ::close(fd);
            return -1;
        }
    }
    return fd;
}

/// Reads until a whole response head has arrived (or `bound` passes); what arrived.
std::string read_head(int fd, std::chrono::milliseconds bound) {
    std::string data;
    const auto deadline = Clock::now() + bound;
    while (data.find("\r\n\r\n") == std::string::npos && Clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (::poll(&p, 1, static_cast<int>(std::max<long>(1, left.count()))) <= 0) {
            continue;
        }
        char buffer[4096];
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) {
            break;
        }
        data.append(buffer, static_cast<std::size_t>(n));
    }
    return data;
}

/// A field of /proc/PID/status in kB (VmRSS, VmHWM), or -1.
long proc_status_kb(pid_t pid, const std::string& field) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind(field + ":", 0) == 0) {
            return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
        }
    }
    return -1;
}

/// The soft "Max open files" limit of a process (/proc/PID/limits), or -1.
long soft_file_limit(pid_t pid) {
    std::ifstream limits("/proc/" + std::to_string(pid) + "/limits");
    std::string line;
    while (std::getline(limits, line)) {
        if (line.rfind("Max open files", 0) == 0) {
            return std::strtol(line.c_str() + std::strlen("Max open files"), nullptr, 10);
        }
    }
    return -1;
}

/// Open file descriptors of a process.
long open_fds(pid_t pid) {
    std::error_code ec;
    long count = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        ++count;
    }
    return count;
}

/// The value of the gauge pythmata_http_connections on /metrics, or -1.
long connections_gauge(std::uint16_t port) {
    HttpClient client(port, 5s);
    auto metrics = client.get("/metrics");
    if (!metrics.ok() || metrics.value().status != 200) {
        return -1;
    }
    std::istringstream lines(metrics.value().body);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("pythmata_http_connections ", 0) == 0) {
            return static_cast<long>(std::stod(line.substr(line.find(' ') + 1)));
        }
    }
    return -1;
}

TEST(Connections, TenThousandConnectionsAreAllServedAndCloseCleanly) {
    rlimit limit{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
    const rlim_t needed = kConnections + 512;
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
        GTEST_SKIP() << "the hard file limit (" << limit.rlim_max << ") is below " << needed
                     << ": 10,000 connections cannot be opened from this process";
    }
    // The server starts with a 1024 soft limit, as a shell often gives; it must raise its own.
    const rlimit original = limit;
    limit.rlim_cur = std::min<rlim_t>(1024, limit.rlim_max);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
    auto env = base_env();
    env["PYTHMATA_HTTP_MAX_CONNECTIONS"] = std::to_string(kCap);
    env["PYTHMATA_HTTP_READ_TIMEOUT_MS"] = "120000";
    env["PYTHMATA_HTTP_IDLE_TIMEOUT_MS"] = "120000";
    auto server = start_server(env);
    limit.rlim_cur = std::max<rlim_t>(original.rlim_cur, needed);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0) << std::strerror(errno);
    ASSERT_NE(server, nullptr);
    const pid_t pid = server->pid();
    const std::uint16_t port = server->port();
    const long rss_before = proc_status_kb(pid, "VmRSS");
    EXPECT_GE(soft_file_limit(pid), kCap) << "the server did not raise its own file limit";

    std::vector<int> sockets;
    sockets.reserve(kConnections);
    const auto began = Clock::now();
    int failed = 0;
    for (int i = 0; i < kConnections && Clock::now() - began < 60s; ++i) {
        const int fd = connect_to(port, 5s);
        if (fd < 0) {
            ++failed;
            continue;
        }
        sockets.push_back(fd);
    }
    struct CloseAll {
        std::vector<int>& fds;
        ~CloseAll() {
            for (int fd : fds) {
                ::close(fd);
            }
        }
    } close_all{sockets};
    ASSERT_EQ(failed, 0) << "connects refused below the cap";
    ASSERT_EQ(static_cast<int>(sockets.size()), kConnections) << "connecting took over 60 s";
    // The server holds them all (accepted, not just queued in the kernel's backlog).
    EXPECT_TRUE(eventually(30s, [&] { return open_fds(pid) >= kConnections; }))
        << "the server holds " << open_fds(pid) << " descriptors";
    EXPECT_GE(connections_gauge(port), kConnections);

    // A fresh client is served at once while they are open.
    {
        HttpClient fresh(port, 5s);
        const auto before = Clock::now();
        auto health = fresh.get("/health");
        ASSERT_TRUE(health.ok()) << health.error().message;
        EXPECT_EQ(health.value().status, 200) << health.value().describe();
        EXPECT_LT(Clock::now() - before, 1s);
    }

    // Every one of them is a working HTTP connection.
    const std::string request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int sent = 0;
    for (int fd : sockets) {
        sent += ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
                        static_cast<ssize_t>(request.size())
                    ? 1
                    : 0;
    }
    EXPECT_EQ(sent, kConnections);
    int answered = 0;
    std::string first_bad;
    for (int fd : sockets) {
        const std::string head = read_head(fd, 10s);
        if (head.rfind("HTTP/1.1 200", 0) == 0) {
            ++answered;
        } else if (first_bad.empty()) {
            first_bad = head.empty() ? "(nothing)" : head.substr(0, 200);
        }
    }
    EXPECT_EQ(answered, kConnections) << "first other answer: " << first_bad;

    // Memory stays bounded: generous, about 50 KiB per connection on top of the start.
    const long rss = proc_status_kb(pid, "VmRSS");
    std::cout << "server RSS " << rss_before / 1024 << " MiB at start, " << rss / 1024
              << " MiB with " << kConnections << " connections\n";
    EXPECT_GT(rss, 0);
    EXPECT_LT(rss - rss_before, 500L * 1024) << "RSS grew by more than 500 MiB";

    // All close cleanly: the server sees them go and keeps serving.
    for (int fd : sockets) {
        ::close(fd);
    }
    sockets.clear();
    EXPECT_TRUE(eventually(30s,
                           [&] {
                               const long open = connections_gauge(port);
                               return open >= 0 && open <= 2;
                           }))
        << "the server still counts " << connections_gauge(port) << " connections";
    EXPECT_TRUE(eventually(10s, [&] { return open_fds(pid) < 500; }))
        << "the server still holds " << open_fds(pid) << " descriptors";
    HttpClient after(port, 5s);
    auto health = after.get("/health");
    ASSERT_TRUE(health.ok()) << health.error().message;
    EXPECT_EQ(health.value().status, 200);
    EXPECT_TRUE(server->running());
    if (HasFailure()) {
        std::cerr << server->stderr_tail(4000) << "\n";
    }
}

}  // namespace
}  // namespace pythmata::test::chaos
