#include "pythmata/cache/redis_cache.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <hiredis/hiredis.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "pythmata/cache/redis_url.hpp"

namespace pythmata::cache {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// How long Redis is left alone after a failure before one call probes it again.
constexpr milliseconds kDownBackoff{1'000};
/// First and longest wait before a subscriber reconnects.
constexpr milliseconds kSubscriberFirstBackoff{100};
constexpr milliseconds kSubscriberMaxBackoff{1'000};
/// How often a subscriber thread wakes up to notice shutdown.
constexpr int kSubscriberPollMs = 100;

enum class Op : std::size_t { kGet, kSet, kErase, kPublish, kSubscribe, kPing, kCount };
constexpr std::array<const char*, static_cast<std::size_t>(Op::kCount)> kOpNames = {
    "get", "set", "erase", "publish", "subscribe", "ping"};

struct ContextDeleter {
    void operator()(redisContext* ctx) const { redisFree(ctx); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
    void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

/// hiredis writes with write(2), so a peer that went away raises SIGPIPE, whose default action
/// ends the process. This blocks SIGPIPE on the calling thread for one hiredis call and
/// swallows a SIGPIPE the call raised, without touching the process-wide disposition.
class SigpipeGuard {
  public:
    SigpipeGuard() {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        sigset_t pending;
        sigemptyset(&pending);
        sigpending(&pending);
        pending_before_ = sigismember(&pending, SIGPIPE) == 1;
        sigset_t old;
        sigemptyset(&old);
        pthread_sigmask(SIG_BLOCK, &pipe_, &old);
        blocked_before_ = sigismember(&old, SIGPIPE) == 1;
    }
    ~SigpipeGuard() {
        if (!pending_before_) {
            sigset_t pending;
            sigemptyset(&pending);
            sigpending(&pending);
            if (sigismember(&pending, SIGPIPE) == 1) {
                const timespec zero{0, 0};
                sigtimedwait(&pipe_, nullptr, &zero);
            }
        }
        if (!blocked_before_) {
            pthread_sigmask(SIG_UNBLOCK, &pipe_, nullptr);
        }
    }
    SigpipeGuard(const SigpipeGuard&) = delete;
    SigpipeGuard& operator=(const SigpipeGuard&) = delete;

  private:
    sigset_t pipe_{};
    bool pending_before_ = false;
    bool blocked_before_ = false;
};

timeval to_timeval(milliseconds ms) {
    if (ms < milliseconds(1)) {
        ms = milliseconds(1);
    }
    return timeval{static_cast<time_t>(ms.count() / 1000),
                   static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

milliseconds remaining(Clock::time_point deadline) {
    return std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
}

/// One command with binary-safe arguments. Null on an I/O or protocol failure (the context is
/// then unusable and ctx->errstr says why); an error reply is returned as a reply.
ReplyPtr run_command(redisContext* ctx, const std::vector<std::string_view>& argv,
                     Clock::time_point deadline) {
    const milliseconds left = remaining(deadline);
    if (left <= milliseconds(0)) {
        return nullptr;
    }
    if (redisSetTimeout(ctx, to_timeval(left)) != REDIS_OK) {
        return nullptr;
    }
    std::vector<const char*> parts;
    std::vector<size_t> lengths;
    parts.reserve(argv.size());
    lengths.reserve(argv.size());
    for (const auto part : argv) {
        parts.push_back(part.data());
        lengths.push_back(part.size());
    }
    SigpipeGuard guard;
    return ReplyPtr(static_cast<redisReply*>(
        redisCommandArgv(ctx, static_cast<int>(parts.size()), parts.data(), lengths.data())));
}

bool is_error(const redisReply* reply) {
    return reply->type == REDIS_REPLY_ERROR;
}

/// Connects, authenticates and selects the database, all before `deadline`. Null with a reason
/// in `why` on failure.
ContextPtr connect(const RedisEndpoint& endpoint, bool select_db, Clock::time_point deadline,
                   std::string& why) {
    const milliseconds left = remaining(deadline);
    if (left <= milliseconds(0)) {
        why = "timed out before connecting";
        return nullptr;
    }
    ContextPtr ctx(redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, to_timeval(left)));
    if (!ctx) {
        why = "out of memory";
        return nullptr;
    }
    if (ctx->err != 0) {
        why = ctx->errstr;
        return nullptr;
    }
    redisEnableKeepAlive(ctx.get());
    if (!endpoint.password.empty()) {
        std::vector<std::string_view> auth = {"AUTH"};
        if (!endpoint.username.empty()) {
            auth.emplace_back(endpoint.username);
        }
        auth.emplace_back(endpoint.password);
        ReplyPtr reply = run_command(ctx.get(), auth, deadline);
        if (!reply || is_error(reply.get())) {
            why = reply ? "AUTH refused: " + std::string(reply->str, reply->len)
                        : "AUTH failed: " + std::string(ctx->errstr);
            return nullptr;
        }
    }
    if (select_db && endpoint.db != 0) {
        const std::string db = std::to_string(endpoint.db);
        ReplyPtr reply = run_command(ctx.get(), {"SELECT", db}, deadline);
        if (!reply || is_error(reply.get())) {
            why = reply ? "SELECT refused: " + std::string(reply->str, reply->len)
                        : "SELECT failed: " + std::string(ctx->errstr);
            return nullptr;
        }
    }
    return ctx;
}

}  // namespace

struct RedisCache::Impl {
    /// What a call may do given the health state.
    enum class Admission { kGo, kProbe, kSkip };

    /// A connection taken from the pool for one call.
    struct Lease {
        ContextPtr ctx;
        std::uint64_t generation = 0;
        bool reused = false;
    };

    /// The outcome of one pooled command.
    struct Outcome {
        ReplyPtr reply;   ///< null when the call was skipped or failed
        std::string why;  ///< reason when it failed
    };

    Impl(RedisEndpoint endpoint_in, const app::CacheSettings& settings, metrics::Registry& registry)
        : endpoint(std::move(endpoint_in)),
          timeout(settings.redis_timeout),
          pool_size(settings.redis_pool_size) {
        auto& errors_family = prometheus::BuildCounter()
                                  .Name("pythmata_redis_errors_total")
                                  .Help(
                                      "Redis calls that failed: connection lost or refused, "
                                      "timeout, or an error reply")
                                  .Register(registry.prometheus());
        auto& dropped_family = prometheus::BuildCounter()
                                   .Name("pythmata_redis_dropped_total")
                                   .Help(
                                       "Cache calls answered without Redis because it was "
                                       "marked down or every pooled connection was busy")
                                   .Register(registry.prometheus());
        for (std::size_t i = 0; i < kOpNames.size(); ++i) {
            errors[i] = &errors_family.Add({{"op", kOpNames[i]}});
            dropped[i] = &dropped_family.Add({{"op", kOpNames[i]}});
        }
        up_gauge = &prometheus::BuildGauge()
                        .Name("pythmata_redis_up")
                        .Help("1 when the last call to Redis succeeded, else 0")
                        .Register(registry.prometheus())
                        .Add({});
    }

    ~Impl() { stop_subscribers(); }

    void count_error(Op op) { errors[static_cast<std::size_t>(op)]->Increment(); }
    void count_dropped(Op op) { dropped[static_cast<std::size_t>(op)]->Increment(); }

    Admission admit() {
        if (is_up.load(std::memory_order_acquire)) {
            return Admission::kGo;
        }
        if (Clock::now().time_since_epoch().count() < down_until.load()) {
            return Admission::kSkip;
        }
        // Backoff over: one caller probes, the others keep skipping until it reports.
        if (probing.exchange(true)) {
            return Admission::kSkip;
        }
        return Admission::kProbe;
    }

    void mark_up() {
        if (is_up.load(std::memory_order_acquire)) {
            return;  // the common case: no lock
        }
        std::lock_guard lock(health_mutex);
        is_up.store(true, std::memory_order_release);
        up_gauge->Set(1);
    }

    void mark_down() {
        {
            // One lock for the flag and the gauge so that they never disagree.
            std::lock_guard lock(health_mutex);
            down_until.store((Clock::now() + kDownBackoff).time_since_epoch().count());
            is_up.store(false, std::memory_order_release);
            up_gauge->Set(0);
        }
        discard_pool();
    }

    /// Closes the idle connections and makes the leased ones close when given back: after one
    /// connection broke, the others very likely point at the same dead server.
    void discard_pool() {
        std::vector<ContextPtr> stale;
        {
            std::lock_guard lock(pool_mutex);
            ++generation;
            open -= idle.size();
            stale.swap(idle);
        }
        pool_cv.notify_all();
    }

    /// A pooled connection, a new one if the pool has room, or nullopt when none became free or
    /// connecting failed before `deadline` (`connect_failed` tells which).
    std::optional<Lease> acquire(Clock::time_point deadline, bool& connect_failed,
                                 std::string& why) {
        connect_failed = false;
        std::unique_lock lock(pool_mutex);
        while (true) {
            if (!idle.empty()) {
                Lease lease{std::move(idle.back()), generation, true};
                idle.pop_back();
                return lease;
            }
            if (open < pool_size) {
                ++open;
                const std::uint64_t gen = generation;
                lock.unlock();
                ContextPtr ctx = connect(endpoint, true, deadline, why);
                if (!ctx) {
                    release_slot();
                    connect_failed = true;
                    return std::nullopt;
                }
                return Lease{std::move(ctx), gen, false};
            }
            if (pool_cv.wait_until(lock, deadline) == std::cv_status::timeout) {
                why = "no pooled connection became free in time";
                return std::nullopt;
            }
        }
    }

    /// Gives a healthy connection back (or closes it when the pool was reset meanwhile).
    void release(Lease lease) {
        {
            std::lock_guard lock(pool_mutex);
            if (lease.generation == generation) {
                idle.push_back(std::move(lease.ctx));
            } else {
                --open;
            }
        }
        pool_cv.notify_one();
    }

    /// Forgets a connection that was closed (broken, or failed to connect).
    void release_slot() {
        {
            std::lock_guard lock(pool_mutex);
            --open;
        }
        pool_cv.notify_one();
    }

    /// Runs one command on a pooled connection within the timeout, keeping the health state
    /// and the counters. `force` ignores the backoff (health checks).
    Outcome execute(Op op, const std::vector<std::string_view>& argv, bool force = false) {
        const Admission admission = force ? Admission::kGo : admit();
        if (admission == Admission::kSkip) {
            count_dropped(op);
            return {nullptr, "redis is marked down"};
        }
        Outcome outcome = execute_admitted(op, argv);
        if (admission == Admission::kProbe) {
            probing.store(false);
        }
        return outcome;
    }

    Outcome execute_admitted(Op op, const std::vector<std::string_view>& argv) {
        const auto deadline = Clock::now() + timeout;
        // A reused connection may have died while idle (e.g. Redis restarted): then one more
        // attempt on a fresh connection, within the same deadline, before declaring Redis down.
        for (int attempt = 0; attempt < 2; ++attempt) {
            bool connect_failed = false;
            std::string why;
            std::optional<Lease> lease = acquire(deadline, connect_failed, why);
            if (!lease) {
                if (connect_failed) {
                    count_error(op);
                    mark_down();
                } else {
                    count_dropped(op);
                }
                return {nullptr, why};
            }
            ReplyPtr reply = run_command(lease->ctx.get(), argv, deadline);
            if (!reply) {
                why = lease->ctx->err != 0 ? std::string(lease->ctx->errstr) : "timed out";
                const bool retry = lease->reused && remaining(deadline) > milliseconds(0);
                lease->ctx.reset();
                release_slot();
                if (retry) {
                    discard_pool();  // so that the second attempt connects afresh
                    continue;
                }
                count_error(op);
                mark_down();
                return {nullptr, why};
            }
            release(std::move(*lease));
            mark_up();
            if (is_error(reply.get())) {
                count_error(op);
                return {nullptr, std::string(reply->str, reply->len)};
            }
            return {std::move(reply), {}};
        }
        count_error(op);
        mark_down();
        return {nullptr, "connection lost"};
    }

    /// Waits `delay` or until shutdown; true when shutting down.
    bool wait_or_stop(milliseconds delay) {
        std::unique_lock lock(stop_mutex);
        return stop_cv.wait_for(lock, delay, [this] { return stopping; });
    }

    bool should_stop() {
        std::lock_guard lock(stop_mutex);
        return stopping;
    }

    /// Body of one subscriber thread: (re)connect, SUBSCRIBE, deliver messages until shutdown.
    void subscriber_loop(const std::string& channel,
                         const std::function<void(std::string_view)>& on_message) {
        milliseconds backoff = kSubscriberFirstBackoff;
        while (!should_stop()) {
            std::string why;
            // Connecting and subscribing share one deadline, which bounds shutdown too.
            const auto deadline = Clock::now() + timeout;
            ContextPtr ctx = connect(endpoint, false, deadline, why);
            bool subscribed = false;
            if (ctx) {
                ReplyPtr reply = run_command(ctx.get(), {"SUBSCRIBE", channel}, deadline);
                subscribed = reply && reply->type == REDIS_REPLY_ARRAY;
            }
            if (subscribed) {
                backoff = kSubscriberFirstBackoff;
                receive(ctx.get(), on_message);
            }
            ctx.reset();
            if (should_stop()) {
                return;
            }
            count_error(Op::kSubscribe);
            if (wait_or_stop(backoff)) {
                return;
            }
            backoff = std::min(backoff * 2, kSubscriberMaxBackoff);
        }
    }

    /// Delivers messages from a subscribed connection until it breaks or shutdown begins.
    void receive(redisContext* ctx, const std::function<void(std::string_view)>& on_message) {
        while (!should_stop()) {
            void* raw = nullptr;
            if (redisGetReplyFromReader(ctx, &raw) != REDIS_OK) {
                return;
            }
            if (raw != nullptr) {
                ReplyPtr reply(static_cast<redisReply*>(raw));
                deliver(reply.get(), on_message);
                continue;
            }
            // Nothing buffered: wait for the socket briefly so shutdown is noticed.
            pollfd pfd{ctx->fd, POLLIN, 0};
            const int ready = ::poll(&pfd, 1, kSubscriberPollMs);
            if (ready < 0 && errno != EINTR) {
                return;
            }
            if (ready > 0 && redisBufferRead(ctx) != REDIS_OK) {
                return;  // EOF or error: the server went away
            }
        }
    }

    void deliver(const redisReply* reply, const std::function<void(std::string_view)>& on_message) {
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
            return;
        }
        const redisReply* kind = reply->element[0];
        const redisReply* payload = reply->element[2];
        if (kind->type != REDIS_REPLY_STRING ||
            std::string_view(kind->str, kind->len) != "message" ||
            payload->type != REDIS_REPLY_STRING) {
            return;
        }
        try {
            on_message(std::string_view(payload->str, payload->len));
        } catch (...) {
            // The callback's failure is its own; the subscription carries on.
            count_error(Op::kSubscribe);
        }
    }

    void stop_subscribers() {
        {
            std::lock_guard lock(stop_mutex);
            stopping = true;
        }
        stop_cv.notify_all();
        std::vector<std::thread> threads;
        {
            std::lock_guard lock(subscribers_mutex);
            threads.swap(subscribers);
        }
        for (auto& thread : threads) {
            if (thread.joinable()) {
                thread.join();
            }
        }
    }

    const RedisEndpoint endpoint;
    const milliseconds timeout;
    const std::size_t pool_size;

    std::array<prometheus::Counter*, kOpNames.size()> errors{};
    std::array<prometheus::Counter*, kOpNames.size()> dropped{};
    prometheus::Gauge* up_gauge = nullptr;

    std::mutex health_mutex;  // serialises changes of is_up together with up_gauge
    std::atomic<bool> is_up{false};
    std::atomic<Clock::rep> down_until{0};
    std::atomic<bool> probing{false};

    std::mutex pool_mutex;
    std::condition_variable pool_cv;
    std::vector<ContextPtr> idle;  // guarded by pool_mutex
    std::size_t open = 0;          // idle + leased connections; guarded by pool_mutex
    std::uint64_t generation = 0;  // bumped when the pool is discarded; guarded by pool_mutex

    std::mutex stop_mutex;
    std::condition_variable stop_cv;
    bool stopping = false;  // guarded by stop_mutex

    std::mutex subscribers_mutex;
    std::vector<std::thread> subscribers;  // guarded by subscribers_mutex
};

Result<std::unique_ptr<RedisCache>> RedisCache::create(const app::CacheSettings& settings,
                                                       metrics::Registry& registry) {
    auto endpoint = parse_redis_url(settings.redis_url);
    if (!endpoint) {
        return std::move(endpoint).error();
    }
    if (settings.redis_pool_size == 0) {
        return Error::invalid_argument("redis_pool_size: must be at least 1", "INVALID_SETTING");
    }
    if (settings.redis_timeout <= milliseconds(0)) {
        return Error::invalid_argument("redis_timeout_ms: must be positive", "INVALID_SETTING");
    }
    try {
        std::unique_ptr<RedisCache> cache(new RedisCache(
            std::make_unique<Impl>(std::move(endpoint).value(), settings, registry)));
        // Sets pythmata_redis_up; Redis being down at start-up is not an error for the cache.
        (void)cache->ping();
        return cache;
    } catch (const std::exception& e) {
        // prometheus-cpp throws when a family name is already registered with another type.
        return Error::internal_error(std::string("redis cache set-up failed: ") + e.what());
    }
}

RedisCache::RedisCache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RedisCache::~RedisCache() = default;

std::optional<std::string> RedisCache::get(std::string_view key) {
    try {
        auto outcome = impl_->execute(Op::kGet, {"GET", key});
        if (!outcome.reply || outcome.reply->type != REDIS_REPLY_STRING) {
            return std::nullopt;
        }
        return std::string(outcome.reply->str, outcome.reply->len);
    } catch (...) {
        return std::nullopt;  // only std::bad_alloc can get here
    }
}

void RedisCache::set(std::string_view key, std::string_view value, std::chrono::seconds ttl) {
    try {
        const std::string seconds = std::to_string(std::max<std::int64_t>(ttl.count(), 1));
        (void)impl_->execute(Op::kSet, {"SET", key, value, "EX", seconds});
    } catch (...) {
        // Dropped: a cache write is best effort.
    }
}

void RedisCache::erase(std::string_view key) {
    try {
        (void)impl_->execute(Op::kErase, {"DEL", key});
    } catch (...) {
        // Dropped: a cache write is best effort.
    }
}

void RedisCache::publish(std::string_view channel, std::string_view message) {
    try {
        (void)impl_->execute(Op::kPublish, {"PUBLISH", channel, message});
    } catch (...) {
        // Dropped: a broadcast is best effort.
    }
}

void RedisCache::subscribe(std::string channel,
                           std::function<void(std::string_view message)> on_message) {
    try {
        std::lock_guard lock(impl_->subscribers_mutex);
        if (impl_->should_stop()) {
            return;
        }
        Impl* impl = impl_.get();
        impl_->subscribers.emplace_back(
            [impl, channel = std::move(channel), on_message = std::move(on_message)] {
                impl->subscriber_loop(channel, on_message);
            });
    } catch (...) {
        impl_->count_error(Op::kSubscribe);  // could not start a thread
    }
}

Status RedisCache::ping() {
    try {
        auto outcome = impl_->execute(Op::kPing, {"PING"}, /*force=*/true);
        if (outcome.reply) {
            return {};
        }
        return Error::unavailable("CACHE_UNAVAILABLE", "redis does not answer", outcome.why);
    } catch (const std::exception& e) {
        return Error::unavailable("CACHE_UNAVAILABLE", "redis does not answer", e.what());
    }
}

bool RedisCache::up() const {
    return impl_->is_up.load();
}

}  // namespace pythmata::cache
