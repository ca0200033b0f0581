#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pythmata/bpmn/parser.hpp"
#include "pythmata/engine/engine.hpp"

namespace pythmata::engine::test {

/// Wraps process elements in a BPMN document with process id `id`.
inline std::string process_xml(const std::string& body, const std::string& id = "p",
                               const std::string& extra = "") {
    return R"(<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
             xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
             xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
             xmlns:pythmata="http://pythmata.org/schema/1.0/bpmn"
             id="defs" targetNamespace="test">
)" + extra +
           R"(<process id=")" + id + R"(" isExecutable="true">
)" + body + R"(
</process>
</definitions>)";
}

/// Drives one instance like the app would: keeps the open waits from the effects, and (when
/// `roundtrip` is set) serialises and restores the state after every command.
class Harness {
  public:
    /// `tweak` may adjust the parsed model before it is compiled (for shapes a test needs that
    /// the XML parser does not produce).
    explicit Harness(const std::string& xml, const std::string& process_id = "p",
                     const std::function<void(bpmn::Definitions&)>& tweak = {}) {
        auto parsed = bpmn::parse(xml);
        if (!parsed) {
            for (const auto& d : parsed.error()) {
                ADD_FAILURE() << "parse: " << d.element_id << ": " << d.message;
            }
            return;
        }
        defs_ = std::move(parsed.value().definitions);
        if (tweak) {
            tweak(defs_);
        }
        auto compiled = compile(defs_, process_id);
        if (!compiled) {
            for (const auto& d : compiled.error()) {
                ADD_FAILURE() << "compile: " << d.element_id << ": " << d.message;
            }
            return;
        }
        cp = compiled.value();
    }

    /// Runs a command that must succeed.
    Effects run(const Command& c) {
        auto r = try_run(c);
        if (!r) {
            ADD_FAILURE() << "engine error " << r.error().code << ": " << r.error().message;
            return {};
        }
        return r.value();
    }

    Result<Effects, EngineError> try_run(const Command& c) {
        if (!cp) {
            return EngineError{ErrorKind::kInternal, "NO_PROCESS", "not compiled", {}};
        }
        InstanceState copy = state;
        auto r = Engine::execute(*cp, copy, c, now, limits);
        if (!r) {
            return r;
        }
        state = std::move(copy);
        if (roundtrip) {
            auto restored = InstanceState::deserialize(state.serialize());
            EXPECT_TRUE(restored.ok());
            if (restored) {
                state = std::move(restored).value();
            }
        }
        for (const auto& h : r.value().history) {
            history.push_back(h);
        }
        for (auto id : r.value().waits_closed) {
            open.erase(id);
        }
        for (const auto& o : r.value().waits_opened) {
            open[o.id] = o;
        }
        for (const auto& s : r.value().signals) {
            signals.push_back(s.name);
        }
        // Invariant: the waits the app knows are exactly the waits in the state.
        EXPECT_EQ(open.size(), state.waits.size());
        for (const auto& w : state.waits) {
            EXPECT_TRUE(open.count(w.id) == 1) << "wait " << w.id << " missing from effects";
        }
        return r;
    }

    Effects start(nlohmann::json vars = nlohmann::json::object()) {
        return run(Start{std::move(vars), {}, 0});
    }

    /// The open wait at element `id` (first one), or 0.
    WaitId wait_at(const std::string& id, std::optional<WaitKind> kind = std::nullopt) const {
        for (const auto& [wid, o] : open) {
            if (o.element_id == id && (!kind || o.kind == *kind)) {
                return wid;
            }
        }
        return 0;
    }

    Effects complete(const std::string& task, nlohmann::json vars = nlohmann::json::object()) {
        WaitId w = wait_at(task, WaitKind::kUserTask);
        EXPECT_NE(w, 0u) << "no open user task " << task;
        return run(CompleteTask{w, std::move(vars)});
    }

    Effects complete_job(const std::string& task, nlohmann::json vars = nlohmann::json::object()) {
        WaitId w = wait_at(task, WaitKind::kJob);
        EXPECT_NE(w, 0u) << "no open job " << task;
        return run(CompleteJob{w, std::move(vars)});
    }

    Effects message(const std::string& element) {
        WaitId w = wait_at(element, WaitKind::kMessage);
        EXPECT_NE(w, 0u) << "no message wait at " << element;
        return run(CorrelateMessage{w, nlohmann::json::object()});
    }

    Effects fire(const std::string& element) {
        WaitId w = wait_at(element, WaitKind::kTimer);
        EXPECT_NE(w, 0u) << "no timer at " << element;
        return run(FireTimer{w});
    }

    Effects signal(const std::string& element) {
        WaitId w = wait_at(element, WaitKind::kSignal);
        EXPECT_NE(w, 0u) << "no signal wait at " << element;
        return run(Signal{w, nlohmann::json::object()});
    }

    std::vector<std::string> open_tasks() const {
        std::vector<std::string> out;
        for (const auto& [wid, o] : open) {
            if (o.kind == WaitKind::kUserTask) {
                out.push_back(o.element_id);
            }
        }
        std::sort(out.begin(), out.end());
        return out;
    }

    int count(const std::string& id, HistoryEvent ev = HistoryEvent::kStarted) const {
        int n = 0;
        for (const auto& h : history) {
            if (h.event == ev && cp->element_id(h.element) == id) {
                ++n;
            }
        }
        return n;
    }

    bool passed(const std::string& id) const { return count(id) > 0; }

    std::string status() const { return std::string(state.api_status()); }

    bpmn::Definitions defs_;
    std::shared_ptr<const CompiledProcess> cp;
    InstanceState state;
    TimePoint now = from_epoch_ms(1'800'000'000'000);
    EngineLimits limits;
    bool roundtrip = true;
    std::map<WaitId, WaitOpened> open;
    std::vector<HistoryEntry> history;
    std::vector<std::string> signals;
};

}  // namespace pythmata::engine::test
