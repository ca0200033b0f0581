// REST conformance runner: every case of the external BPMN corpus (bpmn-corpus/public/cases.json)
// driven through a real `pythmata serve` (SQLite, clock control on, full history) and ONLY over
// HTTP per API.md: deploy (POST /processes), start (POST /processes/{key}/instances), complete
// tasks (GET /tasks, POST /tasks/{id}/complete), messages (POST /messages), signals
// (POST /signals), the clock (POST /clock/advance), external jobs (POST /jobs/activate and
// /jobs/{id}/complete), and the expectations checked on GET /instances/{id}, /tasks, /variables,
// /activities, /timers and /clock. Same pass list as the in-process runner: the skip list is
// corpus.hpp's (cases and runs marked engine_specific in cases.json).
//
// Where the REST runner necessarily differs from the in-process one:
// - The server plays the app's part itself (call activities, thrown messages and signals, the
//   delivery of a child's end to its parent). These deliveries are asynchronous (the outbox), so
//   after every action the runner waits until the server is quiet (GET /stats unchanged over
//   several polls, no queued command) and then retries each `expect` for a bounded time.
// - Timers also fire on the server's own scheduler in real time (the clock is the wall clock
//   plus the offset POST /clock/advance adds; the API has no way to stop it). A case whose timer
//   is due a fraction of a second after the start (spiff.timer-non-interrupt-boundary: 0.2 s)
//   checks its "before the timer" expectation within that real time.
// - `advance_clock` and `wait_timers` move the server clock to each due timer in due order
//   (one POST /clock/advance per timer, as the in-process runner moves its virtual clock), and
//   `elapsed_s` of an ended instance is its ended_at - created_at (server clock); of a running
//   one, the server clock since the run began (GET /clock, read when the expect step begins),
//   which includes the real time the HTTP calls took.
// - Tasks are completed oldest first like the in-process runner's first open wait, judged by
//   created_at (millisecond resolution; /tasks has no sort parameter).
// - The in-process runner completes every job as soon as it opens. The API has no "list jobs";
//   the runner activates the job types the case's models name (zeebe:taskDefinition type,
//   camunda:topic, pythmata taskName, the element id of a service/send/business-rule task),
//   whenever GET /stats counts pending jobs, and completes them without output.
// - Runs of one case share one server (the case's documents deployed once); before each run,
//   the instances left running by the previous run are cancelled (DELETE /instances/{id}) so that
//   its subscriptions catch none of the next run's messages and signals.
// - The straight-versus-restored comparison of the in-process runner has no REST counterpart.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "corpus.hpp"
#include "http_client.hpp"
#include "pythmata/bpmn/timer_spec.hpp"
#include "pythmata/common/time.hpp"
#include "server_process.hpp"

namespace pythmata::conformance::rest {
namespace {

using Json = nlohmann::json;
using test::HttpClient;
using test::HttpResponse;
using test::ServerProcess;
using namespace std::chrono_literals;

/// Bound on the wait for the server to become quiet after an action.
constexpr auto kSettleBound = 10s;
/// Pause between the GET /stats polls of a settle (three equal polls in a row: quiet).
constexpr auto kSettlePoll = 10ms;
/// Bound on the retries of one `expect` step.
constexpr auto kExpectBound = 3s;
/// Page size for every list the runner reads (API.md's maximum).
constexpr int kPageSize = 1000;
/// Bound on the clock steps one advance_clock / wait_timers may take.
constexpr int kMaxClockSteps = 1000;

std::string api(const std::string& path) {
    return "/api/v1" + path;
}

std::string url_encode(const std::string& s) {
    std::string out;
    for (unsigned char ch : s) {
        if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out.push_back(static_cast<char>(ch));
        } else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", ch);
            out += buf;
        }
    }
    return out;
}

/// "PT<s>.<ms>S" for a positive number of milliseconds.
std::string iso_millis(std::int64_t ms) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "PT%lld.%03lldS", static_cast<long long>(ms / 1000),
                  static_cast<long long>(ms % 1000));
    return buf;
}

/// The external job types the case's models can open (see the header comment).
std::vector<std::string> job_types(const Json& c) {
    std::set<std::string> types;
    static const std::regex task_id(
        R"re(<(?:\w+:)?(?:serviceTask|sendTask|businessRuleTask)\b[^>]*?\sid="([^"]+)")re");
    static const std::regex definition(R"re(taskDefinition\b[^>]*?\stype="([^"]+)")re");
    static const std::regex topic(R"re(camunda:topic="([^"]+)")re");
    static const std::regex task_name(R"re(taskName="([^"]+)")re");
    for (const auto& f : c["files"]) {
        const std::string xml = read_text(corpus_dir() / f.get<std::string>());
        for (const auto* re : {&task_id, &definition, &topic, &task_name}) {
            for (std::sregex_iterator it(xml.begin(), xml.end(), *re), end; it != end; ++it) {
                types.insert((*it)[1].str());
            }
        }
    }
    types.erase("http");  // built-in services, run by the server itself
    types.erase("logger");
    return {types.begin(), types.end()};
}

/// One run of a case against the case's server.
class RestRun {
  public:
    RestRun(HttpClient& client, std::vector<std::string> types)
        : client_(client), job_types_(std::move(types)) {}

    std::string failure;
    std::string last_error;
    std::map<std::string, std::string> aliases;  // alias -> instance id ("" = start refused)

    void fail(const std::string& why) {
        if (failure.empty()) {
            failure = why;
        }
    }

    HttpResponse call(const std::string& method, const std::string& path,
                      const std::optional<Json>& body = std::nullopt) {
        auto r =
            body ? client_.send_json(method, api(path), *body) : client_.request(method, api(path));
        if (!r) {
            fail("HTTP " + method + " " + path + ": " + r.error().message);
            return {};
        }
        return std::move(r).value();
    }

    /// `data` of a 2xx answer, or a null value (with a failure) otherwise.
    Json data(const std::string& method, const std::string& path,
              const std::optional<Json>& body = std::nullopt) {
        auto r = call(method, path, body);
        if (r.status < 200 || r.status >= 300) {
            fail(method + " " + path + " answered " + r.describe());
            return Json();
        }
        return r.json().value("data", Json());
    }

    /// data.items of a list, checked to be complete (total within one page).
    Json items(const std::string& path) {
        Json d = data("GET", path);
        if (!d.is_object() || !d.contains("items")) {
            fail("GET " + path + " is not a list");
            return Json::array();
        }
        if (d.contains("total") &&
            d["total"].get<std::int64_t>() > static_cast<std::int64_t>(d["items"].size())) {
            fail("GET " + path + " holds more than one page");
        }
        return d["items"];
    }

    std::int64_t clock_ms() {
        Json d = data("GET", "/clock");
        auto t = d.is_object() ? parse_rfc3339(d.value("now", "")) : std::nullopt;
        if (!t) {
            fail("GET /clock has no RFC 3339 `now`: " + d.dump());
            return 0;
        }
        return to_epoch_ms(*t);
    }

    /// POST /clock/advance by `ms` (at least 1 ms: a due timer fires on any advance).
    void advance(std::int64_t ms) {
        data("POST", "/clock/advance",
             Json{{"duration", iso_millis(std::max<std::int64_t>(ms, 1))}});
    }

    /// Activates and completes (without output) every job of the case's types.
    bool complete_jobs() {
        bool any = false;
        for (const auto& type : job_types_) {
            Json got = data("POST", "/jobs/activate",
                            Json{{"type", type}, {"worker", "conformance"}, {"max_jobs", 100}});
            if (!got.is_object()) {
                continue;
            }
            for (const auto& job : got.value("items", Json::array())) {
                data("POST", "/jobs/" + job["id"].get<std::string>() + "/complete", Json::object());
                any = true;
            }
        }
        return any;
    }

    /// Waits until the server is quiet: GET /stats unchanged over three polls with nothing
    /// queued, completing external jobs on the way (the in-process runner's worker).
    void settle() {
        const auto deadline = std::chrono::steady_clock::now() + kSettleBound;
        std::string last;
        int same = 0;
        while (failure.empty()) {
            Json s = data("GET", "/stats");
            if (!s.is_object()) {
                return;
            }
            if (s.value("pending_jobs", 0) > 0 && complete_jobs()) {
                same = 0;
                continue;
            }
            Json snapshot = {s["instances"],
                             s["open_tasks"],
                             s["pending_jobs"],
                             s["pending_timers"],
                             s["open_incidents"],
                             s["replica"]["commands_processed"],
                             s["replica"]["queued_commands"]};
            const std::string now = snapshot.dump();
            const bool idle = s["replica"].value("queued_commands", 0) == 0;
            same = (now == last && idle) ? same + 1 : 0;
            last = now;
            if (same >= 3) {
                return;
            }
            if (std::chrono::steady_clock::now() > deadline) {
                fail("the server did not settle within the bound: " + now);
                return;
            }
            std::this_thread::sleep_for(kSettlePoll);
        }
    }

    /// POST /processes/{key}/instances; the instance id, or "" when the start was refused.
    std::string start(const std::string& key, const Json& vars) {
        auto r = call("POST", "/processes/" + url_encode(key) + "/instances",
                      Json{{"variables", vars.is_object() ? vars : Json::object()}});
        if (r.status != 201) {
            last_error = r.describe();
            return {};
        }
        return r.json()["data"].value("id", "");
    }

    /// The earliest due timer of any instance (server time, ms) at or before `limit`.
    std::optional<std::int64_t> earliest_timer(std::int64_t limit) {
        std::optional<std::int64_t> best;
        for (const auto& t : items("/timers")) {
            auto due = parse_rfc3339(t.value("due_at", ""));
            if (due && to_epoch_ms(*due) <= limit && (!best || to_epoch_ms(*due) < *best)) {
                best = to_epoch_ms(*due);
            }
        }
        return best;
    }

    /// Fires every timer due up to `until` in due order, moving the server clock to each.
    void run_timers(std::int64_t until) {
        for (int step = 0; step < kMaxClockSteps && failure.empty(); ++step) {
            settle();
            const std::int64_t now = clock_ms();
            auto due = earliest_timer(until);
            if (!due) {
                if (until > now) {
                    advance(until - now);
                    settle();
                }
                return;
            }
            advance(*due - now);
        }
        fail("timers kept falling due: more than " + std::to_string(kMaxClockSteps) + " steps");
    }

    void complete_task(const Json& ct, const std::string& main_id) {
        settle();
        const std::string element = ct.value("element_id", "");
        const std::string pkey = ct.value("process_key", "");
        // As in-process: without a process key only the main instance's tasks count.
        std::string query =
            "/tasks?page_size=" + std::to_string(kPageSize) + "&element_id=" + url_encode(element);
        query += pkey.empty() ? "&instance_id=" + url_encode(main_id)
                              : "&process_key=" + url_encode(pkey);
        if (pkey.empty() && main_id.empty()) {
            fail("no open task " + element + " (no main instance)");
            return;
        }
        Json tasks = items(query);
        if (tasks.empty()) {
            fail("no open task " + element);
            return;
        }
        // The oldest open task, as the in-process runner takes the first wait opened. The list
        // is newest first (API.md; /tasks has no sort): on equal created_at the later item.
        const Json* pick = &tasks[0];
        for (const auto& t : tasks) {
            if (t.value("created_at", "") <= pick->value("created_at", "")) {
                pick = &t;
            }
        }
        auto r = call("POST", "/tasks/" + (*pick)["id"].get<std::string>() + "/complete",
                      Json{{"variables", ct.value("variables", Json::object())}});
        if (r.status != 200) {
            fail("completing " + element + ": " + r.describe());
        }
    }

    /// The first mismatch of one `expect` step against instance `id`, or "".
    /// `elapsed_ms` is the server clock's time since the run started, read once when the step
    /// began (retries do not add to it).
    std::string check(const std::string& id, const Json& expect, std::int64_t elapsed_ms) {
        if (id.empty()) {
            // The start was refused: only an expected ERROR passes (as in-process).
            if (expect.contains("status") && expect["status"] == "ERROR") {
                return {};
            }
            return "the instance did not start: " + last_error;
        }
        Json inst = data("GET", "/instances/" + id);
        if (!inst.is_object()) {
            return "GET /instances/" + id + " failed";
        }
        // Only what the step asks for is fetched.
        auto wants = [&](std::initializer_list<const char*> keys) {
            return std::any_of(keys.begin(), keys.end(),
                               [&](const char* k) { return expect.contains(k); });
        };
        auto text = [](const Json& j, const char* key) {
            return j.contains(key) && j[key].is_string() ? j[key].get<std::string>()
                                                         : std::string();
        };
        Observed o;
        o.status = inst.value("status", "");
        if (wants({"open_tasks", "open_task_names", "open_task_assignees", "open_task_counts"})) {
            for (const auto& t :
                 items("/tasks?page_size=" + std::to_string(kPageSize) + "&instance_id=" + id)) {
                o.open_tasks.push_back(
                    {t.value("element_id", ""), text(t, "name"), text(t, "assignee")});
            }
        }
        if (wants({"timers"})) {
            o.open_timers = static_cast<int>(items("/timers?instance_id=" + id).size());
        }
        for (const auto& e : inst.value("active_elements", Json::array())) {
            o.active_elements.push_back(e.get<std::string>());
        }
        if (wants({"passed", "not_passed", "counts", "order"})) {
            // The history in the order it happened (API.md: /activities is in order).
            for (const auto& a :
                 items("/instances/" + id + "/activities?page_size=" + std::to_string(kPageSize))) {
                o.history.emplace_back(a.value("element_id", ""), a.value("event", ""));
            }
        }
        if (wants({"variables", "variables_absent"})) {
            o.variables = data("GET", "/instances/" + id + "/variables");
            if (!o.variables.is_object()) {
                return "GET /instances/" + id + "/variables is not an object";
            }
        }
        // `elapsed_s` on the server clock: an ended instance by its own timestamps (so the HTTP
        // calls made after it ended do not count), one still running since the run began.
        std::int64_t ms = elapsed_ms;
        const auto created = parse_rfc3339(inst.value("created_at", ""));
        const auto ended = parse_rfc3339(text(inst, "ended_at"));
        if (created && ended) {
            ms = to_epoch_ms(*ended) - to_epoch_ms(*created);
        }
        o.elapsed_s = static_cast<double>(ms) / 1000.0;
        return check_expect(expect, o);
    }

    /// Checks `expect`, retrying for a bounded time (deliveries are asynchronous).
    void expect_step(const std::string& id, const Json& expect, std::int64_t run_started) {
        settle();
        const std::int64_t elapsed_ms = clock_ms() - run_started;
        const auto deadline = std::chrono::steady_clock::now() + kExpectBound;
        for (;;) {
            std::string why = check(id, expect, elapsed_ms);
            if (why.empty() || !failure.empty()) {
                return;
            }
            if (std::chrono::steady_clock::now() > deadline) {
                fail(why + " (at " + expect.dump() + ")");
                return;
            }
            std::this_thread::sleep_for(50ms);
        }
    }

    /// Cancels every instance still running or suspended (the previous run's leftovers).
    void cancel_leftovers() {
        for (const char* status : {"RUNNING", "SUSPENDED"}) {
            for (const auto& inst : items("/instances?status=" + std::string(status) +
                                          "&page_size=" + std::to_string(kPageSize))) {
                auto r = call("DELETE", "/instances/" + inst["id"].get<std::string>());
                if (r.status != 200 && r.status != 404 && r.status != 409) {
                    fail("cancelling a leftover instance: " + r.describe());
                }
            }
        }
        settle();
    }

  private:
    HttpClient& client_;
    std::vector<std::string> job_types_;
};

/// Runs every run of case `c` on the server behind `client`; the failures.
std::vector<std::string> run_case(const Json& c, HttpClient& client) {
    std::vector<std::string> failures;
    for (const auto& f : c["files"]) {
        const std::string file = f.get<std::string>();
        auto r = client.send_xml("POST", api("/processes"), read_text(corpus_dir() / file));
        if (!r) {
            failures.push_back("deploying " + file + ": " + r.error().message);
            return failures;
        }
        if (r.value().status != 201 && r.value().status != 200) {
            failures.push_back(file + " does not deploy: " + r.value().describe());
            return failures;
        }
    }
    const auto types = job_types(c);
    for_each_run(c, [&](const Json& run, const std::string& key, const Json& vars,
                        const std::string& prefix) {
        RestRun w(client, types);
        w.cancel_leftovers();
        const std::int64_t run_started = w.clock_ms();
        const std::string main_id = w.start(key, vars);
        w.aliases["main"] = main_id;
        for (const auto& step : run["steps"]) {
            if (!w.failure.empty()) {
                break;
            }
            if (step.contains("expect")) {
                const auto& ex = step["expect"];
                std::string id = main_id;
                if (ex.contains("instance")) {
                    auto it = w.aliases.find(ex["instance"].get<std::string>());
                    id = it == w.aliases.end() ? std::string() : it->second;
                }
                w.expect_step(id, ex, run_started);
            } else if (step.contains("complete_task")) {
                w.complete_task(step["complete_task"], main_id);
            } else if (step.contains("message")) {
                w.settle();
                const auto name = step["message"]["name"].get<std::string>();
                auto r =
                    w.call("POST", "/messages",
                           Json{{"name", name},
                                {"variables", step["message"].value("variables", Json::object())}});
                if (r.status == 404) {
                    w.fail("message " + name + " not correlated: " + r.describe());
                } else if (r.status != 200) {
                    w.fail("message " + name + ": " + r.describe());
                }
            } else if (step.contains("signal")) {
                w.settle();
                w.data("POST", "/signals",
                       Json{{"name", step["signal"]["name"].get<std::string>()}});
            } else if (step.contains("advance_clock")) {
                auto spec = bpmn::TimerSpec::parse(bpmn::TimerKind::kDuration,
                                                   step["advance_clock"].get<std::string>());
                if (!spec) {
                    w.fail("bad advance_clock");
                    break;
                }
                w.settle();
                const std::int64_t now = w.clock_ms();
                auto until = spec.value().first(from_epoch_ms(now));
                if (!until) {
                    w.fail("bad advance_clock");
                    break;
                }
                w.run_timers(to_epoch_ms(*until));
            } else if (step.contains("wait_timers")) {
                // Like a real wait: fire what falls due within max_seconds, stop once no timer
                // is left in that window. The clock moves to each due time instead of sleeping.
                const auto max_ms = static_cast<std::int64_t>(
                    step["wait_timers"].value("max_seconds", 5.0) * 1000.0);
                w.settle();
                const std::int64_t limit = w.clock_ms() + max_ms;
                for (int i = 0;; ++i) {
                    if (i == kMaxClockSteps) {
                        w.fail("wait_timers: timers kept falling due");
                    }
                    if (!w.failure.empty()) {
                        break;
                    }
                    auto due = w.earliest_timer(limit);
                    if (!due) {
                        break;
                    }
                    w.advance(*due - w.clock_ms());
                    w.settle();
                }
            } else if (step.contains("start_process")) {
                w.settle();
                const auto& sp = step["start_process"];
                const std::string id =
                    w.start(sp["key"].get<std::string>(), sp.value("variables", Json::object()));
                w.aliases[sp.value("as", sp["key"].get<std::string>())] = id;
            } else if (step.contains("set_variables")) {
                w.settle();
                auto r = main_id.empty() ? HttpResponse{}
                                         : w.call("PATCH", "/instances/" + main_id + "/variables",
                                                  step["set_variables"]);
                if (r.status != 200) {
                    w.fail("set_variables: " + (main_id.empty() ? w.last_error : r.describe()));
                }
            } else {
                w.fail("unknown step " + step.dump());
            }
        }
        if (!w.failure.empty()) {
            failures.push_back(prefix + w.failure);
        }
    });
    return failures;
}

class RestCorpus : public ::testing::TestWithParam<std::string> {};

TEST_P(RestCorpus, CasePassesThroughTheRestApi) {
    const Json c = find_case(GetParam());
    ASSERT_TRUE(c.is_object()) << "case " << GetParam() << " vanished from cases.json";
    if (auto reason = case_skip_reason(c)) {
        // The same skip list as the in-process runner (corpus.hpp).
        GTEST_SKIP() << "engine-specific (cases.json): " << *reason;
    }
    ServerProcess::Options options;
    options.env = {
        {"PYTHMATA_CLOCK_CONTROL", "true"},
        {"PYTHMATA_HISTORY_LEVEL", "full"},
        {"PYTHMATA_LOG_LEVEL", "warn"},
    };
    auto started = ServerProcess::start(options);
    ASSERT_TRUE(started.ok()) << started.error().message;
    auto server = std::move(started).value();
    HttpClient client(server->port(), std::chrono::seconds(30));
    for (const auto& f : run_case(c, client)) {
        ADD_FAILURE() << GetParam() << ": " << f;
    }
    if (HasFailure()) {
        std::cerr << "server stderr:\n" << server->stderr_tail(4000) << "\n";
    }
    auto stopped = server->terminate(std::chrono::seconds(20));
    EXPECT_TRUE(stopped.ok()) << (stopped ? "" : stopped.error().message);
}

INSTANTIATE_TEST_SUITE_P(Public, RestCorpus, ::testing::ValuesIn(case_ids()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RestCorpus);

}  // namespace
}  // namespace pythmata::conformance::rest
