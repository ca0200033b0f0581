#include "cutting_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace pythmata::test {

namespace {

constexpr int kPollMs = 50;
// The codes of the untyped first messages (SSLRequest, GSSENCRequest): the server answers
// with one byte and the client sends another untyped message (the startup packet) next.
constexpr std::uint32_t kSslRequest = 80877103;
constexpr std::uint32_t kGssRequest = 80877104;

std::uint32_t read_u32(const std::string& bytes, std::size_t at) {
    std::uint32_t value = 0;
    std::memcpy(&value, bytes.data() + at, sizeof value);
    return ntohl(value);
}

bool send_all(int fd, const char* data, std::size_t size) {
    while (size > 0) {
        const ssize_t sent = ::send(fd, data, size, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR) {
            continue;
        }
        if (sent <= 0) {
            return false;
        }
        data += sent;
        size -= static_cast<std::size_t>(sent);
    }
    return true;
}

int connect_loopback(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

std::unique_ptr<CuttingProxy> CuttingProxy::start(std::uint16_t upstream_port, std::string& why) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        why = std::string("socket: ") + std::strerror(errno);
        return nullptr;
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = 0;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd, 64) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        why = std::string("listen: ") + std::strerror(errno);
        ::close(fd);
        return nullptr;
    }
    return std::unique_ptr<CuttingProxy>(
        new CuttingProxy(fd, ntohs(address.sin_port), upstream_port));
}

CuttingProxy::CuttingProxy(int listener, std::uint16_t port, std::uint16_t upstream_port)
    : listener_(listener), port_(port), upstream_port_(upstream_port) {
    acceptor_ = std::thread([this] { accept_loop(); });
}

CuttingProxy::~CuttingProxy() {
    stopping_ = true;
    acceptor_.join();
    {
        std::lock_guard lock(mutex_);
        for (const int fd : sockets_) {
            ::shutdown(fd, SHUT_RDWR);
        }
    }
    // No new thread starts once the acceptor is joined.
    for (std::thread& thread : threads_) {
        thread.join();
    }
    ::close(listener_);
}

void CuttingProxy::arm(char type, std::string needle, Cut when) {
    std::lock_guard lock(mutex_);
    armed_ = Trigger{type, std::move(needle), when};
}

std::optional<CuttingProxy::Trigger> CuttingProxy::take_match(char type, const std::string& body) {
    std::lock_guard lock(mutex_);
    if (!armed_ || armed_->type != type || body.find(armed_->needle) == std::string::npos) {
        return std::nullopt;
    }
    std::optional<Trigger> matched = std::move(armed_);
    armed_.reset();
    return matched;
}

void CuttingProxy::accept_loop() {
    while (!stopping_) {
        pollfd waiting{listener_, POLLIN, 0};
        if (::poll(&waiting, 1, kPollMs) <= 0) {
            continue;
        }
        const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) {
            continue;
        }
        std::lock_guard lock(mutex_);
        sockets_.push_back(client);
        threads_.emplace_back([this, client] { forward(client); });
    }
}

void CuttingProxy::forward(int client) {
    const int upstream = connect_loopback(upstream_port_);
    {
        std::lock_guard lock(mutex_);
        if (upstream >= 0) {
            sockets_.push_back(upstream);
        }
    }
    // The frontend's bytes not yet forwarded (an incomplete message), whether the startup
    // packet is behind us, and whether the next reply is to be swallowed with a cut.
    std::string pending;
    bool started = false;
    bool cut_at_reply = false;
    bool open = upstream >= 0;
    char buffer[16384];
    while (open && !stopping_) {
        pollfd both[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
        if (::poll(both, 2, kPollMs) <= 0) {
            continue;
        }
        if (both[1].revents != 0) {
            const ssize_t got = ::recv(upstream, buffer, sizeof buffer, 0);
            if (got <= 0) {
                break;
            }
            if (cut_at_reply) {
                ++cuts_;
                break;  // the server has answered; the client never hears it
            }
            if (!send_all(client, buffer, static_cast<std::size_t>(got))) {
                break;
            }
        }
        if (both[0].revents != 0) {
            const ssize_t got = ::recv(client, buffer, sizeof buffer, 0);
            if (got <= 0) {
                break;
            }
            pending.append(buffer, static_cast<std::size_t>(got));
            // Forward every complete message, checking each against the trigger.
            std::size_t at = 0;
            for (;;) {
                std::size_t size = 0;
                char type = 0;
                std::size_t body = 0;
                if (!started) {
                    if (pending.size() - at < 8) {
                        break;
                    }
                    size = read_u32(pending, at);
                    body = at + 4;
                } else {
                    if (pending.size() - at < 5) {
                        break;
                    }
                    type = pending[at];
                    size = 1 + read_u32(pending, at + 1);
                    body = at + 5;
                }
                if (size < 4 || pending.size() - at < size) {
                    break;
                }
                if (!started) {
                    const std::uint32_t code = read_u32(pending, at + 4);
                    started = code != kSslRequest && code != kGssRequest;
                } else if (auto trigger =
                               take_match(type, pending.substr(body, at + size - body))) {
                    if (trigger->when == Cut::kBeforeForwarding) {
                        // What came before the message goes; the message and the rest do not.
                        send_all(upstream, pending.data(), at);
                        ++cuts_;
                        open = false;
                        break;
                    }
                    cut_at_reply = true;
                }
                at += size;
            }
            if (!open) {
                break;
            }
            if (at > 0 && !send_all(upstream, pending.data(), at)) {
                break;
            }
            pending.erase(0, at);
        }
    }
    std::lock_guard lock(mutex_);
    for (const int fd : {client, upstream}) {
        if (fd >= 0) {
            ::shutdown(fd, SHUT_RDWR);
            ::close(fd);
            sockets_.erase(std::remove(sockets_.begin(), sockets_.end(), fd), sockets_.end());
        }
    }
}

}  // namespace pythmata::test
