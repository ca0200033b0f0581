#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "pool_metrics.hpp"
#include "pythmata/common/result.hpp"

namespace pythmata::store {

/// A bounded pool of libpqxx connections: `size` kept open once made, up to `max_overflow` more
/// made on demand and closed when given back. An acquire waits at most `timeout` for a free slot
/// (DB_POOL_TIMEOUT), then connects if it has no idle connection (DB_UNAVAILABLE when that
/// fails). Each new connection runs `setup` once (e.g. SET statement_timeout). When a connect
/// attempt fails slowly (the server hangs or the host is unreachable, rather than refusing),
/// new attempts fail at once for a second, so that a burst of calls does not each wait for
/// connect_timeout. Thread-safe; must outlive its leases.
class ConnectionPool {
  public:
    using Setup = std::function<void(pqxx::connection&)>;

    /// A leased connection, given back on destruction unless discard()ed.
    class Lease {
      public:
        Lease(ConnectionPool& pool, std::unique_ptr<pqxx::connection> connection);
        Lease(Lease&& other) noexcept;
        Lease& operator=(Lease&&) = delete;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        ~Lease();

        [[nodiscard]] pqxx::connection& connection() { return *connection_; }
        /// Closes the connection instead of giving it back (it broke).
        void discard();

      private:
        ConnectionPool* pool_;
        std::unique_ptr<pqxx::connection> connection_;
    };

    ConnectionPool(std::string conninfo, std::size_t size, std::size_t max_overflow, Setup setup,
                   PoolMetrics& metrics,
                   std::chrono::milliseconds overflow_idle = std::chrono::milliseconds(0));
    ~ConnectionPool();
    ConnectionPool(const ConnectionPool&) = delete;
    ConnectionPool& operator=(const ConnectionPool&) = delete;

    /// A connection within `timeout`, or DB_POOL_TIMEOUT / DB_UNAVAILABLE.
    [[nodiscard]] Result<Lease> acquire(std::chrono::milliseconds timeout);

    /// Closes every idle connection: after one broke, the others (from the same server
    /// lifetime) most likely did too, and a fresh connection is cheaper than a failed call.
    void discard_idle();

  private:
    void give_back(std::unique_ptr<pqxx::connection> connection, bool reusable);

    const std::string conninfo_;
    const std::size_t size_;
    const std::size_t capacity_;
    const Setup setup_;
    PoolMetrics& metrics_;

    std::mutex mutex_;
    std::condition_variable freed_;
    std::vector<std::unique_ptr<pqxx::connection>> idle_;
    /// db_overflow_idle_ms, and when the idle list last held db_pool_size or fewer: overflow
    /// connections are kept until the list has stayed above db_pool_size that long.
    std::chrono::milliseconds overflow_idle_{0};
    std::chrono::steady_clock::time_point overflow_since_{};
    std::size_t open_ = 0;  // idle + leased + being connected
    std::chrono::steady_clock::time_point unreachable_until_{};
    std::string unreachable_reason_;
};

}  // namespace pythmata::store
