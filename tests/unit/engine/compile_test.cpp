#include <gtest/gtest.h>

#include "harness.hpp"

namespace pythmata::engine::test {
namespace {

std::vector<bpmn::Diagnostic> compile_errors(const std::string& xml, const std::string& id = "p") {
    auto parsed = bpmn::parse(xml);
    if (!parsed) {
        return parsed.error();
    }
    auto r = compile(parsed.value().definitions, id);
    if (r) {
        return {};
    }
    return r.error();
}

TEST(Compile, ReportsBadConditionNamingTheFlow) {
    auto errors = compile_errors(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="gw"/>
<exclusiveGateway id="gw" default="f2"/>
<sequenceFlow id="f1" sourceRef="gw" targetRef="end"><conditionExpression>${a &gt;&gt; }</conditionExpression></sequenceFlow>
<sequenceFlow id="f2" sourceRef="gw" targetRef="end"/>
<endEvent id="end"/>)"));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].element_id, "f1");
}

TEST(Compile, ReportsEveryBadScriptAndTimer) {
    auto errors = compile_errors(process_xml(R"(
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="s"/>
<scriptTask id="s" scriptFormat="python"><script>for x in y: pass</script></scriptTask>
<sequenceFlow id="f1" sourceRef="s" targetRef="t"/>
<intermediateCatchEvent id="t"><timerEventDefinition><timeDuration>soon</timeDuration></timerEventDefinition></intermediateCatchEvent>
<sequenceFlow id="f2" sourceRef="t" targetRef="end"/>
<endEvent id="end"/>)"));
    ASSERT_EQ(errors.size(), 2u);
    EXPECT_EQ(errors[0].element_id, "s");
    EXPECT_EQ(errors[1].element_id, "t");
}

TEST(Compile, UnknownProcessIsAnError) {
    auto errors = compile_errors(process_xml(R"(<startEvent id="start"/>)"), "nope");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].message.find("nope"), std::string::npos);
}

TEST(Compile, ExposesElementNamesAndStartEventsByKind) {
    Harness h(process_xml(R"(
<startEvent id="start" name="Begin"/>
<startEvent id="ms"><messageEventDefinition messageRef="m"/></startEvent>
<sequenceFlow id="f0" sourceRef="start" targetRef="end"/>
<sequenceFlow id="f1" sourceRef="ms" targetRef="end"/>
<endEvent id="end"/>)",
                          "p", R"(<message id="m" name="go"/>)"));
    ASSERT_TRUE(h.cp);
    auto idx = h.cp->find("start");
    ASSERT_TRUE(idx.has_value());
    EXPECT_EQ(h.cp->element_name(*idx), "Begin");
    EXPECT_EQ(h.cp->element_type(*idx), "startEvent");
    auto msgs = h.cp->start_events(bpmn::EventKind::kMessage);
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(h.cp->element_id(msgs[0]), "ms");
    h.run(Start{{}, "ms", 0});
    EXPECT_EQ(h.status(), "COMPLETED");
    EXPECT_TRUE(h.passed("ms"));
    EXPECT_FALSE(h.passed("start"));
}

TEST(Compile, TimerStartEventsExposeTheirSchedule) {
    Harness h(process_xml(R"(
<startEvent id="ts"><timerEventDefinition><timeCycle>R2/PT1H</timeCycle></timerEventDefinition></startEvent>
<sequenceFlow id="f0" sourceRef="ts" targetRef="end"/>
<endEvent id="end"/>)"));
    ASSERT_TRUE(h.cp);
    auto timers = h.cp->start_events(bpmn::EventKind::kTimer);
    ASSERT_EQ(timers.size(), 1u);
    auto first = h.cp->timer_first(timers[0], h.now);
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(*first, h.now + std::chrono::hours(1));
    auto second = h.cp->timer_next(timers[0], *first, 1);
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(*second, h.now + std::chrono::hours(2));
    EXPECT_FALSE(h.cp->timer_next(timers[0], *second, 2).has_value());
    EXPECT_FALSE(h.cp->timer_first(*h.cp->find("end"), h.now).has_value());
    h.run(Start{{}, "ts", 0});
    EXPECT_EQ(h.status(), "COMPLETED");
}

}  // namespace
}  // namespace pythmata::engine::test
