#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pythmata/common/time.hpp"

namespace pythmata::app {

/// Something that happened to an instance, published after it was committed (for the WebSocket
/// stream of API.md). `type` and `data`:
/// - INSTANCE_STATUS: {"status"} when an instance starts or its status changes
/// - ACTIVITY: {"element_id","element_type","name","event"} per history entry
/// - VARIABLES: {"variables"} (all process variables) when they changed
/// - TASK_CREATED: {"task_id","element_id","name","assignee","candidate_groups"}
struct InstanceEvent {
    std::string type;
    std::string instance_id;
    std::string process_key;
    TimePoint at{};
    nlohmann::json data = nlohmann::json::object();
};

/// Receives the events of committed commands, in commit order per instance. Called from the
/// engine worker threads: it must be thread-safe and must not block (queue and return).
class InstanceEventSink {
  public:
    virtual ~InstanceEventSink() = default;
    virtual void publish(std::vector<InstanceEvent> events) = 0;
    /// False while nobody listens: the runtime then skips building events at all.
    [[nodiscard]] virtual bool has_subscribers() const { return true; }
};

}  // namespace pythmata::app
