#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "pythmata/engine/instance_state.hpp"
#include "pythmata/expr/statements.hpp"

namespace pythmata::engine {

/// The scope with id `id`, or nullptr.
[[nodiscard]] Scope* find_scope(InstanceState& st, ScopeId id);

/// Variables as seen from a scope: local variables of the scope chain (innermost first), then
/// the process variables. Writes go to the innermost scope that defines the name, else to the
/// process. Sets `*changed` on every write.
class Variables final : public expr::VariableSink {
  public:
    Variables(InstanceState& st, ScopeId scope, bool* changed)
        : st_(st), scope_(scope), changed_(changed) {}

    [[nodiscard]] const expr::Value* find(std::string_view name) const override;
    void set(std::string_view name, expr::Value value) override;
    [[nodiscard]] expr::Value* find_mutable(std::string_view name) override;
    /// Removes the variable from the innermost scope that defines it (`del x`).
    void erase(std::string_view name) override;

  private:
    [[nodiscard]] expr::Value* lookup(std::string_view name) const;

    InstanceState& st_;
    ScopeId scope_;
    bool* changed_;
};

/// Reads `first` (a JSON object), then falls back to the variables of `scope` (0: no fallback).
class LocalSource final : public expr::VariableSource {
  public:
    LocalSource(const nlohmann::json& first, InstanceState& st, ScopeId scope)
        : first_(first), fallback_(st, scope, nullptr), has_fallback_(scope != 0) {}

    [[nodiscard]] const expr::Value* find(std::string_view name) const override;

  private:
    const nlohmann::json& first_;
    Variables fallback_;
    bool has_fallback_;
};

/// A flat copy of every variable visible from `scope` (inner names shadow outer ones).
[[nodiscard]] nlohmann::json visible_variables(InstanceState& st, ScopeId scope);

}  // namespace pythmata::engine
