#include <gtest/gtest.h>

#include "harness.hpp"

namespace pythmata::engine::test {
namespace {

TEST(SubProcess, RunsItsChildrenAndCompletesWhenTheyEnd) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="sub"/>
<subProcess id="sub">
  <startEvent id="ss"/>
  <sequenceFlow id="s1" sourceRef="ss" targetRef="inner"/>
  <userTask id="inner"/>
  <sequenceFlow id="s2" sourceRef="inner" targetRef="se"/>
  <endEvent id="se"/>
</subProcess>
<sequenceFlow id="f1" sourceRef="sub" targetRef="after"/>
<userTask id="after"/>)"));
    h.start();
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"inner"});
    EXPECT_EQ(h.state.scopes.size(), 2u);
    h.complete("inner");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"after"});
    EXPECT_EQ(h.count("sub", HistoryEvent::kCompleted), 1);
    EXPECT_EQ(h.state.scopes.size(), 1u);
}

TEST(SubProcess, InputMappingsCreateLocalVariables) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="sub"/>
<subProcess id="sub">
  <extensionElements><camunda:inputOutput>
    <camunda:inputParameter name="local">${x * 2}</camunda:inputParameter>
    <camunda:outputParameter name="result">${local + 1}</camunda:outputParameter>
  </camunda:inputOutput></extensionElements>
  <startEvent id="ss"/>
  <sequenceFlow id="s1" sourceRef="ss" targetRef="inc"/>
  <scriptTask id="inc" scriptFormat="python"><script>local += 10</script></scriptTask>
  <sequenceFlow id="s2" sourceRef="inc" targetRef="se"/>
  <endEvent id="se"/>
</subProcess>
<sequenceFlow id="f1" sourceRef="sub" targetRef="end"/>
<endEvent id="end"/>)"));
    h.start({{"x", 5}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.state.variables["result"], 21);
    EXPECT_FALSE(h.state.variables.contains("local"));
}

TEST(EventSubProcess, InterruptingMessageStartCancelsTheScope) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="work"/>
<userTask id="work"/>
<sequenceFlow id="f1" sourceRef="work" targetRef="end"/>
<endEvent id="end"/>
<subProcess id="esp" triggeredByEvent="true">
  <startEvent id="es"><messageEventDefinition messageRef="m"/></startEvent>
  <sequenceFlow id="e1" sourceRef="es" targetRef="handle"/>
  <userTask id="handle"/>
  <sequenceFlow id="e2" sourceRef="handle" targetRef="ee"/>
  <endEvent id="ee"/>
</subProcess>
<subProcess id="esp2" triggeredByEvent="true">
  <startEvent id="es2"><signalEventDefinition signalRef="s"/></startEvent>
  <sequenceFlow id="g1" sourceRef="es2" targetRef="ge"/>
  <endEvent id="ge"/>
</subProcess>)",
                          "p", R"(<message id="m" name="stop"/><signal id="s" name="sig"/>)"));
    h.start();
    EXPECT_EQ(h.open.size(), 3u);
    h.message("es");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"handle"});
    EXPECT_EQ(h.wait_at("es2"), 0u) << "interrupting start closes the other subscriptions";
    h.complete("handle");
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_FALSE(h.passed("end"));
}

TEST(EventSubProcess, NonInterruptingTimerRunsAlongside) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="work"/>
<userTask id="work"/>
<sequenceFlow id="f1" sourceRef="work" targetRef="end"/>
<endEvent id="end"/>
<subProcess id="esp" triggeredByEvent="true">
  <startEvent id="es" isInterrupting="false"><timerEventDefinition><timeDuration>PT5M</timeDuration></timerEventDefinition></startEvent>
  <sequenceFlow id="e1" sourceRef="es" targetRef="remind"/>
  <userTask id="remind"/>
</subProcess>)"));
    h.start();
    h.fire("es");
    EXPECT_EQ(h.open_tasks(), (std::vector<std::string>{"remind", "work"}));
    h.complete("work");
    EXPECT_EQ(h.status(), "RUNNING") << "the process waits for the running event subprocess";
    h.complete("remind");
    EXPECT_EQ(h.status(), "COMPLETED");
}

TEST(EventSubProcess, ErrorStartCatchesErrorsOfItsScope) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="sub"/>
<subProcess id="sub">
  <startEvent id="ss"/>
  <sequenceFlow id="s1" sourceRef="ss" targetRef="boom"/>
  <endEvent id="boom"><errorEventDefinition errorRef="e"/></endEvent>
  <subProcess id="esp" triggeredByEvent="true">
    <startEvent id="es"><errorEventDefinition/></startEvent>
    <sequenceFlow id="e1" sourceRef="es" targetRef="fix"/>
    <userTask id="fix"/>
  </subProcess>
</subProcess>
<sequenceFlow id="f1" sourceRef="sub" targetRef="after"/>
<userTask id="after"/>)",
                          "p", R"(<error id="e" errorCode="X"/>)"));
    h.start();
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"fix"});
    h.complete("fix");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"after"});
}

const char* kParallelMi = R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="mi"/>
<userTask id="mi" name="Item ${loopCounter}">
  <multiInstanceLoopCharacteristics camunda:collection="items" camunda:elementVariable="item">
    <completionCondition>${nrOfCompletedInstances == stopAfter}</completionCondition>
  </multiInstanceLoopCharacteristics>
</userTask>
<sequenceFlow id="f1" sourceRef="mi" targetRef="after"/>
<userTask id="after"/>
)";

TEST(MultiInstance, ParallelCreatesOneInstancePerItemWithLoopVariables) {
    Harness h(process_xml(kParallelMi));
    auto fx = h.start({{"items", {"a", "b", "c"}}, {"stopAfter", 99}});
    ASSERT_EQ(fx.waits_opened.size(), 3u);
    EXPECT_EQ(fx.waits_opened[0].name, "Item 0");
    EXPECT_EQ(fx.waits_opened[2].name, "Item 2");
    EXPECT_EQ(fx.waits_opened[1].variables.size(), 0u);
    for (const auto& w : fx.waits_opened) {
        h.run(CompleteTask{w.id, {}});
    }
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"after"});
    EXPECT_FALSE(h.state.variables.contains("loopCounter"));
}

TEST(MultiInstance, CompletionConditionCancelsRemainingInstances) {
    Harness h(process_xml(kParallelMi));
    auto fx = h.start({{"items", {1, 2, 3, 4}}, {"stopAfter", 2}});
    ASSERT_EQ(fx.waits_opened.size(), 4u);
    h.run(CompleteTask{fx.waits_opened[0].id, {}});
    auto last = h.run(CompleteTask{fx.waits_opened[1].id, {}});
    EXPECT_EQ(last.waits_closed.size(), 3u);
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"after"});
}

TEST(MultiInstance, SequentialRunsOneAfterAnotherAndCollectsOutput) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="mi"/>
<userTask id="mi" camunda:assignee="kermit_${loopCounter}">
  <multiInstanceLoopCharacteristics isSequential="true">
    <loopDataInputRef>input_data</loopDataInputRef>
    <loopDataOutputRef>output_data</loopDataOutputRef>
    <inputDataItem id="input_item" name="input item"/>
    <outputDataItem id="output_item" name="output item"/>
  </multiInstanceLoopCharacteristics>
</userTask>
<sequenceFlow id="f1" sourceRef="mi" targetRef="end"/>
<endEvent id="end"/>)"));
    auto fx = h.start({{"input_data", {1, 2, 3}}});
    ASSERT_EQ(fx.waits_opened.size(), 1u);
    EXPECT_EQ(fx.waits_opened[0].assignee, "kermit_0");
    h.complete("mi", {{"output_item", 2}});
    EXPECT_EQ(h.open.begin()->second.assignee, "kermit_1");
    h.complete("mi", {{"output_item", 4}});
    h.complete("mi", {{"output_item", 6}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.state.variables["output_data"], nlohmann::json({2, 4, 6}));
}

TEST(MultiInstance, EmptyCollectionCompletesImmediately) {
    Harness h(process_xml(kParallelMi));
    h.start({{"items", nlohmann::json::array()}, {"stopAfter", 1}});
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"after"});
}

TEST(MultiInstance, CardinalityRunsScriptTaskNTimes) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="mi"/>
<scriptTask id="mi" scriptFormat="python"><script>total += loopCounter</script>
  <multiInstanceLoopCharacteristics><loopCardinality>${5-2}</loopCardinality></multiInstanceLoopCharacteristics>
</scriptTask>
<sequenceFlow id="f1" sourceRef="mi" targetRef="end"/>
<endEvent id="end"/>)"));
    h.start({{"total", 0}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.state.variables["total"], 3);
}

TEST(CallActivity, OpensACallWaitWithInputsAndMergesTheChildResult) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="call"/>
<callActivity id="call" calledElement="child"/>
<sequenceFlow id="f1" sourceRef="call" targetRef="end"/>
<endEvent id="end"/>)"));
    auto fx = h.start({{"a", 1}});
    ASSERT_EQ(fx.waits_opened.size(), 1u);
    EXPECT_EQ(fx.waits_opened[0].kind, WaitKind::kCall);
    EXPECT_EQ(fx.waits_opened[0].called_process, "child");
    EXPECT_EQ(fx.waits_opened[0].variables["a"], 1);
    h.run(CompleteCall{fx.waits_opened[0].id, {{"b", 2}}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.state.variables["b"], 2);
}

TEST(CallActivity, ChildErrorIsThrownAtTheCallActivity) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="call"/>
<callActivity id="call" calledElement="child"/>
<boundaryEvent id="err" attachedToRef="call"><errorEventDefinition/></boundaryEvent>
<sequenceFlow id="f1" sourceRef="call" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="err" targetRef="handle"/>
<userTask id="handle"/>
<endEvent id="end"/>)"));
    auto fx = h.start();
    h.run(FailCall{fx.waits_opened[0].id, "CHILD_FAILED", "x"});
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"handle"});
}

TEST(CallActivity, DepthLimitOpensAnIncident) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="call"/>
<callActivity id="call" calledElement="p"/>)"));
    h.limits.max_call_depth = 3;
    auto fx = h.run(Start{{}, {}, 3});
    ASSERT_EQ(fx.incidents_opened.size(), 1u);
    EXPECT_EQ(fx.incidents_opened[0].kind, "CALL_DEPTH");
}

TEST(Compensation, ThrowRunsHandlersOfCompletedActivitiesInReverseOrder) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="book"/>
<scriptTask id="book" scriptFormat="python"><script>log = log + ["book"]</script></scriptTask>
<boundaryEvent id="cb" attachedToRef="book"><compensateEventDefinition/></boundaryEvent>
<scriptTask id="undoBook" isForCompensation="true" scriptFormat="python"><script>log = log + ["undoBook"]</script></scriptTask>
<association id="a1" associationDirection="One" sourceRef="cb" targetRef="undoBook"/>
<sequenceFlow id="f1" sourceRef="book" targetRef="pay"/>
<scriptTask id="pay" scriptFormat="python"><script>log = log + ["pay"]</script></scriptTask>
<boundaryEvent id="cp" attachedToRef="pay"><compensateEventDefinition/></boundaryEvent>
<scriptTask id="undoPay" isForCompensation="true" scriptFormat="python"><script>log = log + ["undoPay"]</script></scriptTask>
<association id="a2" associationDirection="One" sourceRef="cp" targetRef="undoPay"/>
<sequenceFlow id="f2" sourceRef="pay" targetRef="comp"/>
<intermediateThrowEvent id="comp"><compensateEventDefinition/></intermediateThrowEvent>
<sequenceFlow id="f3" sourceRef="comp" targetRef="end"/>
<endEvent id="end"/>)"));
    h.start({{"log", nlohmann::json::array()}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.state.variables["log"], nlohmann::json({"book", "pay", "undoPay", "undoBook"}));
}

TEST(Transaction, CancelEndEventCompensatesAndTakesTheCancelBoundary) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="tx"/>
<transaction id="tx">
  <startEvent id="ts"/>
  <sequenceFlow id="t1" sourceRef="ts" targetRef="book"/>
  <scriptTask id="book" scriptFormat="python"><script>booked = True</script></scriptTask>
  <boundaryEvent id="cb" attachedToRef="book"><compensateEventDefinition/></boundaryEvent>
  <scriptTask id="undo" isForCompensation="true" scriptFormat="python"><script>booked = False</script></scriptTask>
  <association id="a1" associationDirection="One" sourceRef="cb" targetRef="undo"/>
  <sequenceFlow id="t2" sourceRef="book" targetRef="ask"/>
  <userTask id="ask"/>
  <sequenceFlow id="t3" sourceRef="ask" targetRef="gw"/>
  <exclusiveGateway id="gw" default="ok"/>
  <sequenceFlow id="no" sourceRef="gw" targetRef="cancel"><conditionExpression>answer == 'No'</conditionExpression></sequenceFlow>
  <sequenceFlow id="ok" sourceRef="gw" targetRef="te"/>
  <endEvent id="cancel"><cancelEventDefinition/></endEvent>
  <endEvent id="te"/>
</transaction>
<boundaryEvent id="cancelled" attachedToRef="tx"><cancelEventDefinition/></boundaryEvent>
<sequenceFlow id="f1" sourceRef="tx" targetRef="done"/>
<sequenceFlow id="f2" sourceRef="cancelled" targetRef="rolledBack"/>
<endEvent id="done"/><endEvent id="rolledBack"/>)"));
    h.start();
    h.complete("ask", {{"answer", "No"}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.state.variables["booked"], false);
    EXPECT_TRUE(h.passed("undo"));
    EXPECT_TRUE(h.passed("rolledBack"));
    EXPECT_FALSE(h.passed("done"));
}

}  // namespace
}  // namespace pythmata::engine::test

namespace pythmata::engine::test {
namespace {

TEST(MultiInstance, ParallelSubprocessInstancesEachRunTheirOwnScope) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="sub"/>
<subProcess id="sub">
  <startEvent id="ss"/>
  <sequenceFlow id="s1" sourceRef="ss" targetRef="work"/>
  <userTask id="work" name="Work ${loopCounter}"/>
  <sequenceFlow id="s2" sourceRef="work" targetRef="se"/>
  <endEvent id="se"/>
</subProcess>
<sequenceFlow id="f1" sourceRef="sub" targetRef="after"/>
<userTask id="after"/>)"),
              "p", [](bpmn::Definitions& d) {
                  // The parser does not accept loop characteristics on a subProcess yet; the
                  // model is what it would produce.
                  auto& p = d.processes[0];
                  bpmn::MultiInstance mi;
                  mi.loop_cardinality = "2";
                  p.elements[p.element_index.at("sub")].multi_instance = mi;
              });
    auto fx = h.start();
    ASSERT_EQ(fx.waits_opened.size(), 2u);
    EXPECT_EQ(fx.waits_opened[0].name, "Work 0");
    EXPECT_EQ(fx.waits_opened[1].name, "Work 1");
    h.run(CompleteTask{fx.waits_opened[1].id, {}});
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"work"});
    h.run(CompleteTask{fx.waits_opened[0].id, {}});
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"after"});
    EXPECT_EQ(h.state.scopes.size(), 1u);
}

TEST(MultiInstance, InterruptingBoundaryTimerCancelsEveryInstance) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="mi"/>
<userTask id="mi"><multiInstanceLoopCharacteristics><loopCardinality>3</loopCardinality></multiInstanceLoopCharacteristics></userTask>
<boundaryEvent id="timeout" attachedToRef="mi"><timerEventDefinition><timeDuration>PT1H</timeDuration></timerEventDefinition></boundaryEvent>
<sequenceFlow id="f1" sourceRef="mi" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="timeout" targetRef="late"/>
<userTask id="late"/>
<endEvent id="end"/>)"));
    auto fx = h.start();
    EXPECT_EQ(fx.waits_opened.size(), 4u) << "3 instances and one boundary timer on the body";
    h.fire("timeout");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"late"});
    EXPECT_EQ(h.open.size(), 1u);
    EXPECT_EQ(h.state.scopes.size(), 1u);
}

TEST(EventSubProcess, ConditionalStartFiresWhenVariablesChange) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="work"/>
<userTask id="work"/>
<subProcess id="esp" triggeredByEvent="true">
  <startEvent id="es"><conditionalEventDefinition><condition>${risk > 5}</condition></conditionalEventDefinition></startEvent>
  <sequenceFlow id="e1" sourceRef="es" targetRef="review"/>
  <userTask id="review"/>
</subProcess>)"));
    h.start({{"risk", 1}});
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"work"});
    h.run(SetVariables{{{"risk", 9}}});
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"review"});
}

TEST(SignalEvent, ThrownSignalReachesTheInstancesOwnEventSubprocess) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="throw"/>
<intermediateThrowEvent id="throw"><signalEventDefinition signalRef="s"/></intermediateThrowEvent>
<sequenceFlow id="f1" sourceRef="throw" targetRef="end"/>
<endEvent id="end"/>
<subProcess id="esp" triggeredByEvent="true">
  <startEvent id="es" isInterrupting="false"><signalEventDefinition signalRef="s"/></startEvent>
  <sequenceFlow id="e1" sourceRef="es" targetRef="heard"/>
  <userTask id="heard"/>
</subProcess>)",
                          "p", R"(<signal id="s" name="ping"/>)"));
    auto fx = h.start();
    ASSERT_EQ(fx.signals.size(), 1u);
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"heard"});
    EXPECT_TRUE(h.passed("end"));
    h.complete("heard");
    EXPECT_EQ(h.status(), "COMPLETED");
}

}  // namespace
}  // namespace pythmata::engine::test
