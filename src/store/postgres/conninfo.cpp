#include "postgres/conninfo.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <memory>
#include <string_view>

namespace pythmata::store {
namespace {

/// A port, or libpq's comma-separated list of ports (one per host), each 1..65535; an empty
/// entry means the default port.
bool valid_ports(std::string_view text) {
    std::size_t start = 0;
    while (true) {
        const std::size_t comma = text.find(',', start);
        const std::string_view part =
            text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
        if (!part.empty()) {
            if (part.size() > 5 || !std::all_of(part.begin(), part.end(),
                                                [](char c) { return c >= '0' && c <= '9'; })) {
                return false;
            }
            const int port = std::stoi(std::string(part));
            if (port < 1 || port > 65535) {
                return false;
            }
        }
        if (comma == std::string_view::npos) {
            return true;
        }
        start = comma + 1;
    }
}

bool valid_sslmode(std::string_view mode) {
    constexpr std::string_view kModes[] = {"disable", "allow",     "prefer",
                                           "require", "verify-ca", "verify-full"};
    return std::find(std::begin(kModes), std::end(kModes), mode) != std::end(kModes);
}

Error invalid_url(std::string internal) {
    Error error = Error::invalid_argument(
        "db_url is not a valid PostgreSQL URL; expected "
        "postgresql://[user[:password]@]host[:port]/database[?param=value&...]",
        "INVALID_DB_URL");
    error.internal = std::move(internal);
    return error;
}

struct OptionsDeleter {
    void operator()(PQconninfoOption* options) const { PQconninfoFree(options); }
};

}  // namespace

Result<std::string> postgres_conninfo(const std::string& url,
                                      std::chrono::milliseconds connect_timeout) {
    char* message = nullptr;
    std::unique_ptr<PQconninfoOption, OptionsDeleter> options(
        PQconninfoParse(url.c_str(), &message));
    if (!options) {
        std::string reason = message != nullptr ? message : "out of memory";
        PQfreemem(message);
        while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) {
            reason.pop_back();
        }
        return invalid_url("libpq: " + reason);
    }
    bool has_timeout = false;
    for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
        if (option->val == nullptr) {
            continue;
        }
        const std::string_view keyword = option->keyword;
        const std::string_view value = option->val;
        // libpq checks these only when it connects: a typo would look like an endless outage.
        if (keyword == "port" && !valid_ports(value)) {
            return Error::invalid_argument(
                "db_url has an invalid port '" + std::string(value) + "'", "INVALID_DB_URL");
        }
        if (keyword == "sslmode" && !valid_sslmode(value)) {
            return Error::invalid_argument(
                "db_url has an invalid sslmode '" + std::string(value) +
                    "' (disable, allow, prefer, require, verify-ca, verify-full)",
                "INVALID_DB_URL");
        }
        if (keyword == "connect_timeout") {
            has_timeout = true;
        }
    }
    if (has_timeout) {
        return url;
    }
    const long long seconds = std::max<long long>(1, (connect_timeout.count() + 999) / 1000);
    std::string conninfo = url;
    if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
        conninfo += url.find('?') == std::string::npos ? '?' : '&';
        conninfo += "connect_timeout=" + std::to_string(seconds);
    } else {
        conninfo += " connect_timeout=" + std::to_string(seconds);
    }
    return conninfo;
}

}  // namespace pythmata::store
