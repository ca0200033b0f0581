// WebSocket /api/v1/ws (API.md, "Operations") through the real server: the handshake, filters,
// the event types of a start and a task completion, and a plain GET refused. A minimal RFC 6455
// client on POSIX sockets with poll() bounds, so every wait is bounded.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime_models.hpp"
#include "runtime_test_support.hpp"

namespace pythmata::test::runtime {
namespace {

using namespace std::chrono_literals;

class WsClient {
  public:
    ~WsClient() {
        if (fd_ >= 0)
            ::close(fd_);
    }

    /// Connects and upgrades; returns the handshake's status line.
    std::string open(std::uint16_t port, const std::string& target) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            return "";
        const std::string request = "GET " + target +
                                    " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                                    "Connection: Upgrade\r\nSec-WebSocket-Key: "
                                    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) < 0)
            return "";
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (buffer_.find("\r\n\r\n") == std::string::npos) {
            if (!fill(deadline))
                return "";
        }
        const auto end = buffer_.find("\r\n\r\n");
        const std::string head = buffer_.substr(0, end);
        buffer_.erase(0, end + 4);
        return head.substr(0, head.find("\r\n"));
    }

    /// The next text frame's payload, or nullopt when none arrives in time.
    std::optional<std::string> next(std::chrono::milliseconds bound) {
        const auto deadline = std::chrono::steady_clock::now() + bound;
        for (;;) {
            if (buffer_.size() >= 2) {
                const auto b1 = static_cast<unsigned char>(buffer_[1]);
                std::size_t length = b1 & 0x7f;
                std::size_t offset = 2;
                if (length == 126 && buffer_.size() >= 4) {
                    length = (static_cast<unsigned char>(buffer_[2]) << 8) |
                             static_cast<unsigned char>(buffer_[3]);
                    offset = 4;
                } else if (length == 127 && buffer_.size() >= 10) {
                    length = 0;
                    for (int i = 2; i < 10; ++i) {
                        length = (length << 8) | static_cast<unsigned char>(buffer_[i]);
                    }
                    offset = 10;
                } else if (length >= 126) {
                    length = SIZE_MAX;  // header incomplete
                }
                if (length != SIZE_MAX && buffer_.size() >= offset + length) {
                    const auto opcode = static_cast<unsigned char>(buffer_[0]) & 0x0f;
                    std::string payload = buffer_.substr(offset, length);
                    buffer_.erase(0, offset + length);
                    if (opcode == 0x1)
                        return payload;
                    if (opcode == 0x8)
                        return std::nullopt;  // close
                    continue;                 // ping/pong/others
                }
            }
            if (!fill(deadline))
                return std::nullopt;
        }
    }

  private:
    bool fill(std::chrono::steady_clock::time_point deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return false;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return false;
        char chunk[16384];
        const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0)
            return false;
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return true;
    }

    int fd_ = -1;
    std::string buffer_;
};

class WebSocketApi : public RuntimeServerTest {
  protected:
    /// Every frame that arrives within `bound`, parsed.
    static std::vector<json> drain(WsClient& ws, std::chrono::milliseconds bound) {
        std::vector<json> frames;
        const auto deadline = std::chrono::steady_clock::now() + bound;
        while (std::chrono::steady_clock::now() < deadline) {
            auto frame = ws.next(std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now()));
            if (!frame)
                break;
            frames.push_back(json::parse(*frame));
        }
        return frames;
    }
};

TEST_P(WebSocketApi, StreamsTheEventsOfAStartAndATaskCompletionForTheFilteredProcess) {
    deploy(models::user_task("Watched"));
    deploy(models::user_task("Other"));
    WsClient ws;
    ASSERT_EQ(ws.open(server_->port(), "/api/v1/ws?process_key=Watched"),
              "HTTP/1.1 101 Switching Protocols");

    start("Other");  // filtered out
    const json watched = start("Watched", {{"variables", {{"n", 1}}}});
    const std::string id = watched["id"];
    auto frames = drain(ws, 2s);
    ASSERT_FALSE(frames.empty()) << "no event within 2 s";
    bool status = false, activity = false, task = false;
    for (const auto& f : frames) {
        EXPECT_EQ(f["process_key"], "Watched") << f.dump();
        EXPECT_EQ(f["instance_id"], id) << f.dump();
        EXPECT_TRUE(f.contains("at")) << f.dump();
        status = status || (f["type"] == "INSTANCE_STATUS" && f["status"] == "RUNNING");
        activity = activity || f["type"] == "ACTIVITY";
        task = task || f["type"] == "TASK_CREATED";
    }
    EXPECT_TRUE(status && activity && task) << json(frames).dump();

    const json task_row = only_task(id);
    ASSERT_EQ(post("/tasks/" + task_row["id"].get<std::string>() + "/complete",
                   {{"variables", {{"ok", true}}}})
                  .status,
              200);
    frames = drain(ws, 2s);
    bool completed = false, variables = false;
    for (const auto& f : frames) {
        completed = completed || (f["type"] == "INSTANCE_STATUS" && f["status"] == "COMPLETED");
        variables = variables || (f["type"] == "VARIABLES" && f["variables"]["ok"] == true);
    }
    EXPECT_TRUE(completed && variables) << json(frames).dump();
}

TEST_P(WebSocketApi, AnInstanceFilterSeesOnlyThatInstance) {
    deploy(models::user_task("P"));
    const json first = start("P");
    WsClient ws;
    ASSERT_EQ(ws.open(server_->port(), "/api/v1/ws?instance_id=" + first["id"].get<std::string>()),
              "HTTP/1.1 101 Switching Protocols");
    start("P");  // another instance of the same process
    const json task_row = only_task(first["id"]);
    ASSERT_EQ(
        post("/tasks/" + task_row["id"].get<std::string>() + "/complete", json::object()).status,
        200);
    const auto frames = drain(ws, 2s);
    ASSERT_FALSE(frames.empty());
    for (const auto& f : frames)
        EXPECT_EQ(f["instance_id"], first["id"]) << f.dump();
}

TEST_P(WebSocketApi, APlainGetIsRefusedWithAClearError) {
    const auto response = call(client_->get("/api/v1/ws"));
    EXPECT_EQ(response.status, 400);
    EXPECT_EQ(response.json()["code"], "UPGRADE_REQUIRED");
    // And the server keeps serving after a client vanishes mid-stream.
    {
        WsClient ws;
        ASSERT_EQ(ws.open(server_->port(), "/api/v1/ws"), "HTTP/1.1 101 Switching Protocols");
    }
    deploy(models::user_task("Q"));
    start("Q");
    EXPECT_EQ(call(client_->get("/health")).status, 200);
}

INSTANTIATE_TEST_SUITE_P(Backends, WebSocketApi,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgresRedis),
                         backend_name);

}  // namespace
}  // namespace pythmata::test::runtime
