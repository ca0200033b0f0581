#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pythmata::http {

/// A parsed HTTP request, independent of Beast, so handlers are testable without sockets.
struct Request {
    std::string method;  ///< "GET", "POST", ...
    std::string target;  ///< path with optional "?query", as received (percent-encoded)
    std::vector<std::pair<std::string, std::string>> headers;  ///< names as received
    std::string body;
    std::string remote;  ///< peer address, for the access log

    /// The first header named `name` (case-insensitive), if any.
    [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
};

/// A response ready to be written.
struct Response {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string route = "unmatched";  ///< the matched route template, for metrics and logs
    bool close = false;               ///< close the connection after writing

    /// The first header named `name` (case-insensitive), if any.
    [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
    /// Replaces (or adds) the header `name`.
    void set_header(std::string name, std::string value);
};

/// Case-insensitive ASCII comparison of header names and tokens.
[[nodiscard]] bool iequals(std::string_view a, std::string_view b);

}  // namespace pythmata::http
