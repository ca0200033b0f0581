#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "pythmata/bpmn/model.hpp"
#include "pythmata/bpmn/timer_spec.hpp"
#include "pythmata/engine/compiled_process.hpp"
#include "pythmata/expr/expression.hpp"
#include "pythmata/script/script.hpp"

namespace pythmata::engine {

/// A text with embedded `${...}` expressions ("kermit_${loopCounter}"), or a plain literal.
struct Template {
    struct Part {
        std::string literal;
        std::optional<expr::Expression> expression;
    };
    std::vector<Part> parts;
    bool is_literal = true;
    std::string literal;  ///< the whole text when is_literal

    [[nodiscard]] bool empty() const { return is_literal && literal.empty(); }
};

struct Mapping {
    expr::Expression source;
    std::string target;
};

/// Everything compiled for one element, indexed like bpmn::Process::elements.
struct CompiledElement {
    bool is_activity = false;
    std::optional<script::Script> script;
    std::optional<expr::Expression> condition;  ///< conditional events
    std::optional<bpmn::TimerSpec> timer;
    std::optional<expr::Expression> timer_expression;  ///< when the value is computed at run time
    std::optional<expr::Expression> correlation_key;
    std::optional<expr::Expression> mi_cardinality;
    std::optional<expr::Expression> mi_collection;
    std::optional<expr::Expression> mi_completion;
    std::optional<expr::Expression> mi_output_element;
    std::optional<expr::Expression> loop_condition;
    std::vector<Mapping> inputs;
    std::vector<Mapping> outputs;
    Template name;
    Template assignee;
    Template candidate_groups;
    Template due_date;
    Template called_element;
    nlohmann::json headers = nlohmann::json::object();
    bpmn::ElementIndex link_target = bpmn::kNoElement;  ///< link throw -> catch
    bpmn::ElementIndex none_start = bpmn::kNoElement;   ///< containers: their none start event
    /// Inclusive joins: reaches[i] is true when element i can reach this gateway without passing
    /// through it (so a token there may still arrive).
    std::vector<bool> reaches;
    bool has_wait_boundaries = false;  ///< any timer/message/signal/conditional boundary event
};

struct CompiledProcess::Impl {
    bpmn::Process process;
    std::vector<CompiledElement> elements;
    std::vector<std::optional<expr::Expression>> flow_conditions;
    bpmn::ElementIndex none_start = bpmn::kNoElement;
};

}  // namespace pythmata::engine
