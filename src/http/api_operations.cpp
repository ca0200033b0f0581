#include "api.hpp"
#include "pythmata/http/error_mapping.hpp"
#include "pythmata/metrics/registry.hpp"

namespace pythmata::http {

Api::Api(const app::HttpSettings& settings, app::DefinitionService& definitions,
         std::vector<HealthDependency> health, metrics::Registry& metrics)
    : settings_(settings),
      definitions_(definitions),
      health_(std::move(health)),
      metrics_(metrics) {}

Response Api::health(const Request&, const PathParams&) {
    return json_response(200, {{"status", "ok"}});
}

Response Api::ready(const Request&, const PathParams&) {
    nlohmann::json checks = nlohmann::json::object();
    nlohmann::json failures = nlohmann::json::object();
    bool ready = true;
    for (const auto& dependency : health_) {
        if (dependency.check == nullptr) {
            checks[dependency.name] = "disabled";
            continue;
        }
        const Status status = dependency.check->ping();
        if (status) {
            checks[dependency.name] = "ok";
        } else if (dependency.required) {
            ready = false;
            checks[dependency.name] = "down";
            failures[dependency.name] = status.error().message;
        } else {
            checks[dependency.name] = "degraded";
            failures[dependency.name] = status.error().message;
        }
    }
    nlohmann::json data = {{"status", ready ? "ready" : "unavailable"}, {"checks", checks}};
    if (!failures.empty())
        data["errors"] = failures;
    if (ready)
        return json_response(200, data);

    std::string names;
    for (const auto& [name, value] : checks.items()) {
        if (value == "down")
            names += (names.empty() ? "" : ", ") + name;
    }
    Error error = Error::unavailable("NOT_READY", "not ready: " + names + " unreachable");
    error.context = data;
    return error_response(error);
}

Response Api::websocket_required(const Request&, const PathParams&) {
    return error_response(Error::invalid_argument(
        "/api/v1/ws is a WebSocket: send a GET with Upgrade: websocket", "UPGRADE_REQUIRED"));
}

Response Api::metrics(const Request&, const PathParams&) {
    Response response;
    response.body = metrics_.render();
    response.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return response;
}

}  // namespace pythmata::http
