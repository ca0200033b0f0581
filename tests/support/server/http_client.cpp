#include "http_client.hpp"

#include <zlib.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <sstream>

namespace pythmata::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

constexpr std::uint64_t kResponseBodyLimit = 256u << 20;
constexpr std::uint32_t kResponseHeaderLimit = 1u << 20;

}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (iequal(key, name)) {
            return value;
        }
    }
    return std::nullopt;
}

nlohmann::json HttpResponse::json() const {
    return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
}

std::string HttpResponse::describe() const {
    std::string out = "HTTP " + std::to_string(status) + "\n";
    for (const auto& [key, value] : headers) {
        out += key + ": " + value + "\n";
    }
    out += "\n";
    out += body.size() > 2000 ? body.substr(0, 2000) + "..." : body;
    return out;
}

struct HttpClient::Impl {
    asio::io_context io;
    std::optional<beast::tcp_stream> stream;
    beast::flat_buffer buffer;
    std::chrono::milliseconds timeout;
    std::uint16_t port;
    int connections = 0;
    bool reused = false;  ///< the open connection has already carried a response

    /// Runs the io_context until the operation started by `start` completes.
    template <typename Start>
    beast::error_code run(Start&& start) {
        beast::error_code result;
        bool done = false;
        start([&](beast::error_code ec, auto&&...) {
            result = ec;
            done = true;
        });
        io.restart();
        while (!done && io.run_one() > 0) {
        }
        return result;
    }

    Result<void, HarnessFailure> open() {
        if (stream && stream->socket().is_open()) {
            return {};
        }
        stream.emplace(io);
        buffer.clear();
        reused = false;
        stream->expires_after(timeout);
        const tcp::endpoint endpoint(asio::ip::address_v4::loopback(), port);
        const auto ec =
            run([&](auto handler) { stream->async_connect(endpoint, std::move(handler)); });
        if (ec) {
            stream.reset();
            return HarnessFailure{"connect to 127.0.0.1:" + std::to_string(port) +
                                  " failed: " + ec.message()};
        }
        ++connections;
        return {};
    }

    void shut() {
        if (stream) {
            beast::error_code ignored;
            stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
            stream->socket().close(ignored);
            stream.reset();
        }
        buffer.clear();
    }

    Result<void, HarnessFailure> write(std::string_view bytes) {
        stream->expires_after(timeout);
        const auto ec = run([&](auto handler) {
            asio::async_write(*stream, asio::buffer(bytes.data(), bytes.size()),
                              std::move(handler));
        });
        if (ec) {
            shut();
            return HarnessFailure{"write failed: " + ec.message()};
        }
        return {};
    }

    /// Reads one response; `nothing_arrived` tells whether the server closed before any byte.
    Result<HttpResponse, HarnessFailure> read(bool head, bool& nothing_arrived) {
        http::response_parser<http::string_body> parser;
        parser.body_limit(kResponseBodyLimit);
        parser.header_limit(kResponseHeaderLimit);
        if (head) {
            parser.skip(true);
        }
        const auto before = buffer.size();
        stream->expires_after(timeout);
        const auto ec = run(
            [&](auto handler) { http::async_read(*stream, buffer, parser, std::move(handler)); });
        nothing_arrived = ec && before == 0 && !parser.got_some();
        if (ec) {
            shut();
            return HarnessFailure{"reading the response failed: " + ec.message()};
        }
        auto message = parser.release();
        HttpResponse response;
        response.status = static_cast<int>(message.result_int());
        for (const auto& field : message) {
            response.headers.emplace_back(std::string(field.name_string()),
                                          std::string(field.value()));
        }
        response.body = std::move(message.body());
        response.keep_alive = message.keep_alive();
        if (!response.keep_alive) {
            shut();
        } else {
            reused = true;
        }
        return response;
    }
};

HttpClient::HttpClient(std::uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()), port_(port) {
    impl_->timeout = timeout;
    impl_->port = port;
}

HttpClient::~HttpClient() {
    impl_->shut();
}

Result<HttpResponse, HarnessFailure> HttpClient::request(std::string_view method,
                                                         std::string_view target,
                                                         std::string_view body,
                                                         const Headers& headers) {
    http::request<http::string_body> req;
    req.method_string(beast::string_view(method.data(), method.size()));
    req.target(beast::string_view(target.data(), target.size()));
    req.version(11);
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port_));
    for (const auto& [name, value] : headers) {
        req.insert(name, value);
    }
    req.body() = std::string(body);
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
        req.prepare_payload();
    }
    std::ostringstream wire;
    wire << req;
    const std::string bytes = wire.str();
    const bool head = method == "HEAD";

    for (int attempt = 0; attempt < 2; ++attempt) {
        if (auto opened = impl_->open(); !opened) {
            return std::move(opened).error();
        }
        const bool reused = impl_->reused;
        if (auto written = impl_->write(bytes); !written) {
            if (reused && attempt == 0) {
                continue;  // the server closed the kept-alive connection meanwhile
            }
            return std::move(written).error();
        }
        bool nothing_arrived = false;
        auto response = impl_->read(head, nothing_arrived);
        if (!response && reused && nothing_arrived && attempt == 0) {
            continue;
        }
        if (!response) {
            return HarnessFailure{std::string(method) + " " + std::string(target) + ": " +
                                  response.error().message};
        }
        return response;
    }
    return HarnessFailure{"unreachable"};
}

Result<HttpResponse, HarnessFailure> HttpClient::send_json(std::string_view method,
                                                           std::string_view target,
                                                           const nlohmann::json& body) {
    return request(method, target, body.dump(), {{"Content-Type", "application/json"}});
}

Result<HttpResponse, HarnessFailure> HttpClient::send_xml(std::string_view method,
                                                          std::string_view target,
                                                          std::string_view xml) {
    return request(method, target, xml, {{"Content-Type", "application/xml"}});
}

Result<void, HarnessFailure> HttpClient::connect() {
    return impl_->open();
}

Result<void, HarnessFailure> HttpClient::send_raw(std::string_view bytes) {
    if (auto opened = impl_->open(); !opened) {
        return std::move(opened).error();
    }
    return impl_->write(bytes);
}

Result<HttpResponse, HarnessFailure> HttpClient::read_response() {
    if (!impl_->stream) {
        return HarnessFailure{"no open connection to read from"};
    }
    bool nothing_arrived = false;
    return impl_->read(false, nothing_arrived);
}

Result<RawRead, HarnessFailure> HttpClient::read_until_close(std::chrono::milliseconds bound) {
    RawRead out;
    const auto pending = impl_->buffer.data();
    out.bytes.assign(static_cast<const char*>(pending.data()), pending.size());
    impl_->buffer.clear();
    if (!impl_->stream) {
        out.closed = true;
        return out;
    }
    impl_->stream->expires_after(bound);
    while (true) {
        char chunk[4096];
        std::size_t got = 0;
        const auto ec = impl_->run([&](auto handler) {
            impl_->stream->async_read_some(
                asio::buffer(chunk),
                [&got, handler = std::move(handler)](beast::error_code e, std::size_t n) mutable {
                    got = n;
                    handler(e);
                });
        });
        out.bytes.append(chunk, got);
        if (ec == beast::error::timeout) {
            impl_->shut();
            return out;  // still open when the bound passed
        }
        if (ec) {
            out.closed = true;  // EOF or reset: the server closed it
            impl_->shut();
            return out;
        }
    }
}

void HttpClient::close() {
    impl_->shut();
}

bool HttpClient::is_open() const {
    return impl_->stream && impl_->stream->socket().is_open();
}

int HttpClient::connections_opened() const {
    return impl_->connections;
}

std::optional<std::string> gunzip(std::string_view data) {
    z_stream stream{};
    // 16 + MAX_WBITS: expect a gzip header and trailer, not raw zlib.
    if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {
        return std::nullopt;
    }
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    std::string out;
    int rc = Z_OK;
    while (rc == Z_OK) {
        char chunk[16384];
        stream.next_out = reinterpret_cast<Bytef*>(chunk);
        stream.avail_out = sizeof(chunk);
        rc = inflate(&stream, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            inflateEnd(&stream);
            return std::nullopt;
        }
        out.append(chunk, sizeof(chunk) - stream.avail_out);
        if (rc == Z_OK && stream.avail_in == 0 && stream.avail_out != 0) {
            inflateEnd(&stream);
            return std::nullopt;  // truncated: input ended before the gzip trailer
        }
    }
    const bool trailing_garbage = stream.avail_in != 0;
    inflateEnd(&stream);
    if (trailing_garbage) {
        return std::nullopt;
    }
    return out;
}

}  // namespace pythmata::test
