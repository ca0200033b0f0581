#include "postgres/connection_pool.hpp"

#include <pqxx/connection>
#include <pqxx/except>

#include <utility>

#include "store_errors.hpp"

namespace pythmata::store {

using Clock = std::chrono::steady_clock;

namespace {

/// A connect failure that took at least this long was a timeout, not a refusal.
constexpr std::chrono::milliseconds kSlowFailure{1'000};
/// How long new connects are not even tried after a slow failure.
constexpr std::chrono::milliseconds kUnreachableBackoff{1'000};

}  // namespace

ConnectionPool::Lease::Lease(ConnectionPool& pool, std::unique_ptr<pqxx::connection> connection)
    : pool_(&pool), connection_(std::move(connection)) {}

ConnectionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), connection_(std::move(other.connection_)) {}

ConnectionPool::Lease::~Lease() {
    if (pool_ != nullptr) {
        pool_->give_back(std::move(connection_), true);
    }
}

void ConnectionPool::Lease::discard() {
    if (pool_ != nullptr) {
        std::exchange(pool_, nullptr)->give_back(std::move(connection_), false);
    }
}

ConnectionPool::ConnectionPool(std::string conninfo, std::size_t size, std::size_t max_overflow,
                               Setup setup, PoolMetrics& metrics,
                               std::chrono::milliseconds overflow_idle)
    : conninfo_(std::move(conninfo)),
      size_(size),
      capacity_(size + max_overflow),
      setup_(std::move(setup)),
      metrics_(metrics),
      overflow_idle_(overflow_idle) {}

ConnectionPool::~ConnectionPool() = default;

Result<ConnectionPool::Lease> ConnectionPool::acquire(std::chrono::milliseconds timeout) {
    const auto started = Clock::now();
    std::unique_ptr<pqxx::connection> connection;
    {
        std::unique_lock lock(mutex_);
        if (!freed_.wait_for(lock, timeout, [&] { return !idle_.empty() || open_ < capacity_; })) {
            lock.unlock();
            metrics_.timed_out(Clock::now() - started);
            return pool_timeout(timeout);
        }
        if (!idle_.empty()) {
            connection = std::move(idle_.back());
            idle_.pop_back();
        } else {
            ++open_;  // the slot is ours while we connect outside the lock
        }
    }
    metrics_.acquired(Clock::now() - started);
    if (connection) {
        return Lease(*this, std::move(connection));
    }
    {
        std::unique_lock lock(mutex_);
        if (Clock::now() < unreachable_until_) {
            std::string reason =
                "not retried yet after a slow connect failure: " + unreachable_reason_;
            lock.unlock();
            give_back(nullptr, false);
            return db_unavailable(std::move(reason));
        }
    }
    const auto connecting = Clock::now();
    try {
        connection = std::make_unique<pqxx::connection>(conninfo_);
        if (setup_) {
            setup_(*connection);
        }
        return Lease(*this, std::move(connection));
    } catch (const std::exception& e) {
        const auto failed = Clock::now();
        if (failed - connecting >= kSlowFailure) {
            std::lock_guard lock(mutex_);
            unreachable_until_ = failed + kUnreachableBackoff;
            unreachable_reason_ = e.what();
        }
        give_back(std::move(connection), false);
        return db_unavailable(std::string("connect: ") + e.what());
    }
}

void ConnectionPool::give_back(std::unique_ptr<pqxx::connection> connection, bool reusable) {
    std::unique_ptr<pqxx::connection> to_close;
    {
        std::lock_guard lock(mutex_);
        const auto now = Clock::now();
        if (idle_.size() < size_)
            overflow_since_ = now;
        if (reusable && connection && connection->is_open() &&
            (idle_.size() < size_ ||
             (idle_.size() < capacity_ && now - overflow_since_ < overflow_idle_))) {
            idle_.push_back(std::move(connection));
        } else {
            to_close = std::move(connection);
            --open_;
        }
    }
    metrics_.released();
    freed_.notify_one();
    // Closing talks to the server; never while holding the lock.
    to_close.reset();
}

void ConnectionPool::discard_idle() {
    std::vector<std::unique_ptr<pqxx::connection>> stale;
    {
        std::lock_guard lock(mutex_);
        stale.swap(idle_);
        open_ -= stale.size();
    }
    freed_.notify_all();
}

}  // namespace pythmata::store
