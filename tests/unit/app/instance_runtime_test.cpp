#include "pythmata/app/instance_runtime.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pythmata/app/idempotency_keys.hpp"
#include "pythmata_fakes/fake_definition_store.hpp"
#include "pythmata_fakes/fake_runtime_store.hpp"
#include "pythmata_fakes/fake_telemetry.hpp"

namespace pythmata::app {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string bpmn(const std::string& body, const std::string& id = "p",
                 const std::string& extra = "") {
    return R"(<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
             xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
             xmlns:pythmata="http://pythmata.org/schema/1.0/bpmn"
             id="defs_)" +
           id + R"(" targetNamespace="test">
)" + extra +
           R"(<process id=")" + id + R"(" isExecutable="true">
)" + body + R"(
</process>
</definitions>)";
}

const std::string kUserTask = bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="review"/>
<userTask id="review" name="Review"/>
<sequenceFlow id="f1" sourceRef="review" targetRef="end"/>
<endEvent id="end"/>)",
                                   "approval");

const std::string kStraight = bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="calc"/>
<scriptTask id="calc" scriptFormat="python"><script>doubled = amount * 2</script></scriptTask>
<sequenceFlow id="f1" sourceRef="calc" targetRef="end"/>
<endEvent id="end"/>)",
                                   "straight");

/// "parent": start -> call activity of "approval" (kUserTask) -> end.
const std::string kParent = bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="call"/>
<callActivity id="call" calledElement="approval"/>
<sequenceFlow id="f1" sourceRef="call" targetRef="end"/>
<endEvent id="end"/>)",
                                 "parent");

class FakeServiceLog final : public ServiceLog {
  public:
    void write(std::string_view level, std::string_view, std::string_view element_id,
               std::string_view message) override {
        std::lock_guard lock(mutex);
        lines.push_back(std::string(level) + " " + std::string(element_id) + " " +
                        std::string(message));
    }
    std::mutex mutex;
    std::vector<std::string> lines;
};

class FakeEventSink final : public InstanceEventSink {
  public:
    void publish(std::vector<InstanceEvent> batch) override {
        std::lock_guard lock(mutex);
        for (auto& e : batch) {
            events.push_back(std::move(e));
        }
    }
    std::vector<std::string> types_of(const std::string& instance_id) {
        std::lock_guard lock(mutex);
        std::vector<std::string> out;
        for (const auto& e : events) {
            if (e.instance_id == instance_id) {
                out.push_back(e.type + (e.type == "INSTANCE_STATUS"
                                            ? ":" + e.data["status"].get<std::string>()
                                        : e.type == "ACTIVITY"
                                            ? ":" + e.data["element_id"].get<std::string>() + ":" +
                                                  e.data["event"].get<std::string>()
                                            : ""));
            }
        }
        return out;
    }
    std::mutex mutex;
    std::vector<InstanceEvent> events;
};

class FakeHttpCaller final : public HttpCaller {
  public:
    Result<HttpReply> call(const HttpCall& request) override {
        std::lock_guard lock(mutex);
        calls.push_back(request);
        return reply;
    }
    std::mutex mutex;
    std::vector<HttpCall> calls;
    HttpReply reply{200, {}, R"({"ok":true})"};
};

class InstanceRuntimeTest : public ::testing::Test {
  protected:
    void SetUp() override {
        settings.clock_control = true;
        settings.state_check_interval = 50ms;
    }

    void TearDown() override {
        if (runtime) {
            runtime->stop();
        }
        if (catalog) {
            catalog->set_deploy_observer(nullptr);
        }
    }

    void make() {
        catalog =
            std::make_unique<DefinitionCatalog>(defs, nullptr, telemetry, clock, cache, settings);
        runtime = std::make_unique<InstanceRuntime>(store, *catalog, telemetry, clock, settings,
                                                    &http, &log);
        catalog->set_deploy_observer(runtime.get());
        runtime->set_event_sink(&events);
        runtime->start();
    }

    void deploy(const std::string& xml) {
        auto r = catalog->deploy({xml, std::nullopt, std::nullopt});
        ASSERT_TRUE(r.ok()) << r.error().message << " " << r.error().context.dump();
    }

    InstanceView start(const std::string& key, json vars = json::object(),
                       std::optional<std::string> business_key = std::nullopt) {
        auto r =
            runtime->start_instance({key, std::nullopt, std::move(business_key), std::move(vars)});
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().code + ": " + r.error().message);
        return r.ok() ? r.value() : InstanceView{};
    }

    std::string status(const std::string& id) {
        auto v = runtime->instance(id);
        return v.ok() ? v.value().status : "?" + v.error().code;
    }

    /// Follow-ups (thrown signals, child instances, built-in services) run after the commit that
    /// caused them; wait for their visible outcome, bounded.
    bool eventually(const std::function<bool()>& done) {
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (std::chrono::steady_clock::now() < deadline) {
            if (done()) {
                return true;
            }
            std::this_thread::sleep_for(5ms);
        }
        return done();
    }

    std::vector<TaskView> open_tasks(const std::optional<std::string>& instance_id = std::nullopt) {
        TaskQuery q;
        q.instance_id = instance_id;
        auto r = runtime->list_tasks(q, {1, 100});
        EXPECT_TRUE(r.ok());
        return r.ok() ? r.value().items : std::vector<TaskView>{};
    }

    fakes::FakeDefinitionStore defs;
    fakes::FakeRuntimeStore store;
    fakes::FakeTelemetry telemetry;
    fakes::ManualClock clock;
    FakeServiceLog log;
    FakeHttpCaller http;
    FakeEventSink events;
    CacheSettings cache;
    EngineSettings settings;
    std::unique_ptr<DefinitionCatalog> catalog;
    std::unique_ptr<InstanceRuntime> runtime;
};

TEST_F(InstanceRuntimeTest, StraightThroughProcessAnswersCompletedWithFinalVariables) {
    make();
    deploy(kStraight);
    const int commits_before = store.commits;
    auto v = start("straight", {{"amount", 21}}, "order-1");
    EXPECT_EQ(v.status, "COMPLETED");
    EXPECT_EQ(v.variables["doubled"], 42);
    EXPECT_EQ(v.process_key, "straight");
    EXPECT_EQ(v.process_version, 1);
    EXPECT_EQ(v.business_key, "order-1");
    EXPECT_TRUE(v.ended_at.has_value());
    EXPECT_EQ(store.commits - commits_before, 1);

    // Durable: the answer is what the store holds.
    auto stored = runtime->instance(v.id);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(stored.value().status, "COMPLETED");
    EXPECT_EQ(stored.value().variables["doubled"], 42);

    auto history = runtime->activities(v.id, {1, 100});
    ASSERT_TRUE(history.ok());
    ASSERT_FALSE(history.value().items.empty());
    EXPECT_EQ(history.value().items.front().element_id, "start");
    EXPECT_EQ(history.value().items.front().event, "STARTED");
    EXPECT_EQ(history.value().items.back().element_id, "end");
    EXPECT_EQ(telemetry.started, 1);
    EXPECT_EQ(telemetry.ended_with("COMPLETED"), 1);
    EXPECT_GT(telemetry.tokens, 0);
}

TEST_F(InstanceRuntimeTest, CommittedChangesArePublishedAsInstanceEvents) {
    make();
    deploy(kUserTask);
    auto v = start("approval", {{"a", 1}});
    using V = std::vector<std::string>;
    EXPECT_EQ(events.types_of(v.id),
              (V{"INSTANCE_STATUS:RUNNING", "ACTIVITY:start:STARTED", "ACTIVITY:start:COMPLETED",
                 "ACTIVITY:review:STARTED", "VARIABLES", "TASK_CREATED"}));
    {
        std::lock_guard lock(events.mutex);
        const auto& task = events.events.back();
        EXPECT_EQ(task.process_key, "approval");
        EXPECT_EQ(task.data["element_id"], "review");
        EXPECT_EQ(task.data["task_id"], open_tasks(v.id).at(0).id);
    }
    ASSERT_TRUE(runtime->suspend_instance(v.id).ok());
    ASSERT_TRUE(runtime->resume_instance(v.id).ok());
    ASSERT_TRUE(runtime->complete_task(open_tasks(v.id).at(0).id, {{"b", 2}}).ok());
    auto types = events.types_of(v.id);
    ASSERT_GE(types.size(), 8u);
    EXPECT_EQ(types[6], "INSTANCE_STATUS:SUSPENDED");
    EXPECT_EQ(types[7], "INSTANCE_STATUS:RUNNING");
    EXPECT_EQ(types[8], "INSTANCE_STATUS:COMPLETED");
    EXPECT_NE(std::find(types.begin(), types.end(), "ACTIVITY:end:COMPLETED"), types.end());
    EXPECT_EQ(std::count(types.begin(), types.end(), "VARIABLES"), 2);
}

TEST_F(InstanceRuntimeTest, UnknownProcessAndVersionAre404) {
    make();
    deploy(kStraight);
    auto r = runtime->start_instance({"nope", std::nullopt, std::nullopt, json::object()});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "PROCESS_NOT_FOUND");
    auto v = runtime->start_instance({"straight", 7, std::nullopt, {{"amount", 1}}});
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error().code, "PROCESS_VERSION_NOT_FOUND");
    auto i = runtime->instance("00000000-0000-4000-8000-000000000000");
    ASSERT_FALSE(i.ok());
    EXPECT_EQ(i.error().code, "INSTANCE_NOT_FOUND");
}

TEST_F(InstanceRuntimeTest, UserTaskWaitsThenCompletesAndCannotCompleteTwice) {
    make();
    deploy(kUserTask);
    auto v = start("approval", {{"amount", 5}});
    EXPECT_EQ(v.status, "RUNNING");
    EXPECT_EQ(v.active_elements, std::vector<std::string>{"review"});

    auto tasks = open_tasks(v.id);
    ASSERT_EQ(tasks.size(), 1u);
    EXPECT_EQ(tasks[0].element_id, "review");
    EXPECT_EQ(tasks[0].name, "Review");
    EXPECT_EQ(tasks[0].process_key, "approval");

    auto claimed = runtime->claim_task(tasks[0].id, "alice");
    ASSERT_TRUE(claimed.ok());
    EXPECT_EQ(claimed.value().assignee, "alice");
    auto detail = runtime->task(tasks[0].id);
    ASSERT_TRUE(detail.ok());
    EXPECT_EQ(detail.value().variables["amount"], 5);

    auto done = runtime->complete_task(tasks[0].id, {{"approved", true}});
    ASSERT_TRUE(done.ok()) << done.error().message;
    EXPECT_EQ(done.value().status, "COMPLETED");
    EXPECT_EQ(done.value().variables["approved"], true);
    EXPECT_TRUE(open_tasks(v.id).empty());

    auto again = runtime->complete_task(tasks[0].id, json::object());
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, "TASK_ALREADY_COMPLETED");
    auto claim_again = runtime->claim_task(tasks[0].id, "bob");
    ASSERT_FALSE(claim_again.ok());
    EXPECT_EQ(claim_again.error().code, "TASK_ALREADY_COMPLETED");

    TaskQuery completed;
    completed.state = "COMPLETED";
    auto list = runtime->list_tasks(completed, {1, 10});
    ASSERT_TRUE(list.ok());
    ASSERT_EQ(list.value().items.size(), 1u);
    EXPECT_EQ(list.value().items[0].id, tasks[0].id);

    auto missing = runtime->complete_task("no-such-task", json::object());
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code, "TASK_NOT_FOUND");
}

/// The answer of a try_* call, waited for (bounded).
class AsyncAnswer {
  public:
    InstanceService::InstanceCallback callback() {
        return [this](Result<InstanceView> r) {
            std::lock_guard lock(mutex_);
            answers_.push_back(std::move(r));
            caller_ = std::this_thread::get_id();
            cv_.notify_all();
        };
    }
    Result<InstanceView> get() {
        std::unique_lock lock(mutex_);
        EXPECT_TRUE(cv_.wait_for(lock, 5s, [&] { return !answers_.empty(); }));
        if (answers_.empty())
            return Error::internal_error("no answer");
        return answers_.front();
    }
    std::size_t count() {
        std::lock_guard lock(mutex_);
        return answers_.size();
    }
    std::thread::id caller() {
        std::lock_guard lock(mutex_);
        return caller_;
    }

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<Result<InstanceView>> answers_;
    std::thread::id caller_;
};

TEST_F(InstanceRuntimeTest, StartAndCompleteWithoutBlockingWhenTheRuntimeKnowsEnough) {
    make();
    deploy(kUserTask);
    start("approval");  // compiles the definition, if the deploy did not
    StartInstanceRequest request{"approval", std::nullopt, "order-9", {{"amount", 7}}};
    AsyncAnswer started;
    auto callback = started.callback();
    const int commits_before = store.commits;
    ASSERT_TRUE(runtime->try_start_instance(request, callback));
    auto view = started.get();
    ASSERT_TRUE(view.ok()) << view.error().code;
    EXPECT_EQ(view.value().status, "RUNNING");
    EXPECT_EQ(view.value().business_key, "order-9");
    EXPECT_EQ(view.value().variables["amount"], 7);
    EXPECT_NE(started.caller(), std::this_thread::get_id());  // answered by an engine worker
    EXPECT_EQ(store.commits - commits_before, 1);             // durable before the answer
    EXPECT_EQ(status(view.value().id), "RUNNING");

    // The task was opened here: completing it takes no store read and no waiting thread.
    auto tasks = open_tasks(view.value().id);
    ASSERT_EQ(tasks.size(), 1u);
    json vars = {{"approved", true}};
    AsyncAnswer completed;
    auto complete_callback = completed.callback();
    ASSERT_TRUE(runtime->try_complete_task(tasks[0].id, vars, complete_callback));
    auto done = completed.get();
    ASSERT_TRUE(done.ok()) << done.error().code;
    EXPECT_EQ(done.value().status, "COMPLETED");
    EXPECT_EQ(done.value().variables["approved"], true);
    EXPECT_EQ(status(view.value().id), "COMPLETED");

    // Completed: the task is forgotten, so a second completion takes the blocking way (409).
    json again_vars = json::object();
    AsyncAnswer again;
    auto again_callback = again.callback();
    EXPECT_FALSE(runtime->try_complete_task(tasks[0].id, again_vars, again_callback));
    auto twice = runtime->complete_task(tasks[0].id, json::object());
    ASSERT_FALSE(twice.ok());
    EXPECT_EQ(twice.error().code, "TASK_ALREADY_COMPLETED");

    // Unknown key and a named version: declined, the blocking call answers.
    StartInstanceRequest unknown{"nope", std::nullopt, std::nullopt, json::object()};
    EXPECT_FALSE(runtime->try_start_instance(unknown, callback));
    StartInstanceRequest versioned{"approval", 1, std::nullopt, json::object()};
    EXPECT_FALSE(runtime->try_start_instance(versioned, callback));
}

// A start and a completion name the user tasks they opened (the client completes one next
// without GET /tasks); other answers do not; tasks of a called child are the child's.
TEST_F(InstanceRuntimeTest, StartAndCompletionAnswersNameTheTasksTheyOpened) {
    make();
    deploy(bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
<parallelGateway id="fork"/>
<sequenceFlow id="f1" sourceRef="fork" targetRef="a"/>
<sequenceFlow id="f2" sourceRef="fork" targetRef="b"/>
<userTask id="a" name="Check A"/>
<userTask id="b" name="Check B"/>
<sequenceFlow id="f3" sourceRef="a" targetRef="c"/>
<userTask id="c" name="Sign"/>
<sequenceFlow id="f4" sourceRef="c" targetRef="join"/>
<sequenceFlow id="f5" sourceRef="b" targetRef="join"/>
<parallelGateway id="join"/>
<sequenceFlow id="f6" sourceRef="join" targetRef="end"/>
<endEvent id="end"/>)",
                "review2"));
    auto v = start("review2");
    ASSERT_TRUE(v.opened_tasks.has_value());
    auto listed = open_tasks(v.id);
    ASSERT_EQ(listed.size(), 2u);
    std::vector<TaskRef> expected;
    for (const auto& t : listed) {
        expected.push_back({t.id, t.element_id, t.name});
    }
    auto by_element = [](const TaskRef& x, const TaskRef& y) {
        return x.element_id < y.element_id;
    };
    std::vector<TaskRef> opened = *v.opened_tasks;
    std::sort(opened.begin(), opened.end(), by_element);
    std::sort(expected.begin(), expected.end(), by_element);
    EXPECT_EQ(opened, expected);
    EXPECT_EQ(opened[0].name, "Check A");

    // Reading the instance answers no opened tasks: nothing was opened by the read.
    EXPECT_FALSE(runtime->instance(v.id).value().opened_tasks.has_value());

    // Completing `a` opens `c` (and only `c`: `b` stays open but was not opened now).
    auto after_a = runtime->complete_task(opened[0].id, json::object());
    ASSERT_TRUE(after_a.ok()) << after_a.error().message;
    ASSERT_TRUE(after_a.value().opened_tasks.has_value());
    ASSERT_EQ(after_a.value().opened_tasks->size(), 1u);
    const TaskRef sign = after_a.value().opened_tasks->at(0);
    EXPECT_EQ(sign.element_id, "c");
    EXPECT_EQ(sign.name, "Sign");

    // Completing `b` (the non-blocking way) opens nothing; completing `c` ends the instance.
    json none = json::object();
    AsyncAnswer after_b;
    auto callback = after_b.callback();
    ASSERT_TRUE(runtime->try_complete_task(opened[1].id, none, callback));
    auto b_done = after_b.get();
    ASSERT_TRUE(b_done.ok()) << b_done.error().code;
    ASSERT_TRUE(b_done.value().opened_tasks.has_value());
    EXPECT_TRUE(b_done.value().opened_tasks->empty());
    auto ended = runtime->complete_task(sign.id, json::object());
    ASSERT_TRUE(ended.ok()) << ended.error().message;
    EXPECT_EQ(ended.value().status, "COMPLETED");
    EXPECT_TRUE(ended.value().opened_tasks->empty());

    // A parent whose called child waits in a user task opened none itself.
    deploy(kUserTask);
    deploy(kParent);
    auto parent = start("parent");
    ASSERT_TRUE(parent.opened_tasks.has_value());
    EXPECT_TRUE(parent.opened_tasks->empty());
}

TEST_F(InstanceRuntimeTest, NonBlockingCompletionOfATaskClosedAnotherWayAnswersFromTheStore) {
    make();
    deploy(kUserTask);
    auto v = start("approval");
    auto tasks = open_tasks(v.id);
    ASSERT_EQ(tasks.size(), 1u);
    // Cancelled behind the cache's back: the entry is stale, the engine refuses the command and
    // the answer is the stored state, as from complete_task.
    ASSERT_TRUE(runtime->cancel_instance(v.id).ok());
    json vars = json::object();
    AsyncAnswer answer;
    auto callback = answer.callback();
    ASSERT_TRUE(runtime->try_complete_task(tasks[0].id, vars, callback));
    auto r = answer.get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "TASK_ALREADY_COMPLETED");
    EXPECT_EQ(r.error().context["state"], "CANCELLED");
    EXPECT_EQ(answer.count(), 1u);

    // Refusals found at once are answered at once, on the caller's thread.
    auto w = start("approval");
    auto open = open_tasks(w.id);
    ASSERT_EQ(open.size(), 1u);
    json huge = {{"blob", std::string(settings.max_variable_size + 1, 'x')}};
    AsyncAnswer refused;
    auto refused_callback = refused.callback();
    ASSERT_TRUE(runtime->try_complete_task(open[0].id, huge, refused_callback));
    auto too_large = refused.get();
    ASSERT_FALSE(too_large.ok());
    EXPECT_EQ(too_large.error().code, "VARIABLE_TOO_LARGE");
    EXPECT_EQ(refused.caller(), std::this_thread::get_id());
    EXPECT_EQ(status(w.id), "RUNNING");
}

TEST_F(InstanceRuntimeTest, OpenTaskCacheOffMeansEveryCompletionReadsTheStore) {
    settings.open_task_cache_entries = 0;
    make();
    deploy(kUserTask);
    auto v = start("approval");
    auto tasks = open_tasks(v.id);
    ASSERT_EQ(tasks.size(), 1u);
    json vars = json::object();
    AsyncAnswer answer;
    auto callback = answer.callback();
    EXPECT_FALSE(runtime->try_complete_task(tasks[0].id, vars, callback));
    ASSERT_TRUE(runtime->complete_task(tasks[0].id, json::object()).ok());
}

TEST_F(InstanceRuntimeTest, OpenTaskCacheForgetsTheOldestTasksWhenFull) {
    settings.open_task_cache_entries = 2;
    make();
    deploy(kUserTask);
    std::vector<std::string> task_ids;
    for (int i = 0; i < 3; ++i) {
        auto v = start("approval");
        auto tasks = open_tasks(v.id);
        ASSERT_EQ(tasks.size(), 1u);
        task_ids.push_back(tasks[0].id);
    }
    json vars = json::object();
    AsyncAnswer answer;
    auto callback = answer.callback();
    EXPECT_FALSE(runtime->try_complete_task(task_ids[0], vars, callback));  // forgotten
    ASSERT_TRUE(runtime->complete_task(task_ids[0], json::object()).ok());
    for (int i = 1; i < 3; ++i) {
        AsyncAnswer a;
        auto cb = a.callback();
        json none = json::object();
        ASSERT_TRUE(runtime->try_complete_task(task_ids[i], none, cb));
        auto r = a.get();
        EXPECT_TRUE(r.ok()) << r.error().code << " " << r.error().message;
    }
}

const std::string kMessageCatch = bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="wait"/>
<intermediateCatchEvent id="wait"><messageEventDefinition messageRef="m" pythmata:correlationKey="${order_id}"/></intermediateCatchEvent>
<sequenceFlow id="f1" sourceRef="wait" targetRef="end"/>
<endEvent id="end"/>)",
                                       "orders", R"(<message id="m" name="paid"/>)");

TEST_F(InstanceRuntimeTest, MessageCorrelatesByKeyToTheRightInstance) {
    make();
    deploy(kMessageCatch);
    auto a = start("orders", {{"order_id", "A-1"}});
    auto b = start("orders", {{"order_id", "B-2"}});
    ASSERT_EQ(a.status, "RUNNING");

    MessageRequest m;
    m.name = "paid";
    m.correlation_key = "B-2";
    m.variables = {{"paid_amount", 10}};
    auto r = runtime->correlate_message(m);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r.value().instance_id, b.id);
    EXPECT_EQ(r.value().element_id, "wait");
    EXPECT_FALSE(r.value().started);
    EXPECT_EQ(status(b.id), "COMPLETED");
    EXPECT_EQ(status(a.id), "RUNNING");
    EXPECT_EQ(runtime->variables(b.id).value()["paid_amount"], 10);

    // Consumed: the same key finds nothing now.
    auto again = runtime->correlate_message(m);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, "MESSAGE_NOT_CORRELATED");
    m.correlation_key = "nobody";
    EXPECT_EQ(runtime->correlate_message(m).error().code, "MESSAGE_NOT_CORRELATED");
}

TEST_F(InstanceRuntimeTest, MessageStartEventCreatesAnInstance) {
    make();
    deploy(bpmn(R"(
<startEvent id="start"><messageEventDefinition messageRef="m"/></startEvent>
<sequenceFlow id="f0" sourceRef="start" targetRef="task"/>
<userTask id="task"/>
<sequenceFlow id="f1" sourceRef="task" targetRef="end"/>
<endEvent id="end"/>)",
                "inbox", R"(<message id="m" name="mail"/>)"));
    MessageRequest m;
    m.name = "mail";
    m.business_key = "bk-9";
    m.variables = {{"subject", "hi"}};
    auto r = runtime->correlate_message(m);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r.value().started);
    EXPECT_EQ(r.value().element_id, "start");
    auto v = runtime->instance(r.value().instance_id);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v.value().process_key, "inbox");
    EXPECT_EQ(v.value().business_key, "bk-9");
    EXPECT_EQ(v.value().variables["subject"], "hi");
    EXPECT_EQ(v.value().active_elements, std::vector<std::string>{"task"});
}

const std::string kSignalCatch = bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="wait"/>
<intermediateCatchEvent id="wait"><signalEventDefinition signalRef="s"/></intermediateCatchEvent>
<sequenceFlow id="f1" sourceRef="wait" targetRef="end"/>
<endEvent id="end"/>)",
                                      "listener", R"(<signal id="s" name="alarm"/>)");

TEST_F(InstanceRuntimeTest, SignalFansOutToEverySubscriptionAndSignalStartEvent) {
    make();
    deploy(kSignalCatch);
    deploy(bpmn(R"(
<startEvent id="start"><signalEventDefinition signalRef="s"/></startEvent>
<sequenceFlow id="f0" sourceRef="start" targetRef="task"/>
<userTask id="task"/>
<sequenceFlow id="f1" sourceRef="task" targetRef="end"/>
<endEvent id="end"/>)",
                "on_alarm", R"(<signal id="s" name="alarm"/>)"));
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
        ids.push_back(start("listener").id);
    }
    auto r = runtime->broadcast_signal({"alarm", {{"level", 3}}});
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r.value().triggered, 4);
    for (const auto& id : ids) {
        EXPECT_EQ(status(id), "COMPLETED");
    }
    InstanceQuery q;
    q.process_key = "on_alarm";
    auto started = runtime->list_instances(q, {1, 10});
    ASSERT_TRUE(started.ok());
    ASSERT_EQ(started.value().total, 1);
    EXPECT_EQ(started.value().items[0].variables["level"], 3);

    auto none = runtime->broadcast_signal({"alarm", json::object()});
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(none.value().triggered, 1);  // only the start event is left
}

TEST_F(InstanceRuntimeTest, ThrownSignalReachesOtherInstances) {
    make();
    deploy(kSignalCatch);
    deploy(bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="go"/>
<userTask id="go"/>
<sequenceFlow id="f1" sourceRef="go" targetRef="throw"/>
<intermediateThrowEvent id="throw"><signalEventDefinition signalRef="s"/></intermediateThrowEvent>
<sequenceFlow id="f2" sourceRef="throw" targetRef="end"/>
<endEvent id="end"/>)",
                "thrower", R"(<signal id="s" name="alarm"/>)"));
    auto listener = start("listener");
    auto thrower = start("thrower");
    auto task = open_tasks(thrower.id);
    ASSERT_EQ(task.size(), 1u);
    ASSERT_TRUE(runtime->complete_task(task[0].id, json::object()).ok());
    EXPECT_TRUE(eventually([&] { return status(listener.id) == "COMPLETED"; }))
        << status(listener.id);
}

const std::string kTimer = bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="pause"/>
<intermediateCatchEvent id="pause"><timerEventDefinition><timeDuration>PT1H</timeDuration></timerEventDefinition></intermediateCatchEvent>
<sequenceFlow id="f1" sourceRef="pause" targetRef="end"/>
<endEvent id="end"/>)",
                                "timed");

TEST_F(InstanceRuntimeTest, TimersFireWhenTheClockIsAdvanced) {
    make();
    deploy(kTimer);
    auto v = start("timed");
    ASSERT_EQ(v.status, "RUNNING");
    auto timers = runtime->list_timers(v.id, {});
    ASSERT_TRUE(timers.ok());
    ASSERT_EQ(timers.value().items.size(), 1u);
    EXPECT_EQ(timers.value().total, 1);
    EXPECT_EQ(timers.value().items[0].element_id, "pause");
    EXPECT_EQ(timers.value().items[0].due_at, clock.now() + 1h);

    ASSERT_TRUE(runtime->advance_clock("PT30M").ok());
    EXPECT_EQ(status(v.id), "RUNNING");
    auto now = runtime->advance_clock("PT31M");
    ASSERT_TRUE(now.ok());
    EXPECT_EQ(now.value().now, clock.now() + 61min);
    EXPECT_EQ(status(v.id), "COMPLETED");
    EXPECT_TRUE(runtime->list_timers(v.id, {}).value().items.empty());
    EXPECT_EQ(telemetry.timers_fired, 1);

    ASSERT_TRUE(runtime->reset_clock().ok());
    EXPECT_EQ(runtime->clock().value().now, clock.now());
    EXPECT_EQ(runtime->advance_clock("soon").error().code, "INVALID_ARGUMENT");
}

TEST_F(InstanceRuntimeTest, TimersDueTogetherFireOnceInBatchesOfTimerBatchSize) {
    settings.workers = 1;
    settings.token_batch_size = 10;   // commands of a request commit 10 at a time at most ...
    settings.timer_batch_size = 400;  // ... due timers 400 at a time
    make();
    deploy(kTimer);
    constexpr int kInstances = 300;
    std::vector<std::string> ids;
    for (int i = 0; i < kInstances; ++i) {
        ids.push_back(start("timed").id);
    }
    const auto before = runtime->stats().value().batches_committed;
    ASSERT_TRUE(runtime->advance_clock("PT2H").ok());  // all 300 due at once; fired when it returns
    const auto batches = runtime->stats().value().batches_committed - before;
    for (const auto& id : ids) {
        ASSERT_EQ(status(id), "COMPLETED") << id;
        int fired = 0;
        // The page held by a local: a range-for over a member of the temporary Result would
        // read it after its end (AddressSanitizer: stack-use-after-scope).
        const auto activities = runtime->activities(id, {1, 100});
        for (const auto& a : activities.value().items) {
            fired += a.element_id == "pause" && a.event == "COMPLETED" ? 1 : 0;
        }
        EXPECT_EQ(fired, 1) << id;
    }
    EXPECT_TRUE(runtime->list_timers(std::nullopt, {}).value().items.empty());
    EXPECT_EQ(telemetry.timers_fired, kInstances);
    // token_batch_size alone would take at least 30 commits.
    EXPECT_GE(batches, 1);
    EXPECT_LE(batches, 3) << "the firings were not committed in timer batches";
}

TEST_F(InstanceRuntimeTest, CycleTimerBoundaryReArmsWithANewRowUntilItsRepetitionsEnd) {
    make();
    deploy(bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="task"/>
<userTask id="task"/>
<boundaryEvent id="remind" attachedToRef="task" cancelActivity="false"><timerEventDefinition><timeCycle>R3/PT10M</timeCycle></timerEventDefinition></boundaryEvent>
<sequenceFlow id="f1" sourceRef="task" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="remind" targetRef="noted"/>
<endEvent id="end"/>
<endEvent id="noted"/>)",
                "reminders"));
    auto v = start("reminders");
    auto first = runtime->list_timers(v.id, {}).value().items;
    ASSERT_EQ(first.size(), 1u);
    EXPECT_EQ(first[0].due_at, clock.now() + 10min);
    EXPECT_EQ(first[0].repeat, 2);

    ASSERT_TRUE(runtime->advance_clock("PT10M").ok());
    auto second = runtime->list_timers(v.id, {}).value().items;
    ASSERT_EQ(second.size(), 1u);
    EXPECT_NE(second[0].id, first[0].id);
    EXPECT_EQ(second[0].due_at, clock.now() + 20min);
    EXPECT_EQ(second[0].repeat, 1);

    ASSERT_TRUE(runtime->advance_clock("PT25M").ok());
    EXPECT_TRUE(runtime->list_timers(v.id, {}).value().items.empty());
    int noted = 0;
    const auto activities = runtime->activities(v.id, {1, 100}).value().items;
    for (const auto& a : activities) {
        noted += a.element_id == "noted" && a.event == "COMPLETED" ? 1 : 0;
    }
    EXPECT_EQ(noted, 3);
    EXPECT_EQ(status(v.id), "RUNNING");
    EXPECT_EQ(open_tasks(v.id).size(), 1u);
}

TEST_F(InstanceRuntimeTest, ClockEndpointsAreNotFoundWithoutClockControl) {
    settings.clock_control = false;
    make();
    EXPECT_FALSE(runtime->clock_control());
    EXPECT_EQ(runtime->clock().error().code, "NOT_FOUND");
    EXPECT_EQ(runtime->advance_clock("PT1H").error().code, "NOT_FOUND");
}

TEST_F(InstanceRuntimeTest, ScheduledTimerFiresWithoutAnyRequest) {
    settings.clock_control = false;
    make();
    deploy(kTimer);
    auto v = start("timed");
    clock.advance(2h);  // the scheduler polls every state_check_interval (50 ms here)
    EXPECT_TRUE(eventually([&] { return status(v.id) == "COMPLETED"; })) << status(v.id);
}

TEST_F(InstanceRuntimeTest, TimerStartEventStartsInstancesOnSchedule) {
    make();
    deploy(bpmn(R"(
<startEvent id="tick"><timerEventDefinition><timeCycle>R2/PT1H</timeCycle></timerEventDefinition></startEvent>
<sequenceFlow id="f0" sourceRef="tick" targetRef="end"/>
<endEvent id="end"/>)",
                "cron"));
    auto timers = runtime->list_timers(std::nullopt, {});
    ASSERT_TRUE(timers.ok());
    ASSERT_EQ(timers.value().items.size(), 1u);
    EXPECT_TRUE(timers.value().items[0].instance_id.empty());
    EXPECT_EQ(timers.value().items[0].element_id, "tick");

    InstanceQuery q;
    q.process_key = "cron";
    ASSERT_TRUE(runtime->advance_clock("PT59M").ok());
    EXPECT_EQ(runtime->list_instances(q, {1, 10}).value().total, 0);
    ASSERT_TRUE(runtime->advance_clock("PT2M").ok());
    EXPECT_EQ(runtime->list_instances(q, {1, 10}).value().total, 1);
    ASSERT_TRUE(runtime->advance_clock("PT1H").ok());
    EXPECT_EQ(runtime->list_instances(q, {1, 10}).value().total, 2);
    EXPECT_TRUE(runtime->list_timers(std::nullopt, {}).value().items.empty());
    ASSERT_TRUE(runtime->advance_clock("PT5H").ok());
    EXPECT_EQ(runtime->list_instances(q, {1, 10}).value().total, 2);
}

TEST_F(InstanceRuntimeTest, NewVersionReplacesTheTimerStartEventsOfTheOldOne) {
    make();
    const std::string v1 = bpmn(R"(
<startEvent id="tick"><timerEventDefinition><timeCycle>R/PT1H</timeCycle></timerEventDefinition></startEvent>
<sequenceFlow id="f0" sourceRef="tick" targetRef="end"/>
<endEvent id="end"/>)",
                                "cron");
    deploy(v1);
    std::string v2 = v1;
    v2.replace(v2.find("PT1H"), 4, "PT2H");
    deploy(v2);
    auto timers = runtime->list_timers(std::nullopt, {});
    ASSERT_TRUE(timers.ok());
    ASSERT_EQ(timers.value().items.size(), 1u);
    EXPECT_EQ(timers.value().items[0].due_at, clock.now() + 2h);
}

const std::string kJob = bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="charge"/>
<serviceTask id="charge" camunda:topic="payments"/>
<boundaryEvent id="declined" attachedToRef="charge"><errorEventDefinition errorRef="e"/></boundaryEvent>
<sequenceFlow id="f1" sourceRef="charge" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="declined" targetRef="failed"/>
<endEvent id="end"/>
<endEvent id="failed"/>)",
                              "pay", R"(<error id="e" errorCode="DECLINED"/>)");

TEST_F(InstanceRuntimeTest, JobsActivateAndComplete) {
    make();
    deploy(kJob);
    auto v = start("pay", {{"amount", 9}});
    auto jobs = runtime->activate_jobs({"payments", "w1", 10, 60s, 0ms});
    ASSERT_TRUE(jobs.ok());
    ASSERT_EQ(jobs.value().size(), 1u);
    EXPECT_EQ(jobs.value()[0].instance_id, v.id);
    EXPECT_EQ(jobs.value()[0].element_id, "charge");
    EXPECT_EQ(jobs.value()[0].variables["amount"], 9);
    // Locked: a second worker gets nothing.
    EXPECT_TRUE(runtime->activate_jobs({"payments", "w2", 10, 60s, 0ms}).value().empty());

    ASSERT_TRUE(runtime->complete_job(jobs.value()[0].id, {{"receipt", "r1"}}).ok());
    EXPECT_EQ(status(v.id), "COMPLETED");
    EXPECT_EQ(runtime->variables(v.id).value()["receipt"], "r1");
    EXPECT_EQ(runtime->complete_job(jobs.value()[0].id, json::object()).error().code,
              "JOB_NOT_FOUND");
}

TEST_F(InstanceRuntimeTest, JobFailureRetriesThenOpensAnIncidentThatResolves) {
    make();
    deploy(kJob);
    auto v = start("pay");
    auto jobs = runtime->activate_jobs({"payments", "w1", 1, 60s, 0ms});
    ASSERT_EQ(jobs.value().size(), 1u);
    const std::string job = jobs.value()[0].id;

    ASSERT_TRUE(runtime->fail_job(job, {"timeout", 1, 10min}).ok());
    EXPECT_EQ(status(v.id), "RUNNING");
    EXPECT_TRUE(runtime->activate_jobs({"payments", "w1", 1, 60s, 0ms}).value().empty());
    ASSERT_TRUE(runtime->advance_clock("PT11M").ok());
    auto retry = runtime->activate_jobs({"payments", "w1", 1, 60s, 0ms});
    ASSERT_EQ(retry.value().size(), 1u);
    EXPECT_EQ(retry.value()[0].retries, 1);

    ASSERT_TRUE(runtime->fail_job(job, {"still down", 0, 0ms}).ok());
    auto inst = runtime->instance(v.id).value();
    EXPECT_EQ(inst.status, "ERROR");
    EXPECT_EQ(inst.incidents, 1);
    auto incidents = runtime->list_incidents({v.id, "OPEN"}, {1, 10});
    ASSERT_TRUE(incidents.ok());
    ASSERT_EQ(incidents.value().items.size(), 1u);
    const auto& incident = incidents.value().items[0];
    EXPECT_EQ(incident.kind, "JOB_FAILED");
    EXPECT_EQ(incident.element_id, "charge");
    EXPECT_EQ(incident.message, "still down");

    auto resolved = runtime->resolve_incident(incident.id);
    ASSERT_TRUE(resolved.ok()) << resolved.error().message;
    EXPECT_EQ(resolved.value().state, "RESOLVED");
    EXPECT_EQ(status(v.id), "RUNNING");
    EXPECT_EQ(runtime->resolve_incident(incident.id).error().code, "INCIDENT_ALREADY_RESOLVED");

    auto again = runtime->activate_jobs({"payments", "w1", 1, 60s, 0ms});
    ASSERT_EQ(again.value().size(), 1u);
    ASSERT_TRUE(runtime->complete_job(again.value()[0].id, json::object()).ok());
    EXPECT_EQ(status(v.id), "COMPLETED");
}

TEST_F(InstanceRuntimeTest, JobErrorIsCaughtByTheErrorBoundary) {
    make();
    deploy(kJob);
    auto v = start("pay");
    auto jobs = runtime->activate_jobs({"payments", "w1", 1, 60s, 0ms});
    ASSERT_EQ(jobs.value().size(), 1u);
    ASSERT_TRUE(
        runtime->throw_job_error(jobs.value()[0].id, {"DECLINED", "card", {{"why", "limit"}}})
            .ok());
    EXPECT_EQ(status(v.id), "COMPLETED");
    auto history = runtime->activities(v.id, {1, 100}).value().items;
    EXPECT_TRUE(std::any_of(history.begin(), history.end(),
                            [](const ActivityView& a) { return a.element_id == "failed"; }));
}

TEST_F(InstanceRuntimeTest, LongPollReturnsAsSoonAsAJobIsCommitted) {
    make();
    deploy(kJob);
    std::promise<Result<std::vector<JobView>>> got;
    const auto t0 = std::chrono::steady_clock::now();
    std::thread poller([&] {
        got.set_value(runtime->activate_jobs({"payments", "w", 5, 60s, 3s}));
    });
    std::this_thread::sleep_for(50ms);  // let the poll start waiting (it also works if not)
    auto v = start("pay");
    auto jobs = got.get_future().get();
    poller.join();
    ASSERT_TRUE(jobs.ok());
    ASSERT_EQ(jobs.value().size(), 1u);
    EXPECT_EQ(jobs.value()[0].instance_id, v.id);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST_F(InstanceRuntimeTest, CallActivityRunsAChildAndContinuesWhenItEnds) {
    make();
    deploy(kUserTask);  // process "approval", the child
    deploy(kParent);
    auto parent = start("parent", {{"who", "p"}});
    EXPECT_EQ(parent.status, "RUNNING");
    InstanceQuery q;
    q.process_key = "approval";
    std::string child_id;
    ASSERT_TRUE(eventually([&] {
        auto l = runtime->list_instances(q, {1, 10});
        if (l.ok() && l.value().total == 1) {
            child_id = l.value().items[0].id;
            return true;
        }
        return false;
    }));
    auto child = runtime->instance(child_id).value();
    EXPECT_EQ(child.parent_instance_id, parent.id);
    EXPECT_EQ(child.variables["who"], "p");
    auto tasks = open_tasks(child_id);
    ASSERT_EQ(tasks.size(), 1u);
    ASSERT_TRUE(runtime->complete_task(tasks[0].id, {{"verdict", "ok"}}).ok());
    EXPECT_TRUE(eventually([&] { return status(parent.id) == "COMPLETED"; })) << status(parent.id);
    EXPECT_EQ(runtime->variables(parent.id).value()["verdict"], "ok");
}

TEST_F(InstanceRuntimeTest, CancellingTheParentCancelsItsCalledChild) {
    make();
    deploy(kUserTask);
    deploy(kParent);
    auto parent = start("parent");
    InstanceQuery q;
    q.process_key = "approval";
    ASSERT_TRUE(eventually([&] { return runtime->list_instances(q, {1, 10}).value().total == 1; }));
    const std::string child = runtime->list_instances(q, {1, 10}).value().items[0].id;
    ASSERT_EQ(status(child), "RUNNING");
    ASSERT_EQ(runtime->cancel_instance(parent.id).value().status, "CANCELLED");
    EXPECT_TRUE(eventually([&] { return status(child) == "CANCELLED"; })) << status(child);
    EXPECT_TRUE(open_tasks(child).empty());
    EXPECT_EQ(status(parent.id), "CANCELLED");
}

TEST_F(InstanceRuntimeTest, CallOfAnUnknownProcessOpensAnIncidentAtTheParent) {
    make();
    deploy(bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="call"/>
<callActivity id="call" calledElement="missing"/>
<sequenceFlow id="f1" sourceRef="call" targetRef="end"/>
<endEvent id="end"/>)",
                "parent"));
    auto parent = start("parent");
    EXPECT_TRUE(eventually([&] { return status(parent.id) == "ERROR"; })) << status(parent.id);
    auto incidents = runtime->list_incidents({parent.id, "OPEN"}, {1, 10});
    ASSERT_EQ(incidents.value().items.size(), 1u);
    EXPECT_EQ(incidents.value().items[0].kind, "CALL");
}

TEST_F(InstanceRuntimeTest, CancelRemovesWaitsAndEndsTheInstance) {
    make();
    deploy(kUserTask);
    auto v = start("approval");
    ASSERT_EQ(open_tasks(v.id).size(), 1u);
    auto c = runtime->cancel_instance(v.id);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c.value().status, "CANCELLED");
    EXPECT_TRUE(open_tasks(v.id).empty());
    EXPECT_EQ(runtime->cancel_instance(v.id).error().code, "INSTANCE_NOT_RUNNING");
    EXPECT_EQ(runtime->cancel_instance("missing").error().code, "INSTANCE_NOT_FOUND");
    EXPECT_EQ(telemetry.active, 0);
}

TEST_F(InstanceRuntimeTest, EveryKindOfWaitThatClosesLeavesItsTable) {
    // One write closes waits of several kinds (a task with a boundary timer and a boundary
    // message); the store looks for their rows only in the tables the write names (the fake
    // does as the stores do), so each kind must be named.
    make();
    deploy(bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
<parallelGateway id="fork"/>
<sequenceFlow id="f1" sourceRef="fork" targetRef="task"/>
<sequenceFlow id="f2" sourceRef="fork" targetRef="alarm"/>
<userTask id="task"/>
<boundaryEvent id="late" attachedToRef="task"><timerEventDefinition><timeDuration>PT1H</timeDuration></timerEventDefinition></boundaryEvent>
<boundaryEvent id="paid" attachedToRef="task"><messageEventDefinition messageRef="m" pythmata:correlationKey="${order_id}"/></boundaryEvent>
<intermediateCatchEvent id="alarm"><signalEventDefinition signalRef="s"/></intermediateCatchEvent>
<sequenceFlow id="f3" sourceRef="task" targetRef="done"/>
<sequenceFlow id="f4" sourceRef="late" targetRef="timed_out"/>
<sequenceFlow id="f5" sourceRef="paid" targetRef="was_paid"/>
<sequenceFlow id="f6" sourceRef="alarm" targetRef="alarmed"/>
<endEvent id="done"/>
<endEvent id="timed_out"/>
<endEvent id="was_paid"/>
<endEvent id="alarmed"/>)",
                "kinds", R"(<signal id="s" name="alarm"/><message id="m" name="paid"/>)"));
    auto v = start("kinds", {{"order_id", "A-1"}});
    auto tasks = open_tasks(v.id);
    ASSERT_EQ(tasks.size(), 1u);
    ASSERT_EQ(runtime->list_timers(v.id, {}).value().items.size(), 1u);

    ASSERT_TRUE(store.find_message_subscription("paid", "A-1").value().has_value());
    ASSERT_EQ(store.signal_subscriptions("alarm").value().size(), 1u);

    // The task's completion closes its wait, the boundary timer's and the boundary message's.
    ASSERT_TRUE(runtime->complete_task(tasks[0].id, json::object()).ok());
    EXPECT_TRUE(runtime->list_timers(v.id, {}).value().items.empty());
    EXPECT_FALSE(store.find_message_subscription("paid", "A-1").value().has_value());
    EXPECT_EQ(store.signal_subscriptions("alarm").value().size(), 1u);
    EXPECT_EQ(status(v.id), "RUNNING");  // the signal branch waits

    // Cancelling closes the signal's wait.
    ASSERT_EQ(runtime->cancel_instance(v.id).value().status, "CANCELLED");
    EXPECT_TRUE(store.signal_subscriptions("alarm").value().empty());
}

TEST_F(InstanceRuntimeTest, SuspendedInstanceAdvancesOnNothingUntilResumed) {
    make();
    deploy(kUserTask);
    deploy(kSignalCatch);
    deploy(kTimer);
    auto v = start("approval");
    auto listener = start("listener");
    auto timed = start("timed");
    ASSERT_EQ(runtime->suspend_instance(v.id).value().status, "SUSPENDED");
    ASSERT_EQ(runtime->suspend_instance(listener.id).value().status, "SUSPENDED");
    ASSERT_EQ(runtime->suspend_instance(timed.id).value().status, "SUSPENDED");

    auto tasks = open_tasks(v.id);
    ASSERT_EQ(tasks.size(), 1u);
    EXPECT_EQ(runtime->complete_task(tasks[0].id, json::object()).error().code,
              "INSTANCE_SUSPENDED");
    EXPECT_EQ(runtime->set_variables(v.id, {{"x", 1}}).error().code, "INSTANCE_SUSPENDED");
    EXPECT_EQ(runtime->broadcast_signal({"alarm", json::object()}).value().triggered, 0);
    ASSERT_TRUE(runtime->advance_clock("PT2H").ok());
    EXPECT_EQ(status(timed.id), "SUSPENDED");
    EXPECT_EQ(status(listener.id), "SUSPENDED");

    ASSERT_EQ(runtime->resume_instance(v.id).value().status, "RUNNING");
    ASSERT_TRUE(runtime->complete_task(tasks[0].id, json::object()).ok());
    EXPECT_EQ(status(v.id), "COMPLETED");
    // The timer that fell due meanwhile fires after resume.
    ASSERT_TRUE(runtime->resume_instance(timed.id).ok());
    EXPECT_TRUE(eventually([&] { return status(timed.id) == "COMPLETED"; })) << status(timed.id);
    // A suspended instance can still be cancelled.
    EXPECT_EQ(runtime->cancel_instance(listener.id).value().status, "CANCELLED");
    EXPECT_EQ(runtime->resume_instance(listener.id).error().code, "INSTANCE_NOT_RUNNING");
}

TEST_F(InstanceRuntimeTest, FailedCommitLeavesNoTraceAndFailsTheCaller) {
    make();
    deploy(kUserTask);
    const int before = store.commits;
    store.fail_commits = 1;
    auto r = runtime->start_instance({"approval", std::nullopt, std::nullopt, json::object()});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "DB_UNAVAILABLE");
    EXPECT_EQ(store.instance_count(), 0u);
    EXPECT_EQ(store.commits, before);

    auto v = start("approval");
    auto tasks = open_tasks(v.id);
    ASSERT_EQ(tasks.size(), 1u);
    store.fail_commits = 1;
    auto c = runtime->complete_task(tasks[0].id, {{"x", 1}});
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, "DB_UNAVAILABLE");
    // Neither the store nor the runtime's memory moved on: the same task completes now.
    auto stored = runtime->instance(v.id).value();
    EXPECT_EQ(stored.status, "RUNNING");
    EXPECT_FALSE(stored.variables.contains("x"));
    auto done = runtime->complete_task(tasks[0].id, {{"x", 2}});
    ASSERT_TRUE(done.ok()) << done.error().message;
    EXPECT_EQ(done.value().status, "COMPLETED");
    EXPECT_EQ(done.value().variables["x"], 2);
    EXPECT_GE(telemetry.errors("DB_UNAVAILABLE"), 2);
}

TEST_F(InstanceRuntimeTest, ConflictIsRetriedOnceWithTheInstanceReloaded) {
    make();
    deploy(kUserTask);
    auto v = start("approval");
    auto tasks = open_tasks(v.id);
    store.commit_error = Error::conflict("DB_CONFLICT", "stale version");
    store.fail_commits = 1;
    auto done = runtime->complete_task(tasks[0].id, json::object());
    ASSERT_TRUE(done.ok()) << done.error().message;
    EXPECT_EQ(done.value().status, "COMPLETED");

    auto w = start("approval");
    store.fail_commits = 2;  // the retry fails too: the caller gets the conflict
    auto failed = runtime->complete_task(open_tasks(w.id)[0].id, json::object());
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.error().code, "DB_CONFLICT");
}

TEST_F(InstanceRuntimeTest, ConcurrentStartsShareGroupCommits) {
    settings.workers = 2;
    make();
    deploy(kStraight);
    store.commit_delay = 5ms;  // like an fsync: requests queue up behind a commit
    const int before = store.commits;
    constexpr int kThreads = 16;
    constexpr int kPerThread = 15;
    std::atomic<int> completed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < kPerThread; ++i) {
                auto r = runtime->start_instance(
                    {"straight", std::nullopt, std::nullopt, {{"amount", i}}});
                if (r.ok() && r.value().status == "COMPLETED" &&
                    r.value().variables["doubled"] == 2 * i) {
                    ++completed;
                }
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(completed, kThreads * kPerThread);
    EXPECT_EQ(store.instance_count(), static_cast<std::size_t>(kThreads * kPerThread));
    const int commits = store.commits - before;
    EXPECT_LT(commits, kThreads * kPerThread / 2) << "commits: " << commits;
    EXPECT_GT(telemetry.largest_batch.load(), 1u);
}

TEST_F(InstanceRuntimeTest, FullQueueAnswersOverloaded) {
    settings.workers = 1;
    settings.queue_capacity = 2;
    settings.token_batch_size = 1;
    make();
    deploy(kStraight);
    store.commit_delay = 100ms;
    std::atomic<int> ok{0}, overloaded{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 12; ++t) {
        threads.emplace_back([&] {
            auto r =
                runtime->start_instance({"straight", std::nullopt, std::nullopt, {{"amount", 1}}});
            if (r.ok()) {
                ++ok;
            } else if (r.error().code == "OVERLOADED" && r.error().kind == ErrorKind::kOverloaded) {
                ++overloaded;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(ok + overloaded, 12);
    EXPECT_GT(overloaded, 0);
    EXPECT_GE(ok, 2);
    EXPECT_GT(telemetry.errors("OVERLOADED"), 0);
}

TEST_F(InstanceRuntimeTest, VariableLimitsApplyOnEveryWayIn) {
    settings.max_variable_size = 64;
    settings.max_total_variables = 150;
    make();
    deploy(kUserTask);
    deploy(kMessageCatch);
    const std::string big(100, 'x');
    auto r = runtime->start_instance({"approval", std::nullopt, std::nullopt, {{"big", big}}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "VARIABLE_TOO_LARGE");
    EXPECT_EQ(r.error().kind, ErrorKind::kTooLarge);
    const std::string mid(50, 'y');
    auto total = runtime->start_instance(
        {"approval", std::nullopt, std::nullopt, {{"a", mid}, {"b", mid}, {"c", mid}}});
    ASSERT_FALSE(total.ok());
    EXPECT_EQ(total.error().code, "VARIABLES_TOO_LARGE");
    auto bad = runtime->start_instance({"approval", std::nullopt, std::nullopt, json::array()});
    EXPECT_EQ(bad.error().code, "INVALID_ARGUMENT");

    auto v = start("approval", {{"a", mid}});
    EXPECT_EQ(runtime->set_variables(v.id, {{"big", big}}).error().code, "VARIABLE_TOO_LARGE");
    // Each part fits, the instance's sum does not: the engine refuses, nothing changes.
    auto sum = runtime->set_variables(v.id, {{"b", mid}, {"c", mid}});
    ASSERT_FALSE(sum.ok());
    EXPECT_EQ(sum.error().code, "VARIABLES_TOO_LARGE");
    auto tasks = open_tasks(v.id);
    EXPECT_EQ(runtime->complete_task(tasks[0].id, {{"big", big}}).error().code,
              "VARIABLE_TOO_LARGE");
    MessageRequest m;
    m.name = "paid";
    m.variables = {{"big", big}};
    EXPECT_EQ(runtime->correlate_message(m).error().code, "VARIABLE_TOO_LARGE");
    EXPECT_EQ(runtime->broadcast_signal({"s", {{"big", big}}}).error().code, "VARIABLE_TOO_LARGE");
    EXPECT_EQ(status(v.id), "RUNNING");
}

TEST_F(InstanceRuntimeTest, VariablesPatchMergesAndTokensShowWhereTheInstanceWaits) {
    make();
    deploy(kUserTask);
    auto v = start("approval", {{"a", 1}});
    auto vars = runtime->set_variables(v.id, {{"b", 2}});
    ASSERT_TRUE(vars.ok());
    EXPECT_EQ(vars.value(), (json{{"a", 1}, {"b", 2}}));
    EXPECT_EQ(runtime->variables(v.id).value(), (json{{"a", 1}, {"b", 2}}));
    auto tokens = runtime->tokens(v.id);
    ASSERT_TRUE(tokens.ok());
    ASSERT_EQ(tokens.value().size(), 1u);
    EXPECT_EQ(tokens.value()[0].element_id, "review");
    EXPECT_EQ(tokens.value()[0].state, "WAITING");
    EXPECT_EQ(runtime->tokens("missing").error().code, "INSTANCE_NOT_FOUND");
    EXPECT_EQ(runtime->activities("missing", {1, 10}).error().code, "INSTANCE_NOT_FOUND");
}

TEST_F(InstanceRuntimeTest, ListInstancesFiltersByStatusAndBusinessKey) {
    make();
    deploy(kUserTask);
    deploy(kStraight);
    start("approval", json::object(), "k1");
    start("approval", json::object(), "k2");
    start("straight", {{"amount", 1}}, "k1");
    InstanceQuery running;
    running.status = "RUNNING";
    EXPECT_EQ(runtime->list_instances(running, {1, 10}).value().total, 2);
    InstanceQuery by_key;
    by_key.business_key = "k1";
    EXPECT_EQ(runtime->list_instances(by_key, {1, 10}).value().total, 2);
    auto page = runtime->list_instances({}, {2, 2});
    ASSERT_TRUE(page.ok());
    EXPECT_EQ(page.value().total, 3);
    EXPECT_EQ(page.value().items.size(), 1u);

    auto stats = runtime->stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats.value().running, 2);
    EXPECT_EQ(stats.value().completed, 1);
    EXPECT_EQ(stats.value().open_tasks, 2);
    EXPECT_EQ(stats.value().instances_started, 3);
    EXPECT_EQ(telemetry.active, 2);
}

TEST_F(InstanceRuntimeTest, LoggerServiceRunsInProcess) {
    make();
    deploy(bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="log"/>
<serviceTask id="log"><extensionElements><pythmata:serviceTaskConfig taskName="logger">
<pythmata:properties><pythmata:property name="level" value="warn"/><pythmata:property name="message" value="order ${order}"/></pythmata:properties>
</pythmata:serviceTaskConfig></extensionElements></serviceTask>
<sequenceFlow id="f1" sourceRef="log" targetRef="end"/>
<endEvent id="end"/>)",
                "logs"));
    auto v = start("logs", {{"order", 42}});
    EXPECT_TRUE(eventually([&] { return status(v.id) == "COMPLETED"; })) << status(v.id);
    std::lock_guard lock(log.mutex);
    ASSERT_EQ(log.lines.size(), 1u);
    EXPECT_EQ(log.lines[0], "warn log order 42");
}

TEST_F(InstanceRuntimeTest, HttpServiceCallsThroughThePortAndStoresTheReply) {
    make();
    deploy(bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="call"/>
<serviceTask id="call"><extensionElements><pythmata:serviceTaskConfig taskName="http">
<pythmata:properties><pythmata:property name="url" value="http://127.0.0.1:9/items/${item}"/><pythmata:property name="method" value="post"/><pythmata:property name="body" value="{}"/><pythmata:property name="output_variable" value="reply"/></pythmata:properties>
</pythmata:serviceTaskConfig></extensionElements></serviceTask>
<sequenceFlow id="f1" sourceRef="call" targetRef="end"/>
<endEvent id="end"/>)",
                "caller"));
    auto v = start("caller", {{"item", 7}});
    EXPECT_TRUE(eventually([&] { return status(v.id) == "COMPLETED"; })) << status(v.id);
    {
        std::lock_guard lock(http.mutex);
        ASSERT_EQ(http.calls.size(), 1u);
        EXPECT_EQ(http.calls[0].url, "http://127.0.0.1:9/items/7");
        EXPECT_EQ(http.calls[0].method, "POST");
    }
    auto vars = runtime->variables(v.id).value();
    EXPECT_EQ(vars["reply"]["status"], 200);
    EXPECT_EQ(vars["reply"]["body"]["ok"], true);
}

TEST_F(InstanceRuntimeTest, IdempotencyKeyReplaysTheFirstAnswer) {
    make();
    IdempotencyKeys keys(store, clock, settings);
    auto first = keys.begin("k1", "hash-a");
    ASSERT_TRUE(first.ok());
    EXPECT_TRUE(first.value().run);
    auto in_flight = keys.begin("k1", "hash-a");
    ASSERT_FALSE(in_flight.ok());
    EXPECT_EQ(in_flight.error().code, "IDEMPOTENCY_KEY_IN_FLIGHT");
    ASSERT_TRUE(keys.finish("k1", "hash-a", {201, R"({"data":{}})"}).ok());
    auto replay = keys.begin("k1", "hash-a");
    ASSERT_TRUE(replay.ok());
    EXPECT_FALSE(replay.value().run);
    ASSERT_TRUE(replay.value().replay.has_value());
    EXPECT_EQ(replay.value().replay->status, 201);
    EXPECT_EQ(replay.value().replay->body, R"({"data":{}})");
    auto reused = keys.begin("k1", "hash-b");
    ASSERT_FALSE(reused.ok());
    EXPECT_EQ(reused.error().code, "IDEMPOTENCY_KEY_REUSED");

    ASSERT_TRUE(keys.begin("k2", "h").value().run);
    ASSERT_TRUE(keys.abandon("k2").ok());
    EXPECT_TRUE(keys.begin("k2", "h").value().run);
}

TEST_F(InstanceRuntimeTest, StopAnswersQueuedWorkAndRefusesNewWork) {
    make();
    deploy(kStraight);
    runtime->stop();
    auto r = runtime->start_instance({"straight", std::nullopt, std::nullopt, {{"amount", 1}}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind, ErrorKind::kUnavailable);
}

// --- the outbox ----------------------------------------------------------------------------------

const std::string kCallParent = bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="call"/>
<callActivity id="call" calledElement="approval"/>
<sequenceFlow id="f1" sourceRef="call" targetRef="end"/>
<endEvent id="end"/>)",
                                     "parent");

const std::string kSignalStart = bpmn(R"(
<startEvent id="start"><signalEventDefinition signalRef="s"/></startEvent>
<sequenceFlow id="f0" sourceRef="start" targetRef="task"/>
<userTask id="task"/>
<sequenceFlow id="f1" sourceRef="task" targetRef="end"/>
<endEvent id="end"/>)",
                                      "on_alarm", R"(<signal id="s" name="alarm"/>)");

/// Straight through: throws signal "alarm" and message "paid" (key ${order_id}), then ends.
const std::string kThrower =
    bpmn(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="alarm"/>
<intermediateThrowEvent id="alarm"><signalEventDefinition signalRef="s"/></intermediateThrowEvent>
<sequenceFlow id="f1" sourceRef="alarm" targetRef="pay"/>
<intermediateThrowEvent id="pay"><messageEventDefinition messageRef="m" pythmata:correlationKey="${order_id}"/></intermediateThrowEvent>
<sequenceFlow id="f2" sourceRef="pay" targetRef="end"/>
<endEvent id="end"/>)",
         "thrower", R"(<signal id="s" name="alarm"/><message id="m" name="paid"/>)");

class OutboxTest : public InstanceRuntimeTest {
  protected:
    /// A crash of the process: the runtime goes without delivering anything it has not
    /// delivered yet, and a new one starts on the same stores with `inline_delivery`.
    void restart(bool inline_delivery) {
        runtime->stop();
        catalog->set_deploy_observer(nullptr);
        runtime.reset();
        catalog.reset();
        settings.outbox_deliver_inline = inline_delivery;
        make();
    }

    std::int64_t count_of(const std::string& key) {
        InstanceQuery q;
        q.process_key = key;
        auto l = runtime->list_instances(q, {1, 10});
        return l.ok() ? l.value().total : -1;
    }

    /// How often `element` has `event` in the instance's history.
    int history_count(const std::string& id, const std::string& element, const std::string& event) {
        auto h = runtime->activities(id, {1, 100});
        int n = 0;
        for (const auto& a : h.ok() ? h.value().items : std::vector<ActivityView>{}) {
            n += a.element_id == element && a.event == event ? 1 : 0;
        }
        return n;
    }

    /// Puts delivered rows back (with their locks free), as if the crash had come after their
    /// deliveries but before their deletes: a replay must change nothing.
    void replay(std::vector<OutboxRow> rows) {
        Batch again;
        for (auto& r : rows) {
            r.lock_owner.reset();
            r.lock_expires_at.reset();
        }
        again.outbox = std::move(rows);
        ASSERT_TRUE(store.commit(again).ok());
    }
};

TEST_F(OutboxTest, EffectsCommittedButNotDeliveredBeforeACrashAreDeliveredAfterTheRestartOnce) {
    settings.outbox_deliver_inline = false;  // a crash right after every commit
    settings.outbox_grace = 1s;
    make();
    deploy(kUserTask);  // "approval", the called child
    deploy(kCallParent);
    deploy(kSignalCatch);
    deploy(kSignalStart);
    deploy(kMessageCatch);
    deploy(kThrower);
    const auto listener = start("listener");
    const auto receiver = start("orders", {{"order_id", "A-1"}});
    const auto bystander = start("orders", {{"order_id", "B-2"}});
    const auto parent = start("parent");
    const auto thrower = start("thrower", {{"order_id", "A-1"}});
    EXPECT_EQ(thrower.status, "COMPLETED");
    // Committed with their causes: a child start, a signal, a message.
    const auto rows = store.outbox_rows();
    ASSERT_EQ(rows.size(), 3u);
    std::this_thread::sleep_for(200ms);  // several sweeper passes, all inside the grace period
    EXPECT_EQ(telemetry.outbox_rows_pending, 3);  // pythmata_outbox_pending
    EXPECT_EQ(count_of("approval"), 0);
    EXPECT_EQ(status(listener.id), "RUNNING");
    EXPECT_EQ(status(receiver.id), "RUNNING");

    restart(true);
    clock.advance(2s);  // the rows outlive the grace period: the sweeper takes them
    ASSERT_TRUE(eventually([&] {
        return status(listener.id) == "COMPLETED" && status(receiver.id) == "COMPLETED" &&
               count_of("approval") == 1 && count_of("on_alarm") == 1 &&
               store.outbox_rows().empty();
    })) << status(listener.id)
        << " " << status(receiver.id) << " " << count_of("approval") << " " << count_of("on_alarm")
        << " " << store.outbox_rows().size();
    EXPECT_EQ(status(bystander.id), "RUNNING");

    // Replaying every row changes nothing: the child and the signal-started instance exist
    // (derived ids), the waits are closed, and a message nobody waits for is dropped.
    replay(rows);
    clock.advance(2s);
    ASSERT_TRUE(eventually([&] { return store.outbox_rows().empty(); }));
    EXPECT_EQ(count_of("approval"), 1);
    EXPECT_EQ(count_of("on_alarm"), 1);
    EXPECT_EQ(status(bystander.id), "RUNNING");
    EXPECT_EQ(history_count(listener.id, "wait", "COMPLETED"), 1);
    EXPECT_EQ(history_count(receiver.id, "wait", "COMPLETED"), 1);

    // The child's answer to its parent, lost in a crash too, then replayed.
    restart(false);
    InstanceQuery q;
    q.process_key = "approval";
    const std::string child = runtime->list_instances(q, {1, 10}).value().items[0].id;
    auto tasks = open_tasks(child);
    ASSERT_EQ(tasks.size(), 1u);
    ASSERT_TRUE(runtime->complete_task(tasks[0].id, {{"verdict", "ok"}}).ok());
    EXPECT_EQ(status(child), "COMPLETED");
    const auto notice = store.outbox_rows();
    ASSERT_EQ(notice.size(), 1u);
    EXPECT_EQ(notice[0].kind, "parent_notice");
    EXPECT_EQ(status(parent.id), "RUNNING");
    restart(true);
    clock.advance(2s);
    ASSERT_TRUE(eventually([&] { return status(parent.id) == "COMPLETED"; })) << status(parent.id);
    EXPECT_EQ(runtime->variables(parent.id).value()["verdict"], "ok");
    replay(notice);
    clock.advance(2s);
    ASSERT_TRUE(eventually([&] { return store.outbox_rows().empty(); }));
    EXPECT_EQ(status(parent.id), "COMPLETED");
    EXPECT_EQ(history_count(parent.id, "call", "COMPLETED"), 1);
    EXPECT_EQ(history_count(parent.id, "end", "COMPLETED"), 1);
    EXPECT_TRUE(eventually([&] { return telemetry.outbox_rows_pending == 0; }));
}

TEST_F(OutboxTest, AParentCancelledBeforeItsChildStartWasDeliveredGetsNoChild) {
    settings.outbox_deliver_inline = false;
    settings.outbox_grace = 1s;
    make();
    deploy(kUserTask);
    deploy(kCallParent);
    const auto parent = start("parent");
    ASSERT_EQ(runtime->cancel_instance(parent.id).value().status, "CANCELLED");
    ASSERT_EQ(store.outbox_rows().size(), 2u);  // the child's start, then its cancel
    restart(true);
    clock.advance(2s);
    ASSERT_TRUE(eventually([&] { return store.outbox_rows().empty(); }))
        << store.outbox_rows().size();
    EXPECT_EQ(count_of("approval"), 0);
    EXPECT_EQ(status(parent.id), "CANCELLED");
}

TEST_F(OutboxTest, TwoDeliveriesOfOneThrownMessageReachOneReceiver) {
    settings.outbox_deliver_inline = false;
    settings.outbox_grace = 1s;
    make();
    deploy(kMessageCatch);
    deploy(kThrower);
    deploy(kSignalCatch);
    const auto first = start("orders", {{"order_id", "A-1"}});
    const auto second = start("orders", {{"order_id", "A-1"}});
    start("thrower", {{"order_id", "A-1"}});
    store.hand_out_outbox_twice = true;  // the live delivery and the sweeper's, racing
    clock.advance(2s);
    ASSERT_TRUE(eventually([&] { return store.outbox_rows().empty(); }));
    std::this_thread::sleep_for(100ms);  // the second delivery has run its course
    EXPECT_EQ(status(first.id), "COMPLETED");
    EXPECT_EQ(status(second.id), "RUNNING");
}

TEST_F(OutboxTest, LiveDeliveriesDeleteTheirRowsWithoutWaitingForTheSweeper) {
    settings.outbox_grace = 1h;  // the sweeper takes nothing in this test
    make();
    deploy(kUserTask);
    deploy(kCallParent);
    deploy(kSignalCatch);
    deploy(kMessageCatch);
    deploy(kThrower);
    const auto listener = start("listener");
    const auto receiver = start("orders", {{"order_id", "A-1"}});
    const auto parent = start("parent");
    start("thrower", {{"order_id", "A-1"}});
    ASSERT_TRUE(eventually([&] {
        return status(listener.id) == "COMPLETED" && status(receiver.id) == "COMPLETED" &&
               count_of("approval") == 1;
    }));
    // The child start and the message went with their targets' commits; the signal's delete
    // rides along with the next commit.
    deploy(kStraight);
    start("straight", {{"amount", 1}});
    EXPECT_TRUE(eventually([&] { return store.outbox_rows().empty(); }))
        << store.outbox_rows().size() << " rows left";
    EXPECT_EQ(status(parent.id), "RUNNING");
}

TEST_F(InstanceRuntimeTest, AnIdenticalRedeployWritesTheStartEventRowsAFailedDeployLeftOut) {
    make();
    const std::string xml = bpmn(R"(
<startEvent id="tick"><timerEventDefinition><timeCycle>R/PT1H</timeCycle></timerEventDefinition></startEvent>
<sequenceFlow id="f0" sourceRef="tick" targetRef="end"/>
<startEvent id="mail"><messageEventDefinition messageRef="m"/></startEvent>
<sequenceFlow id="f1" sourceRef="mail" targetRef="end"/>
<endEvent id="end"/>)",
                                 "scheduled", R"(<message id="m" name="kick"/>)");
    store.fail_commits = 1;  // the store goes down between the definition and its start events
    auto first = catalog->deploy({xml, std::nullopt, std::nullopt});
    ASSERT_FALSE(first.ok());
    EXPECT_TRUE(runtime->list_timers(std::nullopt, {}).value().items.empty());
    MessageRequest kick;
    kick.name = "kick";
    EXPECT_EQ(runtime->correlate_message(kick).error().code, "MESSAGE_NOT_CORRELATED");

    auto second = catalog->deploy({xml, std::nullopt, std::nullopt});
    ASSERT_TRUE(second.ok()) << second.error().message;
    EXPECT_FALSE(second.value().created);  // the definition was stored the first time
    auto timers = runtime->list_timers(std::nullopt, {}).value().items;
    ASSERT_EQ(timers.size(), 1u);
    EXPECT_EQ(timers[0].due_at, clock.now() + 1h);
    auto started = runtime->correlate_message(kick);
    ASSERT_TRUE(started.ok()) << started.error().message;
    EXPECT_TRUE(started.value().started);

    // Written once: a later identical redeploy leaves the rows (and the schedule) alone.
    clock.advance(10min);
    ASSERT_TRUE(catalog->deploy({xml, std::nullopt, std::nullopt}).ok());
    auto after = runtime->list_timers(std::nullopt, {}).value().items;
    ASSERT_EQ(after.size(), 1u);
    EXPECT_EQ(after[0].id, timers[0].id);
    EXPECT_EQ(after[0].due_at, timers[0].due_at);
}

}  // namespace
}  // namespace pythmata::app
