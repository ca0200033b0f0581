#include "postgres/conninfo.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

bool is_integer_key(std::string_view keyword) {
    constexpr std::string_view kKeys[] = {"connect_timeout",  "keepalives",
                                          "keepalives_idle",  "keepalives_interval",
                                          "keepalives_count", "tcp_user_timeout"};
    return std::find(std::begin(kKeys), std::end(kKeys), keyword) != std::end(kKeys);
}

/// An optional minus and 1 to 9 digits (libpq's int parameters, without its surrounding spaces).
bool valid_integer(std::string_view text) {
    if (text.starts_with('-')) {
        text.remove_prefix(1);
    }
    return !text.empty() && text.size() <= 9 &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
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
                                      std::chrono::milliseconds connect_timeout,
                                      std::chrono::milliseconds tcp_timeout) {
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
    std::set<std::string, std::less<>> given;
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
        // The integer keys this function adds defaults for: a value libpq cannot read fails
        // every connect ("invalid integer value"), which would look like an endless outage.
        if (is_integer_key(keyword) && !valid_integer(value)) {
            return Error::invalid_argument("db_url has an invalid " + std::string(keyword) + " '" +
                                               std::string(value) + "' (an integer)",
                                           "INVALID_DB_URL");
        }
        given.emplace(keyword);
    }

    // Our defaults, each unless the URL sets it.
    std::vector<std::pair<std::string, std::string>> defaults;
    const long long connect_seconds =
        std::max<long long>(1, (connect_timeout.count() + 999) / 1000);
    defaults.emplace_back("connect_timeout", std::to_string(connect_seconds));
    if (tcp_timeout.count() > 0) {
        // Keepalive probes after a third of the time without traffic, two more a third apart:
        // a silent peer (a host gone without a reset, a partition) ends a call that waits for
        // an answer after about tcp_timeout; tcp_user_timeout does the same for data sent and
        // never acknowledged. The OS defaults are 2 hours and ~15 minutes.
        const long long third = std::max<long long>(1, (tcp_timeout.count() + 2999) / 3000);
        defaults.emplace_back("keepalives", "1");
        defaults.emplace_back("keepalives_idle", std::to_string(third));
        defaults.emplace_back("keepalives_interval", std::to_string(third));
        defaults.emplace_back("keepalives_count", "2");
        defaults.emplace_back("tcp_user_timeout", std::to_string(tcp_timeout.count()));
    }
    const bool is_url = url.starts_with("postgresql://") || url.starts_with("postgres://");
    bool has_query = url.find('?') != std::string::npos;
    std::string conninfo = url;
    for (const auto& [keyword, value] : defaults) {
        if (given.contains(keyword)) {
            continue;
        }
        if (is_url) {
            conninfo += has_query ? '&' : '?';
            has_query = true;
        } else {
            conninfo += ' ';
        }
        conninfo += keyword + "=" + value;
    }
    return conninfo;
}

}  // namespace pythmata::store
