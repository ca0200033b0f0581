#pragma once

// The REST handlers: Beast-free functions from a parsed Request to a Response. Each API area
// has its own api_<area>.cpp; src/http/routes.cpp is the one route table binding them to paths.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pythmata/app/definition_service.hpp"
#include "pythmata/app/idempotency_service.hpp"
#include "pythmata/app/instance_service.hpp"
#include "pythmata/app/ports/definition_store.hpp"
#include "pythmata/app/records.hpp"
#include "pythmata/app/settings.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/http/message.hpp"
#include "pythmata/http/request_parsing.hpp"
#include "pythmata/http/router.hpp"
#include "pythmata/http/server.hpp"

namespace pythmata::metrics {
class Registry;
}

namespace pythmata::http {

/// {"data": data} with `status`.
[[nodiscard]] Response json_response(int status, const nlohmann::json& data);
/// A response of `status` whose body is `body`, JSON text written by the caller.
[[nodiscard]] Response json_text_response(int status, std::string body);
/// An instance as API.md writes it (its fields in key order, as nlohmann's objects keep them).
[[nodiscard]] nlohmann::json instance_json(app::InstanceView view);
/// json_response(status, instance_json(view)), byte for byte, written straight into the body
/// without building the JSON object: the answer of every start, completion and instance read.
[[nodiscard]] Response instance_response(int status, const app::InstanceView& view);
/// A user task as API.md writes it (`variables` only when the view has them).
[[nodiscard]] nlohmann::json task_json(const app::TaskView& view);
/// json_response(200, page_envelope(the tasks' task_json(), total, request)), byte for byte,
/// written straight into the body: the answer of GET /tasks.
[[nodiscard]] Response task_page_response(const app::PageResult<app::TaskView>& page,
                                          const app::PageRequest& request);
/// The `totalPages` of a page of `total` items.
[[nodiscard]] std::int64_t total_pages(std::int64_t total, const app::PageRequest& page);
/// The paging envelope of API.md: {"items","total","page","pageSize","totalPages"}.
[[nodiscard]] nlohmann::json page_envelope(nlohmann::json items, std::int64_t total,
                                           const app::PageRequest& page);
/// The decoded query of a request target (after '?'), or a 400.
[[nodiscard]] Result<Query> request_query(const Request& request);
/// A JSON object body: empty body -> {} when `empty_is_object`; otherwise 400 INVALID_JSON, 400
/// JSON_TOO_DEEP, 400 INVALID_ARGUMENT when not an object, 415 when the content type is not JSON.
[[nodiscard]] Result<nlohmann::json> json_object_body(const Request& request, bool empty_is_object);

/// Rendered GET /processes bodies, by the identity of the catalog's cached page.
struct ListBodies;
[[nodiscard]] std::shared_ptr<ListBodies> make_list_bodies();

class Api {
  public:
    Api(const app::HttpSettings& settings, app::DefinitionService& definitions,
        std::vector<HealthDependency> health, metrics::Registry& metrics);

    // Process definitions (api_definitions.cpp).
    Response deploy(const Request& request, const PathParams& params);
    Response redeploy(const Request& request, const PathParams& params);
    Response list_definitions(const Request& request, const PathParams& params);
    /// GET /processes from the catalog's memory, on the I/O thread; nullopt on a cache miss.
    std::optional<Response> list_definitions_cached(const Request& request,
                                                    const PathParams& params);
    Response latest_definition(const Request& request, const PathParams& params);
    Response definition_versions(const Request& request, const PathParams& params);
    Response definition_version(const Request& request, const PathParams& params);
    Response delete_definition(const Request& request, const PathParams& params);

    // The runtime (api_runtime.cpp); its routes exist only once attached.
    void attach_runtime(app::InstanceService* instances, app::IdempotencyService* idempotency);
    [[nodiscard]] bool has_runtime() const { return instances_ != nullptr; }
    [[nodiscard]] bool clock_control() const {
        return instances_ != nullptr && instances_->clock_control();
    }
    /// Runs `inner` under the request's Idempotency-Key, if any (API.md): a replay returns the
    /// first answer; the same key with another request is 409 IDEMPOTENCY_KEY_REUSED.
    Response idempotent(const Request& request, const PathParams& params, const Handler& inner);

    Response start_instance(const Request& request, const PathParams& params);
    /// start_instance without a blocking call, when the runtime can take it so (kAsyncFirst).
    bool start_instance_async(const Request& request, const PathParams& params,
                              const AsyncReply& reply);
    Response list_instances(const Request& request, const PathParams& params);
    Response get_instance(const Request& request, const PathParams& params);
    Response cancel_instance(const Request& request, const PathParams& params);
    Response suspend_instance(const Request& request, const PathParams& params);
    Response resume_instance(const Request& request, const PathParams& params);
    Response get_variables(const Request& request, const PathParams& params);
    Response patch_variables(const Request& request, const PathParams& params);
    Response get_tokens(const Request& request, const PathParams& params);
    Response get_activities(const Request& request, const PathParams& params);
    Response list_tasks(const Request& request, const PathParams& params);
    Response get_task(const Request& request, const PathParams& params);
    Response claim_task(const Request& request, const PathParams& params);
    Response complete_task(const Request& request, const PathParams& params);
    bool complete_task_async(const Request& request, const PathParams& params,
                             const AsyncReply& reply);
    Response correlate_message(const Request& request, const PathParams& params);
    Response broadcast_signal(const Request& request, const PathParams& params);
    Response activate_jobs(const Request& request, const PathParams& params);
    Response complete_job(const Request& request, const PathParams& params);
    Response fail_job(const Request& request, const PathParams& params);
    Response job_error(const Request& request, const PathParams& params);
    Response list_timers(const Request& request, const PathParams& params);
    Response list_incidents(const Request& request, const PathParams& params);
    Response resolve_incident(const Request& request, const PathParams& params);
    Response get_clock(const Request& request, const PathParams& params);
    Response advance_clock(const Request& request, const PathParams& params);
    Response reset_clock(const Request& request, const PathParams& params);
    Response stats(const Request& request, const PathParams& params);

    // Operations (api_operations.cpp).
    Response health(const Request& request, const PathParams& params);
    Response ready(const Request& request, const PathParams& params);
    Response metrics(const Request& request, const PathParams& params);
    /// GET /api/v1/ws without an Upgrade header (the server handles real upgrades itself).
    Response websocket_required(const Request& request, const PathParams& params);

  private:
    Response deploy_document(const Request& request, std::optional<std::string> required_key);

    const app::HttpSettings& settings_;
    app::DefinitionService& definitions_;
    std::vector<HealthDependency> health_;
    metrics::Registry& metrics_;
    app::InstanceService* instances_ = nullptr;
    app::IdempotencyService* idempotency_ = nullptr;
    /// Rendered bodies of the catalog's cached list pages (api_definitions.cpp).
    std::shared_ptr<ListBodies> list_bodies_ = make_list_bodies();
};

/// The route table (routes.cpp): every path of the API bound to its handler.
[[nodiscard]] Router make_router(Api& api, bool ops_only = false);

}  // namespace pythmata::http
