// The route table: every path the server answers, in one place. Handlers live in api_*.cpp.

#include "api.hpp"

namespace pythmata::http {

Router make_router(Api& api) {
    Router router;
    const auto bind = [&api](Response (Api::*method)(const Request&, const PathParams&)) {
        return [&api, method](const Request& request, const PathParams& params) {
            return (api.*method)(request, params);
        };
    };
    const auto add = [&](const char* method, const char* pattern, Execution execution,
                         Response (Api::*handler)(const Request&, const PathParams&)) {
        router.add(Route{method, pattern, execution, bind(handler)});
    };
    constexpr auto kBlocking = Execution::kBlocking;
    constexpr auto kInline = Execution::kInline;

    // Operations.
    add("GET", "/health", kInline, &Api::health);
    add("GET", "/health/ready", kBlocking, &Api::ready);
    add("GET", "/metrics", kBlocking, &Api::metrics);

    // Process definitions.
    add("POST", "/api/v1/processes", kBlocking, &Api::deploy);
    add("GET", "/api/v1/processes", kBlocking, &Api::list_definitions);
    add("GET", "/api/v1/processes/{key}", kBlocking, &Api::latest_definition);
    add("PUT", "/api/v1/processes/{key}", kBlocking, &Api::redeploy);
    add("DELETE", "/api/v1/processes/{key}", kBlocking, &Api::delete_definition);
    add("GET", "/api/v1/processes/{key}/versions", kBlocking, &Api::definition_versions);
    add("GET", "/api/v1/processes/{key}/versions/{version}", kBlocking, &Api::definition_version);
    return router;
}

}  // namespace pythmata::http
