#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "pythmata/app/ports/instance_events.hpp"

namespace pythmata::http {

/// Fans committed instance events out to WebSocket subscribers (GET /api/v1/ws). The runtime
/// publishes from its engine threads; each event is serialised once into a JSON frame
/// {"type","instance_id","process_key","at",...data} and handed to every subscriber whose
/// filter matches. Delivery callbacks must not block (the server's queue and post to the
/// connection's strand). With no subscriber, publish() returns at once. Thread-safe.
class EventHub final : public app::InstanceEventSink {
  public:
    struct Filter {
        std::optional<std::string> instance_id;
        std::optional<std::string> process_key;
    };
    using Frame = std::shared_ptr<const std::string>;
    using Deliver = std::function<void(const Frame&)>;

    /// Adds a subscriber; returns the id to unsubscribe with.
    std::uint64_t subscribe(Filter filter, Deliver deliver);
    void unsubscribe(std::uint64_t id);
    [[nodiscard]] std::size_t subscribers() const { return count_.load(); }

    void publish(std::vector<app::InstanceEvent> events) override;
    [[nodiscard]] bool has_subscribers() const override { return count_.load() > 0; }

    /// The frame of one event (also used by tests).
    [[nodiscard]] static std::string frame(const app::InstanceEvent& event);

  private:
    struct Subscriber {
        Filter filter;
        Deliver deliver;
    };
    mutable std::mutex mutex_;
    std::unordered_map<std::uint64_t, std::shared_ptr<Subscriber>> subscribers_;
    std::uint64_t next_id_ = 1;
    std::atomic<std::size_t> count_{0};
};

}  // namespace pythmata::http
