#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/logger.h>

#include "pythmata/app/definition_service.hpp"
#include "pythmata/app/idempotency_service.hpp"
#include "pythmata/app/instance_service.hpp"
#include "pythmata/app/ports/definition_store.hpp"
#include "pythmata/app/settings.hpp"
#include "pythmata/common/result.hpp"

namespace pythmata::metrics {
class Registry;
}

namespace pythmata::http {

class EventHub;

/// A dependency reported by GET /health/ready. A required one that fails makes the server not
/// ready (503, Retry-After); an optional one (the Redis cache) is reported "degraded" and the
/// server stays ready, because it serves without it.
struct HealthDependency {
    std::string name;
    app::HealthCheck* check = nullptr;
    bool required = true;
};

/// Everything the server needs. Owned by main; every reference must outlive the Server.
struct ServerDeps {
    const app::HttpSettings& settings;
    const app::LogSettings& log_settings;
    app::DefinitionService& definitions;
    /// Dependencies reported by GET /health/ready, e.g. {"store", &store, true}.
    std::vector<HealthDependency> health_checks;
    metrics::Registry& metrics;
    /// One line per request (text or JSON per log_settings.format); null = no access log.
    std::shared_ptr<spdlog::logger> access_log;
    /// Errors and lifecycle messages; null = spdlog's default logger.
    std::shared_ptr<spdlog::logger> log;
    /// The runtime use cases; null serves the definitions and operations endpoints only.
    app::InstanceService* instances = nullptr;
    /// Idempotency-Key handling for mutating POSTs; null ignores the header.
    app::IdempotencyService* idempotency = nullptr;
    /// The instance event stream served at GET /api/v1/ws (WebSocket); null: no stream.
    EventHub* events = nullptr;
    /// Serves /health, /health/ready and /metrics only (the `pythmata worker` role).
    bool ops_only = false;
};

/// The HTTP/1.1 REST server (Boost.Beast on Asio, kept out of this header). Not copyable.
class Server {
  public:
    /// Prepares the server; nothing is bound until listen().
    explicit Server(ServerDeps deps);
    /// Stops and joins every thread still running.
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Binds settings.host:settings.port (port 0 = any free port) and starts accepting once run()
    /// is called. Returns the bound port, or an Error naming the address.
    [[nodiscard]] Result<std::uint16_t> listen();
    /// Serves until SIGINT/SIGTERM or stop(): then stops accepting, lets in-flight requests finish
    /// within settings.shutdown_timeout, closes the rest and returns.
    void run();
    /// Asks run() to shut down gracefully; callable from any thread, idempotent.
    void stop();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace pythmata::http
