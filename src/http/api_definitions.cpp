#include <charconv>
#include <mutex>
#include <unordered_map>

#include "api.hpp"
#include "pythmata/http/error_mapping.hpp"

namespace pythmata::http {
namespace {

nlohmann::json definition_json(const app::DefinitionRecord& record, bool with_xml) {
    nlohmann::json out = {{"id", record.id},
                          {"key", record.key},
                          {"name", record.name},
                          {"version", record.version},
                          {"created_at", format_rfc3339(record.created_at)}};
    if (with_xml)
        out["bpmn_xml"] = record.bpmn_xml;
    return out;
}

nlohmann::json page_json(const app::PageResult<app::DefinitionRecord>& page,
                         const app::PageRequest& request) {
    nlohmann::json items = nlohmann::json::array();
    for (const auto& record : page.items)
        items.push_back(definition_json(record, false));
    return page_envelope(std::move(items), page.total, request);
}

bool is_xml_type(std::string_view type) {
    const auto semi = type.find(';');
    std::string_view media = type.substr(0, semi);
    while (!media.empty() && media.back() == ' ')
        media.remove_suffix(1);
    return iequals(media, "application/xml") || iequals(media, "text/xml") ||
           (media.size() > 4 && iequals(media.substr(media.size() - 4), "+xml"));
}

Result<int> parse_version(const std::string& text) {
    int value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < 1) {
        return Error::invalid_argument("version must be a positive integer, not '" + text + "'");
    }
    return value;
}

/// The filter and page of GET /processes, or the 400 answer.
Result<std::pair<app::DefinitionFilter, app::PageRequest>> list_query(const Request& request) {
    auto query = request_query(request);
    if (!query)
        return std::move(query).error();
    auto page = parse_paging(*query);
    if (!page)
        return std::move(page).error();
    app::DefinitionFilter filter;
    if (auto it = query->find("key"); it != query->end())
        filter.key = it->second;
    if (auto it = query->find("name"); it != query->end())
        filter.name = it->second;
    return std::pair{std::move(filter), *page};
}

}  // namespace

Response Api::deploy_document(const Request& request, std::optional<std::string> required_key) {
    app::DeployRequest deploy;
    deploy.required_key = std::move(required_key);
    const auto type = request.header("Content-Type");
    // Without a Content-Type, a body whose first non-blank character is '<' is taken as XML.
    const auto first = request.body.find_first_not_of(" \t\r\n");
    const bool looks_xml = first != std::string::npos && request.body[first] == '<';
    if ((type && is_xml_type(*type)) || (!type && looks_xml)) {
        deploy.bpmn_xml = request.body;
    } else {
        auto body = json_object_body(request, false);
        if (!body)
            return error_response(body.error());
        const auto xml = body->find("bpmn_xml");
        if (xml == body->end() || !xml->is_string()) {
            return error_response(Error::invalid_argument(
                "the body needs \"bpmn_xml\": the BPMN document as a string (or send the XML "
                "itself as application/xml)"));
        }
        deploy.bpmn_xml = xml->get<std::string>();
        if (const auto name = body->find("name"); name != body->end() && !name->is_null()) {
            if (!name->is_string()) {
                return error_response(Error::invalid_argument("\"name\" must be a string"));
            }
            deploy.name = name->get<std::string>();
        }
    }
    if (deploy.bpmn_xml.empty()) {
        return error_response(Error::invalid_argument("the BPMN document is empty"));
    }
    auto result = definitions_.deploy(std::move(deploy));
    if (!result)
        return error_response(result.error());
    nlohmann::json data = definition_json(result->primary, true);
    nlohmann::json deployed = nlohmann::json::array();
    for (const auto& record : result->deployed) {
        deployed.push_back({{"key", record.key}, {"version", record.version}, {"id", record.id}});
    }
    data["deployed"] = std::move(deployed);
    Response response = json_response(result->created ? 201 : 200, data);
    response.set_header("Location", "/api/v1/processes/" + result->primary.key + "/versions/" +
                                        std::to_string(result->primary.version));
    return response;
}

Response Api::deploy(const Request& request, const PathParams&) {
    return deploy_document(request, std::nullopt);
}

Response Api::redeploy(const Request& request, const PathParams& params) {
    return deploy_document(request, params.get("key"));
}

Response Api::list_definitions(const Request& request, const PathParams&) {
    auto query = list_query(request);
    if (!query)
        return error_response(query.error());
    auto result = definitions_.list(query->first, query->second);
    if (!result)
        return error_response(result.error());
    return json_response(200, page_json(*result, query->second));
}

/// A cached page is immutable, so its body is rendered once: the body is kept with the page it
/// renders (which it keeps alive, so the address is never reused) while the catalog still holds
/// that page; bodies of pages the catalog dropped go at the next insert.
struct ListBodies {
    std::mutex mutex;
    std::unordered_map<const void*, std::pair<std::shared_ptr<const void>, std::string>> bodies;
};

std::shared_ptr<ListBodies> make_list_bodies() {
    return std::make_shared<ListBodies>();
}

std::optional<Response> Api::list_definitions_cached(const Request& request, const PathParams&) {
    auto query = list_query(request);
    if (!query)
        return error_response(query.error());  // cheap: no need for the pool
    auto cached = definitions_.cached_list(query->first, query->second);
    if (!cached)
        return std::nullopt;
    Response response;
    response.status = 200;
    response.set_header("Content-Type", "application/json");
    {
        std::lock_guard lock(list_bodies_->mutex);
        if (auto it = list_bodies_->bodies.find(cached.get()); it != list_bodies_->bodies.end()) {
            response.body = it->second.second;
            return response;
        }
    }
    response = json_response(200, page_json(*cached, query->second));
    std::lock_guard lock(list_bodies_->mutex);
    auto& bodies = list_bodies_->bodies;
    // Held only here (and by `cached`): the catalog dropped that page.
    std::erase_if(bodies, [](const auto& entry) { return entry.second.first.use_count() <= 1; });
    bodies.emplace(cached.get(), std::pair{std::shared_ptr<const void>(cached), response.body});
    return response;
}

Response Api::latest_definition(const Request&, const PathParams& params) {
    auto result = definitions_.latest(params.get("key"));
    if (!result)
        return error_response(result.error());
    return json_response(200, definition_json(*result, true));
}

Response Api::definition_versions(const Request& request, const PathParams& params) {
    auto query = request_query(request);
    if (!query)
        return error_response(query.error());
    auto page = parse_paging(*query);
    if (!page)
        return error_response(page.error());
    auto result = definitions_.versions(params.get("key"), *page);
    if (!result)
        return error_response(result.error());
    return json_response(200, page_json(*result, *page));
}

Response Api::definition_version(const Request&, const PathParams& params) {
    auto version = parse_version(params.get("version"));
    if (!version)
        return error_response(version.error());
    auto result = definitions_.version(params.get("key"), *version);
    if (!result)
        return error_response(result.error());
    return json_response(200, definition_json(*result, true));
}

Response Api::delete_definition(const Request& request, const PathParams& params) {
    auto query = request_query(request);
    if (!query)
        return error_response(query.error());
    auto cascade = parse_flag(*query, "cascade", false);
    if (!cascade)
        return error_response(cascade.error());
    if (auto status = definitions_.remove(params.get("key"), *cascade); !status) {
        return error_response(status.error());
    }
    Response response;
    response.status = 204;
    return response;
}

}  // namespace pythmata::http
