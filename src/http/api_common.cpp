#include <cmath>

#include "api.hpp"
#include "pythmata/http/error_mapping.hpp"

namespace pythmata::http {

Response json_response(int status, const nlohmann::json& data) {
    // {"data": ...} written around the dump: no copy of `data` into an envelope object.
    // Replace invalid UTF-8 (from stored documents) instead of throwing mid-response.
    const std::string dumped = data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::string body;
    body.reserve(dumped.size() + 10);
    body.append("{\"data\":").append(dumped).push_back('}');
    return json_text_response(status, std::move(body));
}

Response json_text_response(int status, std::string body) {
    Response response;
    response.status = status;
    response.body = std::move(body);
    response.set_header("Content-Type", "application/json");
    return response;
}

std::int64_t total_pages(std::int64_t total, const app::PageRequest& page) {
    const std::int64_t size = page.page_size > 0 ? page.page_size : 1;
    return (total + size - 1) / size;
}

nlohmann::json page_envelope(nlohmann::json items, std::int64_t total,
                             const app::PageRequest& page) {
    return {{"items", std::move(items)},
            {"total", total},
            {"page", page.page},
            {"pageSize", page.page_size},
            {"totalPages", total_pages(total, page)}};
}

Result<Query> request_query(const Request& request) {
    const auto q = request.target.find('?');
    if (q == std::string::npos)
        return Query{};
    return parse_query(std::string_view(request.target).substr(q + 1));
}

namespace {

bool is_json_type(std::string_view content_type) {
    const auto semi = content_type.find(';');
    std::string_view media = content_type.substr(0, semi);
    while (!media.empty() && media.back() == ' ')
        media.remove_suffix(1);
    return iequals(media, "application/json") ||
           (media.size() > 5 && iequals(media.substr(media.size() - 5), "+json"));
}

}  // namespace

Result<nlohmann::json> json_object_body(const Request& request, bool empty_is_object) {
    if (request.body.empty() && empty_is_object)
        return nlohmann::json::object();
    if (const auto type = request.header("Content-Type"); type && !is_json_type(*type)) {
        return Error{ErrorKind::kUnsupportedMedia,
                     "UNSUPPORTED_MEDIA_TYPE",
                     "send the body as application/json",
                     {},
                     {},
                     1};
    }
    auto parsed = parse_json_body(request.body);
    if (!parsed)
        return parsed.error();
    if (!parsed->is_object()) {
        return Error::invalid_argument("the request body must be a JSON object");
    }
    return std::move(*parsed);
}

}  // namespace pythmata::http
