// The HTTP/1.1 server: Beast on Asio with C++20 coroutines. One coroutine per connection on its
// own strand; handlers that block (store, engine) run on a bounded thread pool while the
// connection's coroutine waits without holding an I/O thread.

#include "pythmata/http/server.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "api.hpp"
#include "pythmata/common/uuid.hpp"
#include "pythmata/http/auth.hpp"
#include "pythmata/http/compression.hpp"
#include "pythmata/http/error_mapping.hpp"
#include "pythmata/http/event_hub.hpp"
#include "pythmata/metrics/registry.hpp"

namespace pythmata::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

/// HTTP metrics: requests by method, route template and status; latency by route.
class HttpMetrics {
  public:
    explicit HttpMetrics(metrics::Registry& registry)
        : requests_(prometheus::BuildCounter()
                        .Name("pythmata_http_requests_total")
                        .Help("HTTP requests answered, by method, route template and status")
                        .Register(registry.prometheus())),
          latency_(prometheus::BuildHistogram()
                       .Name("pythmata_http_request_duration_seconds")
                       .Help("Time from a request's last byte read to its response written")
                       .Register(registry.prometheus())),
          connections_(prometheus::BuildGauge()
                           .Name("pythmata_http_connections")
                           .Help("Open HTTP connections")
                           .Register(registry.prometheus())
                           .Add({})),
          queued_(prometheus::BuildGauge()
                      .Name("pythmata_http_blocking_requests")
                      .Help("Requests in progress off the I/O threads: waiting for or running "
                            "on the blocking or the read pool, or handed to the engine")
                      .Register(registry.prometheus())
                      .Add({})),
          async_(prometheus::BuildCounter()
                     .Name("pythmata_http_async_requests_total")
                     .Help("Requests handed from the I/O thread to the engine with no "
                           "blocking-pool thread waiting for them (starts, task completions)")
                     .Register(registry.prometheus())
                     .Add({})),
          rejected_(prometheus::BuildCounter()
                        .Name("pythmata_http_rejected_total")
                        .Help("Connections and requests refused with 503 over a limit, by reason")
                        .Register(registry.prometheus())) {}

    void observe(const std::string& method, const std::string& route, int status, double seconds) {
        std::string key;
        key.reserve(method.size() + route.size() + 8);
        key.append(method).push_back(' ');
        key.append(route).push_back(' ');
        key.append(std::to_string(status));
        prometheus::Counter* counter = nullptr;
        prometheus::Histogram* histogram = nullptr;
        {
            std::lock_guard lock(mutex_);
            auto& entry = series_[key];
            if (entry.first == nullptr) {
                entry.first = &requests_.Add(
                    {{"method", method}, {"route", route}, {"status", std::to_string(status)}});
                auto& h = histograms_[route];
                if (h == nullptr)
                    h = &latency_.Add({{"route", route}}, buckets());
                entry.second = h;
            }
            counter = entry.first;
            histogram = entry.second;
        }
        counter->Increment();
        histogram->Observe(seconds);
    }
    prometheus::Gauge& connections() { return connections_; }
    prometheus::Gauge& queued() { return queued_; }
    prometheus::Counter& async() { return async_; }
    void rejected(const std::string& reason) { rejected_.Add({{"reason", reason}}).Increment(); }

  private:
    static const prometheus::Histogram::BucketBoundaries& buckets() {
        static const prometheus::Histogram::BucketBoundaries b{
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
        return b;
    }

    prometheus::Family<prometheus::Counter>& requests_;
    prometheus::Family<prometheus::Histogram>& latency_;
    prometheus::Gauge& connections_;
    prometheus::Gauge& queued_;
    prometheus::Counter& async_;
    prometheus::Family<prometheus::Counter>& rejected_;
    std::mutex mutex_;
    std::unordered_map<std::string, std::pair<prometheus::Counter*, prometheus::Histogram*>>
        series_;
    std::unordered_map<std::string, prometheus::Histogram*> histograms_;
};

/// The value of the Date header, formatted at most once a second per thread.
const std::string& http_date() {
    thread_local std::time_t cached_second = 0;
    thread_local std::string cached;
    const std::time_t now = std::time(nullptr);
    if (now != cached_second) {
        std::tm tm{};
        gmtime_r(&now, &tm);
        char buffer[64];
        const auto n = std::strftime(buffer, sizeof buffer, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached.assign(buffer, n);
        cached_second = now;
    }
    return cached;
}

/// An incoming X-Request-Id is echoed when it is short and plain; otherwise a new one is made.
std::string request_id_for(const bhttp::request<bhttp::string_body>& request) {
    const auto it = request.find("X-Request-Id");
    if (it != request.end()) {
        const auto value = it->value();
        if (!value.empty() && value.size() <= 64 &&
            std::all_of(value.begin(), value.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                       c == '.' || c == ':';
            })) {
            return std::string(value);
        }
    }
    return new_uuid();
}

std::string json_escape(std::string_view text) {
    return nlohmann::json(std::string(text))
        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

struct Connection {
    explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}
    beast::tcp_stream stream;
    std::string remote;
    bool busy = false;  ///< a request is being read, handled or written; touched on the strand only
};

/// A blocking handler's hand-off: the pool thread stores the response and wakes the connection
/// by cancelling the timer; the timer expiring first means the request timed out.
struct Pending {
    explicit Pending(asio::any_io_executor executor) : timer(std::move(executor)) {}
    asio::steady_timer timer;
    Request request;
    PathParams params;
    const Route* route = nullptr;
    std::optional<Response> response;   ///< set on the connection's strand
    std::atomic<bool> answered{false};  ///< kAsyncFirst: the reply came (or an exception did)
};

/// One WebSocket subscriber's outgoing frames, touched only on the connection's strand.
struct WsState {
    explicit WsState(asio::any_io_executor executor) : signal(std::move(executor)) {}
    asio::steady_timer signal;  ///< cancelled to wake the writer
    std::deque<EventHub::Frame> queue;
    bool closed = false;
    bool overflow = false;
};

static Api make_api(const ServerDeps& deps) {
    Api api(deps.settings, deps.definitions, deps.health_checks, deps.metrics);
    api.attach_runtime(deps.instances, deps.idempotency);
    return api;
}

/// Just the Authorization header of `raw`, for the auth check of a WebSocket upgrade.
Request auth_view(const bhttp::request<bhttp::string_body>& raw) {
    Request view;
    if (const auto it = raw.find(bhttp::field::authorization); it != raw.end())
        view.headers.emplace_back("Authorization", std::string(it->value()));
    return view;
}

}  // namespace

struct Server::Impl {
    explicit Impl(ServerDeps d)
        : deps(std::move(d)),
          settings(deps.settings),
          api(make_api(deps)),
          router(make_router(api, deps.ops_only)),
          auth(Authenticator::create(deps.settings)),
          log(deps.log ? deps.log : spdlog::default_logger()),
          http_metrics(deps.metrics),
          acceptor(ioc),
          signals(ioc) {}

    // ---- Request handling ----------------------------------------------------------------

    /// The 500 answer to an exception a handler let out. error_response() logs its cause, the
    /// route included: one line (rate-limited per code like every 5xx), not one here and one there.
    static Response unhandled(const Route& route, std::string_view what) {
        return error_response(Error::internal_error("unhandled exception in " + route.method + " " +
                                                    route.pattern + ": " + std::string(what)));
    }

    Response invoke(const Route& route, const Request& request, const PathParams& params) {
        try {
            return route.handler(request, params);
        } catch (const std::exception& e) {
            return unhandled(route, e.what());
        } catch (...) {
            return unhandled(route, "unknown exception");
        }
    }

    /// A kInlineFirst route's attempt on the I/O thread; an exception is a 500 like invoke's.
    std::optional<Response> invoke_inline(const Route& route, const Request& request,
                                          const PathParams& params) {
        try {
            return route.inline_answer(request, params);
        } catch (const std::exception& e) {
            return unhandled(route, e.what());
        }
    }

    /// Offers a kAsyncFirst request to its route's async_answer (on this I/O thread): true when
    /// the route took it; its reply then makes the response on the connection's strand.
    bool start_async(const std::shared_ptr<Pending>& pending) {
        const Route& route = *pending->route;
        AsyncReply reply = [this, pending](std::function<Response()> make) {
            if (pending->answered.exchange(true))
                return;
            queued.fetch_sub(1);
            http_metrics.queued().Decrement();
            asio::post(pending->timer.get_executor(), [this, pending, make = std::move(make)] {
                try {
                    pending->response = make();
                } catch (const std::exception& e) {
                    pending->response = unhandled(*pending->route, e.what());
                }
                pending->timer.cancel();
            });
        };
        try {
            const bool taken = route.async_answer(pending->request, pending->params, reply);
            if (taken)
                http_metrics.async().Increment();
            return taken;
        } catch (const std::exception& e) {
            if (!pending->answered.exchange(true)) {
                queued.fetch_sub(1);
                http_metrics.queued().Decrement();
                pending->response = unhandled(route, e.what());
            } else {
                log->error("unhandled exception in {} {} after it answered: {}", route.method,
                           route.pattern, e.what());
            }
            return true;
        }
    }

    asio::awaitable<Response> dispatch(Request request) {
        const auto q = request.target.find('?');
        const std::string_view path = std::string_view(request.target).substr(0, q);
        auto match = router.match(request.method, path);
        if (!match)
            co_return error_response(match.error());
        const Route& route = *match->route;
        if (auto denied = auth->check(route, request))  // 401/403 when auth is on (http/auth)
            co_return std::move(*denied);
        Response response;
        std::optional<Response> answered;
        if (route.execution == Execution::kInlineFirst && route.inline_answer) {
            answered = invoke_inline(route, request, match->params);
        }
        if (answered) {
            response = std::move(*answered);
        } else if (route.execution == Execution::kInline) {
            response = invoke(route, request, match->params);
        } else {
            if (queued.fetch_add(1) >= settings.max_queued_requests) {
                queued.fetch_sub(1);
                http_metrics.rejected("queue_full");
                Response overloaded = error_response(
                    Error::overloaded("the server has too many requests in progress; retry"));
                overloaded.route = route.pattern;
                co_return overloaded;
            }
            http_metrics.queued().Increment();
            auto pending = std::make_shared<Pending>(co_await asio::this_coro::executor);
            pending->request = std::move(request);
            pending->params = std::move(match->params);
            pending->route = &route;
            pending->timer.expires_after(settings.request_timeout);
            if (!(settings.async_first && route.execution == Execution::kAsyncFirst &&
                  route.async_answer && start_async(pending))) {
                // Reads (and a GET that could not be answered from memory) take the read pool.
                const Route& r = *pending->route;
                const bool read = r.execution == Execution::kRead ||
                                  (r.execution == Execution::kInlineFirst && r.method == "GET");
                asio::thread_pool& pool = read ? *reads : *blocking;
                asio::post(pool, [this, pending] {
                    Response result = invoke(*pending->route, pending->request, pending->params);
                    queued.fetch_sub(1);
                    http_metrics.queued().Decrement();
                    asio::post(pending->timer.get_executor(),
                               [pending, result = std::move(result)]() mutable {
                                   pending->response = std::move(result);
                                   pending->timer.cancel();
                               });
                });
            }
            if (!pending->response)
                co_await pending->timer.async_wait(kTuple);
            if (pending->response) {
                response = std::move(*pending->response);
            } else {
                http_metrics.rejected("request_timeout");
                Error error = Error::unavailable(
                    "REQUEST_TIMEOUT",
                    "the request took longer than the server's limit; it may still take effect, "
                    "so retry with the same Idempotency-Key");
                error.kind = ErrorKind::kOverloaded;
                response = error_response(error);
            }
        }
        response.route = route.pattern;
        co_return response;
    }

    /// Turns our Response into Beast's, adding the server-wide headers and compression.
    bhttp::response<bhttp::string_body> finish(Response& response,
                                               const bhttp::request<bhttp::string_body>& request,
                                               const std::string& request_id, bool keep_alive) {
        bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(response.status),
                                                request.version()};
        for (auto& [name, value] : response.headers)
            out.set(name, value);
        out.set(bhttp::field::server, "pythmata");
        out.set(bhttp::field::date, http_date());
        out.set("X-Request-Id", request_id);
        const auto content_type = response.header("Content-Type");
        if (settings.gzip_min_size > 0 && response.body.size() >= settings.gzip_min_size &&
            content_type && compressible(*content_type) && !response.header("Content-Encoding")) {
            out.set(bhttp::field::vary, "Accept-Encoding");
            const auto accept = request.find(bhttp::field::accept_encoding);
            if (accept != request.end() && accepts_gzip(accept->value())) {
                if (auto zipped = gzip_compress(response.body)) {
                    response.body = std::move(*zipped);
                    out.set(bhttp::field::content_encoding, "gzip");
                }
            }
        }
        out.keep_alive(keep_alive);
        if (request.method() == bhttp::verb::head) {
            out.content_length(response.body.size());
        } else {
            out.body() = std::move(response.body);
            out.prepare_payload();
        }
        return out;
    }

    void access(const Request& request, int status, std::size_t bytes, double seconds,
                const std::string& request_id, const std::string& route) {
        if (!deps.access_log || !deps.log_settings.access_log)
            return;
        const double ms = seconds * 1000.0;
        if (deps.log_settings.format == "json") {
            deps.access_log->info(
                R"({{"remote":{},"method":{},"target":{},"route":{},"status":{},"bytes":{},"duration_ms":{:.3f},"request_id":{}}})",
                json_escape(request.remote), json_escape(request.method),
                json_escape(request.target), json_escape(route), status, bytes, ms,
                json_escape(request_id));
        } else {
            deps.access_log->info("{} \"{} {}\" {} {} {:.3f}ms rid={}", request.remote,
                                  request.method, request.target, status, bytes, ms, request_id);
        }
    }

    // ---- Connections -----------------------------------------------------------------------

    /// Answers a request that could not be read (too large, malformed) and closes.
    asio::awaitable<void> reject(Connection& connection, const Error& error, unsigned version,
                                 const std::string& route) {
        Response response = error_response(error);
        bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(response.status),
                                                version};
        for (auto& [name, value] : response.headers)
            out.set(name, value);
        out.set(bhttp::field::server, "pythmata");
        out.set(bhttp::field::date, http_date());
        out.set("X-Request-Id", new_uuid());
        out.keep_alive(false);
        out.body() = std::move(response.body);
        out.prepare_payload();
        connection.stream.expires_after(settings.read_timeout);
        co_await bhttp::async_write(connection.stream, out, kTuple);
        http_metrics.observe("-", route, response.status, 0.0);
        // Lingering close: the client may still be sending (a 100 MB body); closing with unread
        // input would reset the connection and lose the answer. Half-close, then discard what
        // arrives for a bounded time into a small scratch buffer (nothing is kept).
        beast::error_code ignored;
        connection.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        // Bounded by http_read_timeout_ms and max_body_size.
        connection.stream.expires_after(settings.read_timeout);
        std::array<char, 16384> scratch{};
        for (std::size_t drained = 0; drained < settings.max_body_size;) {
            auto [ec, n] =
                co_await connection.stream.async_read_some(asio::buffer(scratch), kTuple);
            if (ec)
                break;
            drained += n;
        }
    }

    asio::awaitable<void> session(std::shared_ptr<Connection> connection) {
        beast::flat_buffer buffer;
        bool first = true;
        for (;;) {
            if (stopping.load())
                break;
            connection->busy = false;
            // Wait for the first byte of the next request: the idle timeout applies (the read
            // timeout for a new connection's first request).
            if (buffer.size() == 0) {
                connection->stream.expires_after(first ? settings.read_timeout
                                                       : settings.idle_timeout);
                auto [ec, n] =
                    co_await connection->stream.async_read_some(buffer.prepare(4096), kTuple);
                if (ec)
                    break;
                buffer.commit(n);
            }
            first = false;
            connection->busy = true;

            bhttp::request_parser<bhttp::string_body> parser;
            parser.header_limit(static_cast<std::uint32_t>(
                std::min<std::size_t>(settings.max_header_size, UINT32_MAX)));
            parser.body_limit(settings.max_body_size);
            connection->stream.expires_after(settings.read_timeout);
            auto [header_ec, header_n] =
                co_await bhttp::async_read_header(connection->stream, buffer, parser, kTuple);
            if (!header_ec && parser.get()[bhttp::field::expect] == "100-continue") {
                bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, 11};
                auto [cont_ec, cont_n] =
                    co_await bhttp::async_write(connection->stream, cont, kTuple);
                if (cont_ec)
                    break;
            }
            beast::error_code ec = header_ec;
            if (!ec && !parser.is_done()) {
                auto [body_ec, body_n] =
                    co_await bhttp::async_read(connection->stream, buffer, parser, kTuple);
                ec = body_ec;
            }
            if (ec) {
                if (ec == bhttp::error::body_limit) {
                    co_await reject(*connection,
                                    Error::too_large("BODY_TOO_LARGE",
                                                     "the request body is larger than " +
                                                         std::to_string(settings.max_body_size) +
                                                         " bytes (max_body_size)"),
                                    11, "body_too_large");
                } else if (ec == bhttp::error::header_limit) {
                    Error error = Error::too_large("HEADERS_TOO_LARGE",
                                                   "the request headers are larger than " +
                                                       std::to_string(settings.max_header_size) +
                                                       " bytes (max_header_size)");
                    error.kind = ErrorKind::kHeadersTooLarge;
                    co_await reject(*connection, error, 11, "headers_too_large");
                } else if (ec != beast::error::timeout && ec != bhttp::error::end_of_stream &&
                           ec != asio::error::operation_aborted &&
                           ec != asio::error::connection_reset && ec != asio::error::eof) {
                    co_await reject(*connection,
                                    Error::invalid_argument(
                                        "malformed HTTP request: " + ec.message(), "BAD_REQUEST"),
                                    11, "malformed");
                }
                break;
            }

            const auto started = SteadyClock::now();
            bhttp::request<bhttp::string_body> raw = parser.release();
            // Without a valid token the upgrade falls through to dispatch, which answers 401.
            if (deps.events != nullptr && websocket::is_upgrade(raw) &&
                !auth->check(Route{"GET", "/api/v1/ws"}, auth_view(raw)) &&
                std::string_view(raw.target()).substr(0, raw.target().find('?')) == "/api/v1/ws") {
                co_await websocket_session(connection, std::move(raw));
                co_return;
            }
            const std::string request_id = request_id_for(raw);
            Request request;
            request.method = std::string(raw.method_string());
            request.target = std::string(raw.target());
            request.remote = connection->remote;
            request.headers.reserve(16);
            for (const auto& field : raw) {
                request.headers.emplace_back(std::string(field.name_string()),
                                             std::string(field.value()));
            }
            request.body = std::move(raw.body());
            raw.body().clear();
            Request for_log;
            for_log.method = request.method;
            for_log.target = request.target;
            for_log.remote = request.remote;

            Response response = co_await dispatch(std::move(request));
            const bool keep_alive = raw.keep_alive() && !response.close && !stopping.load();
            const int status = response.status;
            const std::string route = response.route;
            auto out = finish(response, raw, request_id, keep_alive);
            const std::size_t bytes = out.body().size();
            connection->stream.expires_after(settings.request_timeout);
            auto [write_ec, write_n] = co_await bhttp::async_write(connection->stream, out, kTuple);
            const double seconds =
                std::chrono::duration<double>(SteadyClock::now() - started).count();
            http_metrics.observe(for_log.method, route, status, seconds);
            access(for_log, status, bytes, seconds, request_id, route);
            if (write_ec || !keep_alive)
                break;
        }
        connection->busy = false;
        beast::error_code ignored;
        connection->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        connection->stream.close();
    }

    /// GET /api/v1/ws with an Upgrade: streams instance events as text frames until either side
    /// closes. Filters: ?instance_id= and ?process_key=.
    asio::awaitable<void> websocket_session(std::shared_ptr<Connection> connection,
                                            bhttp::request<bhttp::string_body> request) {
        const std::string target(request.target());
        Query query;
        if (const auto q = target.find('?'); q != std::string::npos) {
            auto parsed = parse_query(std::string_view(target).substr(q + 1));
            if (!parsed) {
                co_await reject(*connection, parsed.error(), request.version(), "/api/v1/ws");
                co_return;
            }
            query = std::move(*parsed);
        }
        EventHub::Filter filter;
        if (auto it = query.find("instance_id"); it != query.end() && !it->second.empty()) {
            filter.instance_id = it->second;
        }
        if (auto it = query.find("process_key"); it != query.end() && !it->second.empty()) {
            filter.process_key = it->second;
        }

        connection->stream.expires_never();
        websocket::stream<beast::tcp_stream&> ws(connection->stream);
        ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        ws.set_option(websocket::stream_base::decorator([](websocket::response_type& response) {
            response.set(bhttp::field::server, "pythmata");
        }));
        ws.read_message_max(64 * 1024);
        auto [accept_ec] = co_await ws.async_accept(request, kTuple);
        if (accept_ec)
            co_return;
        http_metrics.observe("GET", "/api/v1/ws", 101, 0.0);
        connection->busy = false;  // shutdown may close it at once, like an idle keep-alive

        auto executor = co_await asio::this_coro::executor;
        auto state = std::make_shared<WsState>(executor);
        const std::size_t limit = settings.ws_max_queued_events;
        const auto id =
            deps.events->subscribe(filter, [state, executor, limit](const EventHub::Frame& frame) {
                asio::post(executor, [state, frame, limit] {
                    if (state->closed)
                        return;
                    if (state->queue.size() >= limit) {
                        state->overflow = true;
                    } else {
                        state->queue.push_back(frame);
                    }
                    state->signal.cancel();
                });
            });

        // The reader only answers pings and notices the close; client messages are ignored.
        asio::co_spawn(
            executor,
            [&ws, state]() -> asio::awaitable<void> {
                beast::flat_buffer buffer;
                for (;;) {
                    auto [ec, n] = co_await ws.async_read(buffer, kTuple);
                    if (ec)
                        break;
                    buffer.consume(buffer.size());
                }
                state->closed = true;
                state->signal.cancel();
            },
            asio::detached);

        while (!state->closed && !stopping.load()) {
            if (state->overflow) {
                auto [close_ec] = co_await ws.async_close(
                    websocket::close_reason(websocket::close_code::policy_error,
                                            "too slow: ws_max_queued_events exceeded"),
                    kTuple);
                break;
            }
            if (state->queue.empty()) {
                state->signal.expires_after(std::chrono::hours(24));
                co_await state->signal.async_wait(kTuple);
                continue;
            }
            EventHub::Frame frame = std::move(state->queue.front());
            state->queue.pop_front();
            ws.text(true);
            auto [write_ec, n] = co_await ws.async_write(asio::buffer(*frame), kTuple);
            if (write_ec)
                break;
        }
        deps.events->unsubscribe(id);
        if (stopping.load() && !state->closed) {
            auto [close_ec] = co_await ws.async_close(websocket::close_code::going_away, kTuple);
        }
        // Wait for the reader to finish before `ws` goes out of scope.
        while (!state->closed) {
            beast::get_lowest_layer(ws).cancel();
            state->signal.expires_after(std::chrono::milliseconds(100));
            co_await state->signal.async_wait(kTuple);
        }
    }

    /// A connection over http_max_connections: one 503 and close.
    asio::awaitable<void> refuse(std::shared_ptr<Connection> connection) {
        co_await reject(*connection,
                        Error::overloaded("the server has too many open connections; retry"), 11,
                        "connection_limit");
        beast::error_code ignored;
        connection->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        connection->stream.close();
    }

    void start_session(tcp::socket socket) {
        auto connection = std::make_shared<Connection>(std::move(socket));
        beast::error_code ec;
        const auto endpoint = connection->stream.socket().remote_endpoint(ec);
        if (!ec)
            connection->remote = endpoint.address().to_string();
        connection->stream.socket().set_option(tcp::no_delay(true), ec);

        if (connections.load() >= settings.max_connections) {
            http_metrics.rejected("connection_limit");
            asio::co_spawn(connection->stream.get_executor(), refuse(connection), asio::detached);
            return;
        }
        connections.fetch_add(1);
        http_metrics.connections().Increment();
        {
            std::lock_guard lock(live_mutex);
            live.emplace(connection.get(), connection);
        }
        asio::co_spawn(connection->stream.get_executor(), session(connection),
                       [this, connection](const std::exception_ptr& error) {
                           if (error) {
                               try {
                                   std::rethrow_exception(error);
                               } catch (const std::exception& e) {
                                   log->error("connection from {} failed: {}", connection->remote,
                                              e.what());
                               } catch (...) {
                                   log->error("connection from {} failed", connection->remote);
                               }
                           }
                           {
                               std::lock_guard lock(live_mutex);
                               live.erase(connection.get());
                           }
                           connections.fetch_sub(1);
                           http_metrics.connections().Decrement();
                       });
    }

    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(ioc), kTuple);
            if (stopping.load() || ec == asio::error::operation_aborted)
                co_return;
            if (ec) {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                log->warn("accept failed: {}", ec.message());
                asio::steady_timer pause(ioc, std::chrono::milliseconds(50));
                co_await pause.async_wait(kTuple);
                continue;
            }
            start_session(tcp::socket(std::move(socket)));
        }
    }

    // ---- Shutdown ----------------------------------------------------------------------------

    /// On the io_context: stop accepting, wake idle keep-alive connections so they close, give
    /// busy ones until shutdown_timeout to finish their request, then close what is left.
    void begin_shutdown() {
        if (stopping.exchange(true))
            return;
        log->info("shutting down: no new connections; finishing requests in progress");
        beast::error_code ignored;
        acceptor.close(ignored);
        signals.cancel(ignored);
        for_each_connection([](Connection& connection) {
            if (!connection.busy)
                connection.stream.cancel();
        });
        asio::co_spawn(ioc, drain(), asio::detached);
    }

    asio::awaitable<void> drain() {
        const auto deadline = SteadyClock::now() + settings.shutdown_timeout;
        asio::steady_timer timer(ioc);
        while (connections.load() > 0 && SteadyClock::now() < deadline) {
            timer.expires_after(std::chrono::milliseconds(10));
            co_await timer.async_wait(kTuple);
        }
        if (connections.load() > 0) {
            log->warn("shutdown: closing {} connections still busy after {} ms", connections.load(),
                      settings.shutdown_timeout.count());
            for_each_connection([](Connection& connection) { connection.stream.close(); });
            timer.expires_after(std::chrono::milliseconds(50));
            co_await timer.async_wait(kTuple);
        }
        ioc.stop();
    }

    template <typename F>
    void for_each_connection(F f) {
        std::lock_guard lock(live_mutex);
        for (auto& [raw, weak] : live) {
            if (auto connection = weak.lock()) {
                asio::post(connection->stream.get_executor(), [connection, f] { f(*connection); });
            }
        }
    }

    ServerDeps deps;
    const app::HttpSettings& settings;
    Api api;
    Router router;
    Result<Authenticator> auth;
    std::shared_ptr<spdlog::logger> log;
    HttpMetrics http_metrics;
    asio::io_context ioc;
    std::optional<asio::thread_pool> blocking;
    std::optional<asio::thread_pool> reads;  // kRead routes (http_read_threads)
    tcp::acceptor acceptor;
    asio::signal_set signals;
    std::atomic<bool> stopping{false};
    std::atomic<bool> ran{false};
    std::atomic<std::size_t> connections{0};
    std::atomic<std::size_t> queued{0};
    std::mutex live_mutex;
    std::unordered_map<Connection*, std::weak_ptr<Connection>> live;
};

Server::Server(ServerDeps deps) : impl_(std::make_unique<Impl>(std::move(deps))) {}

Server::~Server() {
    stop();
    if (impl_->blocking)
        impl_->blocking->join();
    if (impl_->reads)
        impl_->reads->join();
}

Result<std::uint16_t> Server::listen() {
    auto& impl = *impl_;
    if (!impl.auth)
        return impl.auth.error();
    beast::error_code ec;
    const auto address = asio::ip::make_address(impl.settings.host, ec);
    if (ec) {
        return Error::invalid_argument("http_host '" + impl.settings.host +
                                       "' is not an IP address: " + ec.message());
    }
    const tcp::endpoint endpoint(address, impl.settings.port);
    const auto fail = [&](const char* what) -> Error {
        Error error = Error::unavailable(
            "LISTEN_FAILED", std::string("cannot ") + what + " " + impl.settings.host + ":" +
                                 std::to_string(impl.settings.port) + ": " + ec.message());
        return error;
    };
    impl.acceptor.open(endpoint.protocol(), ec);
    if (ec)
        return fail("open a socket for");
    impl.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    impl.acceptor.bind(endpoint, ec);
    if (ec)
        return fail("bind");
    impl.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return fail("listen on");
    return impl.acceptor.local_endpoint().port();
}

void Server::run() {
    auto& impl = *impl_;
    if (impl.ran.exchange(true))
        return;
    unsigned threads = impl.settings.threads;
    if (threads == 0)
        threads = std::max(1u, std::thread::hardware_concurrency());
    unsigned blocking_threads = impl.settings.blocking_threads;
    if (blocking_threads == 0)
        blocking_threads = 16;
    impl.blocking.emplace(blocking_threads);
    unsigned read_threads = impl.settings.read_threads;
    if (read_threads == 0)
        read_threads = std::max(4u, 2 * std::thread::hardware_concurrency());
    impl.reads.emplace(read_threads);

    impl.signals.add(SIGINT);
    impl.signals.add(SIGTERM);
    impl.signals.async_wait([&impl](const beast::error_code& ec, int signal) {
        if (ec)
            return;
        impl.log->info("received signal {}", signal);
        impl.begin_shutdown();
    });
    asio::co_spawn(impl.ioc, impl.accept_loop(), asio::detached);

    std::vector<std::thread> workers;
    for (unsigned i = 1; i < threads; ++i) {
        workers.emplace_back([&impl] { impl.ioc.run(); });
    }
    impl.ioc.run();
    for (auto& worker : workers)
        worker.join();
    // Blocking calls still running finish before the pools they use are closed by main.
    impl.blocking->join();
    impl.reads->join();
    impl.log->info("server stopped");
}

void Server::stop() {
    auto& impl = *impl_;
    if (!impl.ran.load()) {
        impl.stopping.store(true);
        return;
    }
    asio::post(impl.ioc, [&impl] { impl.begin_shutdown(); });
}

}  // namespace pythmata::http
