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
    std::size_t max_steps = 100'000;          ///< guards against pathological expressions
    std::size_t max_string_size = 1u << 20;   ///< results of + and * on strings and lists
};

struct CompileError {
    std::string message;   ///< e.g. "unexpected ')' at 7"
    std::size_t position = 0;
};

struct EvalError {
    std::string message;   ///< e.g. "undefined variable 'amount'", "cannot compare string and int"
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
/// `date(text)` (RFC 3339 -> epoch milliseconds).
class Expression {
public:
    /// Compiles `text`. An empty or blank text is a compile error.
    [[nodiscard]] static Result<Expression, CompileError> compile(std::string_view text);

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

}  // namespace pythmata::expr
