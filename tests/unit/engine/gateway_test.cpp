#include <gtest/gtest.h>

#include "harness.hpp"

namespace pythmata::engine::test {
namespace {

const char* kExclusive = R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="gw"/>
<exclusiveGateway id="gw" default="fDefault"/>
<sequenceFlow id="f1" sourceRef="gw" targetRef="big"><conditionExpression>${amount > 100}</conditionExpression></sequenceFlow>
<sequenceFlow id="f2" sourceRef="gw" targetRef="small"><conditionExpression>amount &lt;= 100 and amount > 0</conditionExpression></sequenceFlow>
<sequenceFlow id="fDefault" sourceRef="gw" targetRef="other"/>
<userTask id="big"/><userTask id="small"/><userTask id="other"/>
)";

TEST(ExclusiveGateway, TakesTheFirstFlowWhoseConditionHolds) {
    Harness h(process_xml(kExclusive));
    h.start({{"amount", 150}});
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"big"});
    Harness h2(process_xml(kExclusive));
    h2.start({{"amount", 50}});
    EXPECT_EQ(h2.open_tasks(), std::vector<std::string>{"small"});
}

TEST(ExclusiveGateway, TakesDefaultFlowWhenNoConditionHolds) {
    Harness h(process_xml(kExclusive));
    h.start({{"amount", -5}});
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"other"});
}

TEST(ExclusiveGateway, OpensAnIncidentWhenNoFlowCanBeTaken) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="gw"/>
<exclusiveGateway id="gw"/>
<sequenceFlow id="f1" sourceRef="gw" targetRef="a"><conditionExpression>x > 1</conditionExpression></sequenceFlow>
<userTask id="a"/>)"));
    auto fx = h.start({{"x", 0}});
    ASSERT_EQ(fx.incidents_opened.size(), 1u);
    EXPECT_EQ(fx.incidents_opened[0].kind, "NO_OUTGOING_FLOW");
    EXPECT_EQ(h.status(), "ERROR");
    EXPECT_TRUE(h.open_tasks().empty());
}

TEST(ExclusiveGateway, UndefinedVariableInConditionBecomesAnIncidentAndResolvingRetries) {
    Harness h(process_xml(kExclusive));
    auto fx = h.start();
    ASSERT_EQ(fx.incidents_opened.size(), 1u);
    EXPECT_EQ(fx.incidents_opened[0].kind, "EXPRESSION");
    EXPECT_NE(fx.incidents_opened[0].message.find("amount"), std::string::npos);
    h.run(SetVariables{{{"amount", 500}}});
    EXPECT_TRUE(h.open_tasks().empty());
    auto fx2 = h.run(ResolveIncident{fx.incidents_opened[0].id});
    EXPECT_EQ(fx2.incidents_resolved.size(), 1u);
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"big"});
    EXPECT_EQ(h.status(), "RUNNING");
}

TEST(ExclusiveGateway, MergingPassesEveryTokenThrough) {
    Harness h(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
<parallelGateway id="fork"/>
<sequenceFlow id="f1" sourceRef="fork" targetRef="merge"/>
<sequenceFlow id="f2" sourceRef="fork" targetRef="merge"/>
<exclusiveGateway id="merge"/>
<sequenceFlow id="f3" sourceRef="merge" targetRef="task"/>
<userTask id="task"/>)"));
    h.start();
    EXPECT_EQ(h.open_tasks().size(), 2u);
}

const char* kForkJoin = R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
<parallelGateway id="fork"/>
<sequenceFlow id="f1" sourceRef="fork" targetRef="a"/>
<sequenceFlow id="f2" sourceRef="fork" targetRef="b"/>
<userTask id="a"/><userTask id="b"/>
<sequenceFlow id="f3" sourceRef="a" targetRef="join"/>
<sequenceFlow id="f4" sourceRef="b" targetRef="join"/>
<parallelGateway id="join"/>
<sequenceFlow id="f5" sourceRef="join" targetRef="after"/>
<userTask id="after"/>
)";

TEST(ParallelGateway, ForksOneTokenPerOutgoingFlow) {
    Harness h(process_xml(kForkJoin));
    h.start();
    EXPECT_EQ(h.open_tasks(), (std::vector<std::string>{"a", "b"}));
}

TEST(ParallelGateway, JoinWaitsForAllIncomingTokens) {
    Harness h(process_xml(kForkJoin));
    h.start();
    h.complete("a");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"b"});
    EXPECT_FALSE(h.passed("after"));
    h.complete("b");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"after"});
    EXPECT_EQ(h.count("after"), 1);
    h.complete("after");
    EXPECT_EQ(h.status(), "COMPLETED");
}

const char* kInclusive = R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
<inclusiveGateway id="fork" default="fd"/>
<sequenceFlow id="f1" sourceRef="fork" targetRef="a"><conditionExpression>x > 0</conditionExpression></sequenceFlow>
<sequenceFlow id="f2" sourceRef="fork" targetRef="b"><conditionExpression>x > 10</conditionExpression></sequenceFlow>
<sequenceFlow id="fd" sourceRef="fork" targetRef="c"/>
<userTask id="a"/><userTask id="b"/><userTask id="c"/>
<sequenceFlow id="f3" sourceRef="a" targetRef="join"/>
<sequenceFlow id="f4" sourceRef="b" targetRef="join"/>
<sequenceFlow id="f6" sourceRef="c" targetRef="join"/>
<inclusiveGateway id="join"/>
<sequenceFlow id="f5" sourceRef="join" targetRef="after"/>
<userTask id="after"/>
)";

TEST(InclusiveGateway, ForksEveryFlowWhoseConditionHolds) {
    Harness h(process_xml(kInclusive));
    h.start({{"x", 20}});
    EXPECT_EQ(h.open_tasks(), (std::vector<std::string>{"a", "b"}));
}

TEST(InclusiveGateway, TakesDefaultFlowWhenNoConditionHolds) {
    Harness h(process_xml(kInclusive));
    h.start({{"x", -1}});
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"c"});
    h.complete("c");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"after"});
}

TEST(InclusiveGateway, JoinWaitsForEveryTokenThatCanStillArrive) {
    Harness h(process_xml(kInclusive));
    h.start({{"x", 20}});
    h.complete("b");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"a"});
    h.complete("a");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"after"});
    EXPECT_EQ(h.count("after"), 1);
}

TEST(InclusiveGateway, JoinDoesNotWaitForBranchesThatWereNotTaken) {
    Harness h(process_xml(kInclusive));
    h.start({{"x", 5}});
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"a"});
    h.complete("a");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"after"});
}

const char* kEventGateway = R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="gw"/>
<eventBasedGateway id="gw"/>
<sequenceFlow id="f1" sourceRef="gw" targetRef="msg"/>
<sequenceFlow id="f2" sourceRef="gw" targetRef="timer"/>
<intermediateCatchEvent id="msg"><messageEventDefinition messageRef="m1"/></intermediateCatchEvent>
<intermediateCatchEvent id="timer"><timerEventDefinition><timeDuration>PT1M</timeDuration></timerEventDefinition></intermediateCatchEvent>
<sequenceFlow id="f3" sourceRef="msg" targetRef="afterMsg"/>
<sequenceFlow id="f4" sourceRef="timer" targetRef="afterTimer"/>
<userTask id="afterMsg"/><userTask id="afterTimer"/>
)";

TEST(EventBasedGateway, FirstEventWinsAndClosesTheOthers) {
    Harness h(process_xml(kEventGateway, "p", R"(<message id="m1" name="go"/>)"));
    auto fx = h.start();
    ASSERT_EQ(fx.waits_opened.size(), 2u);
    EXPECT_EQ(h.open.size(), 2u);
    h.message("msg");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"afterMsg"});
    EXPECT_EQ(h.wait_at("timer"), 0u);
    EXPECT_FALSE(h.passed("timer"));
}

TEST(EventBasedGateway, TimerBranchFiresWhenNoMessageCame) {
    Harness h(process_xml(kEventGateway, "p", R"(<message id="m1" name="go"/>)"));
    auto fx = h.start();
    for (const auto& w : fx.waits_opened) {
        if (w.kind == WaitKind::kTimer) {
            EXPECT_EQ(w.due_at, h.now + std::chrono::minutes(1));
        } else {
            EXPECT_EQ(w.message_name, "go");
        }
    }
    h.fire("timer");
    EXPECT_EQ(h.open_tasks(), std::vector<std::string>{"afterTimer"});
    EXPECT_EQ(h.wait_at("msg"), 0u);
}

}  // namespace
}  // namespace pythmata::engine::test
