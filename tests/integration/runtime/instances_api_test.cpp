// API.md "Instances" and "User tasks" through the real `pythmata serve` on loopback, on SQLite
// and on PostgreSQL with Redis: start, list, get, cancel, suspend/resume, variables, tokens,
// activities, tasks, Idempotency-Key and stats.
#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "runtime_models.hpp"
#include "runtime_test_support.hpp"

namespace pythmata::test::runtime {
namespace {

using namespace std::chrono_literals;

class InstancesApi : public RuntimeServerTest {};

/// The element ids of `activities` whose event is `event`, in order.
std::vector<std::string> elements_with(const json& activities, const std::string& event) {
    std::vector<std::string> out;
    for (const auto& a : activities) {
        if (a.value("event", "") == event) {
            out.push_back(a.value("element_id", ""));
        }
    }
    return out;
}

/// Position of the first activity (element, event), or -1.
long position(const json& activities, const std::string& element, const std::string& event) {
    for (std::size_t i = 0; i < activities.size(); ++i) {
        if (activities[i].value("element_id", "") == element &&
            activities[i].value("event", "") == event) {
            return static_cast<long>(i);
        }
    }
    return -1;
}

TEST_P(InstancesApi, AStraightThroughProcessAnswersCompletedWithItsFinalVariables) {
    deploy(models::scripts("Scripts"));
    const auto response = post("/processes/Scripts/instances", {{"variables", {{"amount", 7}}}});
    ASSERT_TRUE(is_data(response, 201));
    const json data = response.json()["data"];
    EXPECT_EQ(data["status"], "COMPLETED") << data.dump();
    EXPECT_EQ(data["variables"]["amount"], 7);
    EXPECT_EQ(data["variables"]["doubled"], 14) << "the Lua script task ran";
    EXPECT_EQ(data["variables"]["lua_ran"], true);
    EXPECT_EQ(data["variables"]["plus_one"], 15) << "the Python script task ran after it";
    EXPECT_EQ(data["variables"]["python_ran"], true);
    EXPECT_EQ(data["process_key"], "Scripts");
    EXPECT_EQ(data["process_version"], 1);
    EXPECT_TRUE(data["active_elements"].is_array() && data["active_elements"].empty());
    EXPECT_EQ(data["incidents"], 0);
    ASSERT_TRUE(data["id"].is_string());
    EXPECT_TRUE(is_uuid(data["id"].get<std::string>()));
    EXPECT_TRUE(is_uuid(data.value("definition_id", "")));
    EXPECT_TRUE(data["business_key"].is_null());
    EXPECT_TRUE(is_rfc3339_utc(data.value("created_at", "")));
    EXPECT_TRUE(is_rfc3339_utc(data.value("updated_at", "")));
    EXPECT_TRUE(is_rfc3339_utc(data.value("ended_at", ""))) << "a completed instance has ended_at";
    const std::string id = data["id"];

    const json fetched = instance(id);
    EXPECT_EQ(fetched["status"], "COMPLETED");
    EXPECT_EQ(fetched["variables"], data["variables"]);

    const auto history = get("/instances/" + id + "/activities");
    ASSERT_TRUE(is_page(history));
    const json activities = history.json()["data"]["items"];
    const std::vector<std::string> started = elements_with(activities, "STARTED");
    const std::vector<std::string> expected = {"start", "lua_step", "python_step", "end"};
    EXPECT_EQ(started, expected) << activities.dump();
    EXPECT_LT(position(activities, "lua_step", "STARTED"),
              position(activities, "lua_step", "COMPLETED"));
    EXPECT_LT(position(activities, "lua_step", "COMPLETED"),
              position(activities, "python_step", "STARTED"));
    for (const auto& a : activities) {
        EXPECT_TRUE(is_rfc3339_utc(a.value("at", ""))) << a.dump();
        EXPECT_TRUE(a.contains("element_type") && a.contains("name")) << a.dump();
    }
    const long lua = position(activities, "lua_step", "STARTED");
    ASSERT_GE(lua, 0);
    EXPECT_EQ(activities[lua]["element_type"], "scriptTask");
    EXPECT_EQ(activities[lua]["name"], "Lua step");
}

TEST_P(InstancesApi, StartsTheLatestOrAGivenVersionWithBusinessKeyAndVariables) {
    deploy(models::user_task("Versioned", "review_v1", "one"));
    deploy(models::user_task("Versioned", "review_v2", "two"));

    const auto latest = post("/processes/Versioned/instances",
                             {{"business_key", "order-17"}, {"variables", {{"amount", 250}}}});
    ASSERT_TRUE(is_data(latest, 201));
    const json a = latest.json()["data"];
    EXPECT_EQ(a["status"], "RUNNING");
    EXPECT_EQ(a["process_version"], 2);
    EXPECT_EQ(a["active_elements"], json::array({"review_v2"}));
    EXPECT_EQ(a["business_key"], "order-17");
    EXPECT_EQ(a["variables"], json({{"amount", 250}}));
    EXPECT_TRUE(a["ended_at"].is_null());
    EXPECT_EQ(latest.header("Location").value_or(""), "/api/v1/instances/" + a.value("id", "?"));

    const json b = start("Versioned", {{"version", 1}});
    EXPECT_EQ(b["process_version"], 1);
    EXPECT_EQ(b["active_elements"], json::array({"review_v1"}));
    EXPECT_EQ(b["variables"], json::object());

    // An empty body starts the latest version with no variables.
    const auto bare = call(client_->request("POST", api("/processes/Versioned/instances"), "", {}));
    ASSERT_TRUE(is_data(bare, 201));
    EXPECT_EQ(bare.json()["data"]["process_version"], 2);

    const auto missing = post("/processes/Versioned/instances", {{"version", 3}});
    EXPECT_EQ(missing.status, 404) << missing.describe();
    EXPECT_TRUE(is_error(missing, 404, "PROCESS_VERSION_NOT_FOUND") ||
                is_error(missing, 404, "PROCESS_NOT_FOUND"))
        << missing.describe();
}

TEST_P(InstancesApi, BadStartRequestsAreRefusedAndLeaveNoInstance) {
    deploy(models::user_task("Order"));
    EXPECT_TRUE(is_error(post("/processes/NoSuchProcess/instances", json::object()), 404,
                         "PROCESS_NOT_FOUND"));
    EXPECT_TRUE(is_error(post("/processes/Order/instances", {{"variables", json::array({1, 2})}}),
                         400, "INVALID_ARGUMENT"));
    EXPECT_TRUE(is_error(post("/processes/Order/instances", {{"variables", "amount=1"}}), 400,
                         "INVALID_ARGUMENT"));
    EXPECT_TRUE(
        is_error(post("/processes/Order/instances", {{"variables", 5}}), 400, "INVALID_ARGUMENT"));
    EXPECT_TRUE(is_error(post("/processes/Order/instances", {{"version", "latest"}}), 400,
                         "INVALID_ARGUMENT"));
    EXPECT_TRUE(is_error(post("/processes/Order/instances", {{"business_key", 12}}), 400,
                         "INVALID_ARGUMENT"));
    EXPECT_TRUE(
        is_error(post("/processes/Order/instances", json::array()), 400, "INVALID_ARGUMENT") ||
        is_error(post("/processes/Order/instances", json::array()), 400, "INVALID_JSON"));
    EXPECT_TRUE(
        is_error(post_raw("/processes/Order/instances", "{\"variables\": {"), 400, "INVALID_JSON"));

    // One variable over max_variable_size (the suite runs with 64 KiB; the default is 1 MiB).
    const std::string big(kMaxVariableSize + 1024, 'x');
    EXPECT_TRUE(
        is_error(post("/processes/Order/instances", {{"variables", {{"small", 1}, {"blob", big}}}}),
                 413, "VARIABLE_TOO_LARGE"));

    const auto list = get("/instances");
    ASSERT_TRUE(is_page(list));
    EXPECT_EQ(list.json()["data"]["total"], 0)
        << "a failed start left an instance behind: " << list.describe();
    EXPECT_EQ(get("/tasks").json()["data"]["total"], 0);
}

TEST_P(InstancesApi, ListsInstancesWithFiltersAndPagingNewestFirst) {
    deploy(models::user_task("Order"));
    deploy(models::scripts("Scripts"));
    std::vector<std::string> ids;
    for (const char* bk : {"bk-a", "bk-b", "bk-c"}) {
        ids.push_back(start("Order", {{"business_key", bk}}).value("id", ""));
        std::this_thread::sleep_for(15ms);  // distinct created_at for the order check
    }
    const json done = start("Scripts", {{"variables", {{"amount", 1}}}});
    ASSERT_EQ(done["status"], "COMPLETED");

    const auto all = get("/instances");
    ASSERT_TRUE(is_page(all));
    const json d = all.json()["data"];
    EXPECT_EQ(d["total"], 4);
    EXPECT_EQ(d["page"], 1);
    EXPECT_EQ(d["pageSize"], 20);
    EXPECT_EQ(d["totalPages"], 1);
    ASSERT_EQ(d["items"].size(), 4u);
    EXPECT_EQ(d["items"][0]["id"], done["id"]) << "newest first";
    EXPECT_EQ(d["items"][3]["id"], ids[0]) << "newest first";

    const auto running = get("/instances?status=RUNNING");
    ASSERT_TRUE(is_page(running));
    EXPECT_EQ(running.json()["data"]["total"], 3);
    const json running_items = running.json()["data"]["items"];
    for (const auto& item : running_items) {
        EXPECT_EQ(item["status"], "RUNNING");
    }
    EXPECT_EQ(get("/instances?status=COMPLETED").json()["data"]["total"], 1);
    EXPECT_EQ(get("/instances?status=CANCELLED").json()["data"]["total"], 0);
    EXPECT_EQ(get("/instances?process_key=Order").json()["data"]["total"], 3);
    EXPECT_EQ(get("/instances?process_key=Scripts").json()["data"]["total"], 1);
    EXPECT_EQ(get("/instances?process_key=Nothing").json()["data"]["total"], 0);

    const auto by_key = get("/instances?business_key=bk-b");
    ASSERT_TRUE(is_page(by_key));
    ASSERT_EQ(by_key.json()["data"]["total"], 1);
    EXPECT_EQ(by_key.json()["data"]["items"][0]["id"], ids[1]);

    const auto nested = get("/processes/Order/instances?business_key=bk-c");
    ASSERT_TRUE(is_page(nested));
    ASSERT_EQ(nested.json()["data"]["total"], 1);
    EXPECT_EQ(nested.json()["data"]["items"][0]["id"], ids[2]);
    EXPECT_EQ(get("/processes/Scripts/instances?status=RUNNING").json()["data"]["total"], 0);

    const auto page2 = get("/instances?process_key=Order&page_size=2&page=2");
    ASSERT_TRUE(is_page(page2));
    const json p2 = page2.json()["data"];
    EXPECT_EQ(p2["total"], 3);
    EXPECT_EQ(p2["page"], 2);
    EXPECT_EQ(p2["pageSize"], 2);
    EXPECT_EQ(p2["totalPages"], 2);
    ASSERT_EQ(p2["items"].size(), 1u);
    EXPECT_EQ(p2["items"][0]["id"], ids[0]);

    EXPECT_EQ(get("/instances?created_after=2000-01-01T00:00:00Z").json()["data"]["total"], 4);
    EXPECT_EQ(get("/instances?created_after=2999-01-01T00:00:00Z").json()["data"]["total"], 0);
    EXPECT_EQ(get("/instances?created_before=2000-01-01T00:00:00Z").json()["data"]["total"], 0);
    EXPECT_EQ(get("/instances?created_before=2999-01-01T00:00:00Z&status=RUNNING")
                  .json()["data"]["total"],
              3);

    EXPECT_TRUE(is_error(get("/instances?status=SLEEPING"), 400, "INVALID_ARGUMENT"));
    EXPECT_TRUE(is_error(get("/instances?created_after=yesterday"), 400, "INVALID_ARGUMENT"));
    EXPECT_TRUE(is_error(get("/instances?page=0"), 400, "INVALID_ARGUMENT"));
    EXPECT_TRUE(is_error(get("/instances?page_size=1001"), 400, "INVALID_ARGUMENT"));
}

TEST_P(InstancesApi, UnknownInstancesAre404Everywhere) {
    const std::string id = "00000000-0000-4000-8000-000000000000";
    EXPECT_TRUE(is_error(get("/instances/" + id), 404, "INSTANCE_NOT_FOUND"));
    EXPECT_TRUE(is_error(del("/instances/" + id), 404, "INSTANCE_NOT_FOUND"));
    EXPECT_TRUE(
        is_error(post("/instances/" + id + "/suspend", json::object()), 404, "INSTANCE_NOT_FOUND"));
    EXPECT_TRUE(
        is_error(post("/instances/" + id + "/resume", json::object()), 404, "INSTANCE_NOT_FOUND"));
    EXPECT_TRUE(is_error(get("/instances/" + id + "/variables"), 404, "INSTANCE_NOT_FOUND"));
    EXPECT_TRUE(
        is_error(patch("/instances/" + id + "/variables", {{"a", 1}}), 404, "INSTANCE_NOT_FOUND"));
    EXPECT_TRUE(is_error(get("/instances/" + id + "/tokens"), 404, "INSTANCE_NOT_FOUND"));
    EXPECT_TRUE(is_error(get("/instances/" + id + "/activities"), 404, "INSTANCE_NOT_FOUND"));
    EXPECT_TRUE(is_error(get("/instances/not-a-uuid"), 404, "INSTANCE_NOT_FOUND"));
}

TEST_P(InstancesApi, CancellingRemovesTasksTimersJobsAndSubscriptions) {
    deploy(models::user_task("Order"));
    deploy(models::timer_catch("Wait"));
    deploy(models::charge_job("Charge"));
    deploy(models::message_catch("AwaitPayment"));
    const std::string task_instance = start("Order").value("id", "");
    const std::string timer_instance = start("Wait").value("id", "");
    const std::string job_instance = start("Charge").value("id", "");
    const std::string message_instance =
        start("AwaitPayment", {{"variables", {{"order_id", "C-1"}}}}).value("id", "");
    const json task = only_task(task_instance);
    ASSERT_EQ(items("/timers?instance_id=" + timer_instance).size(), 1u);

    for (const auto& id : {task_instance, timer_instance, job_instance, message_instance}) {
        const auto cancelled = del("/instances/" + id);
        ASSERT_TRUE(is_data(cancelled, 200));
        EXPECT_EQ(cancelled.json()["data"]["status"], "CANCELLED") << cancelled.describe();
        EXPECT_TRUE(is_rfc3339_utc(cancelled.json()["data"].value("ended_at", "")));
        EXPECT_EQ(instance(id)["status"], "CANCELLED");
        EXPECT_TRUE(instance(id)["active_elements"].empty());
    }
    EXPECT_TRUE(open_tasks(task_instance).empty()) << "the task of a cancelled instance is gone";
    EXPECT_EQ(get("/tasks").json()["data"]["total"], 0);
    const auto complete = post("/tasks/" + task.value("id", "") + "/complete", json::object());
    EXPECT_TRUE(complete.status == 404 || complete.status == 409) << complete.describe();
    EXPECT_TRUE(items("/timers?instance_id=" + timer_instance).empty());
    EXPECT_TRUE(items("/timers").empty());
    const auto jobs = post("/jobs/activate", {{"type", "charge-card"}, {"worker", "w"}});
    ASSERT_TRUE(is_data(jobs, 200));
    EXPECT_TRUE(jobs.json()["data"]["items"].empty()) << jobs.describe();
    EXPECT_TRUE(
        is_error(post("/messages", {{"name", "PaymentReceived"}, {"correlation_key", "C-1"}}), 404,
                 "MESSAGE_NOT_CORRELATED"));

    EXPECT_TRUE(is_error(del("/instances/" + task_instance), 409, "INSTANCE_NOT_RUNNING"));
    EXPECT_EQ(get("/instances?status=CANCELLED").json()["data"]["total"], 4);
}

TEST_P(InstancesApi, ASuspendedInstanceRefusesTaskCompletionUntilResumed) {
    deploy(models::user_task("Order"));
    const std::string id = start("Order").value("id", "");
    const json task = only_task(id);

    const auto suspended = post("/instances/" + id + "/suspend", json::object());
    ASSERT_TRUE(is_data(suspended, 200));
    EXPECT_EQ(suspended.json()["data"]["status"], "SUSPENDED");
    EXPECT_EQ(instance(id)["status"], "SUSPENDED");
    EXPECT_EQ(get("/instances?status=SUSPENDED").json()["data"]["total"], 1);

    const auto refused = post("/tasks/" + task.value("id", "") + "/complete", json::object());
    EXPECT_TRUE(is_error(refused, 409, "INSTANCE_SUSPENDED")) << refused.describe();
    EXPECT_EQ(instance(id)["status"], "SUSPENDED");
    EXPECT_EQ(only_task(id).value("state", ""), "OPEN");

    const auto resumed = post("/instances/" + id + "/resume", json::object());
    ASSERT_TRUE(is_data(resumed, 200));
    EXPECT_EQ(resumed.json()["data"]["status"], "RUNNING");
    EXPECT_EQ(resumed.json()["data"]["active_elements"], json::array({"review"}));

    const auto completed = post("/tasks/" + task.value("id", "") + "/complete", json::object());
    ASSERT_TRUE(is_data(completed, 200));
    EXPECT_EQ(completed.json()["data"]["status"], "COMPLETED");
    EXPECT_TRUE(is_error(post("/instances/" + id + "/suspend", json::object()), 409,
                         "INSTANCE_NOT_RUNNING"));
}

TEST_P(InstancesApi, VariablesCanBeReadAndMerged) {
    deploy(models::user_task("Order"));
    const std::string id =
        start("Order", {{"variables", {{"amount", 100}, {"customer", {{"name", "Ada"}}}}}})
            .value("id", "");
    const auto read = get("/instances/" + id + "/variables");
    ASSERT_TRUE(is_data(read, 200));
    EXPECT_EQ(read.json()["data"], json({{"amount", 100}, {"customer", {{"name", "Ada"}}}}));

    const auto merged = patch("/instances/" + id + "/variables",
                              {{"amount", 120}, {"note", "rush"}, {"tags", {"a", "b"}}});
    ASSERT_TRUE(is_data(merged, 200));
    const json expected = {
        {"amount", 120}, {"customer", {{"name", "Ada"}}}, {"note", "rush"}, {"tags", {"a", "b"}}};
    EXPECT_EQ(merged.json()["data"], expected);
    EXPECT_EQ(get("/instances/" + id + "/variables").json()["data"], expected);
    EXPECT_EQ(instance(id)["variables"], expected);

    EXPECT_TRUE(is_error(patch("/instances/" + id + "/variables", json::array({1})), 400,
                         "INVALID_ARGUMENT"));
    const std::string big(kMaxVariableSize + 1, 'y');
    EXPECT_TRUE(is_error(patch("/instances/" + id + "/variables", {{"blob", big}}), 413,
                         "VARIABLE_TOO_LARGE"));
    EXPECT_EQ(get("/instances/" + id + "/variables").json()["data"], expected)
        << "a refused PATCH changed nothing";
}

TEST_P(InstancesApi, HistoryLevelDecidesWhichElementsActivitiesLists) {
    // One store, three servers in turn: each level applies to what is written while it runs.
    auto elements_of = [&](const std::string& id) {
        std::vector<std::string> out;
        for (const auto& a : items("/instances/" + id + "/activities?page_size=100")) {
            out.push_back(a.value("element_id", "") + ":" + a.value("event", ""));
        }
        return out;
    };
    deploy(models::route("Routed"));
    const json by_default = start("Routed", {{"variables", {{"amount", 500}}}});
    EXPECT_EQ(elements_of(by_default.value("id", "")),
              (std::vector<std::string>{"start:STARTED", "start:COMPLETED", "end_big:STARTED",
                                        "end_big:COMPLETED"}))
        << "activity (the default) leaves the gateway out";

    ASSERT_NO_FATAL_FAILURE(start_server({{"PYTHMATA_HISTORY_LEVEL", "full"}}));
    const json full = start("Routed", {{"variables", {{"amount", 5}}}});
    EXPECT_EQ(
        elements_of(full.value("id", "")),
        (std::vector<std::string>{"start:STARTED", "start:COMPLETED", "is_big:STARTED",
                                  "is_big:COMPLETED", "end_small:STARTED", "end_small:COMPLETED"}));
    const auto paged = get("/instances/" + full.value("id", "") + "/activities?page=2&page_size=4");
    ASSERT_TRUE(is_page(paged));
    EXPECT_EQ(paged.json()["data"]["total"], 6);
    EXPECT_EQ(paged.json()["data"]["items"].size(), 2u);

    ASSERT_NO_FATAL_FAILURE(start_server({{"PYTHMATA_HISTORY_LEVEL", "none"}}));
    const json none = start("Routed", {{"variables", {{"amount", 500}}}});
    EXPECT_EQ(none["status"], "COMPLETED");
    const auto nothing = get("/instances/" + none.value("id", "") + "/activities");
    ASSERT_TRUE(is_page(nothing));
    EXPECT_EQ(nothing.json()["data"]["total"], 0);
    EXPECT_TRUE(nothing.json()["data"]["items"].empty());
    EXPECT_EQ(elements_of(by_default.value("id", "")).size(), 4u)
        << "what was written before stays";
}

TEST_P(InstancesApi, TokensAndActivitiesFollowAParallelSplitAndJoin) {
    // The activities below include the gateways (split, join): only history_level = full
    // records gateways.
    ASSERT_NO_FATAL_FAILURE(start_server({{"PYTHMATA_HISTORY_LEVEL", "full"}}));
    deploy(models::fork_join("Fork"));
    const json started = start("Fork");
    const std::string id = started.value("id", "");
    std::set<std::string> active;
    for (const auto& e : started["active_elements"]) {
        active.insert(e.get<std::string>());
    }
    EXPECT_EQ(active, (std::set<std::string>{"task_a", "task_b"}));

    const auto tokens = get("/instances/" + id + "/tokens");
    ASSERT_TRUE(is_data(tokens, 200));
    std::set<std::string> at;
    const json token_items = tokens.json()["data"]["items"];
    for (const auto& t : token_items) {
        at.insert(t.value("element_id", ""));
        EXPECT_TRUE(t.contains("state") && t["state"].is_string()) << t.dump();
        EXPECT_TRUE(t.contains("scope_id")) << t.dump();
    }
    EXPECT_EQ(at, (std::set<std::string>{"task_a", "task_b"})) << tokens.describe();
    EXPECT_EQ(open_tasks(id).size(), 2u);

    const json task_a = items("/tasks?instance_id=" + id + "&element_id=task_a");
    ASSERT_EQ(task_a.size(), 1u);
    const auto after_a = post("/tasks/" + task_a[0].value("id", "") + "/complete", json::object());
    ASSERT_TRUE(is_data(after_a, 200));
    EXPECT_EQ(after_a.json()["data"]["status"], "RUNNING");
    bool b_waits = false;
    for (const auto& t : items("/instances/" + id + "/tokens")) {
        EXPECT_NE(t.value("element_id", ""), "task_a") << "task_a's token left it";
        b_waits = b_waits || t.value("element_id", "") == "task_b";
    }
    EXPECT_TRUE(b_waits);

    const json task_b = only_task(id);
    EXPECT_EQ(task_b.value("element_id", ""), "task_b");
    const auto after_b = post("/tasks/" + task_b.value("id", "") + "/complete", json::object());
    ASSERT_TRUE(is_data(after_b, 200));
    EXPECT_EQ(after_b.json()["data"]["status"], "COMPLETED");
    EXPECT_TRUE(get("/instances/" + id + "/tokens").json()["data"]["items"].empty());

    const json activities = items("/instances/" + id + "/activities?page_size=100");
    const long split = position(activities, "split", "COMPLETED");
    const long a_start = position(activities, "task_a", "STARTED");
    const long b_start = position(activities, "task_b", "STARTED");
    const long a_done = position(activities, "task_a", "COMPLETED");
    const long b_done = position(activities, "task_b", "COMPLETED");
    const long join = position(activities, "join", "COMPLETED");
    const long end = position(activities, "end", "COMPLETED");
    ASSERT_GE(position(activities, "start", "STARTED"), 0) << activities.dump();
    EXPECT_EQ(position(activities, "start", "STARTED"), 0) << activities.dump();
    for (long p : {split, a_start, b_start, a_done, b_done, join, end}) {
        EXPECT_GE(p, 0) << activities.dump();
    }
    EXPECT_LT(split, a_start);
    EXPECT_LT(split, b_start);
    EXPECT_LT(a_start, a_done);
    EXPECT_LT(a_done, b_done) << "task_a was completed first";
    EXPECT_LT(b_done, join);
    EXPECT_LT(join, end);
    EXPECT_EQ(end, static_cast<long>(activities.size()) - 1) << activities.dump();
}

// The start answer names the tasks it opened ("opened_tasks"), so a client completes one with
// no GET /tasks; a completion names the tasks it opened; other answers carry no such field.
TEST_P(InstancesApi, StartAndCompletionAnswersNameTheTasksTheyOpened) {
    deploy(models::fork_join("Fork"));
    const auto started =
        post("/processes/Fork/instances", json::object(), {{"Idempotency-Key", "opened-1"}});
    ASSERT_TRUE(is_data(started, 201));
    const json instance = started.json()["data"];
    const std::string id = instance.value("id", "");
    ASSERT_TRUE(instance.contains("opened_tasks")) << instance.dump();
    std::map<std::string, std::string> opened;  // element -> task id
    for (const auto& t : instance["opened_tasks"]) {
        EXPECT_TRUE(t.contains("name")) << t.dump();
        opened[t.value("element_id", "")] = t.value("id", "");
    }
    std::map<std::string, std::string> listed;
    for (const auto& t : open_tasks(id)) {
        listed[t.value("element_id", "")] = t.value("id", "");
    }
    EXPECT_EQ(opened, listed);
    ASSERT_EQ(opened.size(), 2u);

    const json read = get("/instances/" + id).json()["data"];
    EXPECT_FALSE(read.contains("opened_tasks")) << read.dump();
    const json page = items("/instances?page_size=5");
    ASSERT_FALSE(page.empty());
    EXPECT_FALSE(page[0].contains("opened_tasks")) << page[0].dump();
    // A replayed start is the first answer, opened tasks included.
    const auto replay =
        post("/processes/Fork/instances", json::object(), {{"Idempotency-Key", "opened-1"}});
    EXPECT_EQ(replay.json(), started.json());

    const auto after_a = post("/tasks/" + opened["task_a"] + "/complete", json::object());
    ASSERT_TRUE(is_data(after_a, 200));
    EXPECT_EQ(after_a.json()["data"]["opened_tasks"], json::array()) << after_a.describe();
    const auto after_b = post("/tasks/" + opened["task_b"] + "/complete", json::object());
    ASSERT_TRUE(is_data(after_b, 200));
    EXPECT_EQ(after_b.json()["data"]["status"], "COMPLETED");
    EXPECT_EQ(after_b.json()["data"]["opened_tasks"], json::array());

    // A sequence: completing the first task names the next one.
    deploy(models::document(R"(
  <process id="Steps" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="first"/>
    <userTask id="first" name="First"/>
    <sequenceFlow id="f2" sourceRef="first" targetRef="second"/>
    <userTask id="second" name="Second"/>
    <sequenceFlow id="f3" sourceRef="second" targetRef="end"/>
    <endEvent id="end"/>
  </process>)"));
    const json steps = start("Steps");
    ASSERT_EQ(steps["opened_tasks"].size(), 1u) << steps.dump();
    EXPECT_EQ(steps["opened_tasks"][0]["name"], "First");
    const auto next =
        post("/tasks/" + steps["opened_tasks"][0].value("id", "") + "/complete", json::object());
    ASSERT_TRUE(is_data(next, 200));
    const json next_tasks = next.json()["data"]["opened_tasks"];
    ASSERT_EQ(next_tasks.size(), 1u) << next.describe();
    EXPECT_EQ(next_tasks[0]["element_id"], "second");
    EXPECT_EQ(next_tasks[0]["id"], only_task(steps.value("id", "")).value("id", ""));
}

TEST_P(InstancesApi, TasksAreListedFilteredClaimedAndCompletedOnce) {
    deploy(models::user_task("Order"));
    deploy(models::user_task("Other", "other_task"));
    const std::string first = start("Order", {{"variables", {{"amount", 5}}}}).value("id", "");
    const std::string second = start("Order").value("id", "");
    const std::string other = start("Other").value("id", "");

    EXPECT_EQ(get("/tasks").json()["data"]["total"], 3);
    EXPECT_EQ(get("/tasks?process_key=Order").json()["data"]["total"], 2);
    EXPECT_EQ(get("/tasks?element_id=other_task").json()["data"]["total"], 1);
    EXPECT_EQ(get("/tasks?candidate_group=sales").json()["data"]["total"], 3);
    EXPECT_EQ(get("/tasks?candidate_group=audit&process_key=Other").json()["data"]["total"], 1);
    EXPECT_EQ(get("/tasks?candidate_group=ops").json()["data"]["total"], 0);
    const json listed = only_task(first);
    EXPECT_EQ(listed["instance_id"], first);
    EXPECT_EQ(listed["element_id"], "review");
    EXPECT_EQ(listed["name"], "Review order");
    EXPECT_EQ(listed["state"], "OPEN");
    EXPECT_TRUE(listed["assignee"].is_null());
    EXPECT_EQ(listed["candidate_groups"], json::array({"sales", "audit"}));
    EXPECT_TRUE(is_uuid(listed.value("id", "")));
    EXPECT_TRUE(is_rfc3339_utc(listed.value("created_at", "")));
    EXPECT_TRUE(listed.contains("due_at"));
    const std::string task_id = listed["id"];

    const auto fetched = get("/tasks/" + task_id);
    ASSERT_TRUE(is_data(fetched, 200));
    EXPECT_EQ(fetched.json()["data"]["id"], task_id);
    EXPECT_EQ(fetched.json()["data"]["variables"], json({{"amount", 5}}))
        << "GET /tasks/{id} carries the instance's variables";

    const auto claimed = post("/tasks/" + task_id + "/claim", {{"assignee", "alice"}});
    ASSERT_TRUE(is_data(claimed, 200));
    EXPECT_EQ(claimed.json()["data"]["assignee"], "alice");
    EXPECT_EQ(get("/tasks/" + task_id).json()["data"]["assignee"], "alice");
    const json alices = items("/tasks?assignee=alice");
    ASSERT_EQ(alices.size(), 1u);
    EXPECT_EQ(alices[0]["id"], task_id);
    EXPECT_TRUE(
        is_error(post("/tasks/" + task_id + "/claim", json::object()), 400, "INVALID_ARGUMENT"));

    const auto completed =
        post("/tasks/" + task_id + "/complete", {{"variables", {{"approved", true}}}});
    ASSERT_TRUE(is_data(completed, 200));
    const json after = completed.json()["data"];
    EXPECT_EQ(after["id"], first) << "completing a task answers its instance";
    EXPECT_EQ(after["status"], "COMPLETED");
    EXPECT_EQ(after["variables"], json({{"amount", 5}, {"approved", true}}));

    EXPECT_TRUE(is_error(post("/tasks/" + task_id + "/complete", json::object()), 409,
                         "TASK_ALREADY_COMPLETED"));
    EXPECT_TRUE(is_error(post("/tasks/" + task_id + "/claim", {{"assignee", "bob"}}), 409,
                         "TASK_ALREADY_COMPLETED"));
    EXPECT_TRUE(open_tasks(first).empty());
    const json done = items("/tasks?state=COMPLETED");
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0]["id"], task_id);
    EXPECT_EQ(done[0]["state"], "COMPLETED");
    EXPECT_EQ(get("/tasks?state=OPEN").json()["data"]["total"], 2);
    EXPECT_EQ(get("/tasks/" + task_id).json()["data"]["state"], "COMPLETED");

    const std::string unknown = "00000000-0000-4000-8000-000000000000";
    EXPECT_TRUE(is_error(get("/tasks/" + unknown), 404, "TASK_NOT_FOUND"));
    EXPECT_TRUE(
        is_error(post("/tasks/" + unknown + "/complete", json::object()), 404, "TASK_NOT_FOUND"));
    EXPECT_TRUE(
        is_error(post("/tasks/" + unknown + "/claim", {{"assignee", "a"}}), 404, "TASK_NOT_FOUND"));
    EXPECT_TRUE(is_error(get("/tasks?state=DONE"), 400, "INVALID_ARGUMENT"));

    const auto big = post("/tasks/" + only_task(second).value("id", "") + "/complete",
                          {{"variables", {{"blob", std::string(kMaxVariableSize + 1, 'z')}}}});
    EXPECT_TRUE(is_error(big, 413, "VARIABLE_TOO_LARGE"));
    EXPECT_EQ(instance(second)["status"], "RUNNING") << "a refused completion changed nothing";
    EXPECT_EQ(open_tasks(second).size(), 1u);
    (void)other;
}

TEST_P(InstancesApi, StartsAndCompletionsGoToTheEngineWithoutABlockingPoolThread) {
    auto async_requests = [&] {
        const auto page = call(client_->get("/metrics"));
        EXPECT_EQ(page.status, 200) << page.describe();
        return metric_value(page.body, "pythmata_http_async_requests_total");
    };
    deploy(models::user_task("Order"));
    start("Order");  // the first start may compile the definition on the blocking pool
    const double before = async_requests();
    ASSERT_GE(before, 0) << "the counter is exported";
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i)
        ids.push_back(start("Order", {{"variables", {{"n", i}}}}).value("id", ""));
    for (const auto& id : ids) {
        const auto done = post("/tasks/" + only_task(id).value("id", "") + "/complete",
                               {{"variables", {{"ok", true}}}});
        ASSERT_TRUE(is_data(done, 200));
        EXPECT_EQ(done.json()["data"]["status"], "COMPLETED");
    }
    EXPECT_EQ(async_requests() - before, 6) << "3 starts and 3 completions, none on the pool";

    // What the non-blocking way declines takes the blocking one, with the same answers: a
    // named version, an Idempotency-Key, a task this server does not know, a bad body.
    EXPECT_TRUE(is_data(post("/processes/Order/instances", {{"version", 1}}), 201));
    EXPECT_TRUE(is_data(
        post("/processes/Order/instances", json::object(), {{"Idempotency-Key", unique_name("k")}}),
        201));
    const std::string unknown = "00000000-0000-4000-8000-000000000000";
    EXPECT_TRUE(
        is_error(post("/tasks/" + unknown + "/complete", json::object()), 404, "TASK_NOT_FOUND"));
    EXPECT_TRUE(
        is_error(post("/processes/Order/instances", {{"variables", 5}}), 400, "INVALID_ARGUMENT"));
    EXPECT_TRUE(
        is_error(post("/processes/Nope/instances", json::object()), 404, "PROCESS_NOT_FOUND"));
    EXPECT_EQ(async_requests() - before, 6);

    // A refusal the engine makes is answered the same way on both: a completed task is 409.
    const std::string task = only_task(start("Order").value("id", "")).value("id", "");
    ASSERT_TRUE(is_data(post("/tasks/" + task + "/complete", json::object()), 200));
    EXPECT_TRUE(is_error(post("/tasks/" + task + "/complete", json::object()), 409,
                         "TASK_ALREADY_COMPLETED"));

    // http_async_first = false: everything through the blocking pool, the same answers.
    start_server({{"PYTHMATA_HTTP_ASYNC_FIRST", "false"}});
    const std::string id = start("Order", {{"variables", {{"n", 9}}}}).value("id", "");
    const auto done = post("/tasks/" + only_task(id).value("id", "") + "/complete",
                           {{"variables", {{"ok", true}}}});
    ASSERT_TRUE(is_data(done, 200));
    EXPECT_EQ(done.json()["data"]["variables"], json({{"n", 9}, {"ok", true}}));
    EXPECT_EQ(async_requests(), 0) << "a fresh server that took nothing the short way";
}

TEST_P(InstancesApi, IdempotencyKeyReplaysTheFirstAnswerAndRefusesAnotherBody) {
    deploy(models::user_task("Order"));
    const json body = {{"business_key", "idem"}, {"variables", {{"amount", 3}}}};
    const auto first = post("/processes/Order/instances", body, {{"Idempotency-Key", "key-1"}});
    ASSERT_TRUE(is_data(first, 201));
    const auto again = post("/processes/Order/instances", body, {{"Idempotency-Key", "key-1"}});
    EXPECT_EQ(again.status, 201) << again.describe();
    EXPECT_EQ(again.json(), first.json()) << "the replay is the first answer";
    EXPECT_EQ(get("/instances").json()["data"]["total"], 1) << "no second instance";

    const auto other = post("/processes/Order/instances", {{"business_key", "other"}},
                            {{"Idempotency-Key", "key-1"}});
    EXPECT_TRUE(is_error(other, 409, "IDEMPOTENCY_KEY_REUSED"));
    EXPECT_EQ(get("/instances").json()["data"]["total"], 1);

    // Another key is another request.
    ASSERT_TRUE(
        is_data(post("/processes/Order/instances", body, {{"Idempotency-Key", "key-2"}}), 201));
    EXPECT_EQ(get("/instances").json()["data"]["total"], 2);

    // A repeated task completion answers like the first one, not 409 TASK_ALREADY_COMPLETED.
    const std::string task = only_task(first.json()["data"].value("id", "")).value("id", "");
    const auto done =
        post("/tasks/" + task + "/complete", json::object(), {{"Idempotency-Key", "complete-1"}});
    ASSERT_TRUE(is_data(done, 200));
    const auto replay =
        post("/tasks/" + task + "/complete", json::object(), {{"Idempotency-Key", "complete-1"}});
    EXPECT_EQ(replay.status, 200) << replay.describe();
    EXPECT_EQ(replay.json(), done.json());
}

TEST_P(InstancesApi, StatsCountInstancesByStatusAndOpenWork) {
    deploy(models::user_task("Order"));
    deploy(models::scripts("Scripts"));
    deploy(models::charge_job("Charge"));
    deploy(models::timer_catch("Wait"));
    deploy(models::fragile_script("Fragile"));
    start("Order");
    const std::string suspended = start("Order").value("id", "");
    const std::string cancelled = start("Order").value("id", "");
    start("Scripts", {{"variables", {{"amount", 2}}}});
    start("Charge");
    start("Wait");
    start("Fragile");
    ASSERT_TRUE(is_data(post("/instances/" + suspended + "/suspend", json::object()), 200));
    ASSERT_TRUE(is_data(del("/instances/" + cancelled), 200));

    const auto response = get("/stats");
    ASSERT_TRUE(is_data(response, 200));
    const json s = response.json()["data"];
    EXPECT_EQ(s["instances"]["RUNNING"], 3) << s.dump();  // Order, Charge, Wait
    EXPECT_EQ(s["instances"]["SUSPENDED"], 1) << s.dump();
    EXPECT_EQ(s["instances"]["CANCELLED"], 1) << s.dump();
    EXPECT_EQ(s["instances"]["COMPLETED"], 1) << s.dump();
    EXPECT_EQ(s["instances"]["ERROR"], 1) << s.dump();  // Fragile's incident holds it
    EXPECT_EQ(s["open_tasks"], 2) << s.dump();          // the suspended instance's task is open
    EXPECT_EQ(s["pending_jobs"], 1) << s.dump();
    EXPECT_EQ(s["pending_timers"], 1) << s.dump();
    EXPECT_EQ(s["open_incidents"], 1) << s.dump();
    ASSERT_TRUE(s.contains("replica")) << s.dump();
    EXPECT_EQ(s["replica"]["instances_started"], 7) << s.dump();
    EXPECT_GE(s["replica"]["commands_processed"].get<long>(), 7) << s.dump();
    EXPECT_GE(s["replica"]["batches_committed"].get<long>(), 1) << s.dump();
}

TEST_P(InstancesApi, VariableLimitsHoldOnEveryWayIn) {
    // max_total_variables below two variables of 40 KiB, each under max_variable_size.
    ASSERT_NO_FATAL_FAILURE(start_server({{"PYTHMATA_MAX_TOTAL_VARIABLES", "98304"}}));
    deploy(models::user_task("Order"));
    deploy(models::message_catch("AwaitPayment"));
    deploy(models::signal_catch("AwaitSignal"));
    deploy(models::charge_job("Charge"));
    deploy(models::big_script("Inflate", kMaxVariableSize + 100));
    const std::string forty(40 * 1024, 'f');
    const std::string too_big(kMaxVariableSize + 1, 'b');

    EXPECT_TRUE(is_error(post("/processes/Order/instances",
                              {{"variables", {{"a", forty}, {"b", forty}, {"c", forty}}}}),
                         413, "VARIABLES_TOO_LARGE"));
    const std::string id = start("Order", {{"variables", {{"a", forty}}}}).value("id", "");
    EXPECT_TRUE(is_error(patch("/instances/" + id + "/variables", {{"b", forty}, {"c", forty}}),
                         413, "VARIABLES_TOO_LARGE"));
    EXPECT_TRUE(is_error(post("/tasks/" + only_task(id).value("id", "") + "/complete",
                              {{"variables", {{"b", forty}, {"c", forty}}}}),
                         413, "VARIABLES_TOO_LARGE"));
    EXPECT_EQ(instance(id)["status"], "RUNNING");

    const std::string waiting =
        start("AwaitPayment", {{"variables", {{"order_id", "L-1"}}}}).value("id", "");
    EXPECT_TRUE(is_error(post("/messages", {{"name", "PaymentReceived"},
                                            {"correlation_key", "L-1"},
                                            {"variables", {{"blob", too_big}}}}),
                         413, "VARIABLE_TOO_LARGE"));
    EXPECT_EQ(instance(waiting)["status"], "RUNNING") << "a refused message changed nothing";

    const std::string signalled = start("AwaitSignal").value("id", "");
    EXPECT_TRUE(
        is_error(post("/signals", {{"name", "GoSignal"}, {"variables", {{"blob", too_big}}}}), 413,
                 "VARIABLE_TOO_LARGE"));
    EXPECT_EQ(instance(signalled)["status"], "RUNNING");

    const std::string charged = start("Charge").value("id", "");
    const auto jobs = post("/jobs/activate", {{"type", "charge-card"}, {"worker", "w"}});
    ASSERT_TRUE(is_data(jobs, 200));
    ASSERT_EQ(jobs.json()["data"]["items"].size(), 1u);
    const std::string job = jobs.json()["data"]["items"][0].value("id", "");
    EXPECT_TRUE(is_error(post("/jobs/" + job + "/complete", {{"variables", {{"blob", too_big}}}}),
                         413, "VARIABLE_TOO_LARGE"));
    EXPECT_EQ(instance(charged)["status"], "RUNNING");
    EXPECT_TRUE(is_data(post("/jobs/" + job + "/complete", json::object()), 200))
        << "the job is still there after the refused completion";

    // A script that makes an oversized variable does not store it: the start is refused or
    // the step fails with an incident.
    const auto inflated = post("/processes/Inflate/instances", json::object());
    if (inflated.status == 201) {
        const json held = inflated.json()["data"];
        EXPECT_EQ(held["status"], "ERROR") << held.dump().substr(0, 500);
        EXPECT_EQ(held["incidents"], 1);
        EXPECT_FALSE(held["variables"].contains("blob"));
    } else {
        EXPECT_TRUE(is_error(inflated, 413, "VARIABLE_TOO_LARGE"));
    }
}

TEST_P(InstancesApi, AnIdempotentReplayRepeatsAnErrorAnswerToo) {
    const json body = {{"variables", {{"a", 1}}}};
    const auto first = post("/processes/Later/instances", body, {{"Idempotency-Key", "early"}});
    ASSERT_TRUE(is_error(first, 404, "PROCESS_NOT_FOUND"));
    deploy(models::user_task("Later"));
    const auto again = post("/processes/Later/instances", body, {{"Idempotency-Key", "early"}});
    EXPECT_EQ(again.status, 404) << "same key, same body: the first answer, " << again.describe();
    EXPECT_EQ(again.json(), first.json());
    EXPECT_EQ(get("/instances").json()["data"]["total"], 0);
    EXPECT_TRUE(is_data(post("/processes/Later/instances", body), 201));
}

TEST_P(InstancesApi, WrongMethodsOnRuntimePathsAre405) {
    deploy(models::user_task("Order"));
    const std::string id = start("Order").value("id", "");
    EXPECT_EQ(call(client_->request("PUT", api("/instances/" + id))).status, 405);
    EXPECT_EQ(call(client_->request("GET", api("/instances/" + id + "/suspend"))).status, 405);
    EXPECT_EQ(call(client_->request("DELETE", api("/tasks"))).status, 405);
    EXPECT_EQ(call(client_->request("GET", api("/jobs/activate"))).status, 405);
    EXPECT_EQ(call(client_->request("GET", api("/messages"))).status, 405);
}

TEST_P(InstancesApi, EndedInstancesRefuseChangesWith409) {
    deploy(models::scripts("Scripts"));
    const std::string id = start("Scripts", {{"variables", {{"amount", 1}}}}).value("id", "");
    ASSERT_EQ(instance(id)["status"], "COMPLETED");
    EXPECT_TRUE(is_error(del("/instances/" + id), 409, "INSTANCE_NOT_RUNNING"));
    EXPECT_TRUE(is_error(post("/instances/" + id + "/suspend", json::object()), 409,
                         "INSTANCE_NOT_RUNNING"));
    EXPECT_TRUE(is_error(post("/instances/" + id + "/resume", json::object()), 409,
                         "INSTANCE_NOT_RUNNING"));
    EXPECT_TRUE(is_error(patch("/instances/" + id + "/variables", {{"late", true}}), 409,
                         "INSTANCE_NOT_RUNNING"));
    EXPECT_FALSE(get("/instances/" + id + "/variables").json()["data"].contains("late"));
    EXPECT_EQ(instance(id)["status"], "COMPLETED");
}

TEST_P(InstancesApi, ActivitiesAndTasksArePaged) {
    deploy(models::scripts("Scripts"));
    deploy(models::user_task("Order"));
    const std::string id = start("Scripts", {{"variables", {{"amount", 1}}}}).value("id", "");
    const json all = items("/instances/" + id + "/activities?page_size=100");
    ASSERT_GE(all.size(), 4u);
    const auto first = get("/instances/" + id + "/activities?page_size=3");
    ASSERT_TRUE(is_page(first));
    const json d = first.json()["data"];
    EXPECT_EQ(d["total"], all.size());
    EXPECT_EQ(d["pageSize"], 3);
    EXPECT_EQ(d["totalPages"], (all.size() + 2) / 3);
    ASSERT_EQ(d["items"].size(), 3u);
    EXPECT_EQ(d["items"][0], all[0]) << "history is in the order it happened, not newest first";
    const json second = get("/instances/" + id + "/activities?page_size=3&page=2").json()["data"];
    ASSERT_FALSE(second["items"].empty());
    EXPECT_EQ(second["items"][0], all[3]);

    std::vector<std::string> tasks;
    for (int i = 0; i < 3; ++i) {
        tasks.push_back(only_task(start("Order").value("id", "")).value("id", ""));
        std::this_thread::sleep_for(15ms);
    }
    const auto page = get("/tasks?page_size=2");
    ASSERT_TRUE(is_page(page));
    EXPECT_EQ(page.json()["data"]["total"], 3);
    EXPECT_EQ(page.json()["data"]["totalPages"], 2);
    ASSERT_EQ(page.json()["data"]["items"].size(), 2u);
    EXPECT_EQ(page.json()["data"]["items"][0]["id"], tasks[2]) << "newest first";
    EXPECT_EQ(get("/tasks?page_size=2&page=2").json()["data"]["items"][0]["id"], tasks[0]);
}

TEST_P(InstancesApi, AnIdempotencyKeyBelongsToOneRequest) {
    deploy(models::user_task("Order"));
    deploy(models::user_task("Other", "other_task"));
    const json body = json::object();
    ASSERT_TRUE(
        is_data(post("/processes/Order/instances", body, {{"Idempotency-Key", "one"}}), 201));
    EXPECT_TRUE(is_error(post("/processes/Other/instances", body, {{"Idempotency-Key", "one"}}),
                         409, "IDEMPOTENCY_KEY_REUSED"))
        << "the same key and body on another path is another request";
    EXPECT_EQ(get("/processes/Other/instances").json()["data"]["total"], 0);
    EXPECT_TRUE(is_error(
        post("/processes/Order/instances", body, {{"Idempotency-Key", std::string(300, 'k')}}), 400,
        "INVALID_ARGUMENT"));
    EXPECT_EQ(get("/instances").json()["data"]["total"], 1);
}

TEST_P(InstancesApi, VariablesRoundTripAnyJsonValue) {
    deploy(models::user_task("Order"));
    const json variables = {
        {"text", "Grüße, 漢字, 🙂"},
        {"escapes", "quote \" backslash \\ tab \t newline \n"},
        {"big_int", 9007199254740993LL},
        {"negative", -42},
        {"fraction", 0.1},
        {"tiny", 1e-300},
        {"null_value", nullptr},
        {"flag", false},
        {"empty_object", json::object()},
        {"empty_array", json::array()},
        {"nested", {{"list", {1, "two", {{"three", 3}}}}, {"deep", {{"a", {{"b", {{"c", 1}}}}}}}}},
        {"key with spaces.and.dots", 1},
        {"ключ", "значение"}};
    const auto started = post("/processes/Order/instances", {{"variables", variables}});
    ASSERT_TRUE(is_data(started, 201));
    const std::string id = started.json()["data"].value("id", "");
    EXPECT_EQ(started.json()["data"]["variables"], variables);
    EXPECT_EQ(get("/instances/" + id + "/variables").json()["data"], variables);
    EXPECT_EQ(get("/tasks/" + only_task(id).value("id", "")).json()["data"]["variables"],
              variables);
    // After a restart the values come from the store, not from a cache.
    ASSERT_NO_FATAL_FAILURE(start_server({}));
    EXPECT_EQ(get("/instances/" + id + "/variables").json()["data"], variables);
    EXPECT_EQ(get("/instances/" + id + "/variables").json()["data"]["big_int"].get<long long>(),
              9007199254740993LL);
}

// JSON allows U+0000 in strings; PostgreSQL's jsonb does not, so the store must carry it some
// other way (or refuse it as a 400, never a 500).
TEST_P(InstancesApi, AStringWithANulCharacterIsStoredOrRefusedCleanly) {
    deploy(models::user_task("Order"));
    const json variables = {{"nul", std::string("a\0b", 3)}};
    const auto started = post("/processes/Order/instances", {{"variables", variables}});
    if (started.status == 201) {
        const std::string id = started.json()["data"].value("id", "");
        EXPECT_EQ(get("/instances/" + id + "/variables").json()["data"], variables);
    } else {
        EXPECT_TRUE(is_error(started, 400, "INVALID_ARGUMENT")) << "not a clean refusal";
        EXPECT_EQ(get("/instances").json()["data"]["total"], 0);
    }
    const std::string key("bk\0x", 4);
    const auto keyed = post("/processes/Order/instances", {{"business_key", key}});
    if (keyed.status == 201) {
        EXPECT_EQ(keyed.json()["data"]["business_key"], key);
    } else {
        EXPECT_TRUE(is_error(keyed, 400, "INVALID_ARGUMENT")) << "a NUL in the business key";
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, InstancesApi,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgresRedis),
                         backend_name);

}  // namespace
}  // namespace pythmata::test::runtime
