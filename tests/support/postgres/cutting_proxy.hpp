#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace pythmata::test {

/// A loopback TCP proxy in front of a PostgreSQL server that cuts a connection at one chosen
/// point of the wire protocol, for tests of what a client does when a connection is lost while
/// a statement or a COMMIT is on its way: before the server saw it (nothing happened) or after
/// the server ran it but before its reply arrived (it happened; the client cannot know).
///
/// It reads the frontend's messages (startup, then type byte + length + body; SSL and GSS
/// encryption requests are passed on, so use sslmode=disable and gssencmode=disable to keep
/// the stream readable) and, once armed, watches for the first message of a type whose body
/// contains a text (a Bind names its prepared statement; a simple Query carries its SQL):
///   - Cut::kBeforeForwarding closes both sides without forwarding that message;
///   - Cut::kReply forwards it and closes both sides when the server's first bytes after it
///     arrive, without forwarding them (PostgreSQL sends a statement's replies when it is done,
///     after the implicit or explicit commit that a Sync or COMMIT asks for).
/// One arm cuts once; connections made after that pass through untouched. A thread accepts and
/// one thread per connection forwards (poll on both sockets); the destructor closes everything
/// and joins them.
class CuttingProxy {
  public:
    enum class Cut { kBeforeForwarding, kReply };

    /// Listens on a free 127.0.0.1 port in front of 127.0.0.1:`upstream_port`; nullptr with
    /// `why` set when it cannot listen.
    [[nodiscard]] static std::unique_ptr<CuttingProxy> start(std::uint16_t upstream_port,
                                                             std::string& why);
    ~CuttingProxy();
    CuttingProxy(const CuttingProxy&) = delete;
    CuttingProxy& operator=(const CuttingProxy&) = delete;

    [[nodiscard]] std::uint16_t port() const { return port_; }

    /// Arms one cut at the next frontend message of `type` ('B' Bind, 'Q' Query, ...) whose body
    /// contains `needle`.
    void arm(char type, std::string needle, Cut when);
    /// Cuts made so far.
    [[nodiscard]] int cuts() const { return cuts_.load(); }

  private:
    struct Trigger {
        char type = 0;
        std::string needle;
        Cut when = Cut::kReply;
    };
    CuttingProxy(int listener, std::uint16_t port, std::uint16_t upstream_port);
    void accept_loop();
    void forward(int client);
    /// Takes the armed trigger if message (`type`, `body`) matches it.
    std::optional<Trigger> take_match(char type, const std::string& body);

    int listener_ = -1;
    std::uint16_t port_ = 0;
    std::uint16_t upstream_port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<int> cuts_{0};
    std::mutex mutex_;
    std::optional<Trigger> armed_;
    std::vector<int> sockets_;  // every open socket, closed by the destructor
    std::vector<std::thread> threads_;
    std::thread acceptor_;
};

}  // namespace pythmata::test
