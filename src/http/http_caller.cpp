#include "pythmata/http/http_caller.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <chrono>

namespace pythmata::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

struct Url {
    std::string host;
    std::string port = "80";
    std::string target = "/";
};

Result<Url> parse_url(const std::string& url) {
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos) {
        return Error{
            ErrorKind::kInvalid, "HTTP_CALL_FAILED", "not an absolute URL: " + url, {}, {}, 1};
    }
    const std::string scheme = url.substr(0, scheme_end);
    if (scheme != "http") {
        return Error{ErrorKind::kInvalid,
                     "HTTP_CALL_FAILED",
                     "unsupported URL scheme '" + scheme + "' (only http)",
                     {},
                     {},
                     1};
    }
    Url out;
    const auto rest = url.substr(scheme_end + 3);
    const auto slash = rest.find_first_of("/?");
    std::string authority = rest.substr(0, slash);
    if (slash != std::string::npos) {
        out.target = rest.substr(slash);
        if (out.target[0] == '?')
            out.target.insert(0, "/");
    }
    if (const auto at = authority.rfind('@'); at != std::string::npos)
        authority.erase(0, at + 1);
    if (!authority.empty() && authority[0] == '[') {  // [v6]:port
        const auto close = authority.find(']');
        if (close == std::string::npos) {
            return Error{
                ErrorKind::kInvalid, "HTTP_CALL_FAILED", "bad host in URL: " + url, {}, {}, 1};
        }
        out.host = authority.substr(1, close - 1);
        if (close + 1 < authority.size() && authority[close + 1] == ':') {
            out.port = authority.substr(close + 2);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string::npos) {
        out.host = authority.substr(0, colon);
        out.port = authority.substr(colon + 1);
    } else {
        out.host = authority;
    }
    if (out.host.empty() || out.port.empty()) {
        return Error{ErrorKind::kInvalid, "HTTP_CALL_FAILED", "bad host in URL: " + url, {}, {}, 1};
    }
    return out;
}

Error failed(const std::string& what, const beast::error_code& ec) {
    return Error{
        ErrorKind::kUnavailable, "HTTP_CALL_FAILED", what + ": " + ec.message(), {}, {}, 1};
}

}  // namespace

Result<app::HttpReply> BeastHttpCaller::call(const app::HttpCall& request) {
    auto url = parse_url(request.url);
    if (!url)
        return url.error();
    const auto deadline = std::chrono::steady_clock::now() + request.timeout;
    const auto remaining = [&] {
        return std::max(std::chrono::milliseconds(1),
                        std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now()));
    };

    asio::io_context ioc;
    tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    beast::flat_buffer buffer;
    bhttp::request<bhttp::string_body> out{bhttp::string_to_verb(request.method), url->target, 11};
    if (out.method() == bhttp::verb::unknown)
        out.method_string(request.method);
    out.set(bhttp::field::host, url->host);
    out.set(bhttp::field::user_agent, "pythmata");
    for (const auto& [name, value] : request.headers)
        out.set(name, value);
    out.body() = request.body;
    out.prepare_payload();
    out.keep_alive(false);
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(max_response_size_);

    std::optional<Error> error;
    // Each step chains the next; the stream's expiry bounds every step by the deadline.
    resolver.async_resolve(
        url->host, url->port,
        [&](const beast::error_code& ec, const tcp::resolver::results_type& results) {
            if (ec) {
                error = failed("cannot resolve " + url->host, ec);
                return;
            }
            stream.expires_after(remaining());
            stream.async_connect(results, [&](const beast::error_code& ec2, const tcp::endpoint&) {
                if (ec2) {
                    error = failed("cannot connect to " + url->host + ":" + url->port, ec2);
                    return;
                }
                stream.expires_after(remaining());
                bhttp::async_write(stream, out, [&](const beast::error_code& ec3, std::size_t) {
                    if (ec3) {
                        error = failed("cannot send the request", ec3);
                        return;
                    }
                    stream.expires_after(remaining());
                    bhttp::async_read(stream, buffer, parser,
                                      [&](const beast::error_code& ec4, std::size_t) {
                                          if (ec4)
                                              error = failed("no response", ec4);
                                      });
                });
            });
        });
    ioc.run_for(request.timeout + std::chrono::milliseconds(100));
    if (!ioc.stopped()) {
        return Error{ErrorKind::kUnavailable,
                     "HTTP_CALL_FAILED",
                     "timed out after " + std::to_string(request.timeout.count()) + " ms",
                     {},
                     {},
                     1};
    }
    if (error)
        return *error;
    auto response = parser.release();
    app::HttpReply reply;
    reply.status = static_cast<int>(response.result_int());
    for (const auto& field : response) {
        reply.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    reply.body = std::move(response.body());
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    return reply;
}

}  // namespace pythmata::http
