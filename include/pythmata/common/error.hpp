#pragma once

#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace pythmata {

/// What went wrong, independent of any protocol. The http layer maps a kind to a status code in
/// exactly one function (http/error_mapping); nothing else decides statuses.
enum class ErrorKind {
    kInvalidArgument,   ///< 400: malformed request (bad JSON, bad parameter)
    kUnauthorized,      ///< 401
    kForbidden,         ///< 403
    kNotFound,          ///< 404: unknown resource
    kMethodNotAllowed,  ///< 405: the path exists, the method does not (context.allow)
    kConflict,          ///< 409: state conflict
    kTooLarge,          ///< 413: body or variables over a limit
    kHeadersTooLarge,   ///< 431: request headers over max_header_size
    kUnsupportedMedia,  ///< 415
    kInvalid,           ///< 422: invalid BPMN, expression or variables
    kOverloaded,        ///< 503 OVERLOADED (queue full), with Retry-After
    kUnavailable,  ///< 503: a dependency is down (DB_UNAVAILABLE, DB_POOL_TIMEOUT), Retry-After
    kInternal,     ///< 500: a bug; details go to the log, never to the client
};

/// An expected failure as a value. `code` is the stable UPPER_SNAKE code of API.md
/// (`PROCESS_NOT_FOUND`, `INVALID_BPMN`, ...); `message` is a sentence for a human; `context`
/// carries structured detail (for INVALID_BPMN: {"errors": [{"element_id","message"}]}).
/// `internal` is for logs only and never reaches a client.
struct Error {
    ErrorKind kind = ErrorKind::kInternal;
    std::string code;
    std::string message;
    nlohmann::json context = nlohmann::json::object();
    std::string internal;
    int retry_after_seconds = 1;  ///< used with kOverloaded and kUnavailable

    [[nodiscard]] static Error invalid_argument(std::string message,
                                                std::string code = "INVALID_ARGUMENT") {
        return {ErrorKind::kInvalidArgument, std::move(code), std::move(message), {}, {}, 1};
    }
    [[nodiscard]] static Error not_found(std::string code, std::string message) {
        return {ErrorKind::kNotFound, std::move(code), std::move(message), {}, {}, 1};
    }
    [[nodiscard]] static Error conflict(std::string code, std::string message) {
        return {ErrorKind::kConflict, std::move(code), std::move(message), {}, {}, 1};
    }
    [[nodiscard]] static Error too_large(std::string code, std::string message) {
        return {ErrorKind::kTooLarge, std::move(code), std::move(message), {}, {}, 1};
    }
    [[nodiscard]] static Error invalid(std::string code, std::string message,
                                       nlohmann::json context = nlohmann::json::object()) {
        return {
            ErrorKind::kInvalid, std::move(code), std::move(message), std::move(context), {}, 1};
    }
    [[nodiscard]] static Error unavailable(std::string code, std::string message,
                                           std::string internal = {}, int retry_after = 1) {
        return {ErrorKind::kUnavailable, std::move(code), std::move(message), {},
                std::move(internal),     retry_after};
    }
    [[nodiscard]] static Error overloaded(std::string message, int retry_after = 1) {
        return {ErrorKind::kOverloaded, "OVERLOADED", std::move(message), {}, {}, retry_after};
    }
    [[nodiscard]] static Error internal_error(std::string internal) {
        return {ErrorKind::kInternal, "INTERNAL", "internal error", {}, std::move(internal), 1};
    }
};

}  // namespace pythmata
