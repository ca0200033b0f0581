// API.md "Messages and signals", "External jobs" and "Timers, incidents, clock" through the real
// `pythmata serve` on loopback, on SQLite and on PostgreSQL with Redis; plus the models that
// need no outside event: call activity and exclusive gateway.
#include <chrono>
#include <future>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "runtime_models.hpp"
#include "runtime_test_support.hpp"

namespace pythmata::test::runtime {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

class EventsApi : public RuntimeServerTest {
  protected:
    /// POST /jobs/activate; data.items (the test fails unless it answers 200).
    json activate(const std::string& type, const json& extra = json::object()) {
        json body = {{"type", type}, {"worker", "worker-1"}};
        body.update(extra);
        const auto response = post("/jobs/activate", body);
        EXPECT_TRUE(is_data(response, 200)) << "activate " << type;
        return response.json()["data"].value("items", json::array());
    }

    /// The one job of `type` now available (the test fails when there is not exactly one).
    json one_job(const std::string& type) {
        const json jobs = activate(type);
        EXPECT_EQ(jobs.size(), 1u) << jobs.dump();
        return jobs.empty() ? json::object() : jobs[0];
    }

    /// "now" of GET /clock (RFC 3339).
    std::string clock_now() {
        const auto response = get("/clock");
        EXPECT_TRUE(is_data(response, 200));
        return response.json()["data"].value("now", "");
    }
};

/// Whole seconds between two RFC 3339 UTC times "YYYY-MM-DDTHH:MM:SS(.fff)Z".
long seconds_between(const std::string& from, const std::string& to) {
    auto parse = [](const std::string& t) -> long {
        std::tm tm{};
        if (t.size() < 19 ||
            ::strptime(t.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) {
            return 0;
        }
        return static_cast<long>(::timegm(&tm));
    };
    return parse(to) - parse(from);
}

// ---- Messages and signals --------------------------------------------------------------------

TEST_P(EventsApi, AMessageCorrelatesByKeyToTheOneInstanceWaitingForIt) {
    deploy(models::message_catch("AwaitPayment"));
    const std::string a =
        start("AwaitPayment", {{"variables", {{"order_id", "A-1"}}}}).value("id", "");
    const std::string b =
        start("AwaitPayment", {{"variables", {{"order_id", "B-2"}}}}).value("id", "");
    const std::string c =
        start("AwaitPayment", {{"variables", {{"order_id", 42}}}}).value("id", "");
    EXPECT_EQ(instance(a)["active_elements"], json::array({"wait_payment"}));

    const auto matched = post(
        "/messages",
        {{"name", "PaymentReceived"}, {"correlation_key", "B-2"}, {"variables", {{"paid", true}}}});
    ASSERT_TRUE(is_data(matched, 200));
    EXPECT_EQ(matched.json()["data"]["instance_id"], b);
    EXPECT_EQ(matched.json()["data"]["element_id"], "wait_payment");
    const json done = await_status(b, "COMPLETED", 5s);
    EXPECT_EQ(done["variables"]["paid"], true) << "the message's variables reach the instance";
    EXPECT_EQ(instance(a)["status"], "RUNNING") << "the other instance still waits";

    EXPECT_TRUE(
        is_error(post("/messages", {{"name", "PaymentReceived"}, {"correlation_key", "B-2"}}), 404,
                 "MESSAGE_NOT_CORRELATED"));
    EXPECT_TRUE(is_error(post("/messages", {{"name", "PaymentReceived"}, {"correlation_key", "Z"}}),
                         404, "MESSAGE_NOT_CORRELATED"));
    EXPECT_TRUE(is_error(post("/messages", {{"name", "NobodyListens"}, {"correlation_key", "A-1"}}),
                         404, "MESSAGE_NOT_CORRELATED"));
    EXPECT_TRUE(is_error(post("/messages", {{"correlation_key", "A-1"}}), 400, "INVALID_ARGUMENT"));
    EXPECT_TRUE(is_error(post("/messages", {{"name", "PaymentReceived"},
                                            {"correlation_key", "A-1"},
                                            {"variables", json::array()}}),
                         400, "INVALID_ARGUMENT"));
    EXPECT_EQ(instance(a)["status"], "RUNNING") << "refused messages changed nothing";

    // A numeric key: the variable 42 matches the correlation key 42.
    const auto numeric = post("/messages", {{"name", "PaymentReceived"}, {"correlation_key", 42}});
    ASSERT_TRUE(is_data(numeric, 200));
    EXPECT_EQ(numeric.json()["data"]["instance_id"], c);

    ASSERT_TRUE(
        is_data(post("/messages", {{"name", "PaymentReceived"}, {"correlation_key", "A-1"}}), 200));
    await_status(a, "COMPLETED", 5s);
}

TEST_P(EventsApi, AMessageStartEventCreatesAnInstance) {
    deploy(models::message_start("OnOrder"));
    const auto response =
        post("/messages",
             {{"name", "OrderPlaced"}, {"business_key", "po-9"}, {"variables", {{"sku", "X1"}}}});
    ASSERT_TRUE(is_data(response, 200));
    const std::string id = response.json()["data"].value("instance_id", "");
    ASSERT_TRUE(is_uuid(id)) << response.describe();
    const json created = instance(id);
    EXPECT_EQ(created["process_key"], "OnOrder");
    EXPECT_EQ(created["status"], "RUNNING");
    EXPECT_EQ(created["business_key"], "po-9");
    EXPECT_EQ(created["variables"]["sku"], "X1");
    EXPECT_EQ(created["active_elements"], json::array({"handle_order"}));
    EXPECT_EQ(only_task(id).value("element_id", ""), "handle_order");

    // Every such message starts another instance.
    ASSERT_TRUE(is_data(post("/messages", {{"name", "OrderPlaced"}}), 200));
    EXPECT_EQ(get("/processes/OnOrder/instances").json()["data"]["total"], 2);
}

TEST_P(EventsApi, ASignalTriggersEveryWaitingCatch) {
    deploy(models::signal_catch("AwaitSignal"));
    deploy(models::user_task("Order"));
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
        ids.push_back(start("AwaitSignal").value("id", ""));
    }
    start("Order");
    EXPECT_EQ(instance(ids[0])["active_elements"], json::array({"wait_signal"}));

    const auto response = post("/signals", {{"name", "GoSignal"}, {"variables", {{"go", 1}}}});
    ASSERT_TRUE(is_data(response, 200));
    EXPECT_EQ(response.json()["data"]["triggered"], 3) << response.describe();
    for (const auto& id : ids) {
        const json done = await_status(id, "COMPLETED", 5s);
        EXPECT_EQ(done["variables"]["go"], 1) << done.dump();
    }
    const auto again = post("/signals", {{"name", "GoSignal"}});
    ASSERT_TRUE(is_data(again, 200));
    EXPECT_EQ(again.json()["data"]["triggered"], 0);
    EXPECT_TRUE(is_error(post("/signals", json::object()), 400, "INVALID_ARGUMENT"));
}

// ---- External jobs -----------------------------------------------------------------------------

TEST_P(EventsApi, AJobIsActivatedOnceAndCompletedWithVariables) {
    deploy(models::charge_job("Charge"));
    const std::string id = start("Charge", {{"variables", {{"amount", 40}}}}).value("id", "");
    EXPECT_EQ(instance(id)["active_elements"], json::array({"charge"}));
    EXPECT_TRUE(activate("other-topic").empty());

    const json job = one_job("charge-card");
    EXPECT_TRUE(is_uuid(job.value("id", ""))) << job.dump();
    EXPECT_EQ(job["type"], "charge-card");
    EXPECT_EQ(job["instance_id"], id);
    EXPECT_EQ(job["element_id"], "charge");
    EXPECT_EQ(job["variables"]["amount"], 40);
    EXPECT_TRUE(job["retries"].is_number_integer() && job["retries"].get<int>() >= 1) << job.dump();
    EXPECT_TRUE(job["headers"].is_object()) << job.dump();
    EXPECT_TRUE(activate("charge-card").empty()) << "a locked job is not handed out twice";

    const auto completed =
        post("/jobs/" + job.value("id", "") + "/complete", {{"variables", {{"receipt", "r-1"}}}});
    ASSERT_TRUE(is_data(completed, 200));
    const json done = await_status(id, "COMPLETED", 5s);
    EXPECT_EQ(done["variables"]["receipt"], "r-1");
    EXPECT_EQ(done["variables"]["amount"], 40);

    const auto twice = post("/jobs/" + job.value("id", "") + "/complete", json::object());
    EXPECT_TRUE(is_error(twice, 404, "JOB_NOT_FOUND") || is_error(twice, 409, "JOB_NOT_ACTIVE"))
        << twice.describe();
    const std::string unknown = "00000000-0000-4000-8000-000000000000";
    EXPECT_TRUE(
        is_error(post("/jobs/" + unknown + "/complete", json::object()), 404, "JOB_NOT_FOUND"));
    EXPECT_TRUE(
        is_error(post("/jobs/" + unknown + "/fail", {{"retries", 0}}), 404, "JOB_NOT_FOUND"));
    EXPECT_TRUE(
        is_error(post("/jobs/" + unknown + "/error", {{"error_code", "X"}}), 404, "JOB_NOT_FOUND"));
    EXPECT_TRUE(is_error(post("/jobs/activate", {{"worker", "w"}}), 400, "INVALID_ARGUMENT"));
}

TEST_P(EventsApi, AZeebeTaskDefinitionNamesTheJobTypeAndHeaders) {
    deploy(models::zeebe_job("Ship"));
    const std::string id = start("Ship").value("id", "");
    EXPECT_TRUE(activate("ship").empty()) << "the type is the task definition's, not the id";
    const json job = one_job("shipping");
    EXPECT_EQ(job["instance_id"], id);
    EXPECT_EQ(job["element_id"], "ship");
    EXPECT_EQ(job["headers"], json({{"carrier", "dhl"}})) << job.dump();
    ASSERT_TRUE(is_data(post("/jobs/" + job.value("id", "") + "/complete", json::object()), 200));
    await_status(id, "COMPLETED", 5s);
}

TEST_P(EventsApi, ActivationHonoursMaxJobs) {
    deploy(models::charge_job("Charge"));
    for (int i = 0; i < 3; ++i) {
        start("Charge");
    }
    EXPECT_EQ(activate("charge-card", {{"max_jobs", 2}}).size(), 2u);
    EXPECT_EQ(activate("charge-card", {{"max_jobs", 2}}).size(), 1u);
    EXPECT_TRUE(activate("charge-card").empty());
}

TEST_P(EventsApi, LongPollingReturnsWhenAJobAppears) {
    deploy(models::charge_job("Charge"));

    // Nothing there: the call waits about wait_ms and answers an empty list.
    const auto quiet_start = SteadyClock::now();
    EXPECT_TRUE(activate("charge-card", {{"wait_ms", 400}}).empty());
    EXPECT_GE(SteadyClock::now() - quiet_start, 350ms) << "wait_ms was not honoured";

    // A job that appears while a worker waits is handed to it at once.
    const std::uint16_t port = server_->port();
    auto poll = std::async(std::launch::async, [port] {
        HttpClient worker(port, 30s);
        const auto begin = SteadyClock::now();
        auto response = worker.request(
            "POST", "/api/v1/jobs/activate",
            json({{"type", "charge-card"}, {"worker", "poller"}, {"wait_ms", 15000}}).dump(),
            {{"Content-Type", "application/json"}});
        return std::make_pair(std::move(response), SteadyClock::now() - begin);
    });
    std::this_thread::sleep_for(500ms);
    const std::string id = start("Charge").value("id", "");
    ASSERT_EQ(poll.wait_for(20s), std::future_status::ready);
    auto [result, elapsed] = poll.get();
    ASSERT_TRUE(result.ok()) << result.error().message;
    const HttpResponse response = std::move(result).value();
    ASSERT_TRUE(is_data(response, 200));
    const json jobs = response.json()["data"]["items"];
    ASSERT_EQ(jobs.size(), 1u) << response.describe();
    EXPECT_EQ(jobs[0]["instance_id"], id);
    EXPECT_GE(elapsed, 400ms) << "the poll returned before the job existed";
    EXPECT_LT(elapsed, 8s) << "the poll did not return when the job appeared";
}

TEST_P(EventsApi, FailedJobsAreRetriedThenOpenAnIncidentThatResolvingRetries) {
    deploy(models::charge_job("Charge"));
    const std::string id = start("Charge").value("id", "");
    const json first = one_job("charge-card");
    const std::string job_id = first.value("id", "");

    const auto failed =
        post("/jobs/" + job_id + "/fail", {{"error_message", "gateway down"}, {"retries", 2}});
    ASSERT_TRUE(is_data(failed, 200));
    EXPECT_EQ(instance(id)["status"], "RUNNING");
    const json retried = one_job("charge-card");
    EXPECT_EQ(retried["id"], job_id);
    EXPECT_EQ(retried["retries"], 2);

    // A backoff keeps the job away for that long.
    ASSERT_TRUE(
        is_data(post("/jobs/" + job_id + "/fail",
                     {{"error_message", "still down"}, {"retries", 1}, {"retry_backoff_ms", 1500}}),
                200));
    EXPECT_TRUE(activate("charge-card").empty()) << "the job came back before its backoff";
    json after_backoff;
    EXPECT_TRUE(eventually(5s, [&] {
        after_backoff = activate("charge-card");
        return !after_backoff.empty();
    })) << "the job did not come back after its backoff";
    ASSERT_EQ(after_backoff.size(), 1u);
    EXPECT_EQ(after_backoff[0]["retries"], 1);

    ASSERT_TRUE(is_data(
        post("/jobs/" + job_id + "/fail", {{"error_message", "card service gone"}, {"retries", 0}}),
        200));
    const json held = instance(id);
    EXPECT_EQ(held["status"], "ERROR") << held.dump();
    EXPECT_EQ(held["incidents"], 1) << held.dump();
    EXPECT_TRUE(activate("charge-card").empty()) << "a job with an incident is not handed out";

    const auto incidents = get("/incidents?instance_id=" + id);
    ASSERT_TRUE(is_page(incidents));
    const json list = incidents.json()["data"]["items"];
    ASSERT_EQ(list.size(), 1u) << incidents.describe();
    const json incident = list[0];
    EXPECT_TRUE(is_uuid(incident.value("id", "")));
    EXPECT_EQ(incident["instance_id"], id);
    EXPECT_EQ(incident["element_id"], "charge");
    EXPECT_TRUE(incident["kind"].is_string() && !incident["kind"].get<std::string>().empty());
    EXPECT_NE(incident.value("message", "").find("card service gone"), std::string::npos)
        << incident.dump();
    EXPECT_TRUE(is_rfc3339_utc(incident.value("created_at", "")));
    EXPECT_EQ(get("/incidents?state=OPEN").json()["data"]["total"], 1);

    const auto resolved =
        post("/incidents/" + incident.value("id", "") + "/resolve", json::object());
    ASSERT_TRUE(is_data(resolved, 200));
    EXPECT_EQ(resolved.json()["data"]["state"], "RESOLVED") << resolved.describe();
    EXPECT_EQ(get("/incidents?state=OPEN").json()["data"]["total"], 0);
    EXPECT_EQ(get("/incidents?state=RESOLVED").json()["data"]["total"], 1);
    EXPECT_EQ(instance(id)["status"], "RUNNING");

    json again;
    EXPECT_TRUE(eventually(5s, [&] {
        again = activate("charge-card");
        return !again.empty();
    })) << "resolving the incident did not make the job available again";
    ASSERT_EQ(again.size(), 1u);
    ASSERT_TRUE(
        is_data(post("/jobs/" + again[0].value("id", "") + "/complete", json::object()), 200));
    await_status(id, "COMPLETED", 5s);
}

TEST_P(EventsApi, AJobErrorTakesTheMatchingErrorBoundaryElseEndsTheInstanceInError) {
    deploy(models::charge_job("Charge"));
    const std::string caught = start("Charge").value("id", "");
    const json job = one_job("charge-card");
    const auto thrown =
        post("/jobs/" + job.value("id", "") + "/error", {{"error_code", "DECLINED"},
                                                         {"error_message", "insufficient funds"},
                                                         {"variables", {{"reason", "funds"}}}});
    ASSERT_TRUE(is_data(thrown, 200));
    json on_path;
    EXPECT_TRUE(eventually(5s, [&] {
        on_path = instance(caught);
        return on_path["active_elements"] == json::array({"handle_decline"});
    })) << on_path.dump();
    EXPECT_EQ(on_path["status"], "RUNNING");
    EXPECT_EQ(on_path["variables"]["reason"], "funds");
    EXPECT_EQ(only_task(caught).value("element_id", ""), "handle_decline");
    const json activities = items("/instances/" + caught + "/activities?page_size=100");
    bool boundary = false;
    for (const auto& a : activities) {
        boundary = boundary || a.value("element_id", "") == "declined";
    }
    EXPECT_TRUE(boundary) << "the error boundary shows in the history: " << activities.dump();

    const std::string uncaught = start("Charge").value("id", "");
    const json second = one_job("charge-card");
    ASSERT_TRUE(is_data(
        post("/jobs/" + second.value("id", "") + "/error", {{"error_code", "SOMETHING_ELSE"}}),
        200));
    await_status(uncaught, "ERROR", 5s);
    EXPECT_TRUE(is_error(post("/jobs/" + second.value("id", "") + "/error", json::object()), 400,
                         "INVALID_ARGUMENT"));
}

// ---- Timers, clock, incidents ----------------------------------------------------------------

TEST_P(EventsApi, AdvancingTheClockFiresADueTimerAndResetGoesBackToRealTime) {
    deploy(models::timer_catch("Wait", "PT1H"));
    const std::string before = clock_now();
    ASSERT_TRUE(is_rfc3339_utc(before)) << before;
    const std::string id = start("Wait").value("id", "");
    EXPECT_EQ(instance(id)["active_elements"], json::array({"wait_timer"}));

    const auto timers = get("/timers?instance_id=" + id);
    ASSERT_TRUE(is_data(timers, 200));
    const json list = timers.json()["data"]["items"];
    ASSERT_EQ(list.size(), 1u) << timers.describe();
    EXPECT_TRUE(is_uuid(list[0].value("id", "")));
    EXPECT_EQ(list[0]["instance_id"], id);
    EXPECT_EQ(list[0]["element_id"], "wait_timer");
    EXPECT_EQ(list[0]["repeat"], 0);
    const std::string due = list[0].value("due_at", "");
    ASSERT_TRUE(is_rfc3339_utc(due)) << due;
    const long until_due = seconds_between(before, due);
    EXPECT_GE(until_due, 3590) << before << " -> " << due;
    EXPECT_LE(until_due, 3630) << before << " -> " << due;
    EXPECT_EQ(items("/timers").size(), 1u);

    const auto half = post("/clock/advance", {{"duration", "PT30M"}});
    ASSERT_TRUE(is_data(half, 200));
    const std::string moved = half.json()["data"].value("now", "");
    EXPECT_GE(seconds_between(before, moved), 1795) << before << " -> " << moved;
    EXPECT_EQ(instance(id)["status"], "RUNNING") << "the timer fired early";
    EXPECT_GE(seconds_between(before, clock_now()), 1795) << "GET /clock shows the advance";

    ASSERT_TRUE(is_data(post("/clock/advance", {{"duration", "PT31M"}}), 200));
    await_status(id, "COMPLETED", 5s);
    EXPECT_TRUE(items("/timers?instance_id=" + id).empty());
    const json activities = items("/instances/" + id + "/activities");
    EXPECT_GE(activities.size(), 4u);

    const auto reset = post("/clock/reset", json::object());
    ASSERT_TRUE(is_data(reset, 200));
    const long drift = seconds_between(before, reset.json()["data"].value("now", ""));
    EXPECT_GE(drift, 0);
    EXPECT_LT(drift, 120) << "after reset the clock is real time again";

    EXPECT_TRUE(
        is_error(post("/clock/advance", {{"duration", "an hour"}}), 400, "INVALID_ARGUMENT"));
    EXPECT_TRUE(is_error(post("/clock/advance", json::object()), 400, "INVALID_ARGUMENT"));
}

TEST_P(EventsApi, ClockEndpointsAre404WithoutClockControl) {
    ASSERT_NO_FATAL_FAILURE(start_server({{"PYTHMATA_CLOCK_CONTROL", "false"}}));
    EXPECT_EQ(get("/clock").status, 404);
    EXPECT_EQ(post("/clock/advance", {{"duration", "PT1H"}}).status, 404);
    EXPECT_EQ(post("/clock/reset", json::object()).status, 404);
    EXPECT_TRUE(is_data(get("/timers"), 200)) << "the other runtime endpoints stay";
}

TEST_P(EventsApi, ATimerStartEventStartsInstancesWhenItFallsDue) {
    deploy(models::timer_start("Nightly", "R2/PT1H"));
    const json timers = items("/timers");
    ASSERT_EQ(timers.size(), 1u) << timers.dump();
    EXPECT_TRUE(timers[0]["instance_id"].is_null()) << timers[0].dump();
    EXPECT_EQ(timers[0]["element_id"], "tick");
    EXPECT_EQ(get("/processes/Nightly/instances").json()["data"]["total"], 0);

    ASSERT_TRUE(is_data(post("/clock/advance", {{"duration", "PT61M"}}), 200));
    json started;
    EXPECT_TRUE(eventually(5s, [&] {
        started = get("/processes/Nightly/instances").json()["data"];
        return started.value("total", 0) == 1;
    })) << started.dump();
    ASSERT_FALSE(started["items"].empty());
    const std::string id = started["items"][0].value("id", "");
    EXPECT_EQ(started["items"][0]["active_elements"], json::array({"nightly_task"}));
    EXPECT_EQ(only_task(id).value("element_id", ""), "nightly_task");

    ASSERT_TRUE(is_data(post("/clock/advance", {{"duration", "PT1H"}}), 200));
    EXPECT_TRUE(eventually(5s, [&] {
        return get("/processes/Nightly/instances").json()["data"].value("total", 0) == 2;
    })) << "the second repetition did not start an instance";
    ASSERT_TRUE(is_data(post("/clock/advance", {{"duration", "PT2H"}}), 200));
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(get("/processes/Nightly/instances").json()["data"]["total"], 2) << "R2 repeats twice";
}

TEST_P(EventsApi, AFailingScriptOpensAnIncidentThatPatchAndResolveRetry) {
    deploy(models::fragile_script("Fragile"));
    const auto response = post("/processes/Fragile/instances", json::object());
    ASSERT_TRUE(is_data(response, 201));
    const json held = response.json()["data"];
    const std::string id = held.value("id", "");
    EXPECT_EQ(held["status"], "ERROR") << held.dump();
    EXPECT_EQ(held["incidents"], 1) << held.dump();

    const json incidents = items("/incidents?instance_id=" + id + "&state=OPEN");
    ASSERT_EQ(incidents.size(), 1u) << incidents.dump();
    const json incident = incidents[0];
    EXPECT_EQ(incident["element_id"], "fragile");
    EXPECT_NE(incident.value("message", "").find("not ok yet"), std::string::npos)
        << incident.dump();

    const auto patched = patch("/instances/" + id + "/variables", {{"ok", true}});
    ASSERT_TRUE(is_data(patched, 200));
    EXPECT_EQ(patched.json()["data"]["ok"], true);

    const auto resolved =
        post("/incidents/" + incident.value("id", "") + "/resolve", json::object());
    ASSERT_TRUE(is_data(resolved, 200));
    EXPECT_EQ(resolved.json()["data"]["state"], "RESOLVED");
    EXPECT_TRUE(is_rfc3339_utc(resolved.json()["data"].value("resolved_at", "")))
        << resolved.describe();
    const json done = await_status(id, "COMPLETED", 5s);
    EXPECT_EQ(done["variables"]["done"], true) << "the script ran again, with ok = true";
    EXPECT_EQ(done["incidents"], 0);
    EXPECT_TRUE(items("/incidents?state=OPEN").empty());

    const std::string unknown = "00000000-0000-4000-8000-000000000000";
    EXPECT_TRUE(is_error(post("/incidents/" + unknown + "/resolve", json::object()), 404,
                         "INCIDENT_NOT_FOUND"));
    EXPECT_TRUE(is_error(get("/incidents?state=MAYBE"), 400, "INVALID_ARGUMENT"));
}

TEST_P(EventsApi, AnUnfixedIncidentFailsAgainWhenResolved) {
    deploy(models::fragile_script("Fragile"));
    const std::string id = start("Fragile").value("id", "");
    const json incidents = items("/incidents?instance_id=" + id);
    ASSERT_EQ(incidents.size(), 1u);
    ASSERT_TRUE(is_data(
        post("/incidents/" + incidents[0].value("id", "") + "/resolve", json::object()), 200));
    json open;
    EXPECT_TRUE(eventually(5s,
                           [&] {
                               open = items("/incidents?instance_id=" + id + "&state=OPEN");
                               return open.size() == 1;
                           }))
        << "the retried script failed again, so a new incident is open: " << open.dump();
    EXPECT_EQ(instance(id)["status"], "ERROR");
}

// ---- Models that run on their own ----------------------------------------------------------

TEST_P(EventsApi, ACallActivityRunsTheChildAndContinuesWhenItEnds) {
    deploy(models::user_task("Child", "child_task"));
    deploy(models::parent("Parent", "Child"));
    const json parent = start("Parent", {{"variables", {{"x", 1}}}});
    const std::string id = parent.value("id", "");
    EXPECT_EQ(parent["status"], "RUNNING");
    EXPECT_EQ(parent["active_elements"], json::array({"call_child"}));

    json children;
    EXPECT_TRUE(eventually(5s, [&] {
        children = items("/processes/Child/instances");
        return children.size() == 1;
    })) << children.dump();
    ASSERT_EQ(children.size(), 1u);
    const std::string child = children[0].value("id", "");
    EXPECT_EQ(children[0]["parent_instance_id"], id);
    EXPECT_EQ(children[0]["variables"]["x"], 1) << "the parent's variables go in";

    const json task = only_task(child);
    ASSERT_TRUE(is_data(
        post("/tasks/" + task.value("id", "") + "/complete", {{"variables", {{"y", 2}}}}), 200));
    await_status(child, "COMPLETED", 5s);
    const json done = await_status(id, "COMPLETED", 5s);
    EXPECT_EQ(done["variables"]["y"], 2) << "the child's variables come out";
    EXPECT_EQ(done["variables"]["x"], 1);
}

TEST_P(EventsApi, AnExclusiveGatewayFollowsTheFirstTrueConditionElseTheDefault) {
    deploy(models::route("Route"));
    const json big = start("Route", {{"variables", {{"amount", 500}}}});
    const json small = start("Route", {{"variables", {{"amount", 5}}}});
    EXPECT_EQ(big["status"], "COMPLETED");
    EXPECT_EQ(small["status"], "COMPLETED");
    auto ended_at = [&](const std::string& id) {
        std::set<std::string> ends;
        for (const auto& a : items("/instances/" + id + "/activities?page_size=100")) {
            const std::string element = a.value("element_id", "");
            if (element.starts_with("end_")) {
                ends.insert(element);
            }
        }
        return ends;
    };
    EXPECT_EQ(ended_at(big.value("id", "")), (std::set<std::string>{"end_big"}));
    EXPECT_EQ(ended_at(small.value("id", "")), (std::set<std::string>{"end_small"}));
}

TEST_P(EventsApi, ASignalStartEventStartsAnInstanceAndIsCounted) {
    deploy(models::signal_start("Launcher"));
    deploy(models::signal_catch("AwaitSignal"));
    const std::string waiting = start("AwaitSignal").value("id", "");
    const auto response = post("/signals", {{"name", "Launch"}, {"variables", {{"stage", 1}}}});
    ASSERT_TRUE(is_data(response, 200));
    EXPECT_EQ(response.json()["data"]["triggered"], 1) << response.describe();
    json launched;
    EXPECT_TRUE(eventually(5s, [&] {
        launched = items("/processes/Launcher/instances");
        return launched.size() == 1;
    })) << launched.dump();
    ASSERT_EQ(launched.size(), 1u);
    EXPECT_EQ(launched[0]["active_elements"], json::array({"launched"}));
    EXPECT_EQ(launched[0]["variables"]["stage"], 1);
    EXPECT_EQ(instance(waiting)["status"], "RUNNING") << "another signal's catch did not fire";
}

TEST_P(EventsApi, AZeebeSubscriptionCorrelatesByKey) {
    deploy(models::zeebe_subscription("Parcel"));
    const std::string id = start("Parcel", {{"variables", {{"parcel", "P-7"}}}}).value("id", "");
    const std::string other = start("Parcel", {{"variables", {{"parcel", "P-8"}}}}).value("id", "");
    EXPECT_EQ(instance(id)["active_elements"], json::array({"wait_shipped"}));
    const auto shipped = post("/messages", {{"name", "Shipped"}, {"correlation_key", "P-7"}});
    ASSERT_TRUE(is_data(shipped, 200));
    EXPECT_EQ(shipped.json()["data"]["instance_id"], id);
    EXPECT_EQ(shipped.json()["data"]["element_id"], "wait_shipped");
    await_status(id, "COMPLETED", 5s);
    EXPECT_EQ(instance(other)["active_elements"], json::array({"wait_shipped"}));
}

// Issue 4: "message catch events and receive tasks with correlation keys".
TEST_P(EventsApi, AReceiveTaskCorrelatesByItsCorrelationKey) {
    deploy(models::receive_task("Delivery"));
    const std::string id = start("Delivery", {{"variables", {{"parcel", "P-7"}}}}).value("id", "");
    const std::string other =
        start("Delivery", {{"variables", {{"parcel", "P-8"}}}}).value("id", "");
    EXPECT_EQ(instance(id)["active_elements"], json::array({"wait_delivered"}));
    const auto delivered = post("/messages", {{"name", "Delivered"}, {"correlation_key", "P-8"}});
    ASSERT_TRUE(is_data(delivered, 200));
    EXPECT_EQ(delivered.json()["data"]["instance_id"], other);
    EXPECT_EQ(delivered.json()["data"]["element_id"], "wait_delivered");
    await_status(other, "COMPLETED", 5s);
    EXPECT_EQ(instance(id)["status"], "RUNNING");
    EXPECT_TRUE(is_error(post("/messages", {{"name", "Delivered"}, {"correlation_key", "P-9"}}),
                         404, "MESSAGE_NOT_CORRELATED"));
}

TEST_P(EventsApi, ASuspendedInstanceAdvancesOnNothingUntilResumed) {
    deploy(models::message_catch("AwaitPayment"));
    deploy(models::charge_job("Charge"));
    deploy(models::timer_catch("Wait", "PT1H"));
    deploy(models::signal_catch("AwaitSignal"));
    const std::string message_instance =
        start("AwaitPayment", {{"variables", {{"order_id", "S-1"}}}}).value("id", "");
    const std::string job_instance = start("Charge").value("id", "");
    const std::string timer_instance = start("Wait").value("id", "");
    const std::string signal_instance = start("AwaitSignal").value("id", "");
    const json job = one_job("charge-card");
    for (const auto& id : {message_instance, job_instance, timer_instance, signal_instance}) {
        const auto suspended = post("/instances/" + id + "/suspend", json::object());
        ASSERT_TRUE(is_data(suspended, 200));
        EXPECT_EQ(suspended.json()["data"]["status"], "SUSPENDED");
    }

    // Events aimed at a suspended instance are refused with 409 (instance_service.hpp).
    EXPECT_TRUE(
        is_error(post("/messages", {{"name", "PaymentReceived"}, {"correlation_key", "S-1"}}), 409,
                 "INSTANCE_SUSPENDED"));
    const std::string job_id = job.value("id", "");
    EXPECT_TRUE(
        is_error(post("/jobs/" + job_id + "/complete", json::object()), 409, "INSTANCE_SUSPENDED"));
    EXPECT_TRUE(
        is_error(post("/jobs/" + job_id + "/fail", {{"retries", 0}}), 409, "INSTANCE_SUSPENDED"));
    EXPECT_TRUE(is_error(post("/jobs/" + job_id + "/error", {{"error_code", "DECLINED"}}), 409,
                         "INSTANCE_SUSPENDED"));
    EXPECT_TRUE(is_error(patch("/instances/" + job_instance + "/variables", {{"a", 1}}), 409,
                         "INSTANCE_SUSPENDED"));
    // Broadcast signals skip it; timers that fall due wait for the resume.
    const auto signal = post("/signals", {{"name", "GoSignal"}});
    ASSERT_TRUE(is_data(signal, 200));
    EXPECT_EQ(signal.json()["data"]["triggered"], 0);
    ASSERT_TRUE(is_data(post("/clock/advance", {{"duration", "PT2H"}}), 200));
    std::this_thread::sleep_for(500ms);
    for (const auto& id : {message_instance, job_instance, timer_instance, signal_instance}) {
        EXPECT_EQ(instance(id)["status"], "SUSPENDED") << id;
    }
    EXPECT_EQ(instance(timer_instance)["active_elements"], json::array({"wait_timer"}));

    for (const auto& id : {message_instance, job_instance, timer_instance, signal_instance}) {
        const auto resumed = post("/instances/" + id + "/resume", json::object());
        ASSERT_TRUE(is_data(resumed, 200));
        EXPECT_NE(resumed.json()["data"]["status"], "SUSPENDED");
    }
    await_status(timer_instance, "COMPLETED", 5s);
    EXPECT_EQ(instance(signal_instance)["status"], "RUNNING");
    ASSERT_TRUE(
        is_data(post("/messages", {{"name", "PaymentReceived"}, {"correlation_key", "S-1"}}), 200));
    await_status(message_instance, "COMPLETED", 5s);
    ASSERT_TRUE(is_data(post("/jobs/" + job_id + "/complete", json::object()), 200));
    await_status(job_instance, "COMPLETED", 5s);
    const auto again = post("/signals", {{"name", "GoSignal"}});
    ASSERT_TRUE(is_data(again, 200));
    EXPECT_EQ(again.json()["data"]["triggered"], 1);
    await_status(signal_instance, "COMPLETED", 5s);
    EXPECT_TRUE(is_error(post("/instances/" + signal_instance + "/resume", json::object()), 409,
                         "INSTANCE_NOT_RUNNING"));
}

TEST_P(EventsApi, AnExpiredJobLockHandsTheJobToAnotherWorker) {
    deploy(models::charge_job("Charge"));
    const std::string id = start("Charge").value("id", "");
    const json first = activate("charge-card", {{"lock_ms", 600}});
    ASSERT_EQ(first.size(), 1u);
    EXPECT_TRUE(activate("charge-card").empty());
    json second;
    EXPECT_TRUE(eventually(5s, [&] {
        second = activate("charge-card", {{"worker", "worker-2"}});
        return !second.empty();
    })) << "the job was not redelivered after its lock expired";
    ASSERT_EQ(second.size(), 1u);
    EXPECT_EQ(second[0]["id"], first[0]["id"]);
    EXPECT_EQ(second[0]["instance_id"], id);
    ASSERT_TRUE(
        is_data(post("/jobs/" + second[0].value("id", "") + "/complete", json::object()), 200));
    await_status(id, "COMPLETED", 5s);
}

TEST_P(EventsApi, IdempotencyKeyOnAMessageStartsOneInstance) {
    deploy(models::message_start("OnOrder"));
    const json body = {{"name", "OrderPlaced"}, {"business_key", "once"}};
    const auto first = post("/messages", body, {{"Idempotency-Key", "msg-1"}});
    ASSERT_TRUE(is_data(first, 200));
    const auto again = post("/messages", body, {{"Idempotency-Key", "msg-1"}});
    EXPECT_EQ(again.status, 200) << again.describe();
    EXPECT_EQ(again.json(), first.json());
    EXPECT_EQ(get("/processes/OnOrder/instances").json()["data"]["total"], 1);
    EXPECT_TRUE(
        is_error(post("/messages", {{"name", "OrderPlaced"}}, {{"Idempotency-Key", "msg-1"}}), 409,
                 "IDEMPOTENCY_KEY_REUSED"));
    EXPECT_EQ(get("/processes/OnOrder/instances").json()["data"]["total"], 1);
}

TEST_P(EventsApi, AnInterruptingBoundaryTimerTakesTheTaskAway) {
    deploy(models::boundary_timer("Deadline"));
    const std::string slow = start("Deadline").value("id", "");
    const std::string quick = start("Deadline").value("id", "");
    EXPECT_EQ(items("/timers?instance_id=" + slow).size(), 1u);
    const json task = only_task(quick);
    ASSERT_TRUE(is_data(post("/tasks/" + task.value("id", "") + "/complete", json::object()), 200));
    EXPECT_EQ(instance(quick)["status"], "COMPLETED");
    EXPECT_TRUE(items("/timers?instance_id=" + quick).empty())
        << "completing the task removed its boundary timer";

    const std::string work_task = only_task(slow).value("id", "");
    ASSERT_TRUE(is_data(post("/clock/advance", {{"duration", "PT61M"}}), 200));
    json escalated;
    EXPECT_TRUE(eventually(5s, [&] {
        escalated = instance(slow);
        return escalated["active_elements"] == json::array({"escalate"});
    })) << escalated.dump();
    EXPECT_EQ(only_task(slow).value("element_id", ""), "escalate");
    EXPECT_TRUE(is_error(post("/tasks/" + work_task + "/complete", json::object()), 409,
                         "TASK_ALREADY_COMPLETED"))
        << "the interrupted task is no longer open";
}

TEST_P(EventsApi, AnEventBasedGatewayTakesWhicheverEventComesFirst) {
    deploy(models::event_gateway("Race"));
    const std::string answered =
        start("Race", {{"variables", {{"ticket", "T-1"}}}}).value("id", "");
    const std::string timed_out =
        start("Race", {{"variables", {{"ticket", "T-2"}}}}).value("id", "");
    std::set<std::string> waiting;
    const json racing = instance(answered);
    for (const auto& e : racing["active_elements"]) {
        waiting.insert(e.get<std::string>());
    }
    // The token waits at the gateway (as Camunda and Zeebe show it) or at both of its events.
    EXPECT_TRUE(waiting == std::set<std::string>{"race"} ||
                waiting == (std::set<std::string>{"answer", "timeout"}))
        << racing.dump();

    ASSERT_TRUE(is_data(post("/messages", {{"name", "Answer"}, {"correlation_key", "T-1"}}), 200));
    await_status(answered, "COMPLETED", 5s);
    EXPECT_TRUE(items("/timers?instance_id=" + answered).empty()) << "the losing timer was removed";

    ASSERT_TRUE(is_data(post("/clock/advance", {{"duration", "PT61M"}}), 200));
    await_status(timed_out, "COMPLETED", 5s);
    EXPECT_TRUE(is_error(post("/messages", {{"name", "Answer"}, {"correlation_key", "T-2"}}), 404,
                         "MESSAGE_NOT_CORRELATED"))
        << "the losing message subscription was removed";
    auto ends = [&](const std::string& id) {
        std::set<std::string> out;
        for (const auto& a : items("/instances/" + id + "/activities?page_size=100")) {
            if (a.value("element_id", "").starts_with("end_")) {
                out.insert(a.value("element_id", ""));
            }
        }
        return out;
    };
    EXPECT_EQ(ends(answered), (std::set<std::string>{"end_answered"}));
    EXPECT_EQ(ends(timed_out), (std::set<std::string>{"end_timed_out"}));
}

TEST_P(EventsApi, BuiltInHttpAndLoggerServicesRunWithoutAWorker) {
    const std::string base = "http://127.0.0.1:" + std::to_string(server_->port());
    deploy(models::user_task("Target"));
    deploy(models::http_and_logger("Fetch", base + "/api/v1/processes/${target}"));
    const std::string id = start("Fetch", {{"variables", {{"target", "Target"}}}}).value("id", "");
    const json done = await_status(id, "COMPLETED", 10s);
    ASSERT_TRUE(done["variables"].contains("fetched")) << done.dump();
    EXPECT_EQ(done["variables"]["fetched"]["status"], 200);
    EXPECT_EQ(done["variables"]["fetched"]["body"]["data"]["key"], "Target")
        << "the output variable holds the parsed answer";
    EXPECT_TRUE(activate("fetch").empty() && activate("log").empty())
        << "built-in services are not handed to workers";

    // A failing call is retried and then opens an incident.
    const std::string failing =
        start("Fetch", {{"variables", {{"target", "NoSuchKey"}}}}).value("id", "");
    const json held = await_status(failing, "ERROR", 15s);
    EXPECT_EQ(held["incidents"], 1) << held.dump();
    const json incidents = items("/incidents?instance_id=" + failing);
    ASSERT_EQ(incidents.size(), 1u);
    EXPECT_EQ(incidents[0]["element_id"], "fetch");
    EXPECT_NE(incidents[0].value("message", "").find("404"), std::string::npos)
        << incidents[0].dump();

    // Deploying the target meanwhile and resolving makes the retry succeed.
    deploy(models::user_task("NoSuchKey"));
    ASSERT_TRUE(is_data(
        post("/incidents/" + incidents[0].value("id", "") + "/resolve", json::object()), 200));
    const json fixed = await_status(failing, "COMPLETED", 10s);
    EXPECT_EQ(fixed["variables"]["fetched"]["status"], 200);
}

TEST_P(EventsApi, CancellingAParentCancelsTheChildItCalled) {
    deploy(models::user_task("Child", "child_task"));
    deploy(models::parent("Parent", "Child"));
    const std::string id = start("Parent").value("id", "");
    json children;
    ASSERT_TRUE(eventually(5s, [&] {
        children = items("/processes/Child/instances");
        return children.size() == 1;
    })) << children.dump();
    const std::string child = children[0].value("id", "");
    ASSERT_TRUE(is_data(del("/instances/" + id), 200));
    await_status(child, "CANCELLED", 5s);
    EXPECT_TRUE(open_tasks(child).empty());
}

TEST_P(EventsApi, TheLongPollIsCappedByMaxJobWait) {
    ASSERT_NO_FATAL_FAILURE(start_server({{"PYTHMATA_MAX_JOB_WAIT_MS", "700"}}));
    deploy(models::charge_job("Charge"));
    const auto begin = SteadyClock::now();
    EXPECT_TRUE(activate("charge-card", {{"wait_ms", 60000}}).empty());
    const auto elapsed = SteadyClock::now() - begin;
    EXPECT_GE(elapsed, 600ms);
    EXPECT_LT(elapsed, 5s) << "wait_ms was not capped by max_job_wait_ms";
}

TEST_P(EventsApi, AnIdempotentSignalFiresOnce) {
    deploy(models::signal_catch("AwaitSignal"));
    const std::string a = start("AwaitSignal").value("id", "");
    const std::string b = start("AwaitSignal").value("id", "");
    const json body = {{"name", "GoSignal"}};
    const auto first = post("/signals", body, {{"Idempotency-Key", "sig-1"}});
    ASSERT_TRUE(is_data(first, 200));
    EXPECT_EQ(first.json()["data"]["triggered"], 2);
    await_status(a, "COMPLETED", 5s);
    await_status(b, "COMPLETED", 5s);
    const std::string late = start("AwaitSignal").value("id", "");
    const auto replay = post("/signals", body, {{"Idempotency-Key", "sig-1"}});
    EXPECT_EQ(replay.status, 200);
    EXPECT_EQ(replay.json(), first.json());
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(instance(late)["status"], "RUNNING") << "the replay fired the signal again";
}

// PostgreSQL text columns cannot hold U+0000 either: every string field that reaches the store
// is stored or refused with a 4xx, never a 500.
TEST_P(EventsApi, NulCharactersInStringFieldsNeverCauseA500) {
    deploy(models::user_task("Order"));
    deploy(models::charge_job("Charge"));
    deploy(models::message_catch("AwaitPayment"));
    const std::string nul("x\0y", 3);
    const std::string order = start("Order").value("id", "");
    const std::string task = only_task(order).value("id", "");
    start("Charge");
    start("AwaitPayment", {{"variables", {{"order_id", "N-1"}}}});
    const json job = one_job("charge-card");
    const std::string job_id = job.value("id", "");
    const std::vector<std::pair<std::string, HttpResponse>> answers = {
        {"claim assignee", post("/tasks/" + task + "/claim", {{"assignee", nul}})},
        {"task filter", get("/tasks?assignee=x%00y")},
        {"message name", post("/messages", {{"name", nul}})},
        {"message key", post("/messages", {{"name", "PaymentReceived"}, {"correlation_key", nul}})},
        {"signal name", post("/signals", {{"name", nul}})},
        {"job type", post("/jobs/activate", {{"type", nul}, {"worker", "w"}})},
        {"job worker", post("/jobs/activate", {{"type", "charge-card"}, {"worker", nul}})},
        {"job error message",
         post("/jobs/" + job_id + "/fail", {{"error_message", nul}, {"retries", 2}})},
        {"job error code", post("/jobs/" + job_id + "/error", {{"error_code", nul}})},
        {"instance filter", get("/instances?business_key=x%00y")},
    };
    for (const auto& [what, response] : answers) {
        EXPECT_GT(response.status, 0) << what;
        EXPECT_LT(response.status, 500) << what << ": " << response.describe();
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, EventsApi,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgresRedis),
                         backend_name);

}  // namespace
}  // namespace pythmata::test::runtime
