#pragma once

// Which elements the setting `history_level` records in an instance's activity history.

#include <optional>
#include <string_view>

#include "pythmata/bpmn/model.hpp"

namespace pythmata::app {

/// `history_level`: `none` records nothing; `activity` (the default) records activities and
/// events (tasks of every kind, embedded and event sub-processes, transactions, call
/// activities, start, end, intermediate catch and throw, and boundary events); `full` records
/// every element, gateways included.
enum class HistoryLevel : unsigned char { kNone, kActivity, kFull };

/// The level named by a setting value; nullopt for any other text.
[[nodiscard]] inline std::optional<HistoryLevel> history_level_of(std::string_view text) {
    if (text == "none") {
        return HistoryLevel::kNone;
    }
    if (text == "activity") {
        return HistoryLevel::kActivity;
    }
    if (text == "full") {
        return HistoryLevel::kFull;
    }
    return std::nullopt;
}

/// Whether the element types of the four gateways (exclusive, inclusive, parallel,
/// event-based): the only elements `activity` leaves out.
[[nodiscard]] constexpr bool is_gateway(bpmn::ElementType type) {
    switch (type) {
        case bpmn::ElementType::kExclusiveGateway:
        case bpmn::ElementType::kInclusiveGateway:
        case bpmn::ElementType::kParallelGateway:
        case bpmn::ElementType::kEventBasedGateway:
            return true;
        default:
            return false;
    }
}

/// Whether `level` records the history entries of an element of `type`.
[[nodiscard]] constexpr bool history_records(HistoryLevel level, bpmn::ElementType type) {
    switch (level) {
        case HistoryLevel::kNone:
            return false;
        case HistoryLevel::kActivity:
            return !is_gateway(type);
        case HistoryLevel::kFull:
            return true;
    }
    return true;
}

}  // namespace pythmata::app
