// libFuzzer target: expression compiler and evaluator (plain and template forms).
// Contract checked: any text compiles or fails with a CompileError; evaluation of what compiles
// returns a value or an EvalError within its step budget; nothing throws or crashes, and
// evaluating twice gives the same result.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_variables.hpp"
#include "pythmata/expr/expression.hpp"

namespace {

using pythmata::expr::EvalContext;
using pythmata::expr::Expression;
using pythmata::expr::Value;

std::string render(const pythmata::Result<Value, pythmata::expr::EvalError>& result) {
    if (!result.ok()) {
        return "error: " + result.error().message;
    }
    return result.value().dump(-1, ' ', false, Value::error_handler_t::replace);
}

void exercise(const Expression& expression, const pythmata::fuzz::MapVariables& vars) {
    EvalContext ctx;
    ctx.now = pythmata::from_epoch_ms(1'795'000'000'000);
    ctx.max_steps = 20'000;
    ctx.max_string_size = 1u << 16;
    const std::string first = render(expression.evaluate(vars, ctx));
    const std::string second = render(expression.evaluate(vars, ctx));
    if (first != second) {
        std::abort();  // evaluation must be deterministic
    }
    (void)expression.evaluate_bool(vars, ctx);
    (void)expression.constant_value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const pythmata::fuzz::MapVariables vars(pythmata::fuzz::fuzz_variables());
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto compiled = Expression::compile(text); compiled.ok()) {
        exercise(compiled.value(), vars);
    }
    if (auto compiled = Expression::compile_template(text); compiled.ok()) {
        exercise(compiled.value(), vars);
    }
    return 0;
}
