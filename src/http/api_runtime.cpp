// Instances, user tasks, messages, signals, jobs, timers, incidents, clock and stats: the wire
// format of API.md on top of app::InstanceService, and Idempotency-Key handling.

#include <algorithm>
#include <charconv>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api.hpp"
#include "pythmata/common/sha256.hpp"
#include "pythmata/http/error_mapping.hpp"

namespace pythmata::http {
namespace {

using nlohmann::json;

json optional_string(const std::optional<std::string>& value) {
    return value ? json(*value) : json(nullptr);
}

json optional_time(const std::optional<TimePoint>& value) {
    return value ? json(format_rfc3339(*value)) : json(nullptr);
}

/// `text` as a JSON string, as json_response() dumps one: plain text as it is, anything else
/// (escapes, non-ASCII, invalid UTF-8 replaced) through nlohmann's serializer.
void append_string(std::string& out, std::string_view text) {
    const bool plain = std::all_of(text.begin(), text.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte >= 0x20 && byte < 0x80 && c != '"' && c != '\\';
    });
    if (plain) {
        out += '"';
        out += text;
        out += '"';
        return;
    }
    out += json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace);
}

void append_optional(std::string& out, const std::optional<std::string>& text) {
    if (text)
        append_string(out, *text);
    else
        out += "null";
}

void append_integer(std::string& out, std::int64_t value) {
    char digits[24];
    const auto end = std::to_chars(std::begin(digits), std::end(digits), value).ptr;
    out.append(digits, end);
}

void append_time(std::string& out, TimePoint at) {
    append_string(out, format_rfc3339(at));
}

void append_optional_time(std::string& out, const std::optional<TimePoint>& at) {
    if (at)
        append_time(out, *at);
    else
        out += "null";
}

void append_strings(std::string& out, const std::vector<std::string>& texts) {
    out += '[';
    for (std::size_t i = 0; i < texts.size(); ++i) {
        if (i > 0)
            out += ',';
        append_string(out, texts[i]);
    }
    out += ']';
}

void append_json(std::string& out, const json& value) {
    out += value.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

/// By value: callers that are done with the view move it in, and its strings and variables
/// move into the JSON instead of being copied.
json instance_json(app::InstanceView view) {
    json out = {{"id", std::move(view.id)},
                {"process_key", std::move(view.process_key)},
                {"process_version", view.process_version},
                {"definition_id", std::move(view.definition_id)},
                {"business_key", optional_string(view.business_key)},
                {"status", std::move(view.status)},
                {"variables", std::move(view.variables)},
                {"active_elements", std::move(view.active_elements)},
                {"incidents", view.incidents},
                {"parent_instance_id", optional_string(view.parent_instance_id)},
                {"created_at", format_rfc3339(view.created_at)},
                {"updated_at", format_rfc3339(view.updated_at)},
                {"ended_at", optional_time(view.ended_at)}};
    if (view.opened_tasks) {
        json tasks = json::array();
        for (auto& t : *view.opened_tasks) {
            tasks.push_back({{"id", std::move(t.id)},
                             {"element_id", std::move(t.element_id)},
                             {"name", std::move(t.name)}});
        }
        out["opened_tasks"] = std::move(tasks);
    }
    return out;
}

// Building instance_json() and dumping it was ~8 % of the server's CPU per straight start
// (an object node, a string and a map entry per field, then the serializer); this writes the
// same bytes directly. The fields are in nlohmann's (alphabetical) key order.
Response instance_response(int status, const app::InstanceView& view) {
    std::string body;
    body.reserve(360 + 24 * view.active_elements.size());
    body += R"({"data":{"active_elements":)";
    append_strings(body, view.active_elements);
    body += R"(,"business_key":)";
    append_optional(body, view.business_key);
    body += R"(,"created_at":)";
    append_time(body, view.created_at);
    body += R"(,"definition_id":)";
    append_string(body, view.definition_id);
    body += R"(,"ended_at":)";
    append_optional_time(body, view.ended_at);
    body += R"(,"id":)";
    append_string(body, view.id);
    body += R"(,"incidents":)";
    append_integer(body, view.incidents);
    if (view.opened_tasks) {
        body += R"(,"opened_tasks":[)";
        for (std::size_t i = 0; i < view.opened_tasks->size(); ++i) {
            const app::TaskRef& t = (*view.opened_tasks)[i];
            body += i > 0 ? R"(,{"element_id":)" : R"({"element_id":)";
            append_string(body, t.element_id);
            body += R"(,"id":)";
            append_string(body, t.id);
            body += R"(,"name":)";
            append_string(body, t.name);
            body += '}';
        }
        body += ']';
    }
    body += R"(,"parent_instance_id":)";
    append_optional(body, view.parent_instance_id);
    body += R"(,"process_key":)";
    append_string(body, view.process_key);
    body += R"(,"process_version":)";
    append_integer(body, view.process_version);
    body += R"(,"status":)";
    append_string(body, view.status);
    body += R"(,"updated_at":)";
    append_time(body, view.updated_at);
    body += R"(,"variables":)";
    append_json(body, view.variables);
    body += "}}";
    return json_text_response(status, std::move(body));
}

json task_json(const app::TaskView& view) {
    json out = {{"id", view.id},
                {"instance_id", view.instance_id},
                {"process_key", view.process_key},
                {"element_id", view.element_id},
                {"name", view.name},
                {"assignee", optional_string(view.assignee)},
                {"candidate_groups", view.candidate_groups},
                {"state", view.state},
                {"created_at", format_rfc3339(view.created_at)},
                {"due_at", optional_time(view.due_at)},
                {"completed_at", optional_time(view.completed_at)}};
    if (!view.variables.is_null())
        out["variables"] = view.variables;
    return out;
}

namespace {

/// task_json(view) as its dump writes it (alphabetical keys).
void append_task(std::string& body, const app::TaskView& view) {
    body += R"({"assignee":)";
    append_optional(body, view.assignee);
    body += R"(,"candidate_groups":)";
    append_strings(body, view.candidate_groups);
    body += R"(,"completed_at":)";
    append_optional_time(body, view.completed_at);
    body += R"(,"created_at":)";
    append_time(body, view.created_at);
    body += R"(,"due_at":)";
    append_optional_time(body, view.due_at);
    body += R"(,"element_id":)";
    append_string(body, view.element_id);
    body += R"(,"id":)";
    append_string(body, view.id);
    body += R"(,"instance_id":)";
    append_string(body, view.instance_id);
    body += R"(,"name":)";
    append_string(body, view.name);
    body += R"(,"process_key":)";
    append_string(body, view.process_key);
    body += R"(,"state":)";
    append_string(body, view.state);
    if (!view.variables.is_null()) {
        body += R"(,"variables":)";
        append_json(body, view.variables);
    }
    body += '}';
}

}  // namespace

Response task_page_response(const app::PageResult<app::TaskView>& page,
                            const app::PageRequest& request) {
    std::string body;
    body.reserve(96 + 420 * page.items.size());
    body += R"({"data":{"items":[)";
    for (std::size_t i = 0; i < page.items.size(); ++i) {
        if (i > 0)
            body += ',';
        append_task(body, page.items[i]);
    }
    body += R"(],"page":)";
    append_integer(body, request.page);
    body += R"(,"pageSize":)";
    append_integer(body, request.page_size);
    body += R"(,"total":)";
    append_integer(body, page.total);
    body += R"(,"totalPages":)";
    append_integer(body, total_pages(page.total, request));
    body += "}}";
    return json_text_response(200, std::move(body));
}

namespace {

json incident_json(const app::IncidentView& view) {
    return {{"id", view.id},
            {"instance_id", view.instance_id},
            {"element_id", view.element_id},
            {"kind", view.kind},
            {"message", view.message},
            {"state", view.state},
            {"created_at", format_rfc3339(view.created_at)},
            {"resolved_at", optional_time(view.resolved_at)}};
}

json clock_json(const app::ClockView& view) {
    return {{"now", format_rfc3339(view.now)}, {"adjusted", view.adjusted}};
}

template <typename T, typename F>
json page_of(const app::PageResult<T>& page, const app::PageRequest& request, F to_json) {
    json items = json::array();
    for (const auto& item : page.items)
        items.push_back(to_json(item));
    return page_envelope(std::move(items), page.total, request);
}

// ---- Body fields: a wrong type is a 400 naming the field. ------------------------------------

Result<std::optional<std::string>> string_field(const json& body, const char* name,
                                                bool required = false) {
    const auto it = body.find(name);
    if (it == body.end() || it->is_null()) {
        if (required) {
            return Error::invalid_argument(std::string("\"") + name + "\" is required");
        }
        return std::optional<std::string>{};
    }
    if (!it->is_string()) {
        return Error::invalid_argument(std::string("\"") + name + "\" must be a string");
    }
    if (required && it->get_ref<const std::string&>().empty()) {
        return Error::invalid_argument(std::string("\"") + name + "\" must not be empty");
    }
    return std::optional<std::string>{it->get<std::string>()};
}

Result<std::optional<std::int64_t>> int_field(const json& body, const char* name, std::int64_t min,
                                              std::int64_t max) {
    const auto it = body.find(name);
    if (it == body.end() || it->is_null())
        return std::optional<std::int64_t>{};
    if (!it->is_number_integer() || it->get<std::int64_t>() < min ||
        it->get<std::int64_t>() > max) {
        return Error::invalid_argument(std::string("\"") + name + "\" must be an integer from " +
                                       std::to_string(min) + " to " + std::to_string(max));
    }
    return std::optional<std::int64_t>{it->get<std::int64_t>()};
}

Result<json> variables_field(const json& body, const char* name = "variables") {
    const auto it = body.find(name);
    if (it == body.end() || it->is_null())
        return json::object();
    if (!it->is_object()) {
        return Error::invalid_argument(std::string("\"") + name + "\" must be a JSON object");
    }
    return *it;
}

std::optional<std::string> query_value(const Query& query, const char* name) {
    const auto it = query.find(name);
    if (it == query.end() || it->second.empty())
        return std::nullopt;
    return it->second;
}

Result<std::optional<TimePoint>> query_time(const Query& query, const char* name) {
    const auto value = query_value(query, name);
    if (!value)
        return std::optional<TimePoint>{};
    const auto parsed = parse_rfc3339(*value);
    if (!parsed) {
        return Error::invalid_argument(std::string(name) + " must be an RFC 3339 time, not '" +
                                       *value + "'");
    }
    return std::optional<TimePoint>{*parsed};
}

Result<std::optional<std::string>> query_status(const Query& query) {
    auto value = query_value(query, "status");
    if (!value)
        return value;
    for (auto& c : *value)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const char* known : {"RUNNING", "SUSPENDED", "ERROR", "COMPLETED", "CANCELLED"}) {
        if (*value == known)
            return value;
    }
    return Error::invalid_argument(
        "status must be one of RUNNING, SUSPENDED, ERROR, COMPLETED, CANCELLED");
}

#define PY_TRY(var, expr)                            \
    auto var##_result = (expr);                      \
    if (!var##_result)                               \
        return error_response(var##_result.error()); \
    auto& var = *var##_result

}  // namespace

void Api::attach_runtime(app::InstanceService* instances, app::IdempotencyService* idempotency) {
    instances_ = instances;
    idempotency_ = idempotency;
}

Response Api::idempotent(const Request& request, const PathParams& params, const Handler& inner) {
    const auto key = request.header("Idempotency-Key");
    if (!key || idempotency_ == nullptr)
        return inner(request, params);
    if (key->empty() || key->size() > 255) {
        return error_response(
            Error::invalid_argument("Idempotency-Key must be 1 to 255 characters"));
    }
    const std::string hash =
        sha256_hex(request.method + " " + request.target + "\n" + request.body);
    auto decision = idempotency_->begin(std::string(*key), hash);
    if (!decision)
        return error_response(decision.error());
    if (!decision->run) {
        Response replay;
        replay.status = decision->replay ? decision->replay->status : 409;
        replay.body = decision->replay ? decision->replay->body : std::string{};
        if (!replay.body.empty())
            replay.set_header("Content-Type", "application/json");
        replay.set_header("Idempotent-Replayed", "true");
        return replay;
    }
    Response response = inner(request, params);
    if (response.status >= 500) {
        (void)idempotency_->abandon(std::string(*key));
    } else {
        // If recording the answer fails, the request has still taken effect: the key stays in
        // flight (duplicates get 409, never a second run) until the retention window ends.
        (void)idempotency_->finish(std::string(*key), hash, {response.status, response.body});
    }
    return response;
}

// ---- Instances ---------------------------------------------------------------------------------

Response Api::start_instance(const Request& request, const PathParams& params) {
    PY_TRY(body, json_object_body(request, true));
    PY_TRY(variables, variables_field(body));
    PY_TRY(business_key, string_field(body, "business_key"));
    PY_TRY(version, int_field(body, "version", 1, std::numeric_limits<int>::max()));
    app::StartInstanceRequest start;
    start.process_key = params.get("key");
    start.variables = std::move(variables);
    start.business_key = business_key;
    if (version)
        start.version = static_cast<int>(*version);
    PY_TRY(view, instances_->start_instance(std::move(start)));
    Response response = instance_response(201, view);
    response.set_header("Location", "/api/v1/instances/" + view.id);
    return response;
}

namespace {

/// Bodies above this are parsed on the blocking pool, not on an I/O thread.
constexpr std::size_t kAsyncBodyLimit = 64 * 1024;

/// The JSON object body of a request a kAsyncFirst handler may take on the I/O thread; nullopt
/// with an Idempotency-Key (its bookkeeping reads and writes the store), a large body, or a body
/// the blocking handler refuses (it answers those).
std::optional<json> async_body(const Request& request) {
    if (request.body.size() > kAsyncBodyLimit || request.header("Idempotency-Key"))
        return std::nullopt;
    auto body = json_object_body(request, true);
    return body ? std::optional<json>(std::move(body).value()) : std::nullopt;
}

}  // namespace

// The async variants parse as their blocking twins do and decline (return false) on anything
// those answer with an error of their own, so that every refusal is made in one place.
bool Api::start_instance_async(const Request& request, const PathParams& params,
                               const AsyncReply& reply) {
    auto body = async_body(request);
    if (!body)
        return false;
    auto variables = variables_field(*body);
    auto business_key = string_field(*body, "business_key");
    auto version = int_field(*body, "version", 1, std::numeric_limits<int>::max());
    if (!variables || !business_key || !version || *version)
        return false;  // a named version is read from the store
    app::StartInstanceRequest start;
    start.process_key = params.get("key");
    start.variables = std::move(*variables);
    start.business_key = std::move(*business_key);
    app::InstanceService::InstanceCallback done = [reply](Result<app::InstanceView> view) {
        reply([view = std::move(view)]() mutable {
            if (!view)
                return error_response(view.error());
            const std::string location = "/api/v1/instances/" + view->id;
            Response response = instance_response(201, *view);
            response.set_header("Location", location);
            return response;
        });
    };
    return instances_->try_start_instance(start, done);
}

Response Api::list_instances(const Request& request, const PathParams& params) {
    PY_TRY(query, request_query(request));
    PY_TRY(page, parse_paging(query));
    app::InstanceQuery filter;
    PY_TRY(status, query_status(query));
    filter.status = status;
    filter.process_key = query_value(query, "process_key");
    if (!params.get("key").empty())
        filter.process_key = params.get("key");
    filter.business_key = query_value(query, "business_key");
    PY_TRY(after, query_time(query, "created_after"));
    PY_TRY(before, query_time(query, "created_before"));
    filter.created_after = after;
    filter.created_before = before;
    PY_TRY(result, instances_->list_instances(filter, page));
    return json_response(200, page_of(result, page, instance_json));
}

Response Api::get_instance(const Request&, const PathParams& params) {
    PY_TRY(view, instances_->instance(params.get("id")));
    return instance_response(200, view);
}

Response Api::cancel_instance(const Request&, const PathParams& params) {
    PY_TRY(view, instances_->cancel_instance(params.get("id")));
    return instance_response(200, view);
}

Response Api::suspend_instance(const Request&, const PathParams& params) {
    PY_TRY(view, instances_->suspend_instance(params.get("id")));
    return instance_response(200, view);
}

Response Api::resume_instance(const Request&, const PathParams& params) {
    PY_TRY(view, instances_->resume_instance(params.get("id")));
    return instance_response(200, view);
}

Response Api::get_variables(const Request&, const PathParams& params) {
    PY_TRY(variables, instances_->variables(params.get("id")));
    return json_response(200, variables);
}

Response Api::patch_variables(const Request& request, const PathParams& params) {
    PY_TRY(body, json_object_body(request, false));
    PY_TRY(variables, instances_->set_variables(params.get("id"), std::move(body)));
    return json_response(200, variables);
}

Response Api::get_tokens(const Request&, const PathParams& params) {
    PY_TRY(tokens, instances_->tokens(params.get("id")));
    json items = json::array();
    for (const auto& token : tokens) {
        items.push_back({{"element_id", token.element_id},
                         {"state", token.state},
                         {"scope_id", token.scope_id}});
    }
    return json_response(200, {{"items", std::move(items)}});
}

Response Api::get_activities(const Request& request, const PathParams& params) {
    PY_TRY(query, request_query(request));
    PY_TRY(page, parse_paging(query));
    PY_TRY(result, instances_->activities(params.get("id"), page));
    return json_response(200, page_of(result, page, [](const app::ActivityView& a) {
                             return json{{"element_id", a.element_id},
                                         {"element_type", a.element_type},
                                         {"name", a.name},
                                         {"event", a.event},
                                         {"at", format_rfc3339(a.at)}};
                         }));
}

// ---- User tasks ------------------------------------------------------------------------------

Response Api::list_tasks(const Request& request, const PathParams&) {
    PY_TRY(query, request_query(request));
    PY_TRY(page, parse_paging(query));
    app::TaskQuery filter;
    filter.instance_id = query_value(query, "instance_id");
    filter.process_key = query_value(query, "process_key");
    filter.assignee = query_value(query, "assignee");
    filter.candidate_group = query_value(query, "candidate_group");
    filter.element_id = query_value(query, "element_id");
    if (auto state = query_value(query, "state")) {
        for (auto& c : *state)
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (*state != "OPEN" && *state != "COMPLETED" && *state != "CANCELLED") {
            return error_response(
                Error::invalid_argument("state must be OPEN, COMPLETED or CANCELLED"));
        }
        filter.state = *state;
    }
    PY_TRY(result, instances_->list_tasks(filter, page));
    return task_page_response(result, page);
}

Response Api::get_task(const Request&, const PathParams& params) {
    PY_TRY(view, instances_->task(params.get("id")));
    return json_response(200, task_json(view));
}

Response Api::claim_task(const Request& request, const PathParams& params) {
    PY_TRY(body, json_object_body(request, false));
    PY_TRY(assignee, string_field(body, "assignee", true));
    PY_TRY(view, instances_->claim_task(params.get("id"), *assignee));
    return json_response(200, task_json(view));
}

Response Api::complete_task(const Request& request, const PathParams& params) {
    PY_TRY(body, json_object_body(request, true));
    PY_TRY(variables, variables_field(body));
    PY_TRY(view, instances_->complete_task(params.get("id"), std::move(variables)));
    return instance_response(200, view);
}

bool Api::complete_task_async(const Request& request, const PathParams& params,
                              const AsyncReply& reply) {
    auto body = async_body(request);
    if (!body)
        return false;
    auto variables = variables_field(*body);
    if (!variables)
        return false;
    app::InstanceService::InstanceCallback done = [reply](Result<app::InstanceView> view) {
        reply([view = std::move(view)]() mutable {
            return view ? instance_response(200, *view) : error_response(view.error());
        });
    };
    return instances_->try_complete_task(params.get("id"), *variables, done);
}

// ---- Messages and signals --------------------------------------------------------------------

Response Api::correlate_message(const Request& request, const PathParams&) {
    PY_TRY(body, json_object_body(request, false));
    PY_TRY(name, string_field(body, "name", true));
    app::MessageRequest message;
    message.name = *name;
    // A numeric correlation key is accepted as its JSON text (order_id: 42 -> "42").
    if (const auto key = body.find("correlation_key"); key != body.end() && !key->is_null()) {
        if (key->is_string()) {
            message.correlation_key = key->get<std::string>();
        } else if (key->is_number()) {
            message.correlation_key = key->dump();
        } else {
            return error_response(
                Error::invalid_argument("\"correlation_key\" must be a string or a number"));
        }
    }
    PY_TRY(business_key, string_field(body, "business_key"));
    message.business_key = business_key;
    PY_TRY(variables, variables_field(body));
    message.variables = std::move(variables);
    PY_TRY(result, instances_->correlate_message(std::move(message)));
    return json_response(200, {{"instance_id", result.instance_id},
                               {"element_id", result.element_id},
                               {"started", result.started}});
}

Response Api::broadcast_signal(const Request& request, const PathParams&) {
    PY_TRY(body, json_object_body(request, false));
    PY_TRY(name, string_field(body, "name", true));
    PY_TRY(variables, variables_field(body));
    PY_TRY(result, instances_->broadcast_signal({*name, std::move(variables)}));
    return json_response(200, {{"triggered", result.triggered}});
}

// ---- External jobs ---------------------------------------------------------------------------

Response Api::activate_jobs(const Request& request, const PathParams&) {
    PY_TRY(body, json_object_body(request, false));
    PY_TRY(type, string_field(body, "type", true));
    PY_TRY(worker, string_field(body, "worker"));
    PY_TRY(max_jobs, int_field(body, "max_jobs", 1, 1000));
    PY_TRY(lock_ms, int_field(body, "lock_ms", 1, 24LL * 3600 * 1000));
    PY_TRY(wait_ms, int_field(body, "wait_ms", 0, 24LL * 3600 * 1000));
    app::ActivateJobsRequest activate;
    activate.type = *type;
    activate.worker = worker.value_or("anonymous");
    if (max_jobs)
        activate.max_jobs = static_cast<int>(*max_jobs);
    if (lock_ms)
        activate.lock = std::chrono::milliseconds(*lock_ms);
    if (wait_ms)
        activate.wait = std::chrono::milliseconds(*wait_ms);
    PY_TRY(jobs, instances_->activate_jobs(std::move(activate)));
    json items = json::array();
    for (const auto& job : jobs) {
        items.push_back({{"id", job.id},
                         {"type", job.type},
                         {"instance_id", job.instance_id},
                         {"element_id", job.element_id},
                         {"variables", job.variables},
                         {"retries", job.retries},
                         {"headers", job.headers}});
    }
    return json_response(200, {{"items", std::move(items)}});
}

Response Api::complete_job(const Request& request, const PathParams& params) {
    PY_TRY(body, json_object_body(request, true));
    PY_TRY(variables, variables_field(body));
    if (auto status = instances_->complete_job(params.get("id"), std::move(variables)); !status) {
        return error_response(status.error());
    }
    return json_response(200, {{"id", params.get("id")}, {"state", "COMPLETED"}});
}

Response Api::fail_job(const Request& request, const PathParams& params) {
    PY_TRY(body, json_object_body(request, false));
    PY_TRY(message, string_field(body, "error_message"));
    const auto retries_it = body.find("retries");
    if (retries_it == body.end()) {
        return error_response(Error::invalid_argument("\"retries\" is required (retries left)"));
    }
    PY_TRY(retries, int_field(body, "retries", 0, 1'000'000));
    PY_TRY(backoff, int_field(body, "retry_backoff_ms", 0, 24LL * 3600 * 1000));
    app::FailJobRequest fail;
    fail.error_message = message.value_or("");
    fail.retries = static_cast<int>(retries.value_or(0));
    fail.retry_backoff = std::chrono::milliseconds(backoff.value_or(0));
    if (auto status = instances_->fail_job(params.get("id"), std::move(fail)); !status) {
        return error_response(status.error());
    }
    return json_response(200, {{"id", params.get("id")}, {"retries", fail.retries}});
}

Response Api::job_error(const Request& request, const PathParams& params) {
    PY_TRY(body, json_object_body(request, false));
    PY_TRY(code, string_field(body, "error_code", true));
    PY_TRY(message, string_field(body, "error_message"));
    PY_TRY(variables, variables_field(body));
    app::JobErrorRequest error{*code, message.value_or(""), std::move(variables)};
    if (auto status = instances_->throw_job_error(params.get("id"), std::move(error)); !status) {
        return error_response(status.error());
    }
    return json_response(200, {{"id", params.get("id")}, {"error_code", *code}});
}

// ---- Timers, incidents, clock, stats ---------------------------------------------------------

Response Api::list_timers(const Request& request, const PathParams&) {
    PY_TRY(query, request_query(request));
    PY_TRY(page, parse_paging(query));
    PY_TRY(result, instances_->list_timers(query_value(query, "instance_id"), page));
    return json_response(
        200, page_of(result, page, [](const app::TimerView& timer) -> json {
            return {{"id", timer.id},
                    {"instance_id",
                     timer.instance_id.empty() ? json(nullptr) : json(timer.instance_id)},
                    {"element_id", timer.element_id},
                    {"due_at", format_rfc3339(timer.due_at)},
                    {"repeat", timer.repeat}};
        }));
}

Response Api::list_incidents(const Request& request, const PathParams&) {
    PY_TRY(query, request_query(request));
    PY_TRY(page, parse_paging(query));
    app::IncidentQuery filter;
    filter.instance_id = query_value(query, "instance_id");
    if (auto state = query_value(query, "state")) {
        for (auto& c : *state)
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (*state != "OPEN" && *state != "RESOLVED") {
            return error_response(Error::invalid_argument("state must be OPEN or RESOLVED"));
        }
        filter.state = *state;
    }
    PY_TRY(result, instances_->list_incidents(filter, page));
    return json_response(200, page_of(result, page, incident_json));
}

Response Api::resolve_incident(const Request&, const PathParams& params) {
    PY_TRY(view, instances_->resolve_incident(params.get("id")));
    return json_response(200, incident_json(view));
}

Response Api::get_clock(const Request&, const PathParams&) {
    PY_TRY(view, instances_->clock());
    return json_response(200, clock_json(view));
}

Response Api::advance_clock(const Request& request, const PathParams&) {
    PY_TRY(body, json_object_body(request, false));
    PY_TRY(duration, string_field(body, "duration", true));
    PY_TRY(view, instances_->advance_clock(*duration));
    return json_response(200, clock_json(view));
}

Response Api::reset_clock(const Request&, const PathParams&) {
    PY_TRY(view, instances_->reset_clock());
    return json_response(200, clock_json(view));
}

Response Api::stats(const Request&, const PathParams&) {
    PY_TRY(s, instances_->stats());
    return json_response(200, {{"instances",
                                {{"RUNNING", s.running},
                                 {"SUSPENDED", s.suspended},
                                 {"ERROR", s.error},
                                 {"COMPLETED", s.completed},
                                 {"CANCELLED", s.cancelled}}},
                               {"open_tasks", s.open_tasks},
                               {"pending_jobs", s.pending_jobs},
                               {"pending_timers", s.pending_timers},
                               {"open_incidents", s.open_incidents},
                               {"replica",
                                {{"instances_started", s.instances_started},
                                 {"instances_ended", s.instances_ended},
                                 {"commands_processed", s.commands_processed},
                                 {"batches_committed", s.batches_committed},
                                 {"uptime_seconds", s.uptime_seconds},
                                 {"started_per_second", s.started_per_second},
                                 {"commands_per_second", s.commands_per_second},
                                 {"queued_commands", s.queued_commands}}}});
}

}  // namespace pythmata::http
