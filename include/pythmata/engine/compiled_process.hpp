#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pythmata/bpmn/model.hpp"
#include "pythmata/bpmn/parser.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/common/time.hpp"

namespace pythmata::engine {

/// Deploy-time settings for compile().
struct CompileOptions {
    std::uint64_t script_max_instructions = 10'000'000;  ///< Lua instruction limit per run
    std::size_t script_max_memory = 32u << 20;           ///< Lua memory limit per run
    std::int64_t script_timeout_ms = 1'000;              ///< wall-clock bound per script run
};

/// A process compiled for execution: every condition, script, timer, correlation key, mapping
/// and multi-instance expression is compiled once, and per-element data sits in dense arrays so
/// that the engine's hot path does no string lookups. Immutable and thread-safe to share.
class CompiledProcess {
  public:
    struct Impl;

    explicit CompiledProcess(std::unique_ptr<Impl> impl);
    ~CompiledProcess();
    CompiledProcess(const CompiledProcess&) = delete;
    CompiledProcess& operator=(const CompiledProcess&) = delete;

    /// The process model it was compiled from (a copy owned by this object).
    [[nodiscard]] const bpmn::Process& process() const;
    /// The process id (the deployment key).
    [[nodiscard]] const std::string& key() const;
    /// Element id / name / XML type name ("userTask") of an element index.
    [[nodiscard]] const std::string& element_id(bpmn::ElementIndex index) const;
    [[nodiscard]] const std::string& element_name(bpmn::ElementIndex index) const;
    [[nodiscard]] const std::string& element_type(bpmn::ElementIndex index) const;
    /// The index of an element id, nullopt when the process has no such element.
    [[nodiscard]] std::optional<bpmn::ElementIndex> find(std::string_view element_id) const;
    /// The message names of the process's top-level message start events (for the app's
    /// message-start subscriptions), and likewise signal names and timer start events.
    [[nodiscard]] std::vector<bpmn::ElementIndex> start_events(bpmn::EventKind kind) const;

    /// Timer start events: when the timer of top-level start event `start` first fires after
    /// `from`, and the firing after `previous` (`fired` firings so far) for cycles. nullopt when
    /// it never (again) fires, when `start` has no timer, or when its value is an expression.
    [[nodiscard]] std::optional<TimePoint> timer_first(bpmn::ElementIndex start,
                                                       TimePoint from) const;
    [[nodiscard]] std::optional<TimePoint> timer_next(bpmn::ElementIndex start, TimePoint previous,
                                                      std::int64_t fired) const;

    /// Engine internals; not for use outside the engine layer.
    [[nodiscard]] const Impl& impl() const { return *impl_; }

  private:
    std::unique_ptr<Impl> impl_;
};

/// Compiles process `process_id` of `definitions`. Fails with every problem found (each naming
/// its element id): unknown process, non-executable process, expressions or scripts that do not
/// compile, unparsable timer values, a link throw with no matching catch.
[[nodiscard]] Result<std::shared_ptr<const CompiledProcess>, std::vector<bpmn::Diagnostic>> compile(
    const bpmn::Definitions& definitions, std::string_view process_id,
    const CompileOptions& options = {});

}  // namespace pythmata::engine
