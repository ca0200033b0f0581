#pragma once

#include <map>
#include <string>
#include <string_view>

#include "pythmata/expr/statements.hpp"

namespace pythmata::script::testing {

/// Variables in a map, as the engine keeps them for one scope; counts the writes.
class MapSink final : public expr::VariableSink {
  public:
    MapSink() = default;
    explicit MapSink(expr::Value object) {
        for (auto& [key, value] : object.items()) {
            vars[key] = value;
        }
    }

    [[nodiscard]] const expr::Value* find(std::string_view name) const override {
        ++reads;
        const auto it = vars.find(std::string(name));
        return it == vars.end() ? nullptr : &it->second;
    }
    void set(std::string_view name, expr::Value value) override {
        ++writes;
        vars[std::string(name)] = std::move(value);
    }
    [[nodiscard]] expr::Value* find_mutable(std::string_view name) override {
        const auto it = vars.find(std::string(name));
        return it == vars.end() ? nullptr : &it->second;
    }

    void erase(std::string_view name) override {
        ++writes;
        vars.erase(std::string(name));
    }

    [[nodiscard]] const expr::Value& at(const std::string& name) const { return vars.at(name); }
    [[nodiscard]] bool has(const std::string& name) const { return vars.count(name) != 0; }

    std::map<std::string, expr::Value> vars;
    mutable int reads = 0;
    int writes = 0;
};

}  // namespace pythmata::script::testing
