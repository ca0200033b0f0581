// The route table: every path the server answers, in one place. Handlers live in api_*.cpp.

#include <optional>
#include <string_view>

#include "api.hpp"

namespace pythmata::http {

Router make_router(Api& api, bool ops_only) {
    Router router;
    const auto bind = [&api](Response (Api::*method)(const Request&, const PathParams&)) {
        return [&api, method](const Request& request, const PathParams& params) {
            return (api.*method)(request, params);
        };
    };
    // Auth (http/auth): GET needs viewer, anything else operator, unless a role is given.
    const auto add = [&](const char* method, const char* pattern, Execution execution,
                         Response (Api::*handler)(const Request&, const PathParams&),
                         std::optional<Role> role = std::nullopt,
                         std::optional<Response>(Api::*inline_answer)(const Request&,
                                                                      const PathParams&) = nullptr,
                         bool(Api::*async_answer)(const Request&, const PathParams&,
                                                  const AsyncReply&) = nullptr) {
        Handler h = bind(handler);
        // Every mutating POST honours Idempotency-Key (API.md).
        if (std::string_view(method) == "POST") {
            h = [&api, inner = std::move(h)](const Request& request, const PathParams& params) {
                return api.idempotent(request, params, inner);
            };
        }
        const Role required =
            role.value_or(std::string_view(method) == "GET" ? Role::kViewer : Role::kOperator);
        InlineHandler answer;
        if (inline_answer != nullptr) {
            answer = [&api, inline_answer](const Request& request, const PathParams& params) {
                return (api.*inline_answer)(request, params);
            };
        }
        AsyncHandler async;
        if (async_answer != nullptr) {
            async = [&api, async_answer](const Request& request, const PathParams& params,
                                         const AsyncReply& reply) {
                return (api.*async_answer)(request, params, reply);
            };
        }
        router.add(Route{method, pattern, execution, std::move(h), required, std::move(answer),
                         std::move(async)});
    };
    constexpr auto kBlocking = Execution::kBlocking;
    constexpr auto kInline = Execution::kInline;
    constexpr auto kInlineFirst = Execution::kInlineFirst;
    constexpr auto kAsyncFirst = Execution::kAsyncFirst;
    // Reads of the store and the cache run on the read pool; the probes (/health/ready,
    // /metrics) stay on the blocking pool, so that they answer while slow reads queue.
    constexpr auto kRead = Execution::kRead;
    constexpr auto kAdmin = Role::kAdmin;

    // Operations.
    add("GET", "/health", kInline, &Api::health);
    add("GET", "/health/ready", kBlocking, &Api::ready);
    add("GET", "/metrics", kBlocking, &Api::metrics);
    if (ops_only)  // the `pythmata worker` role
        return router;

    // Process definitions.
    add("POST", "/api/v1/processes", kBlocking, &Api::deploy, kAdmin);
    // The list is answered from the catalog's memory on the I/O thread; a miss goes to the pool.
    add("GET", "/api/v1/processes", kInlineFirst, &Api::list_definitions, std::nullopt,
        &Api::list_definitions_cached);
    add("GET", "/api/v1/processes/{key}", kRead, &Api::latest_definition);
    add("PUT", "/api/v1/processes/{key}", kBlocking, &Api::redeploy, kAdmin);
    add("DELETE", "/api/v1/processes/{key}", kBlocking, &Api::delete_definition, kAdmin);
    add("GET", "/api/v1/processes/{key}/versions", kRead, &Api::definition_versions);
    add("GET", "/api/v1/processes/{key}/versions/{version}", kRead, &Api::definition_version);

    if (!api.has_runtime())
        return router;
    // Instances.
    // Starts and task completions go straight from the I/O thread to the engine when they can
    // (the definition compiled in memory, the task opened here; no Idempotency-Key).
    add("POST", "/api/v1/processes/{key}/instances", kAsyncFirst, &Api::start_instance,
        std::nullopt, nullptr, &Api::start_instance_async);
    add("GET", "/api/v1/processes/{key}/instances", kRead, &Api::list_instances);
    add("GET", "/api/v1/instances", kRead, &Api::list_instances);
    add("GET", "/api/v1/instances/{id}", kRead, &Api::get_instance);
    add("DELETE", "/api/v1/instances/{id}", kBlocking, &Api::cancel_instance);
    add("POST", "/api/v1/instances/{id}/suspend", kBlocking, &Api::suspend_instance);
    add("POST", "/api/v1/instances/{id}/resume", kBlocking, &Api::resume_instance);
    add("GET", "/api/v1/instances/{id}/variables", kRead, &Api::get_variables);
    add("PATCH", "/api/v1/instances/{id}/variables", kBlocking, &Api::patch_variables);
    add("GET", "/api/v1/instances/{id}/tokens", kRead, &Api::get_tokens);
    add("GET", "/api/v1/instances/{id}/activities", kRead, &Api::get_activities);

    // User tasks.
    add("GET", "/api/v1/tasks", kRead, &Api::list_tasks);
    add("GET", "/api/v1/tasks/{id}", kRead, &Api::get_task);
    add("POST", "/api/v1/tasks/{id}/claim", kBlocking, &Api::claim_task);
    add("POST", "/api/v1/tasks/{id}/complete", kAsyncFirst, &Api::complete_task, std::nullopt,
        nullptr, &Api::complete_task_async);

    // Messages and signals.
    add("POST", "/api/v1/messages", kBlocking, &Api::correlate_message);
    add("POST", "/api/v1/signals", kBlocking, &Api::broadcast_signal);

    // External jobs.
    add("POST", "/api/v1/jobs/activate", kBlocking, &Api::activate_jobs);
    add("POST", "/api/v1/jobs/{id}/complete", kBlocking, &Api::complete_job);
    add("POST", "/api/v1/jobs/{id}/fail", kBlocking, &Api::fail_job);
    add("POST", "/api/v1/jobs/{id}/error", kBlocking, &Api::job_error);

    // Timers, incidents, stats; the clock only with the clock_control setting.
    add("GET", "/api/v1/timers", kRead, &Api::list_timers);
    add("GET", "/api/v1/incidents", kRead, &Api::list_incidents);
    add("POST", "/api/v1/incidents/{id}/resolve", kBlocking, &Api::resolve_incident);
    add("GET", "/api/v1/stats", kRead, &Api::stats);
    add("GET", "/api/v1/ws", kInline, &Api::websocket_required);
    if (api.clock_control()) {
        add("GET", "/api/v1/clock", kRead, &Api::get_clock);
        add("POST", "/api/v1/clock/advance", kBlocking, &Api::advance_clock, kAdmin);
        add("POST", "/api/v1/clock/reset", kBlocking, &Api::reset_clock, kAdmin);
    }
    return router;
}

}  // namespace pythmata::http
