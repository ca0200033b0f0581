#pragma once

// The external BPMN corpus (bpmn-corpus/public: cases.json, manifest.jsonl and the models) as
// both conformance runners read it: the in-process runner (engine_conformance_test.cpp) and the
// REST runner (rest_conformance_test.cpp). The skip list lives here, once: a case or a run is
// skipped when cases.json marks it `engine_specific` (with the reason, listed in docs/bpmn.md
// under "Engine-specific corpus cases"), so both runners have the same pass list.

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace pythmata::conformance {

/// The corpus directory: PYTHMATA_BPMN_CORPUS at run time, else <shared>/bpmn-corpus/public
/// (PYTHMATA_SHARED_DIR is a compile definition of both runners).
inline std::filesystem::path corpus_dir() {
    if (const char* env = std::getenv("PYTHMATA_BPMN_CORPUS")) {
        return env;
    }
    return std::filesystem::path(PYTHMATA_SHARED_DIR) / "bpmn-corpus" / "public";
}

/// The whole file as bytes; empty when it cannot be read.
inline std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// Every case of cases.json (empty when the corpus is absent or the file is not a JSON array).
inline std::vector<nlohmann::json> load_cases() {
    std::vector<nlohmann::json> out;
    auto path = corpus_dir() / "cases.json";
    if (!std::filesystem::exists(path)) {
        return out;
    }
    nlohmann::json all = nlohmann::json::parse(read_text(path), nullptr, false);
    if (all.is_array()) {
        for (auto& c : all) {
            out.push_back(c);
        }
    }
    return out;
}

/// Case ids (the test parameters); the case itself is looked up by id.
inline std::vector<std::string> case_ids() {
    std::vector<std::string> ids;
    for (const auto& c : load_cases()) {
        ids.push_back(c["id"].get<std::string>());
    }
    return ids;
}

/// The case with this id, or a discarded/null value when there is none.
inline nlohmann::json find_case(const std::string& id) {
    for (auto& c : load_cases()) {
        if (c["id"] == id) {
            return c;
        }
    }
    return nlohmann::json();
}

/// Why a whole case is skipped (its `engine_specific` reason), or nullopt when it runs.
inline std::optional<std::string> case_skip_reason(const nlohmann::json& c) {
    if (c.contains("engine_specific") && !c["engine_specific"].is_null()) {
        const auto& why = c["engine_specific"];
        return why.is_string() ? why.get<std::string>() : why.dump();
    }
    return std::nullopt;
}

/// Whether one run of a case is skipped (marked `engine_specific` in cases.json).
inline bool run_skipped(const nlohmann::json& run) {
    return run.contains("engine_specific") && !run["engine_specific"].is_null();
}

/// Calls `body(run, process_key, start_variables, prefix)` for every run of case `c` that is not
/// skipped (skipped runs are listed in docs/bpmn.md with the reason given in cases.json); `prefix`
/// ("run N: ") numbers the runs as cases.json lists them, skipped ones included.
template <typename Body>
void for_each_run(const nlohmann::json& c, Body&& body) {
    int run_no = 0;
    for (const auto& run : c["runs"]) {
        ++run_no;
        if (run_skipped(run)) {
            continue;
        }
        const std::string key = run.value("process_key", c["process_key"].get<std::string>());
        const nlohmann::json variables =
            run.contains("start") ? run["start"].value("variables", nlohmann::json::object())
                                  : nlohmann::json::object();
        body(run, key, variables, "run " + std::to_string(run_no) + ": ");
    }
}

/// A gtest-safe test name for a case id (every non-alphanumeric character becomes '_').
inline std::string case_name(const ::testing::TestParamInfo<std::string>& info) {
    std::string n = info.param;
    for (auto& ch : n) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) {
            ch = '_';
        }
    }
    return n;
}

/// What a runner observed of one instance when an `expect` step is checked: the in-process runner
/// reads it from the engine's state, the REST runner from the API. A runner may leave out what
/// the step does not ask for (the REST runner fetches only what `expect` names).
struct Observed {
    struct Task {
        std::string element_id, name, assignee;
    };
    std::string status;
    std::vector<Task> open_tasks;
    int open_timers = 0;
    std::vector<std::string> active_elements;
    /// The history in the order it happened: (element id, API event: STARTED, COMPLETED, ...).
    std::vector<std::pair<std::string, std::string>> history;
    nlohmann::json variables = nlohmann::json::object();
    double elapsed_s = 0;
};

inline std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

inline std::string join(const std::vector<std::string>& v) {
    std::string s = "[";
    for (const auto& x : v) {
        s += (s.size() > 1 ? ", " : "") + x;
    }
    return s + "]";
}

/// The first mismatch between one `expect` step of cases.json and what was observed, or "" when
/// every key of the step holds. The one place both runners judge a step, so that their pass lists
/// mean the same. (`instance` and the refused-start case are the runners' own.)
inline std::string check_expect(const nlohmann::json& expect, const Observed& o) {
    auto list = [&](const char* key) {
        std::vector<std::string> v;
        for (const auto& x : expect[key]) {
            v.push_back(x.get<std::string>());
        }
        return v;
    };
    auto events = [&](const std::string& element, const std::string& event) {
        int n = 0;
        for (const auto& [e, ev] : o.history) {
            n += (e == element && ev == event) ? 1 : 0;
        }
        return n;
    };
    if (expect.contains("status") && expect["status"].get<std::string>() != o.status) {
        return "status " + o.status + ", expected " + expect["status"].get<std::string>();
    }
    std::vector<std::string> tasks, names, assignees;
    std::map<std::string, int> task_counts;
    for (const auto& t : o.open_tasks) {
        if (std::find(tasks.begin(), tasks.end(), t.element_id) == tasks.end()) {
            tasks.push_back(t.element_id);
        }
        names.push_back(t.name);
        assignees.push_back(t.assignee);
        task_counts[t.element_id]++;
    }
    if (expect.contains("open_tasks") && sorted(list("open_tasks")) != sorted(tasks)) {
        return "open tasks " + join(sorted(tasks)) + ", expected " + join(list("open_tasks"));
    }
    if (expect.contains("open_task_names") && sorted(list("open_task_names")) != sorted(names)) {
        return "open task names " + join(sorted(names)) + ", expected " +
               join(list("open_task_names"));
    }
    if (expect.contains("open_task_assignees") &&
        sorted(list("open_task_assignees")) != sorted(assignees)) {
        return "assignees " + join(sorted(assignees)) + ", expected " +
               join(list("open_task_assignees"));
    }
    if (expect.contains("open_task_counts")) {
        for (const auto& [k, v] : expect["open_task_counts"].items()) {
            if (task_counts[k] != v.get<int>()) {
                return "open task count of " + k + " is " + std::to_string(task_counts[k]) +
                       ", expected " + v.dump();
            }
        }
    }
    if (expect.contains("timers") && expect["timers"].get<int>() != o.open_timers) {
        return "open timers " + std::to_string(o.open_timers) + ", expected " +
               expect["timers"].dump();
    }
    const auto& active = o.active_elements;
    if (expect.contains("active_elements")) {
        auto want = list("active_elements");
        if (std::set<std::string>(active.begin(), active.end()) !=
            std::set<std::string>(want.begin(), want.end())) {
            return "active elements " + join(active) + ", expected " + join(want);
        }
    }
    if (expect.contains("active_includes")) {
        for (const auto& e : list("active_includes")) {
            if (std::find(active.begin(), active.end(), e) == active.end()) {
                return "active elements " + join(active) + " lack " + e;
            }
        }
    }
    if (expect.contains("passed")) {
        for (const auto& e : list("passed")) {
            if (events(e, "STARTED") == 0) {
                return "element " + e + " was not passed";
            }
        }
    }
    if (expect.contains("not_passed")) {
        // An element that was entered but cancelled (an interrupted task or subprocess) did not
        // "pass": only completions count.
        for (const auto& e : list("not_passed")) {
            if (events(e, "COMPLETED") > 0) {
                return "element " + e + " was passed";
            }
        }
    }
    if (expect.contains("counts")) {
        for (const auto& [k, v] : expect["counts"].items()) {
            const int n = events(k, "COMPLETED");
            if (n != v.get<int>()) {
                return "element " + k + " completed " + std::to_string(n) + " times, expected " +
                       v.dump();
            }
        }
    }
    if (expect.contains("order")) {
        std::size_t pos = 0;
        for (const auto& e : list("order")) {
            while (pos < o.history.size() && o.history[pos].first != e) {
                ++pos;
            }
            if (pos == o.history.size()) {
                return "elements not passed in order " + join(list("order"));
            }
        }
    }
    if (expect.contains("variables")) {
        for (const auto& [k, v] : expect["variables"].items()) {
            if (!o.variables.contains(k) || o.variables[k] != v) {
                return "variable " + k + " is " +
                       (o.variables.contains(k) ? o.variables[k].dump()
                                                : std::string("undefined")) +
                       ", expected " + v.dump();
            }
        }
    }
    if (expect.contains("variables_absent")) {
        for (const auto& k : list("variables_absent")) {
            if (o.variables.contains(k)) {
                return "variable " + k + " should be absent";
            }
        }
    }
    if (expect.contains("elapsed_s")) {
        if (o.elapsed_s < expect["elapsed_s"].value("min", 0.0) ||
            o.elapsed_s > expect["elapsed_s"].value("max", 1e9)) {
            return "elapsed " + std::to_string(o.elapsed_s) + " s outside " +
                   expect["elapsed_s"].dump();
        }
    }
    return {};
}

}  // namespace pythmata::conformance
