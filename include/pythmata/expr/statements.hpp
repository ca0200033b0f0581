#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "pythmata/expr/expression.hpp"

namespace pythmata::expr {

/// The variables a statement block writes to. Implemented by the engine / script layer.
class VariableSink : public VariableSource {
  public:
    /// Sets (creates or replaces) a top-level variable.
    virtual void set(std::string_view name, Value value) = 0;
    /// A mutable pointer to an existing top-level variable, for nested assignment
    /// (`order.total = 5`, `items[0] += 1`); nullptr when undefined.
    /// Pointers it returns must stay valid across find() calls until the next set()/erase().
    [[nodiscard]] virtual Value* find_mutable(std::string_view name) = 0;
    /// Removes a top-level variable (`del x`). The default sets it to null, for sinks that
    /// cannot remove; sinks that can should override it.
    virtual void erase(std::string_view name) { set(name, Value{}); }
};

/// A compiled block of simple Python-style statements, one per line (or separated by `;`):
/// assignments `x = expr`, `a.b = expr`, `a['k'] = expr`, `items[0] = expr`, augmented
/// assignments `+= -= *= /= //= %=`, `del x`, `pass`, and bare expressions (evaluated, result
/// discarded). Blank lines and `#` comments are ignored. Anything else (if/for/while/def/import,
/// ...) is refused at compile time with a CompileError naming the construct and the line.
/// Also accepted: `del(x)`, tuple assignment `a, b = b, a`, chained `a = b = 0`.
class StatementBlock {
  public:
    /// An empty block: execute() does nothing and succeeds.
    StatementBlock() = default;

    /// Compiles `text`; CompileError messages start with "line N: ".
    [[nodiscard]] static Result<StatementBlock, CompileError> compile(std::string_view text);

    /// Runs the statements in order against `vars`. Stops at the first error (statements before
    /// it keep their effects); EvalError messages start with "line N: ". ctx.max_steps bounds
    /// the whole block.
    [[nodiscard]] Result<void, EvalError> execute(VariableSink& vars, const EvalContext& ctx) const;

    struct Program;  // private compiled form

  private:
    std::shared_ptr<const Program> program_;
};

}  // namespace pythmata::expr
