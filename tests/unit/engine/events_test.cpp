#include <gtest/gtest.h>

#include "harness.hpp"

namespace pythmata::engine::test {
namespace {

using std::chrono::hours;
using std::chrono::minutes;

TEST(TimerEvent, IntermediateTimerComputesDueAtFromNow) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="t"/>
<intermediateCatchEvent id="t"><timerEventDefinition><timeDuration>PT50M</timeDuration></timerEventDefinition></intermediateCatchEvent>
<sequenceFlow id="f1" sourceRef="t" targetRef="end"/>
<endEvent id="end"/>)"));
    auto fx = h.start();
    ASSERT_EQ(fx.waits_opened.size(), 1u);
    EXPECT_EQ(fx.waits_opened[0].kind, WaitKind::kTimer);
    EXPECT_EQ(fx.waits_opened[0].due_at, h.now + minutes(50));
    EXPECT_EQ(h.state.active_elements().size(), 1u);
    h.fire("t");
    EXPECT_EQ(h.status(), "COMPLETED");
}

TEST(TimerEvent, DurationFromAnExpressionIsEvaluatedWhenArmed) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="t"/>
<intermediateCatchEvent id="t"><timerEventDefinition><timeDuration>${wait}</timeDuration></timerEventDefinition></intermediateCatchEvent>
<sequenceFlow id="f1" sourceRef="t" targetRef="end"/>
<endEvent id="end"/>)"));
    auto fx = h.start({{"wait", "PT2H"}});
    ASSERT_EQ(fx.waits_opened.size(), 1u);
    EXPECT_EQ(fx.waits_opened[0].due_at, h.now + hours(2));
}

TEST(BoundaryEvent, InterruptingTimerCancelsTheTaskAndTakesTheBoundaryPath) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="task"/>
<userTask id="task"/>
<boundaryEvent id="late" attachedToRef="task"><timerEventDefinition><timeDuration>PT1H</timeDuration></timerEventDefinition></boundaryEvent>
<sequenceFlow id="f1" sourceRef="task" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="late" targetRef="escalated"/>
<userTask id="escalated"/>
<endEvent id="end"/>)"));
    h.start();
    EXPECT_EQ(h.open.size(), 2u);
    h.fire("late");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"escalated"});
    EXPECT_EQ(h.count("task", HistoryEvent::kCancelled), 1);
    EXPECT_EQ(h.open.size(), 1u);
}

TEST(BoundaryEvent, CompletingTheTaskClosesItsBoundaryWaits) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="task"/>
<userTask id="task"/>
<boundaryEvent id="late" attachedToRef="task"><timerEventDefinition><timeDuration>PT1H</timeDuration></timerEventDefinition></boundaryEvent>
<boundaryEvent id="msg" attachedToRef="task"><messageEventDefinition messageRef="m"/></boundaryEvent>
<sequenceFlow id="f1" sourceRef="task" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="late" targetRef="end"/>
<sequenceFlow id="f3" sourceRef="msg" targetRef="end"/>
<endEvent id="end"/>)",
                          "p", R"(<message id="m" name="stop"/>)"));
    h.start();
    EXPECT_EQ(h.open.size(), 3u);
    auto fx = h.complete("task");
    EXPECT_EQ(fx.waits_closed.size(), 3u);
    EXPECT_TRUE(h.open.empty());
    EXPECT_EQ(h.status(), "COMPLETED");
}

TEST(BoundaryEvent, NonInterruptingTimerKeepsTheTaskAndRunsABranch) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="task"/>
<userTask id="task"/>
<boundaryEvent id="remind" attachedToRef="task" cancelActivity="false"><timerEventDefinition><timeDuration>PT1H</timeDuration></timerEventDefinition></boundaryEvent>
<sequenceFlow id="f1" sourceRef="task" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="remind" targetRef="reminder"/>
<userTask id="reminder"/>
<sequenceFlow id="f3" sourceRef="reminder" targetRef="end2"/>
<endEvent id="end"/><endEvent id="end2"/>)"));
    h.start();
    h.fire("remind");
    EXPECT_EQ(h.open_tasks(), (std::vector<std::string>{"reminder", "task"}));
    h.complete("reminder");
    h.complete("task");
    EXPECT_EQ(h.status(), "COMPLETED");
}

TEST(BoundaryEvent, NonInterruptingTimerCycleRearms) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="task"/>
<userTask id="task"/>
<boundaryEvent id="remind" attachedToRef="task" cancelActivity="false"><timerEventDefinition><timeCycle>R3/PT10M</timeCycle></timerEventDefinition></boundaryEvent>
<sequenceFlow id="f1" sourceRef="task" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="remind" targetRef="end2"/>
<endEvent id="end"/><endEvent id="end2"/>)"));
    auto fx = h.start();
    WaitId timer = h.wait_at("remind");
    ASSERT_NE(timer, 0u);
    EXPECT_EQ(h.open[timer].repeat, 2);
    auto f1 = h.run(FireTimer{timer});
    ASSERT_EQ(f1.waits_opened.size(), 1u);
    EXPECT_EQ(f1.waits_opened[0].id, timer);
    EXPECT_EQ(f1.waits_opened[0].due_at, h.now + minutes(20));
    h.run(FireTimer{timer});
    auto f3 = h.run(FireTimer{timer});
    EXPECT_EQ(f3.waits_closed, std::vector<WaitId>{timer});
    EXPECT_EQ(h.count("end2"), 3);
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"task"});
}

TEST(BoundaryEvent, MessageBoundaryInterruptsTask) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="task"/>
<userTask id="task"/>
<boundaryEvent id="msg" attachedToRef="task"><messageEventDefinition messageRef="m" pythmata:correlationKey="${order}"/></boundaryEvent>
<sequenceFlow id="f1" sourceRef="task" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="msg" targetRef="after"/>
<userTask id="after"/>
<endEvent id="end"/>)",
                          "p", R"(<message id="m" name="cancelOrder"/>)"));
    auto fx = h.start({{"order", 7}});
    WaitId w = h.wait_at("msg");
    ASSERT_NE(w, 0u);
    EXPECT_EQ(h.open[w].message_name, "cancelOrder");
    EXPECT_EQ(h.open[w].correlation_key, "7");
    h.run(CorrelateMessage{w, {{"reason", "x"}}});
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"after"});
    EXPECT_EQ(h.state.variables["reason"], "x");
}

TEST(ReceiveTask, CorrelationKeyOnTheTaskIsEvaluated) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="recv"/>
<receiveTask id="recv" messageRef="m" pythmata:correlationKey="${order}"/>
<sequenceFlow id="f1" sourceRef="recv" targetRef="end"/>
<endEvent id="end"/>)",
                          "p", R"(<message id="m" name="paid"/>)"));
    h.start({{"order", "A-1"}});
    WaitId w = h.wait_at("recv");
    ASSERT_NE(w, 0u);
    EXPECT_EQ(h.open[w].message_name, "paid");
    EXPECT_EQ(h.open[w].correlation_key, "A-1");
    h.run(CorrelateMessage{w, {}});
    EXPECT_EQ(h.state.status, InstanceStatus::kCompleted);
}

TEST(BoundaryEvent, ErrorBoundaryCatchesJobErrorByCode) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="svc"/>
<serviceTask id="svc"/>
<boundaryEvent id="catchAll" attachedToRef="svc"><errorEventDefinition/></boundaryEvent>
<boundaryEvent id="catchPay" attachedToRef="svc"><errorEventDefinition errorRef="e1"/></boundaryEvent>
<sequenceFlow id="f1" sourceRef="svc" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="catchAll" targetRef="generic"/>
<sequenceFlow id="f3" sourceRef="catchPay" targetRef="payment"/>
<userTask id="generic"/><userTask id="payment"/>
<endEvent id="end"/>)",
                          "p", R"(<error id="e1" errorCode="PAYMENT"/>)"));
    h.start();
    h.run(ThrowJobError{h.wait_at("svc"), "PAYMENT", "declined", {{"why", "card"}}});
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"payment"});
    EXPECT_EQ(h.state.variables["why"], "card");
    Harness h2(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="svc"/>
<serviceTask id="svc"/>
<boundaryEvent id="catchAll" attachedToRef="svc"><errorEventDefinition/></boundaryEvent>
<sequenceFlow id="f1" sourceRef="svc" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="catchAll" targetRef="generic"/>
<userTask id="generic"/>
<endEvent id="end"/>)"));
    h2.start();
    h2.run(ThrowJobError{h2.wait_at("svc"), "OTHER", "", {}});
    EXPECT_EQ(h2.open_tasks(), std::vector<std::string>{"generic"});
}

TEST(ErrorEvent, UncaughtErrorEndsTheInstanceInError) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
<parallelGateway id="fork"/>
<sequenceFlow id="f1" sourceRef="fork" targetRef="u"/>
<sequenceFlow id="f2" sourceRef="fork" targetRef="err"/>
<userTask id="u"/>
<endEvent id="err"><errorEventDefinition errorRef="e1"/></endEvent>)",
                          "p", R"(<error id="e1" errorCode="BROKEN"/>)"));
    auto fx = h.start();
    EXPECT_EQ(fx.status, InstanceStatus::kError);
    ASSERT_TRUE(fx.uncaught_error.has_value());
    EXPECT_EQ(fx.uncaught_error->code, "BROKEN");
    EXPECT_TRUE(h.open.empty());
    EXPECT_TRUE(h.state.ended());
}

TEST(ErrorEvent, PropagatesOutwardThroughScopesToTheNearestCatcher) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="outer"/>
<subProcess id="outer">
  <startEvent id="os"/>
  <sequenceFlow id="o1" sourceRef="os" targetRef="inner"/>
  <subProcess id="inner">
    <startEvent id="is"/>
    <sequenceFlow id="i1" sourceRef="is" targetRef="boom"/>
    <endEvent id="boom"><errorEventDefinition errorRef="e1"/></endEvent>
  </subProcess>
  <sequenceFlow id="o2" sourceRef="inner" targetRef="oe"/>
  <endEvent id="oe"/>
</subProcess>
<boundaryEvent id="caught" attachedToRef="outer"><errorEventDefinition errorRef="e1"/></boundaryEvent>
<sequenceFlow id="f1" sourceRef="outer" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="caught" targetRef="handle"/>
<userTask id="handle"/>
<endEvent id="end"/>)",
                          "p", R"(<error id="e1" errorCode="E"/>)"));
    h.start();
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"handle"});
    EXPECT_FALSE(h.passed("oe"));
    EXPECT_FALSE(h.passed("end"));
    EXPECT_EQ(h.state.scopes.size(), 1u);
}

TEST(MessageEvent, IntermediateCatchWaitsForItsMessage) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="m"/>
<intermediateCatchEvent id="m"><messageEventDefinition messageRef="msg"/></intermediateCatchEvent>
<sequenceFlow id="f1" sourceRef="m" targetRef="end"/>
<endEvent id="end"/>)",
                          "p", R"(<message id="msg" name="invoice"/>)"));
    auto fx = h.start();
    ASSERT_EQ(fx.waits_opened.size(), 1u);
    EXPECT_EQ(fx.waits_opened[0].message_name, "invoice");
    h.run(CorrelateMessage{fx.waits_opened[0].id, {{"paid", true}}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_EQ(h.state.variables["paid"], true);
}

TEST(SignalEvent, ThrowEmitsSignalAndCatchWaits) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="throw"/>
<intermediateThrowEvent id="throw"><signalEventDefinition signalRef="s"/></intermediateThrowEvent>
<sequenceFlow id="f1" sourceRef="throw" targetRef="catch"/>
<intermediateCatchEvent id="catch"><signalEventDefinition signalRef="s"/></intermediateCatchEvent>
<sequenceFlow id="f2" sourceRef="catch" targetRef="end"/>
<endEvent id="end"><signalEventDefinition signalRef="s"/></endEvent>)",
                          "p", R"(<signal id="s" name="alert"/>)"));
    auto fx = h.start();
    ASSERT_EQ(fx.signals.size(), 1u);
    EXPECT_EQ(fx.signals[0].name, "alert");
    ASSERT_EQ(fx.waits_opened.size(), 1u);
    EXPECT_EQ(fx.waits_opened[0].signal_name, "alert");
    auto fx2 = h.signal("catch");
    EXPECT_EQ(fx2.signals.size(), 1u);
    EXPECT_EQ(h.status(), "COMPLETED");
}

TEST(ConditionalEvent, WaitsUntilVariablesMakeTheConditionTrue) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="c"/>
<intermediateCatchEvent id="c"><conditionalEventDefinition><condition>${variable == 1}</condition></conditionalEventDefinition></intermediateCatchEvent>
<sequenceFlow id="f1" sourceRef="c" targetRef="end"/>
<endEvent id="end"/>)"));
    h.start({{"variable", 0}});
    EXPECT_EQ(h.status(), "RUNNING");
    EXPECT_EQ(h.open.size(), 1u);
    h.run(SetVariables{{{"variable", 2}}});
    EXPECT_EQ(h.status(), "RUNNING");
    h.run(SetVariables{{{"variable", 1}}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_TRUE(h.passed("c"));
}

TEST(ConditionalEvent, TrueConditionPassesImmediately) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="c"/>
<intermediateCatchEvent id="c"><conditionalEventDefinition><condition>ready</condition></conditionalEventDefinition></intermediateCatchEvent>
<sequenceFlow id="f1" sourceRef="c" targetRef="end"/>
<endEvent id="end"/>)"));
    auto fx = h.start({{"ready", true}});
    EXPECT_EQ(fx.status, InstanceStatus::kCompleted);
    EXPECT_TRUE(fx.waits_opened.empty());
    EXPECT_TRUE(fx.waits_closed.empty());
}

TEST(ConditionalEvent, BoundaryInterruptsWhenConditionBecomesTrue) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="task"/>
<userTask id="task"/>
<boundaryEvent id="cond" attachedToRef="task"><conditionalEventDefinition><condition>abort</condition></conditionalEventDefinition></boundaryEvent>
<sequenceFlow id="f1" sourceRef="task" targetRef="end"/>
<sequenceFlow id="f2" sourceRef="cond" targetRef="aborted"/>
<endEvent id="end"/><endEvent id="aborted"/>)"));
    h.start({{"abort", false}});
    h.run(SetVariables{{{"abort", true}}});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_TRUE(h.passed("aborted"));
    EXPECT_FALSE(h.passed("end"));
}

TEST(LinkEvent, ThrowJumpsToTheCatchWithTheSameName) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="throw"/>
<intermediateThrowEvent id="throw"><linkEventDefinition name="L"/></intermediateThrowEvent>
<intermediateCatchEvent id="catch"><linkEventDefinition name="L"/></intermediateCatchEvent>
<sequenceFlow id="f1" sourceRef="catch" targetRef="end"/>
<endEvent id="end"/>)"));
    h.start();
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_TRUE(h.passed("catch"));
}

TEST(EscalationEvent, NonInterruptingBoundaryRunsAlongsideTheSubprocess) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="sub"/>
<subProcess id="sub">
  <startEvent id="ss"/>
  <sequenceFlow id="s1" sourceRef="ss" targetRef="esc"/>
  <intermediateThrowEvent id="esc"><escalationEventDefinition escalationRef="x"/></intermediateThrowEvent>
  <sequenceFlow id="s2" sourceRef="esc" targetRef="inner"/>
  <userTask id="inner"/>
</subProcess>
<boundaryEvent id="seen" attachedToRef="sub" cancelActivity="false"><escalationEventDefinition escalationRef="x"/></boundaryEvent>
<sequenceFlow id="f2" sourceRef="seen" targetRef="after"/>
<userTask id="after"/>)",
                          "p", R"(<escalation id="x" escalationCode="LATE"/>)"));
    h.start();
    EXPECT_EQ(h.open_tasks(), (std::vector<std::string>{"after", "inner"}));
}

TEST(EscalationEvent, UncaughtEscalationDoesNotStopTheThrower) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="esc"/>
<intermediateThrowEvent id="esc"><escalationEventDefinition escalationRef="x"/></intermediateThrowEvent>
<sequenceFlow id="f1" sourceRef="esc" targetRef="end"/>
<endEvent id="end"/>)",
                          "p", R"(<escalation id="x" escalationCode="LATE"/>)"));
    h.start();
    EXPECT_EQ(h.status(), "COMPLETED");
}

TEST(TerminateEndEvent, EndsEveryTokenAndCompletesWithTerminatedHistory) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
<parallelGateway id="fork"/>
<sequenceFlow id="f1" sourceRef="fork" targetRef="a"/>
<sequenceFlow id="f2" sourceRef="fork" targetRef="b"/>
<userTask id="a"/><userTask id="b"/>
<sequenceFlow id="f3" sourceRef="a" targetRef="term"/>
<endEvent id="term"><terminateEventDefinition/></endEvent>)"));
    h.start();
    auto fx = h.complete("a");
    EXPECT_EQ(fx.status, InstanceStatus::kCompleted);
    EXPECT_TRUE(h.state.terminated);
    EXPECT_EQ(h.count("b", HistoryEvent::kTerminated), 1);
    EXPECT_TRUE(h.open.empty());
}

}  // namespace
}  // namespace pythmata::engine::test
