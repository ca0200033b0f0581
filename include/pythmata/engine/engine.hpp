#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "pythmata/common/error.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/common/time.hpp"
#include "pythmata/engine/command.hpp"
#include "pythmata/engine/compiled_process.hpp"
#include "pythmata/engine/effects.hpp"
#include "pythmata/engine/instance_state.hpp"

namespace pythmata::engine {

/// Limits, all settings. Hitting a step limit opens an incident at the token that hit it; the
/// other limits fail the command with an EngineError.
struct EngineLimits {
    std::size_t max_tokens = 10'000;              ///< live tokens per instance
    std::uint64_t max_steps_per_event = 100'000;  ///< elements executed by one command
    std::uint64_t max_steps_per_instance = 10'000'000;
    std::size_t max_variable_size = 1u << 20;     ///< bytes of one variable (JSON text)
    std::size_t max_total_variables = 10u << 20;  ///< bytes of all variables of an instance
    std::uint32_t max_call_depth = 32;            ///< nested call activities
    bool history = true;                          ///< record history entries
};

/// A command the engine refused or a limit it hit. `code` is an API.md-style UPPER_SNAKE code:
/// WAIT_NOT_FOUND, WAIT_KIND_MISMATCH, INSTANCE_NOT_RUNNING, INCIDENT_NOT_FOUND,
/// INVALID_START, VARIABLE_TOO_LARGE, VARIABLES_TOO_LARGE, TOKEN_LIMIT.
struct EngineError {
    ErrorKind kind = ErrorKind::kInvalidArgument;
    std::string code;
    std::string message;
    std::string element_id;

    [[nodiscard]] Error to_error() const;
};

/// The token machine. Pure and deterministic: no I/O, clock, threads, randomness or logging.
class Engine {
  public:
    /// Applies `command` to `state` at time `now` and runs until every token waits or ends.
    /// On success `state` is the new state and the result lists every effect the app must
    /// persist or perform. On an EngineError, `state` may be partially modified and must be
    /// discarded: callers keep the previous state (or a copy) and retry from it.
    [[nodiscard]] static Result<Effects, EngineError> execute(const CompiledProcess& process,
                                                              InstanceState& state,
                                                              const Command& command, TimePoint now,
                                                              const EngineLimits& limits = {});
};

}  // namespace pythmata::engine
