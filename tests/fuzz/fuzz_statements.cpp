// libFuzzer target: python-style statement blocks (compile, then execute against variables).
// Contract checked: compile errors and evaluation errors are values; nothing throws or crashes;
// the variables stay serializable.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_variables.hpp"
#include "pythmata/expr/statements.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const pythmata::expr::Value initial = pythmata::fuzz::fuzz_variables();
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto compiled = pythmata::expr::StatementBlock::compile(text);
    if (!compiled.ok()) {
        return 0;
    }
    pythmata::fuzz::MapVariables vars(initial);
    pythmata::expr::EvalContext ctx;
    ctx.now = pythmata::from_epoch_ms(1'795'000'000'000);
    ctx.max_steps = 20'000;
    ctx.max_string_size = 1u << 16;
    (void)compiled->execute(vars, ctx);
    (void)compiled->execute(vars, ctx);  // again, on the modified variables
    (void)vars.serialize();
    return 0;
}
