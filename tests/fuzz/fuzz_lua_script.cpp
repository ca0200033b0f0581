// libFuzzer target: the Lua sandbox (compile, run with small limits, convert variables back).
// Contract checked: every input compiles or fails cleanly, runs to an end or to a named limit,
// never escapes the sandbox, throws or crashes; the pooled state stays usable.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_variables.hpp"
#include "pythmata/script/script.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const pythmata::expr::Value initial = pythmata::fuzz::fuzz_variables();
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    pythmata::script::ScriptLimits limits;
    limits.max_instructions = 200'000;
    limits.max_memory = 8u << 20;
    limits.timeout = std::chrono::milliseconds(500);
    auto compiled = pythmata::script::Script::compile("lua", text, limits);
    if (!compiled.ok()) {
        return 0;
    }
    pythmata::fuzz::MapVariables vars(initial);
    pythmata::expr::Value result;
    (void)compiled->run(vars, {}, &result);
    (void)compiled->run(vars, {}, &result);  // the reused state must behave
    (void)vars.serialize();
    return 0;
}
