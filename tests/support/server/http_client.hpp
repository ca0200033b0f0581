#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "pythmata/common/result.hpp"
#include "server_process.hpp"

namespace pythmata::test {

/// One HTTP response as the client received it (body as sent: not decompressed).
struct HttpResponse {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool keep_alive = false;  ///< the server left the connection open for another request

    /// The first header named `name` (case-insensitive), if any.
    [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
    /// The body parsed as JSON; a discarded value when it is not JSON.
    [[nodiscard]] nlohmann::json json() const;
    /// Status, headers and (up to 2000 bytes of) body, for failure messages.
    [[nodiscard]] std::string describe() const;
};

/// What a raw read saw: the bytes, and whether the server closed the connection.
struct RawRead {
    std::string bytes;
    bool closed = false;  ///< EOF or reset before the bound
};

/// A blocking HTTP/1.1 client for one server on 127.0.0.1 (Boost.Beast, kept out of this
/// header). It holds one connection and reuses it for the next request while the server keeps it
/// alive; a request on a connection the server has since closed is retried once on a new one
/// (only when nothing of the response had arrived). Every operation is bounded by `timeout`.
/// Not thread-safe: one client per thread.
class HttpClient {
  public:
    using Headers = std::vector<std::pair<std::string, std::string>>;

    explicit HttpClient(std::uint16_t port,
                        std::chrono::milliseconds timeout = std::chrono::seconds(15));
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    /// Sends one request and reads its response. Adds Host, and Content-Length when there is a
    /// body; `headers` may add any other (Content-Type, Accept-Encoding, Connection, ...).
    [[nodiscard]] Result<HttpResponse, HarnessFailure> request(std::string_view method,
                                                               std::string_view target,
                                                               std::string_view body = {},
                                                               const Headers& headers = {});
    [[nodiscard]] Result<HttpResponse, HarnessFailure> get(std::string_view target,
                                                           const Headers& headers = {}) {
        return request("GET", target, {}, headers);
    }
    /// POST/PUT of a JSON value (Content-Type application/json).
    [[nodiscard]] Result<HttpResponse, HarnessFailure> send_json(std::string_view method,
                                                                 std::string_view target,
                                                                 const nlohmann::json& body);
    /// POST/PUT of an XML document (Content-Type application/xml).
    [[nodiscard]] Result<HttpResponse, HarnessFailure> send_xml(std::string_view method,
                                                                std::string_view target,
                                                                std::string_view xml);

    /// Opens the connection now (when none is open). Fails when the server refuses it.
    [[nodiscard]] Result<void, HarnessFailure> connect();
    /// Writes `bytes` as they are on the current connection (opened when needed).
    [[nodiscard]] Result<void, HarnessFailure> send_raw(std::string_view bytes);
    /// Reads one response from the current connection (after send_raw, or for pipelining).
    [[nodiscard]] Result<HttpResponse, HarnessFailure> read_response();
    /// Reads whatever arrives until the server closes the connection or `bound` passes.
    [[nodiscard]] Result<RawRead, HarnessFailure> read_until_close(std::chrono::milliseconds bound);

    /// Closes the connection (the next request opens a new one).
    void close();
    [[nodiscard]] bool is_open() const;
    /// TCP connections this client has opened so far (keep-alive tests count them).
    [[nodiscard]] int connections_opened() const;
    [[nodiscard]] std::uint16_t port() const { return port_; }

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::uint16_t port_;
};

/// Decompresses a gzip stream (zlib); nullopt when `data` is not valid gzip.
[[nodiscard]] std::optional<std::string> gunzip(std::string_view data);

/// Polls `condition` every 20 ms until it holds or `bound` passes; true when it held. For states
/// another process reaches in its own time (a dependency noticed down, a cache refilled).
template <typename Condition>
[[nodiscard]] bool eventually(std::chrono::milliseconds bound, Condition&& condition);

}  // namespace pythmata::test

#include <thread>

namespace pythmata::test {

template <typename Condition>
bool eventually(std::chrono::milliseconds bound, Condition&& condition) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (true) {
        if (condition()) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

}  // namespace pythmata::test
