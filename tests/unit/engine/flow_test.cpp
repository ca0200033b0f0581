#include <gtest/gtest.h>

#include "harness.hpp"

namespace pythmata::engine::test {
namespace {

TEST(Process, RunsStraightThroughPlainManualAndScriptTasks) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="t1"/>
<task id="t1"/>
<sequenceFlow id="f1" sourceRef="t1" targetRef="t2"/>
<manualTask id="t2"/>
<sequenceFlow id="f2" sourceRef="t2" targetRef="s1"/>
<scriptTask id="s1" scriptFormat="python"><script>counter += 1
label = "done"</script></scriptTask>
<sequenceFlow id="f3" sourceRef="s1" targetRef="end"/>
<endEvent id="end"/>)"));
    auto fx = h.start({{"counter", 41}});
    EXPECT_EQ(fx.status, InstanceStatus::kCompleted);
    EXPECT_EQ(h.state.variables["counter"], 42);
    EXPECT_EQ(h.state.variables["label"], "done");
    EXPECT_TRUE(fx.waits_opened.empty());
    EXPECT_EQ(fx.tokens_processed, 5u);
    EXPECT_EQ(h.count("s1", HistoryEvent::kCompleted), 1);
    EXPECT_TRUE(h.state.tokens.empty());
}

TEST(ScriptTask, PythonDelRemovesTheVariable) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="s1"/>
<scriptTask id="s1" scriptFormat="python"><script>del secret</script></scriptTask>
<sequenceFlow id="f1" sourceRef="s1" targetRef="end"/>
<endEvent id="end"/>)"));
    h.start({{"secret", "x"}, {"kept", 1}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_FALSE(h.state.variables.contains("secret"));
    EXPECT_EQ(h.state.variables["kept"], 1);
}

TEST(ScriptTask, LuaScriptSetsVariablesAndResultVariable) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="s1"/>
<scriptTask id="s1" scriptFormat="lua" camunda:resultVariable="r"><script>doubled = n * 2
return n + 1</script></scriptTask>
<sequenceFlow id="f1" sourceRef="s1" targetRef="end"/>
<endEvent id="end"/>)"));
    h.start({{"n", 4}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.state.variables["doubled"], 8);
    EXPECT_EQ(h.state.variables["r"], 5);
}

TEST(ScriptTask, RuntimeErrorBecomesAnIncidentNotACrash) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="s1"/>
<scriptTask id="s1" scriptFormat="python"><script>x = missing + 1</script></scriptTask>
<sequenceFlow id="f1" sourceRef="s1" targetRef="end"/>
<endEvent id="end"/>)"));
    auto fx = h.start();
    ASSERT_EQ(fx.incidents_opened.size(), 1u);
    EXPECT_EQ(fx.incidents_opened[0].kind, "SCRIPT");
    EXPECT_EQ(h.cp->element_id(fx.incidents_opened[0].element), "s1");
    EXPECT_EQ(h.status(), "ERROR");
    h.run(SetVariables{{{"missing", 1}}});
    h.run(ResolveIncident{fx.incidents_opened[0].id});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.state.variables["x"], 2);
}

TEST(UserTask, WaitCarriesAssigneeCandidateGroupsAndNameTemplates) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="u"/>
<userTask id="u" name="Review ${order}" camunda:assignee="${who}" camunda:candidateGroups="sales, ops"/>
<sequenceFlow id="f1" sourceRef="u" targetRef="end"/>
<endEvent id="end"/>)"));
    auto fx = h.start({{"order", "A-1"}, {"who", "kermit"}});
    ASSERT_EQ(fx.waits_opened.size(), 1u);
    const auto& w = fx.waits_opened[0];
    EXPECT_EQ(w.kind, WaitKind::kUserTask);
    EXPECT_EQ(w.name, "Review A-1");
    EXPECT_EQ(w.assignee, "kermit");
    EXPECT_EQ(w.candidate_groups, (std::vector<std::string>{"sales", "ops"}));
    auto done = h.run(CompleteTask{w.id, {{"approved", true}}});
    EXPECT_EQ(done.status, InstanceStatus::kCompleted);
    EXPECT_EQ(done.waits_closed, std::vector<WaitId>{w.id});
    EXPECT_EQ(h.state.variables["approved"], true);
}

TEST(ServiceTask, BecomesAJobWithTypeHeadersAndVariables) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="svc"/>
<serviceTask id="svc" camunda:topic="charge"/>
<sequenceFlow id="f1" sourceRef="svc" targetRef="end"/>
<endEvent id="end"/>)"));
    auto fx = h.start({{"amount", 3}});
    ASSERT_EQ(fx.waits_opened.size(), 1u);
    EXPECT_EQ(fx.waits_opened[0].kind, WaitKind::kJob);
    EXPECT_EQ(fx.waits_opened[0].job_type, "charge");
    EXPECT_EQ(fx.waits_opened[0].variables["amount"], 3);
    h.complete_job("svc", {{"charged", true}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.state.variables["charged"], true);
}

TEST(ServiceTask, BuiltInServiceIsAJobWithServiceName) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="svc"/>
<serviceTask id="svc"><extensionElements><pythmata:serviceTaskConfig taskName="logger">
<pythmata:properties><pythmata:property name="message" value="hi"/></pythmata:properties>
</pythmata:serviceTaskConfig></extensionElements></serviceTask>
<sequenceFlow id="f1" sourceRef="svc" targetRef="end"/>
<endEvent id="end"/>)"));
    auto fx = h.start();
    ASSERT_EQ(fx.waits_opened.size(), 1u);
    EXPECT_EQ(fx.waits_opened[0].service_name, "logger");
    EXPECT_EQ(fx.waits_opened[0].headers["message"], "hi");
}

TEST(ServiceTask, FailedJobOpensIncidentAndResolvingReopensTheJob) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="svc"/>
<businessRuleTask id="svc"/>
<sequenceFlow id="f1" sourceRef="svc" targetRef="end"/>
<endEvent id="end"/>)"));
    h.start();
    WaitId job = h.wait_at("svc", WaitKind::kJob);
    ASSERT_NE(job, 0u);
    auto fx = h.run(FailJob{job, "boom"});
    ASSERT_EQ(fx.incidents_opened.size(), 1u);
    EXPECT_EQ(fx.incidents_opened[0].kind, "JOB_FAILED");
    EXPECT_EQ(h.status(), "ERROR");
    EXPECT_EQ(h.wait_at("svc"), 0u);
    auto fx2 = h.run(ResolveIncident{fx.incidents_opened[0].id});
    ASSERT_EQ(fx2.waits_opened.size(), 1u);
    EXPECT_EQ(fx2.waits_opened[0].kind, WaitKind::kJob);
    h.complete_job("svc");
    EXPECT_EQ(h.status(), "COMPLETED");
}

TEST(Commands, RejectUnknownWaitsAndWrongKinds) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="u"/>
<userTask id="u"/>)"));
    h.start();
    auto r = h.try_run(CompleteTask{999, {}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "WAIT_NOT_FOUND");
    auto r2 = h.try_run(FireTimer{h.wait_at("u")});
    ASSERT_FALSE(r2.ok());
    EXPECT_EQ(r2.error().code, "WAIT_KIND_MISMATCH");
    auto r3 = h.try_run(Start{});
    ASSERT_FALSE(r3.ok());
    EXPECT_EQ(r3.error().code, "INVALID_START");
}

TEST(Commands, CancelRemovesEveryWaitAndEndsCancelled) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="u"/>
<userTask id="u"/>
<boundaryEvent id="t" attachedToRef="u"><timerEventDefinition><timeDuration>PT1H</timeDuration></timerEventDefinition></boundaryEvent>)"));
    h.start();
    EXPECT_EQ(h.open.size(), 2u);
    auto fx = h.run(Cancel{});
    EXPECT_EQ(fx.status, InstanceStatus::kCancelled);
    EXPECT_EQ(fx.waits_closed.size(), 2u);
    EXPECT_TRUE(h.open.empty());
    auto again = h.try_run(Cancel{});
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, "INSTANCE_NOT_RUNNING");
}

TEST(Limits, CycleWithoutWaitHitsTheStepLimit) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="a"/>
<scriptTask id="a" scriptFormat="python"><script>n += 1</script></scriptTask>
<sequenceFlow id="f1" sourceRef="a" targetRef="gw"/>
<exclusiveGateway id="gw" default="back"/>
<sequenceFlow id="out" sourceRef="gw" targetRef="end"><conditionExpression>n > 1000000</conditionExpression></sequenceFlow>
<sequenceFlow id="back" sourceRef="gw" targetRef="a"/>
<endEvent id="end"/>)"));
    h.limits.max_steps_per_event = 500;
    auto r = h.try_run(Start{{{"n", 0}}, {}, 0});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "STEP_LIMIT");
}

TEST(Limits, CyclicFlowsRunWhenTheyTerminate) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="a"/>
<scriptTask id="a" scriptFormat="python"><script>n += 1</script></scriptTask>
<sequenceFlow id="f1" sourceRef="a" targetRef="gw"/>
<exclusiveGateway id="gw" default="back"/>
<sequenceFlow id="out" sourceRef="gw" targetRef="end"><conditionExpression>n >= 10</conditionExpression></sequenceFlow>
<sequenceFlow id="back" sourceRef="gw" targetRef="a"/>
<endEvent id="end"/>)"));
    h.start({{"n", 0}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.state.variables["n"], 10);
    EXPECT_EQ(h.count("a"), 10);
}

TEST(Limits, OversizedVariableIsRefused) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="u"/>
<userTask id="u"/>)"));
    h.limits.max_variable_size = 100;
    auto r = h.try_run(Start{{{"big", std::string(200, 'x')}}, {}, 0});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "VARIABLE_TOO_LARGE");
    h.limits.max_variable_size = 1000;
    h.limits.max_total_variables = 300;
    auto r2 = h.try_run(Start{{{"a", std::string(200, 'x')}, {"b", std::string(200, 'y')}}, {}, 0});
    ASSERT_FALSE(r2.ok());
    EXPECT_EQ(r2.error().code, "VARIABLES_TOO_LARGE");
}

TEST(Limits, TokenLimitIsAClearError) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
<parallelGateway id="fork"/>
<sequenceFlow id="f1" sourceRef="fork" targetRef="a"/>
<sequenceFlow id="f2" sourceRef="fork" targetRef="b"/>
<sequenceFlow id="f3" sourceRef="fork" targetRef="c"/>
<userTask id="a"/><userTask id="b"/><userTask id="c"/>)"));
    h.limits.max_tokens = 2;
    auto r = h.try_run(Start{});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "TOKEN_LIMIT");
}

TEST(StandardLoop, RepeatsWhileTheConditionHoldsUpToLoopMaximum) {
    const char* body = R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="t"/>
<scriptTask id="t" scriptFormat="python"><script>runs += 1</script>
<standardLoopCharacteristics testBefore="true" loopMaximum="3"><loopCondition>not done</loopCondition></standardLoopCharacteristics>
</scriptTask>
<sequenceFlow id="f1" sourceRef="t" targetRef="end"/>
<endEvent id="end"/>)";
    Harness h(process_xml(body));
    h.start({{"done", false}, {"runs", 0}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.state.variables["runs"], 3);
    Harness h2(process_xml(body));
    h2.start({{"done", true}, {"runs", 0}});
    EXPECT_EQ(h2.status(), "COMPLETED");
    EXPECT_EQ(h2.state.variables["runs"], 0);
}

TEST(StandardLoop, UserTaskLoopsUntilConditionTurnsFalse) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="t"/>
<userTask id="t"><standardLoopCharacteristics><loopCondition>not done</loopCondition></standardLoopCharacteristics></userTask>
<sequenceFlow id="f1" sourceRef="t" targetRef="end"/>
<endEvent id="end"/>)"));
    h.start({{"done", false}});
    h.complete("t");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"t"});
    h.complete("t", {{"done", true}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.count("t"), 2);
}

TEST(SendAndReceiveTask, SendTaskEmitsMessageAndReceiveTaskWaits) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="send"/>
<sendTask id="send" messageRef="m"/>
<sequenceFlow id="f1" sourceRef="send" targetRef="recv"/>
<receiveTask id="recv" messageRef="m"/>
<sequenceFlow id="f2" sourceRef="recv" targetRef="end"/>
<endEvent id="end"/>)",
                          "p", R"(<message id="m" name="ping"/>)"));
    auto fx = h.start();
    ASSERT_EQ(fx.messages.size(), 1u);
    EXPECT_EQ(fx.messages[0].name, "ping");
    ASSERT_EQ(fx.waits_opened.size(), 1u);
    EXPECT_EQ(fx.waits_opened[0].message_name, "ping");
    h.message("recv");
    EXPECT_EQ(h.status(), "COMPLETED");
}

}  // namespace
}  // namespace pythmata::engine::test
