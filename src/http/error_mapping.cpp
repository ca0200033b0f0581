#include "pythmata/http/error_mapping.hpp"

#include <string>

#include <nlohmann/json.hpp>

namespace pythmata::http {

int status_for(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::kInvalidArgument:
            return 400;
        case ErrorKind::kUnauthorized:
            return 401;
        case ErrorKind::kForbidden:
            return 403;
        case ErrorKind::kNotFound:
            return 404;
        case ErrorKind::kMethodNotAllowed:
            return 405;
        case ErrorKind::kConflict:
            return 409;
        case ErrorKind::kTooLarge:
            return 413;
        case ErrorKind::kHeadersTooLarge:
            return 431;
        case ErrorKind::kUnsupportedMedia:
            return 415;
        case ErrorKind::kInvalid:
            return 422;
        case ErrorKind::kOverloaded:
        case ErrorKind::kUnavailable:
            return 503;
        case ErrorKind::kInternal:
            return 500;
    }
    return 500;
}

Response error_response(const Error& error) {
    Response response;
    response.status = status_for(error.kind);
    const bool internal = error.kind == ErrorKind::kInternal;
    nlohmann::json body = {
        {"detail", internal ? std::string{"internal error"} : error.message},
        {"code", internal ? std::string{"INTERNAL"} : error.code},
        {"context",
         internal || !error.context.is_object() ? nlohmann::json::object() : error.context},
    };
    response.body = body.dump();
    response.set_header("Content-Type", "application/json");
    if (response.status == 503 || response.status == 429) {
        const int seconds = error.retry_after_seconds > 0 ? error.retry_after_seconds : 1;
        response.set_header("Retry-After", std::to_string(seconds));
    }
    if (error.code == "METHOD_NOT_ALLOWED" && error.context.contains("allow") &&
        error.context["allow"].is_array()) {
        std::string allow;
        for (const auto& method : error.context["allow"]) {
            if (method.is_string()) {
                allow += (allow.empty() ? "" : ", ") + method.get<std::string>();
            }
        }
        response.set_header("Allow", allow);
    }
    return response;
}

}  // namespace pythmata::http
