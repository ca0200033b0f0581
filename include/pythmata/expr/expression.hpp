#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pythmata/common/result.hpp"
#include "pythmata/common/time.hpp"

namespace pythmata::expr {

/// Variables are JSON values: null, bool, integer, float, string, array, object.
using Value = nlohmann::json;

/// Where an expression reads its variables from. Implemented by the engine over an instance's
/// scopes (innermost first). Must outlive the evaluate() call.
class VariableSource {
  public:
    virtual ~VariableSource() = default;
    /// The variable named `name`, or nullptr when undefined.
    [[nodiscard]] virtual const Value* find(std::string_view name) const = 0;
};

/// Per-evaluation context: the engine passes its `now` (expressions never read a clock).
struct EvalContext {
    TimePoint now{};
    std::size_t max_steps = 100'000;         ///< guards against pathological expressions
    std::size_t max_string_size = 1u << 20;  ///< results of + and * on strings and lists
};

struct CompileError {
    std::string message;  ///< e.g. "unexpected ')' at 7"
    std::size_t position = 0;
};

struct EvalError {
    std::string message;  ///< e.g. "undefined variable 'amount'", "cannot compare string and int"
};

/// A compiled, immutable, side-effect-free expression. Copies share the compiled form; safe to
/// evaluate from many threads at once.
///
/// Accepted syntaxes, in one language:
///  - JUEL style:   `${amount > 100 && !done}`, `#{...}`, `empty list`, `a == b ? x : y`,
///                  `eq ne lt gt le ge and or not div mod` keywords
///  - Python style: `amount > 100 and not done`, `'x' in tags`, `x is None`, `None True False`,
///                  `a if cond else b`
///  - a leading `=` (FEEL-style prefix written by Zeebe models) is dropped.
/// Arithmetic `+ - * / // % **`, comparison, string concatenation, dotted (`order.total`) and
/// indexed (`items[0]`, `m['k']`) access, list and object literals, and the functions `len`,
/// `str`, `int`, `float`, `bool`, `abs`, `min`, `max`, `round`, `lower`, `upper`, `now()`,
/// `date(text)` (RFC 3339 -> epoch milliseconds), plus `sum`, `sorted`, `keys`, `values`, `any`,
/// `all`, `list`, `range` and `print` (a no-op returning null, for scripts), and the methods
/// listed in docs/bpmn.md (`m.get(k, d)`, `s.lower()`, `s.startswith(p)`, `xs.contains(x)`...).
/// Text mixing literal characters and `${...}` is a template that yields a string
/// ("Hello ${name}"); Python f-strings (`f"n={n}"`) are templates too.
class Expression {
  public:
    /// An empty expression: evaluate() fails with "expression not compiled". Lets owners hold
    /// an Expression member before compiling one.
    Expression() = default;

    /// Compiles `text`. An empty or blank text is a compile error.
    [[nodiscard]] static Result<Expression, CompileError> compile(std::string_view text);

    /// Compiles `text` as a template for names, assignees and messages: text without `${` or
    /// `#{` is a constant string (never parsed as an expression); `${x}` alone yields x's value
    /// unchanged; mixed text yields a string (null renders as "", booleans as true/false).
    [[nodiscard]] static Result<Expression, CompileError> compile_template(std::string_view text);

    /// The truthiness of the result (see truthy()), without copying the value out.
    [[nodiscard]] Result<bool, EvalError> evaluate_bool(const VariableSource& vars,
                                                        const EvalContext& ctx) const;

    /// The value when the expression is a constant after folding (`3`, `${5-2}`, "PT1H"),
    /// else nullptr. Points into this Expression's shared compiled form.
    [[nodiscard]] const Value* constant_value() const;

    /// Evaluates against `vars`. Undefined variables, type errors, division by zero and limits
    /// are EvalErrors, never exceptions or crashes.
    [[nodiscard]] Result<Value, EvalError> evaluate(const VariableSource& vars,
                                                    const EvalContext& ctx) const;

    /// The source text it was compiled from.
    [[nodiscard]] const std::string& text() const;

    struct Node;  // private compiled form

  private:
    std::shared_ptr<const Node> root_;
    std::shared_ptr<const std::string> text_;
};

/// Python-style truthiness: null, false, 0, 0.0, "", [], {} are false.
[[nodiscard]] bool truthy(const Value& v);

/// Python `str()` of a value: strings unquoted, null -> "None", booleans -> "True"/"False",
/// numbers in shortest round-trip form, lists and objects as compact JSON.
[[nodiscard]] std::string to_display_string(const Value& v);

}  // namespace pythmata::expr
