// In-process conformance runner: drives every case of the external BPMN corpus
// (bpmn-corpus/public/cases.json) through the engine, playing the app's part (call activities,
// message and signal delivery, a virtual clock for timers, a worker that completes jobs), and
// checks the outcomes the models' authors assert. Each case runs twice: straight, and with the
// instance state serialised and restored after every command; both must give the same outcome.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pythmata/bpmn/parser.hpp"
#include "pythmata/bpmn/timer_spec.hpp"
#include "pythmata/engine/engine.hpp"

#include "corpus.hpp"

namespace pythmata::engine::conformance {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

using ::pythmata::conformance::case_ids;
using ::pythmata::conformance::case_name;
using ::pythmata::conformance::case_skip_reason;
using ::pythmata::conformance::check_expect;
using ::pythmata::conformance::corpus_dir;
using ::pythmata::conformance::find_case;
using ::pythmata::conformance::for_each_run;
using ::pythmata::conformance::load_cases;
using ::pythmata::conformance::Observed;

std::string read_file(const fs::path& p) {
    return ::pythmata::conformance::read_text(p);
}

struct Instance {
    std::string key;
    std::shared_ptr<const CompiledProcess> cp;
    InstanceState state;
    std::map<WaitId, WaitOpened> open;
    std::vector<HistoryEntry> history;
    // A child started by a call activity: the parent instance and its call wait.
    int parent = -1;
    WaitId parent_wait = 0;
};

class World {
  public:
    World(std::map<std::string, std::shared_ptr<const CompiledProcess>> processes, bool roundtrip)
        : processes_(std::move(processes)), roundtrip_(roundtrip) {}

    std::string failure;
    TimePoint now = from_epoch_ms(1'800'000'000'000);
    TimePoint run_started = now;
    std::vector<Instance> instances;
    std::map<std::string, int> aliases;

    /// Starts an instance; returns its index or -1 (start refused).
    int start(const std::string& key, const Json& vars, int parent = -1, WaitId pwait = 0,
              std::uint32_t depth = 0) {
        auto it = processes_.find(key);
        if (it == processes_.end()) {
            fail("no deployed process '" + key + "'");
            return -1;
        }
        Instance inst;
        inst.key = key;
        inst.cp = it->second;
        inst.parent = parent;
        inst.parent_wait = pwait;
        instances.push_back(std::move(inst));
        int idx = static_cast<int>(instances.size()) - 1;
        if (!apply(idx, Start{vars.is_object() ? vars : Json::object(), {}, depth})) {
            return -1;
        }
        return idx;
    }

    /// Runs a command on instance `idx` and plays out its effects. False on an engine error.
    bool apply(int idx, const Command& c) {
        if (++commands_ > 10'000) {
            fail("too many commands: the case does not settle");
            return false;
        }
        Instance* inst = &instances[static_cast<std::size_t>(idx)];
        auto r = Engine::execute(*inst->cp, inst->state, c, now, limits_);
        if (!r) {
            last_error = r.error().code + ": " + r.error().message;
            return false;
        }
        if (roundtrip_) {
            auto back = InstanceState::deserialize(inst->state.serialize());
            if (!back) {
                fail("state does not round-trip: " + back.error());
                return false;
            }
            inst->state = std::move(back).value();
        }
        Effects fx = std::move(r).value();
        for (auto id : fx.waits_closed) {
            inst->open.erase(id);
        }
        for (const auto& h : fx.history) {
            inst->history.push_back(h);
        }
        std::vector<WaitOpened> opened = fx.waits_opened;
        for (const auto& o : opened) {
            inst->open[o.id] = o;
        }
        // Play the app's part. `inst` may dangle once other instances start: use indices.
        for (const auto& o : opened) {
            if (o.kind == WaitKind::kCall) {
                int child = start(o.called_process, o.variables, idx, o.id,
                                  instances[static_cast<std::size_t>(idx)].state.call_depth + 1);
                if (child < 0 && failure.empty()) {
                    apply(idx, FailCall{o.id, {}, "child did not start: " + last_error});
                }
            } else if (o.kind == WaitKind::kJob) {
                // The runner is the worker: every job completes without output.
                if (instances[static_cast<std::size_t>(idx)].open.count(o.id) != 0) {
                    apply(idx, CompleteJob{o.id, Json::object()});
                }
            }
        }
        for (const auto& s : fx.signals) {
            broadcast(s.name, s.variables, idx);  // the engine delivered it to `idx` itself
        }
        for (const auto& m : fx.messages) {
            correlate(m.name, m.variables);
        }
        Instance& now_inst = instances[static_cast<std::size_t>(idx)];
        if (now_inst.state.ended() && now_inst.parent >= 0) {
            int parent = now_inst.parent;
            WaitId pw = now_inst.parent_wait;
            now_inst.parent = -1;
            if (instances[static_cast<std::size_t>(parent)].open.count(pw) != 0) {
                if (fx.status == InstanceStatus::kCompleted) {
                    apply(parent, CompleteCall{pw, now_inst.state.variables});
                } else if (fx.status == InstanceStatus::kError) {
                    apply(parent, FailCall{pw, fx.uncaught_error ? fx.uncaught_error->code : "",
                                           "child failed"});
                }
            }
        }
        return true;
    }

    void broadcast(const std::string& name, const Json& vars, int except = -1) {
        for (std::size_t i = 0; i < instances.size(); ++i) {
            if (static_cast<int>(i) == except) {
                continue;
            }
            std::vector<WaitId> ids;
            for (const auto& [id, o] : instances[i].open) {
                if (o.kind == WaitKind::kSignal && o.signal_name == name) {
                    ids.push_back(id);
                }
            }
            for (auto id : ids) {
                if (instances[i].open.count(id) != 0) {
                    apply(static_cast<int>(i), Signal{id, vars});
                }
            }
        }
    }

    bool correlate(const std::string& name, const Json& vars) {
        for (std::size_t i = 0; i < instances.size(); ++i) {
            for (const auto& [id, o] : instances[i].open) {
                if (o.kind == WaitKind::kMessage && o.message_name == name) {
                    WaitId wid = id;
                    apply(static_cast<int>(i), CorrelateMessage{wid, vars});
                    return true;
                }
            }
        }
        return false;
    }

    /// Fires every timer due up to `until`, in due order, moving the clock along.
    void run_timers(TimePoint until) {
        for (;;) {
            int best_inst = -1;
            WaitId best = 0;
            TimePoint due{};
            for (std::size_t i = 0; i < instances.size(); ++i) {
                for (const auto& [id, o] : instances[i].open) {
                    if (o.kind == WaitKind::kTimer && o.due_at && *o.due_at <= until &&
                        (best_inst < 0 || *o.due_at < due)) {
                        best_inst = static_cast<int>(i);
                        best = id;
                        due = *o.due_at;
                    }
                }
            }
            if (best_inst < 0) {
                break;
            }
            now = std::max(now, due);
            if (!apply(best_inst, FireTimer{best})) {
                fail("timer did not fire: " + last_error);
                return;
            }
        }
        now = std::max(now, until);
    }

    void fail(const std::string& why) {
        if (failure.empty()) {
            failure = why;
        }
    }

    std::string last_error;

  private:
    std::map<std::string, std::shared_ptr<const CompiledProcess>> processes_;
    bool roundtrip_;
    EngineLimits limits_;
    int commands_ = 0;
};

/// Checks one `expect` step against instance `idx`; returns the first mismatch or "".
std::string check(World& w, int idx, const Json& expect) {
    if (idx < 0) {
        // The start was refused: only an expected ERROR passes (see the corpus notes).
        if (expect.contains("status") && expect["status"] == "ERROR") {
            return {};
        }
        return "the instance did not start: " + w.last_error;
    }
    const Instance& inst = w.instances[static_cast<std::size_t>(idx)];
    const auto& cp = *inst.cp;
    Observed o;
    o.status = std::string(inst.state.api_status());
    for (const auto& [id, wait] : inst.open) {
        if (wait.kind == WaitKind::kUserTask) {
            o.open_tasks.push_back({wait.element_id, wait.name, wait.assignee});
        } else if (wait.kind == WaitKind::kTimer) {
            ++o.open_timers;
        }
    }
    for (auto e : inst.state.active_elements()) {
        o.active_elements.push_back(cp.element_id(e));
    }
    for (const auto& h : inst.history) {
        o.history.emplace_back(cp.element_id(h.element), std::string(to_string(h.event)));
    }
    o.variables = inst.state.variables;
    o.elapsed_s = static_cast<double>(to_epoch_ms(w.now) - to_epoch_ms(w.run_started)) / 1000.0;
    return check_expect(expect, o);
}

/// Everything observable at the end of a run, to compare the straight and round-trip runs.
std::string outcome(const World& w) {
    Json out = Json::array();
    for (const auto& inst : w.instances) {
        Json h = Json::array();
        for (const auto& e : inst.history) {
            h.push_back(inst.cp->element_id(e.element) + ":" + std::string(to_string(e.event)));
        }
        out.push_back(
            {inst.key, inst.state.api_status(), inst.state.variables, h, inst.open.size()});
    }
    return out.dump();
}

struct CaseResult {
    std::vector<std::string> failures;
    std::vector<std::string> outcomes;
};

CaseResult run_case(const Json& c, bool roundtrip) {
    CaseResult result;
    std::map<std::string, std::shared_ptr<const CompiledProcess>> processes;
    for (const auto& f : c["files"]) {
        auto parsed = bpmn::parse(read_file(corpus_dir() / f.get<std::string>()));
        if (!parsed) {
            std::string why = f.get<std::string>() + " does not parse:";
            for (const auto& d : parsed.error()) {
                why += " " + d.element_id + ": " + d.message + ";";
            }
            result.failures.push_back(why);
            return result;
        }
        for (const auto& p : parsed.value().definitions.processes) {
            auto compiled = compile(parsed.value().definitions, p.id);
            if (compiled) {
                processes[p.id] = compiled.value();
            } else if (p.id == c["process_key"]) {
                std::string why = "process " + p.id + " does not compile:";
                for (const auto& d : compiled.error()) {
                    why += " " + d.element_id + ": " + d.message + ";";
                }
                result.failures.push_back(why);
                return result;
            }
        }
    }
    for_each_run(c, [&](const Json& run, const std::string& key, const Json& vars,
                        const std::string& prefix) {
        World w(processes, roundtrip);
        int main_idx = w.start(key, vars);
        w.aliases["main"] = main_idx;
        for (const auto& step : run["steps"]) {
            if (!w.failure.empty()) {
                break;
            }
            if (step.contains("expect")) {
                const auto& ex = step["expect"];
                int idx = main_idx;
                if (ex.contains("instance")) {
                    idx = w.aliases.count(ex["instance"]) != 0 ? w.aliases[ex["instance"]] : -1;
                }
                auto why = check(w, idx, ex);
                if (!why.empty()) {
                    w.fail(why + " (at " + ex.dump() + ")");
                }
            } else if (step.contains("complete_task")) {
                const auto& ct = step["complete_task"];
                const std::string element = ct.value("element_id", "");
                const std::string pkey = ct.value("process_key", "");
                bool done = false;
                for (std::size_t i = 0; i < w.instances.size() && !done; ++i) {
                    auto& inst = w.instances[i];
                    if (pkey.empty() ? static_cast<int>(i) != main_idx : inst.key != pkey) {
                        continue;
                    }
                    for (const auto& [id, o] : inst.open) {
                        if (o.kind == WaitKind::kUserTask && o.element_id == element) {
                            WaitId wid = id;
                            if (!w.apply(
                                    static_cast<int>(i),
                                    CompleteTask{wid, ct.value("variables", Json::object())})) {
                                w.fail("completing " + element + ": " + w.last_error);
                            }
                            done = true;
                            break;
                        }
                    }
                }
                if (!done) {
                    w.fail("no open task " + element);
                }
            } else if (step.contains("message")) {
                const auto name = step["message"]["name"].get<std::string>();
                if (!w.correlate(name, step["message"].value("variables", Json::object()))) {
                    w.fail("message " + name + " not correlated");
                }
            } else if (step.contains("signal")) {
                w.broadcast(step["signal"]["name"].get<std::string>(), Json::object());
            } else if (step.contains("advance_clock")) {
                auto spec = bpmn::TimerSpec::parse(bpmn::TimerKind::kDuration,
                                                   step["advance_clock"].get<std::string>());
                if (!spec) {
                    w.fail("bad advance_clock");
                    break;
                }
                w.run_timers(*spec.value().first(w.now));
            } else if (step.contains("wait_timers")) {
                auto max_ms = static_cast<std::int64_t>(
                    step["wait_timers"].value("max_seconds", 5.0) * 1000.0);
                // Like a real wait: fire what falls due, stop once no timer is left.
                TimePoint limit = w.now + Millis(max_ms);
                w.run_timers(TimePoint{});
                for (;;) {
                    std::optional<TimePoint> next;
                    for (const auto& inst : w.instances) {
                        for (const auto& [id, o] : inst.open) {
                            if (o.kind == WaitKind::kTimer && o.due_at && *o.due_at <= limit &&
                                (!next || *o.due_at < *next)) {
                                next = *o.due_at;
                            }
                        }
                    }
                    if (!next || !w.failure.empty()) {
                        break;
                    }
                    w.run_timers(*next);
                }
            } else if (step.contains("start_process")) {
                const auto& sp = step["start_process"];
                int idx =
                    w.start(sp["key"].get<std::string>(), sp.value("variables", Json::object()));
                w.aliases[sp.value("as", sp["key"].get<std::string>())] = idx;
            } else if (step.contains("set_variables")) {
                if (main_idx < 0 || !w.apply(main_idx, SetVariables{step["set_variables"]})) {
                    w.fail("set_variables: " + w.last_error);
                }
            } else {
                w.fail("unknown step " + step.dump());
            }
        }
        if (!w.failure.empty()) {
            result.failures.push_back(prefix + w.failure);
        }
        result.outcomes.push_back(outcome(w));
        if (std::getenv("PYTHMATA_CONFORMANCE_TRACE") != nullptr) {
            std::cout << c["id"].get<std::string>() << " " << prefix << result.outcomes.back()
                      << "\n";
        }
    });
    return result;
}

class Corpus : public ::testing::TestWithParam<std::string> {};

TEST_P(Corpus, CasePassesStraightAndWithStateRestoredAtEveryWait) {
    const Json c = find_case(GetParam());
    ASSERT_TRUE(c.is_object()) << "case " << GetParam() << " vanished from cases.json";
    const std::string id = GetParam();
    if (auto reason = case_skip_reason(c)) {
        // Listed in docs/bpmn.md ("Engine-specific corpus cases") with this reason.
        GTEST_SKIP() << "engine-specific (cases.json): " << *reason;
    }
    auto straight = run_case(c, false);
    auto restored = run_case(c, true);
    for (const auto& f : straight.failures) {
        ADD_FAILURE() << id << ": " << f;
    }
    for (const auto& f : restored.failures) {
        ADD_FAILURE() << id << " (state restored at every wait): " << f;
    }
    EXPECT_EQ(straight.outcomes, restored.outcomes)
        << "serialising and restoring the state changed the outcome";
}

INSTANTIATE_TEST_SUITE_P(Public, Corpus, ::testing::ValuesIn(case_ids()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Corpus);

TEST(CorpusManifest, EveryManifestFileParsesAndHoldsItsProcess) {
    auto path = corpus_dir() / "manifest.jsonl";
    if (!fs::exists(path)) {
        GTEST_SKIP() << "BPMN corpus not found at " << corpus_dir()
                     << " (set PYTHMATA_BPMN_CORPUS); conformance cases skipped";
    }
    std::ifstream in(path);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        if (line.empty()) {
            continue;
        }
        Json m = Json::parse(line);
        ++n;
        auto parsed = bpmn::parse(read_file(corpus_dir() / m["file"].get<std::string>()));
        ASSERT_TRUE(parsed.ok()) << m["file"];
        bool found = false;
        for (const auto& p : parsed.value().definitions.processes) {
            found = found || p.id == m["process_id"];
        }
        EXPECT_TRUE(found) << m["file"] << " lacks process " << m["process_id"];
    }
    EXPECT_GT(n, 0);
    EXPECT_FALSE(load_cases().empty()) << "cases.json missing or empty";
}

}  // namespace
}  // namespace pythmata::engine::conformance
