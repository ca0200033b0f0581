#include "pythmata/http/error_mapping.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace pythmata::http {

namespace {

/// 5xx causes for the log, one line per code per second at most.
class ServerErrorLog {
  public:
    void note(const Error& error, int status) {
        const auto now = std::chrono::steady_clock::now();
        std::uint64_t answers = 0;
        {
            std::lock_guard lock(mutex_);
            auto [window, first] = windows_.try_emplace(error.code);
            ++window->second.answers;
            if (!first && now - window->second.logged_at < kInterval) {
                return;
            }
            answers = window->second.answers;
            window->second = {now, 0};
        }
        // One line per entry: libpq's messages end with a newline and often hold two lines.
        std::string cause = error.internal.empty() ? error.message : error.internal;
        std::replace_if(
            cause.begin(), cause.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; },
            ' ');
        while (!cause.empty() && cause.back() == ' ') {
            cause.pop_back();
        }
        const auto level = status >= 503 ? spdlog::level::warn : spdlog::level::err;
        if (answers == 1) {
            spdlog::default_logger_raw()->log(level, "{} {}: {}", status, error.code, cause);
        } else {
            spdlog::default_logger_raw()->log(
                level, "{} {}: {} ({} answers of this code since the last line)", status,
                error.code, cause, answers);
        }
    }

  private:
    static constexpr std::chrono::seconds kInterval{1};
    struct Window {
        std::chrono::steady_clock::time_point logged_at;
        std::uint64_t answers = 0;
    };
    std::mutex mutex_;
    std::map<std::string, Window, std::less<>> windows_;
};

ServerErrorLog& server_error_log() {
    static ServerErrorLog log;
    return log;
}

}  // namespace

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
    if (response.status >= 500) {
        server_error_log().note(error, response.status);
    }
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
