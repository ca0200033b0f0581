#pragma once

#include <map>
#include <string>
#include <string_view>

#include "pythmata/expr/statements.hpp"

namespace pythmata::fuzz {

/// The variables every expression/script fuzz input sees: one of each JSON type, nested
/// containers, and names the seeds use (n, s, l, o, b, f, z, items, order, amount, counter).
[[nodiscard]] inline expr::Value fuzz_variables() {
    return expr::Value::parse(R"({
        "n": 5, "neg": -3, "big": 9223372036854775807, "f": 2.5, "s": "abc", "u": "héllo",
        "b": true, "z": null, "l": [1, 2, 3], "e": [], "eo": {},
        "o": {"k": {"x": 1}, "list": [1, "two", null]},
        "items": [{"qty": 1, "price": 2.5}, {"qty": 3, "price": 1}],
        "order": {"total": 100, "tags": ["a", "b"], "customer": {"name": "x"}},
        "amount": 120, "counter": 0, "approved": false, "tags": ["x", "y"]
    })");
}

/// A VariableSink over a map, as the engine keeps one scope's variables.
class MapVariables final : public expr::VariableSink {
  public:
    explicit MapVariables(const expr::Value& object) {
        for (const auto& [key, value] : object.items()) {
            vars_[key] = value;
        }
    }
    [[nodiscard]] const expr::Value* find(std::string_view name) const override {
        const auto it = vars_.find(std::string(name));
        return it == vars_.end() ? nullptr : &it->second;
    }
    void set(std::string_view name, expr::Value value) override {
        vars_[std::string(name)] = std::move(value);
    }
    [[nodiscard]] expr::Value* find_mutable(std::string_view name) override {
        const auto it = vars_.find(std::string(name));
        return it == vars_.end() ? nullptr : &it->second;
    }
    void erase(std::string_view name) override { vars_.erase(std::string(name)); }

    /// Serializes every variable as the store would (invalid UTF-8 replaced, never thrown).
    [[nodiscard]] std::size_t serialize() const {
        std::size_t bytes = 0;
        for (const auto& [key, value] : vars_) {
            bytes += value.dump(-1, ' ', false, expr::Value::error_handler_t::replace).size();
        }
        return bytes;
    }

  private:
    std::map<std::string, expr::Value> vars_;
};

}  // namespace pythmata::fuzz
