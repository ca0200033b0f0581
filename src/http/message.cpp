#include "pythmata/http/message.hpp"

#include <algorithm>
#include <cctype>

namespace pythmata::http {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

namespace {

std::optional<std::string_view> find_header(
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view name) {
    for (const auto& [key, value] : headers) {
        if (iequals(key, name)) {
            return std::string_view{value};
        }
    }
    return std::nullopt;
}

}  // namespace

std::optional<std::string_view> Request::header(std::string_view name) const {
    return find_header(headers, name);
}

std::optional<std::string_view> Response::header(std::string_view name) const {
    return find_header(headers, name);
}

void Response::set_header(std::string name, std::string value) {
    for (auto& [key, existing] : headers) {
        if (iequals(key, name)) {
            existing = std::move(value);
            return;
        }
    }
    headers.emplace_back(std::move(name), std::move(value));
}

}  // namespace pythmata::http
