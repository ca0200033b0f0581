// The outbox through the real `pythmata serve`, on SQLite and on PostgreSQL with Redis: effects
// that a commit made durable but that were not delivered when the server died (kill -9) are
// delivered after the restart, each exactly once. The first server runs with the diagnostic
// setting outbox_deliver_inline = false (and a long grace period), so that the crash always falls
// between the commit and the delivery.
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "runtime_models.hpp"
#include "runtime_test_support.hpp"

namespace pythmata::test::runtime {
namespace {

using namespace std::chrono_literals;

/// Straight through: throws signal "GoSignal" and message "PaymentReceived" (key ${order_id}).
std::string thrower(const std::string& key) {
    return models::document(R"(  <signal id="Sig_Go" name="GoSignal"/>
  <message id="Msg_Paid" name="PaymentReceived"/>
  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <intermediateThrowEvent id="throw_go"><signalEventDefinition signalRef="Sig_Go"/></intermediateThrowEvent>
    <intermediateThrowEvent id="send_paid">
      <messageEventDefinition messageRef="Msg_Paid" pythmata:correlationKey="${order_id}"/>
    </intermediateThrowEvent>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="throw_go"/>
    <sequenceFlow id="f2" sourceRef="throw_go" targetRef="send_paid"/>
    <sequenceFlow id="f3" sourceRef="send_paid" targetRef="end"/>
  </process>
)");
}

/// Signal start event "GoSignal" -> user task -> end.
std::string on_go(const std::string& key) {
    return models::document(R"(  <signal id="Sig_Go" name="GoSignal"/>
  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="on_go"><signalEventDefinition signalRef="Sig_Go"/></startEvent>
    <userTask id="went" name="Went"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="on_go" targetRef="went"/>
    <sequenceFlow id="f2" sourceRef="went" targetRef="end"/>
  </process>
)");
}

const std::map<std::string, std::string> kCrashAfterEveryCommit = {
    {"PYTHMATA_OUTBOX_DELIVER_INLINE", "false"},
    {"PYTHMATA_OUTBOX_GRACE_MS", "3600000"},
};
const std::map<std::string, std::string> kRecovering = {{"PYTHMATA_OUTBOX_GRACE_MS", "200"}};

class Outbox : public RuntimeServerTest {
  protected:
    /// kill -9, then a new server on the same store with `extra`.
    void crash_and_restart(const std::map<std::string, std::string>& extra) {
        client_.reset();
        server_->kill9();
        ASSERT_FALSE(server_->running());
        ASSERT_NO_FATAL_FAILURE(start_server(extra));
    }

    std::int64_t total_of(const std::string& key) {
        const auto response = get("/instances?process_key=" + key);
        EXPECT_TRUE(is_page(response)) << key;
        return response.json()["data"].value("total", std::int64_t{-1});
    }

    /// How often `element` has `event` in the instance's activity history.
    int activity_count(const std::string& id, const std::string& element,
                       const std::string& event) {
        int n = 0;
        for (const auto& a : items("/instances/" + id + "/activities?page_size=100")) {
            n += a.value("element_id", "") == element && a.value("event", "") == event ? 1 : 0;
        }
        return n;
    }
};

TEST_P(Outbox, EffectsLostInAKillNineBetweenCommitAndDeliveryAreDeliveredOnceAfterRestart) {
    ASSERT_NO_FATAL_FAILURE(start_server(kCrashAfterEveryCommit));
    const std::string child = unique_name("child");
    const std::string parent = unique_name("parent");
    const std::string listener = unique_name("listener");
    const std::string started_by_signal = unique_name("on_go");
    const std::string receiver = unique_name("receiver");
    const std::string sender = unique_name("thrower");
    deploy(models::user_task(child));
    deploy(models::parent(parent, child));
    deploy(models::signal_catch(listener));
    deploy(on_go(started_by_signal));
    deploy(models::message_catch(receiver));
    deploy(thrower(sender));

    const std::string listening = start(listener).value("id", "");
    const std::string waiting =
        start(receiver, {{"variables", {{"order_id", "A-1"}}}}).value("id", "");
    const std::string bystander =
        start(receiver, {{"variables", {{"order_id", "B-2"}}}}).value("id", "");
    const std::string calling = start(parent).value("id", "");
    const json thrown = start(sender, {{"variables", {{"order_id", "A-1"}}}});
    EXPECT_EQ(thrown.value("status", ""), "COMPLETED");
    std::this_thread::sleep_for(500ms);  // several sweeper passes: all inside the grace period
    ASSERT_EQ(total_of(child), 0);
    ASSERT_EQ(total_of(started_by_signal), 0);
    ASSERT_EQ(instance(listening).value("status", ""), "RUNNING");
    ASSERT_EQ(instance(waiting).value("status", ""), "RUNNING");

    // The crash: committed, never delivered. The next server delivers them.
    ASSERT_NO_FATAL_FAILURE(crash_and_restart(kRecovering));
    await_status(listening, "COMPLETED");
    await_status(waiting, "COMPLETED");
    ASSERT_TRUE(eventually(10s, [&] { return total_of(child) == 1; })) << total_of(child);
    ASSERT_TRUE(eventually(10s, [&] { return total_of(started_by_signal) == 1; }));
    EXPECT_EQ(instance(bystander).value("status", ""), "RUNNING");

    // The child's answer to its parent, committed with the child's end, is lost the same way.
    ASSERT_NO_FATAL_FAILURE(crash_and_restart(kCrashAfterEveryCommit));
    const json children = items("/instances?process_key=" + child);
    ASSERT_EQ(children.size(), 1u);
    const std::string child_id = children[0].value("id", "");
    EXPECT_EQ(children[0].value("parent_instance_id", ""), calling);
    const json task = only_task(child_id);
    ASSERT_TRUE(is_data(
        post("/tasks/" + task.value("id", "") + "/complete", {{"variables", {{"verdict", "ok"}}}}),
        200));
    EXPECT_EQ(instance(child_id).value("status", ""), "COMPLETED");
    std::this_thread::sleep_for(300ms);
    ASSERT_EQ(instance(calling).value("status", ""), "RUNNING");
    ASSERT_NO_FATAL_FAILURE(crash_and_restart(kRecovering));
    const json done = await_status(calling, "COMPLETED");
    EXPECT_EQ(done["variables"].value("verdict", ""), "ok");

    // Exactly once: one child, one signal-started instance, each step once in the history,
    // and nothing more after further sweeper passes.
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(total_of(child), 1);
    EXPECT_EQ(total_of(started_by_signal), 1);
    EXPECT_EQ(activity_count(calling, "call_child", "COMPLETED"), 1);
    EXPECT_EQ(activity_count(calling, "end", "COMPLETED"), 1);
    EXPECT_EQ(activity_count(listening, "wait_signal", "COMPLETED"), 1);
    EXPECT_EQ(activity_count(waiting, "wait_payment", "COMPLETED"), 1);
    EXPECT_EQ(instance(bystander).value("status", ""), "RUNNING");
}

INSTANTIATE_TEST_SUITE_P(Backends, Outbox,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgresRedis),
                         backend_name);

/// A replica that committed effects but never delivers them (it stands for one that died right
/// after its commits), and a second replica on the same PostgreSQL whose sweeper delivers them.
class OutboxReplicas : public Outbox {};

TEST_P(OutboxReplicas, AnotherReplicaDeliversWhatACrashedOneCommitted) {
    ASSERT_NO_FATAL_FAILURE(start_server(kCrashAfterEveryCommit));
    const std::string child = unique_name("child");
    const std::string parent = unique_name("parent");
    const std::string listener = unique_name("listener");
    const std::string sender = unique_name("thrower");
    deploy(models::user_task(child));
    deploy(models::parent(parent, child));
    deploy(models::signal_catch(listener));
    deploy(thrower(sender));
    const std::string listening = start(listener).value("id", "");
    const std::string calling = start(parent).value("id", "");
    start(sender, {{"variables", {{"order_id", "nobody"}}}});

    auto started = ServerProcess::start(server_options(kRecovering));
    ASSERT_TRUE(started.ok()) << started.error().message;
    std::unique_ptr<ServerProcess> other = std::move(started).value();
    await_status(listening, "COMPLETED");
    ASSERT_TRUE(eventually(10s, [&] { return total_of(child) == 1; })) << total_of(child);
    const json children = items("/instances?process_key=" + child);
    ASSERT_EQ(children.size(), 1u);
    EXPECT_EQ(children[0].value("parent_instance_id", ""), calling);
    if (HasFailure()) {
        std::cerr << "second replica stderr:\n" << other->stderr_tail(4000) << "\n";
    }
}

// SQLite is a single-node store: replicas share PostgreSQL only.
INSTANTIATE_TEST_SUITE_P(Postgres, OutboxReplicas, ::testing::Values(Backend::kPostgresRedis),
                         backend_name);

}  // namespace
}  // namespace pythmata::test::runtime
