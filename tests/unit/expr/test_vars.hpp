#pragma once

#include <map>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "pythmata/expr/expression.hpp"
#include "pythmata/expr/statements.hpp"

namespace pythmata::expr::testing {

/// A flat variable map for tests: a VariableSink over one JSON object.
class MapVars : public VariableSink {
  public:
    MapVars() = default;
    explicit MapVars(const Value& object) {
        for (auto it = object.begin(); it != object.end(); ++it) {
            vars_[it.key()] = it.value();
        }
    }
    [[nodiscard]] const Value* find(std::string_view name) const override {
        const auto it = vars_.find(name);
        return it == vars_.end() ? nullptr : &it->second;
    }
    void set(std::string_view name, Value value) override {
        vars_[std::string(name)] = std::move(value);
    }
    [[nodiscard]] Value* find_mutable(std::string_view name) override {
        const auto it = vars_.find(name);
        return it == vars_.end() ? nullptr : &it->second;
    }
    void erase(std::string_view name) override {
        const auto it = vars_.find(name);
        if (it != vars_.end()) {
            vars_.erase(it);
        }
    }
    /// All variables as one JSON object.
    [[nodiscard]] Value as_object() const {
        Value o = Value::object();
        for (const auto& [k, v] : vars_) {
            o[k] = v;
        }
        return o;
    }

  private:
    std::map<std::string, Value, std::less<>> vars_;
};

/// Compiles and evaluates `text` against `vars` (a JSON object).
inline Result<Value, EvalError> eval_text(std::string_view text,
                                          const Value& vars = Value::object(),
                                          const EvalContext& ctx = {}) {
    auto e = Expression::compile(text);
    if (!e.ok()) {
        return EvalError{"compile error: " + e.error().message};
    }
    MapVars v(vars);
    return e->evaluate(v, ctx);
}

/// The value of `text`; records a test failure when evaluation fails.
inline Value value_of(std::string_view text, const Value& vars = Value::object()) {
    auto r = eval_text(text, vars);
    EXPECT_TRUE(r.ok()) << text << " -> " << (r.ok() ? "" : r.error().message);
    return r.ok() ? r.value() : Value("<error>");
}

/// The EvalError message of `text`; records a test failure when it compiles or evaluates.
inline std::string error_of(std::string_view text, const Value& vars = Value::object(),
                            const EvalContext& ctx = {}) {
    auto e = Expression::compile(text);
    EXPECT_TRUE(e.ok()) << text << " -> " << (e.ok() ? "" : e.error().message);
    if (!e.ok()) {
        return "<compile error>";
    }
    MapVars v(vars);
    auto r = e->evaluate(v, ctx);
    EXPECT_FALSE(r.ok()) << text << " unexpectedly gave " << (r.ok() ? r.value().dump() : "");
    return r.ok() ? "<no error>" : r.error().message;
}

/// The CompileError message of `text`; records a test failure when it compiles.
inline std::string compile_error_of(std::string_view text) {
    auto e = Expression::compile(text);
    EXPECT_FALSE(e.ok()) << text << " unexpectedly compiled";
    return e.ok() ? "<compiled>" : e.error().message;
}

}  // namespace pythmata::expr::testing
