#include "pythmata/http/event_hub.hpp"

#include <nlohmann/json.hpp>

namespace pythmata::http {

std::uint64_t EventHub::subscribe(Filter filter, Deliver deliver) {
    std::lock_guard lock(mutex_);
    const std::uint64_t id = next_id_++;
    subscribers_.emplace(
        id, std::make_shared<Subscriber>(Subscriber{std::move(filter), std::move(deliver)}));
    count_.store(subscribers_.size());
    return id;
}

void EventHub::unsubscribe(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    subscribers_.erase(id);
    count_.store(subscribers_.size());
}

std::string EventHub::frame(const app::InstanceEvent& event) {
    nlohmann::json out = event.data.is_object() ? event.data : nlohmann::json::object();
    out["type"] = event.type;
    out["instance_id"] = event.instance_id;
    out["process_key"] = event.process_key;
    out["at"] = format_rfc3339(event.at);
    return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void EventHub::publish(std::vector<app::InstanceEvent> events) {
    if (count_.load() == 0)
        return;
    std::vector<std::shared_ptr<Subscriber>> targets;
    {
        std::lock_guard lock(mutex_);
        targets.reserve(subscribers_.size());
        for (const auto& [id, subscriber] : subscribers_)
            targets.push_back(subscriber);
    }
    for (const auto& event : events) {
        Frame serialized;
        for (const auto& subscriber : targets) {
            const Filter& f = subscriber->filter;
            if (f.instance_id && *f.instance_id != event.instance_id)
                continue;
            if (f.process_key && *f.process_key != event.process_key)
                continue;
            if (!serialized)
                serialized = std::make_shared<const std::string>(frame(event));
            subscriber->deliver(serialized);
        }
    }
}

}  // namespace pythmata::http
