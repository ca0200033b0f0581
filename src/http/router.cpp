#include "pythmata/http/router.hpp"

#include <algorithm>

#include "pythmata/http/request_parsing.hpp"

namespace pythmata::http {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> parts;
    std::size_t pos = 0;
    while (pos < path.size()) {
        if (path[pos] == '/') {
            ++pos;
            continue;
        }
        const std::size_t end = std::min(path.find('/', pos), path.size());
        parts.push_back(path.substr(pos, end - pos));
        pos = end;
    }
    return parts;
}

bool is_param(std::string_view segment) {
    return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

const std::string& PathParams::get(std::string_view name) const {
    static const std::string empty;
    for (const auto& [key, value] : values_) {
        if (key == name)
            return value;
    }
    return empty;
}

void Router::add(Route route) {
    Compiled compiled;
    for (std::string_view part : split_path(route.pattern))
        compiled.segments.emplace_back(part);
    routes_.push_back(std::move(route));
    compiled_.push_back(std::move(compiled));
}

Result<Match> Router::match(std::string_view method, std::string_view path) const {
    const auto parts = split_path(path);
    const std::string_view wanted = method == "HEAD" ? std::string_view("GET") : method;

    // Score each route whose shape fits: literal matches beat parameters, segment by segment
    // from the left, so /processes/{key}/versions never shadows a literal sibling.
    const Route* best = nullptr;
    const Compiled* best_compiled = nullptr;
    std::vector<std::string> allowed;
    std::string best_score;
    for (std::size_t i = 0; i < routes_.size(); ++i) {
        const Compiled& compiled = compiled_[i];
        if (compiled.segments.size() != parts.size())
            continue;
        std::string score;
        bool fits = true;
        for (std::size_t s = 0; s < parts.size() && fits; ++s) {
            if (is_param(compiled.segments[s])) {
                score.push_back('0');
            } else if (compiled.segments[s] == parts[s]) {
                score.push_back('1');
            } else {
                fits = false;
            }
        }
        if (!fits)
            continue;
        if (routes_[i].method != wanted) {
            if (std::find(allowed.begin(), allowed.end(), routes_[i].method) == allowed.end()) {
                allowed.push_back(routes_[i].method);
            }
            continue;
        }
        if (best == nullptr || score > best_score) {
            best = &routes_[i];
            best_compiled = &compiled;
            best_score = std::move(score);
        }
    }
    if (best == nullptr) {
        if (!allowed.empty()) {
            if (std::find(allowed.begin(), allowed.end(), "GET") != allowed.end()) {
                allowed.emplace_back("HEAD");
            }
            std::sort(allowed.begin(), allowed.end());
            Error error{ErrorKind::kMethodNotAllowed,
                        "METHOD_NOT_ALLOWED",
                        "method " + std::string(method) + " is not allowed on this path",
                        {},
                        {},
                        1};
            error.context["allow"] = allowed;
            return error;
        }
        return Error::not_found("NOT_FOUND", "no resource at this path");
    }
    Match match;
    match.route = best;
    for (std::size_t s = 0; s < parts.size(); ++s) {
        const std::string& segment = best_compiled->segments[s];
        if (!is_param(segment))
            continue;
        auto value = percent_decode(parts[s], false);
        if (!value)
            return value.error();
        match.params.add(segment.substr(1, segment.size() - 2), std::move(*value));
    }
    return match;
}

}  // namespace pythmata::http
