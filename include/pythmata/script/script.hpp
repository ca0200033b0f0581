#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "pythmata/common/result.hpp"
#include "pythmata/expr/statements.hpp"

namespace pythmata::script {

struct ScriptLimits {
    std::uint64_t max_instructions = 10'000'000;  ///< Lua VM instructions per run
    std::size_t max_memory = 32u << 20;            ///< bytes a Lua state may allocate
    std::chrono::milliseconds timeout{1'000};      ///< wall-clock bound per run (checked by the hook)
};

struct ScriptError {
    std::string message;  ///< e.g. "instruction limit exceeded", "attempt to index a nil value (line 3)"
};

/// A compiled script task body. Immutable, thread-safe to run concurrently (each run uses its
/// own sandbox state; implementations may pool states per thread).
///
/// Languages (scriptFormat, case-insensitive):
///  - "lua" / "lua5.4": Lua 5.4 in a sandbox (base functions without load/dofile/loadfile/
///    require/collectgarbage, plus string, table, math, utf8; no io, os, debug, package, or
///    bytecode). Variables are visible as globals; globals assigned by the script that are JSON-
///    representable become instance variables. `return x` sets the result variable if any.
///  - "python", "python3", "py", "" (empty defaults to python): an expr::StatementBlock.
/// Unknown formats are refused at compile time.
class Script {
public:
    [[nodiscard]] static Result<Script, ScriptError> compile(std::string_view format,
                                                             std::string_view source,
                                                             const ScriptLimits& limits);

    /// Runs the script; reads and writes variables through `vars`. `result` receives the script's
    /// return value (null when none). Errors (including limit hits) are values.
    [[nodiscard]] Result<void, ScriptError> run(expr::VariableSink& vars,
                                                const expr::EvalContext& ctx,
                                                expr::Value* result = nullptr) const;

    [[nodiscard]] const std::string& language() const;

    class Impl;

private:
    std::shared_ptr<const Impl> impl_;
};

}  // namespace pythmata::script
