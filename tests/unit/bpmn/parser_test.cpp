#include "pythmata/bpmn/parser.hpp"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace pythmata::bpmn {
namespace {

constexpr std::string_view kBpmnNs = "http://www.omg.org/spec/BPMN/20100524/MODEL";

// A document with the bpmn: prefix and the camunda, zeebe and pythmata namespaces bound.
std::string doc(std::string_view process_body, std::string_view root_extra = "",
                std::string_view process_attrs = "id=\"p\" isExecutable=\"true\"") {
    std::string xml =
        R"(<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"
    xmlns:pythmata="http://pythmata.org/schema/1.0/bpmn"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    id="defs" targetNamespace="http://example.com/test">
)";
    xml += root_extra;
    xml += "<bpmn:process ";
    xml += process_attrs;
    xml += ">\n";
    xml += process_body;
    xml += "\n</bpmn:process>\n</bpmn:definitions>\n";
    return xml;
}

std::string describe(const std::vector<Diagnostic>& diagnostics) {
    std::string out;
    for (const Diagnostic& d : diagnostics) {
        out += "  [" + d.element_id + "] " + d.message + "\n";
    }
    return out;
}

ParseOutput parse_ok(const std::string& xml) {
    auto r = parse(xml);
    EXPECT_TRUE(r.ok()) << describe(r.error());
    if (!r.ok()) {
        return {};
    }
    return std::move(r).value();
}

std::vector<Diagnostic> parse_errors(const std::string& xml) {
    auto r = parse(xml);
    EXPECT_FALSE(r.ok()) << "expected the document to be refused";
    return r.ok() ? std::vector<Diagnostic>{} : std::move(r).error();
}

bool mentions(const std::vector<Diagnostic>& diagnostics, std::string_view element_id,
              std::string_view fragment) {
    return std::any_of(diagnostics.begin(), diagnostics.end(), [&](const Diagnostic& d) {
        return d.element_id == element_id && d.message.find(fragment) != std::string::npos;
    });
}

const Element& element(const Process& p, const std::string& id) {
    const Element* e = p.find(id);
    EXPECT_NE(e, nullptr) << "no element " << id;
    static const Element kMissing;
    return e != nullptr ? *e : kMissing;
}

constexpr std::string_view kStraight = R"(
  <bpmn:startEvent id="start"/>
  <bpmn:task id="work" name="Work"/>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
  <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end"/>)";

// --- namespaces ---------------------------------------------------------------------------

std::string with_prefix(std::string_view prefix) {
    const std::string p = prefix.empty() ? "" : std::string{prefix} + ":";
    const std::string binding = prefix.empty() ? "xmlns" : "xmlns:" + std::string{prefix};
    return "<" + p + "definitions " + binding + "=\"" + std::string{kBpmnNs} + "\" id=\"d\">" +
           "<" + p + "process id=\"p\" isExecutable=\"true\">" + "<" + p +
           "startEvent id=\"s\"/><" + p + "userTask id=\"u\"/><" + p + "endEvent id=\"e\"/>" + "<" +
           p + "sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"u\"/>" + "<" + p +
           "sequenceFlow id=\"f2\" sourceRef=\"u\" targetRef=\"e\"/>" + "</" + p + "process></" +
           p + "definitions>";
}

TEST(ParserNamespaces, ResolvesElementsByNamespaceUriWhateverThePrefix) {
    for (const char* prefix : {"", "bpmn", "bpmn2", "semantic", "x"}) {
        SCOPED_TRACE(prefix);
        const ParseOutput out = parse_ok(with_prefix(prefix));
        ASSERT_EQ(out.definitions.processes.size(), 1u);
        const Process& p = out.definitions.processes[0];
        ASSERT_EQ(p.elements.size(), 3u);
        EXPECT_EQ(element(p, "u").type, ElementType::kUserTask);
        EXPECT_EQ(element(p, "u").type_name, "userTask");
        EXPECT_EQ(p.flows.size(), 2u);
    }
}

TEST(ParserNamespaces, PrefixBoundToAnotherNamespaceIsNotBpmn) {
    const std::string xml =
        "<bpmn:definitions xmlns:bpmn=\"http://example.com/not-bpmn\"><bpmn:process id=\"p\"/>"
        "</bpmn:definitions>";
    const auto errors = parse_errors(xml);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].message.find("not a BPMN 2.0 document"), std::string::npos);
}

TEST(ParserNamespaces, RootOtherThanDefinitionsIsRefused) {
    const auto errors =
        parse_errors("<process xmlns=\"http://www.omg.org/spec/BPMN/20100524/MODEL\" id=\"p\"/>");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].message.find("not a BPMN 2.0 document"), std::string::npos);
    EXPECT_FALSE(parse("<html><body/></html>").ok());
}

TEST(ParserNamespaces, IgnoresForeignElementsWithBpmnLocalNames) {
    const ParseOutput out = parse_ok(
        doc(std::string{kStraight} + R"(<other:task xmlns:other="urn:other" id="foreign"/>)"));
    const Process& p = out.definitions.processes[0];
    EXPECT_EQ(p.find("foreign"), nullptr);
    EXPECT_EQ(p.elements.size(), 3u);
}

TEST(ParserNamespaces, RedeclaredDefaultNamespaceInsideAnElementApplies) {
    const std::string xml = R"(<b:definitions xmlns:b="http://www.omg.org/spec/BPMN/20100524/MODEL">
  <process xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="p" isExecutable="true">
    <startEvent id="s"/><endEvent id="e"/><sequenceFlow id="f" sourceRef="s" targetRef="e"/>
  </process>
</b:definitions>)";
    const ParseOutput out = parse_ok(xml);
    ASSERT_EQ(out.definitions.processes.size(), 1u);
    EXPECT_EQ(out.definitions.processes[0].elements.size(), 2u);
}

// --- structure ----------------------------------------------------------------------------

TEST(ParserStructure, BuildsDenseIndicesAndFlowsFromSourceAndTargetRefs) {
    const ParseOutput out = parse_ok(doc(kStraight));
    EXPECT_EQ(out.definitions.id, "defs");
    EXPECT_EQ(out.definitions.target_namespace, "http://example.com/test");
    const Process& p = out.definitions.processes[0];
    EXPECT_TRUE(p.executable);
    ASSERT_EQ(p.elements.size(), 3u);
    EXPECT_EQ(p.elements[0].id, "start");
    EXPECT_EQ(p.elements[1].id, "work");
    EXPECT_EQ(p.elements[1].name, "Work");
    EXPECT_EQ(p.element_index.at("end"), 2u);
    EXPECT_EQ(p.flow_index.at("f2"), 1u);
    EXPECT_EQ(p.start_events, std::vector<ElementIndex>{0});
    const Element& work = element(p, "work");
    ASSERT_EQ(work.incoming.size(), 1u);
    ASSERT_EQ(work.outgoing.size(), 1u);
    EXPECT_EQ(p.flows[work.incoming[0]].source, 0u);
    EXPECT_EQ(p.flows[work.outgoing[0]].target, 2u);
    EXPECT_EQ(work.parent, kNoElement);
    EXPECT_TRUE(out.warnings.empty()) << describe(out.warnings);
}

TEST(ParserStructure, IncomingAndOutgoingChildElementsAreOnlyInformative) {
    // The flows decide; a stale bpmn:outgoing naming another flow changes nothing.
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"><bpmn:outgoing>nonsense</bpmn:outgoing></bpmn:startEvent>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end"/>)"));
    const Process& p = out.definitions.processes[0];
    EXPECT_EQ(element(p, "start").outgoing.size(), 1u);
    EXPECT_EQ(element(p, "end").incoming.size(), 1u);
}

TEST(ParserStructure, FlowsWithoutIdsAreNamedAfterTheirEnds) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"/><bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow sourceRef="start" targetRef="end"/>)"));
    const Process& p = out.definitions.processes[0];
    ASSERT_EQ(p.flows.size(), 1u);
    EXPECT_EQ(p.flows[0].id, "start->end");
}

TEST(ParserStructure, SubprocessChildrenFollowTheirParentWithParentScope) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"/>
  <bpmn:subProcess id="sub">
    <bpmn:startEvent id="subStart"/>
    <bpmn:userTask id="inner"/>
    <bpmn:endEvent id="subEnd"/>
    <bpmn:sequenceFlow id="s1" sourceRef="subStart" targetRef="inner"/>
    <bpmn:sequenceFlow id="s2" sourceRef="inner" targetRef="subEnd"/>
  </bpmn:subProcess>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
  <bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="end"/>)"));
    const Process& p = out.definitions.processes[0];
    ASSERT_EQ(p.elements.size(), 6u);
    EXPECT_EQ(p.elements[1].id, "sub");
    EXPECT_EQ(p.elements[2].id, "subStart");
    const ElementIndex sub = p.element_index.at("sub");
    EXPECT_EQ(element(p, "inner").parent, sub);
    EXPECT_EQ(element(p, "sub").children.size(), 3u);
    EXPECT_EQ(element(p, "sub").start_events,
              std::vector<ElementIndex>{p.element_index.at("subStart")});
    EXPECT_EQ(p.start_events, std::vector<ElementIndex>{p.element_index.at("start")});
    EXPECT_TRUE(out.warnings.empty()) << describe(out.warnings);
}

TEST(ParserStructure, CollaborationWithSeveralProcessesLanesAndDiagramIsRead) {
    const std::string xml = R"(<?xml version="1.0"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
    xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" id="d">
  <collaboration id="collab">
    <participant id="pa" name="A" processRef="procA"/>
    <participant id="pb" name="B" processRef="procB"/>
    <messageFlow id="mf" sourceRef="endA" targetRef="startB"/>
  </collaboration>
  <process id="procA" isExecutable="true">
    <laneSet id="ls"><lane id="lane1"><flowNodeRef>startA</flowNodeRef></lane></laneSet>
    <startEvent id="startA"/><endEvent id="endA"/>
    <sequenceFlow id="fa" sourceRef="startA" targetRef="endA"/>
  </process>
  <process id="procB" isExecutable="true">
    <startEvent id="startB"/><endEvent id="endB"/>
    <sequenceFlow id="fb" sourceRef="startB" targetRef="endB"/>
  </process>
  <bpmndi:BPMNDiagram id="dia"><bpmndi:BPMNPlane id="plane" bpmnElement="collab">
    <bpmndi:BPMNShape id="shape" bpmnElement="startA"><dc:Bounds x="1" y="2" width="3" height="4"/>
    </bpmndi:BPMNShape></bpmndi:BPMNPlane></bpmndi:BPMNDiagram>
</definitions>)";
    const ParseOutput out = parse_ok(xml);
    ASSERT_EQ(out.definitions.processes.size(), 2u);
    EXPECT_EQ(out.definitions.processes[0].id, "procA");
    EXPECT_EQ(out.definitions.processes[1].id, "procB");
    EXPECT_EQ(out.definitions.processes[0].elements.size(), 2u);
    EXPECT_EQ(out.definitions.processes[1].find("startA"), nullptr);
    EXPECT_EQ(out.definitions.find_process("procB"), &out.definitions.processes[1]);
    EXPECT_EQ(out.definitions.find_process("collab"), nullptr);
}

TEST(ParserStructure, SequenceFlowKeepsConditionTextAndLowerCasedLanguage) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"/>
  <bpmn:exclusiveGateway id="gw" default="low"/>
  <bpmn:endEvent id="a"/><bpmn:endEvent id="b"/>
  <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="gw"/>
  <bpmn:sequenceFlow id="high" name="High" sourceRef="gw" targetRef="a">
    <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression" language="Python"><![CDATA[ amount > 100 ]]></bpmn:conditionExpression>
  </bpmn:sequenceFlow>
  <bpmn:sequenceFlow id="low" sourceRef="gw" targetRef="b"/>)"));
    const Process& p = out.definitions.processes[0];
    const SequenceFlow& high = p.flows[p.flow_index.at("high")];
    EXPECT_EQ(high.name, "High");
    EXPECT_EQ(high.condition, "amount > 100");
    EXPECT_EQ(high.condition_language, "python");
    EXPECT_TRUE(p.flows[p.flow_index.at("low")].condition.empty());
    EXPECT_EQ(element(p, "gw").default_flow, p.flow_index.at("low"));
}

TEST(ParserStructure, AllTaskAndGatewayTypesAreRecognised) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="s"/>
  <bpmn:manualTask id="m"/><bpmn:businessRuleTask id="br"/><bpmn:sendTask id="snd"/>
  <bpmn:parallelGateway id="pg"/><bpmn:inclusiveGateway id="ig"/>
  <bpmn:endEvent id="e"/>
  <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="m"/>
  <bpmn:sequenceFlow id="f2" sourceRef="m" targetRef="br"/>
  <bpmn:sequenceFlow id="f3" sourceRef="br" targetRef="snd"/>
  <bpmn:sequenceFlow id="f4" sourceRef="snd" targetRef="pg"/>
  <bpmn:sequenceFlow id="f5" sourceRef="pg" targetRef="ig"/>
  <bpmn:sequenceFlow id="f6" sourceRef="ig" targetRef="e"/>)"));
    const Process& p = out.definitions.processes[0];
    EXPECT_EQ(element(p, "m").type, ElementType::kManualTask);
    EXPECT_EQ(element(p, "br").type, ElementType::kBusinessRuleTask);
    EXPECT_EQ(element(p, "br").job_type, "br");
    EXPECT_EQ(element(p, "snd").type, ElementType::kSendTask);
    EXPECT_EQ(element(p, "pg").type, ElementType::kParallelGateway);
    EXPECT_EQ(element(p, "ig").type, ElementType::kInclusiveGateway);
}

// --- events -------------------------------------------------------------------------------

constexpr std::string_view kNames = R"(
  <bpmn:message id="Msg_1" name="order-received"/>
  <bpmn:message id="Msg_2"/>
  <bpmn:signal id="Sig_1" name="alert"/>
  <bpmn:error id="Err_1" name="Failure" errorCode="E42"/>
  <bpmn:error id="Err_2" name="NoCode"/>
  <bpmn:escalation id="Esc_1" name="Too big" escalationCode="BIG"/>
)";

TEST(ParserEvents, ResolvesMessageSignalErrorAndEscalationRefsToNames) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"><bpmn:messageEventDefinition messageRef="Msg_1"/></bpmn:startEvent>
  <bpmn:intermediateCatchEvent id="sig"><bpmn:signalEventDefinition signalRef="Sig_1"/></bpmn:intermediateCatchEvent>
  <bpmn:intermediateCatchEvent id="unnamed"><bpmn:messageEventDefinition messageRef="Msg_2"/></bpmn:intermediateCatchEvent>
  <bpmn:intermediateThrowEvent id="esc"><bpmn:escalationEventDefinition escalationRef="Esc_1"/></bpmn:intermediateThrowEvent>
  <bpmn:endEvent id="err"><bpmn:errorEventDefinition errorRef="Err_1"/></bpmn:endEvent>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sig"/>
  <bpmn:sequenceFlow id="f2" sourceRef="sig" targetRef="unnamed"/>
  <bpmn:sequenceFlow id="f3" sourceRef="unnamed" targetRef="esc"/>
  <bpmn:sequenceFlow id="f4" sourceRef="esc" targetRef="err"/>)",
                                         kNames));
    const Definitions& d = out.definitions;
    EXPECT_EQ(d.messages.at("Msg_1"), "order-received");
    EXPECT_EQ(d.messages.at("Msg_2"), "Msg_2");
    EXPECT_EQ(d.signals.at("Sig_1"), "alert");
    EXPECT_EQ(d.errors.at("Err_1"), "E42");
    EXPECT_EQ(d.errors.at("Err_2"), "NoCode");
    EXPECT_EQ(d.escalations.at("Esc_1"), "BIG");
    const Process& p = d.processes[0];
    EXPECT_EQ(element(p, "start").event.kind, EventKind::kMessage);
    EXPECT_EQ(element(p, "start").event.ref_name, "order-received");
    EXPECT_EQ(element(p, "start").event.ref_id, "Msg_1");
    EXPECT_EQ(element(p, "sig").event.kind, EventKind::kSignal);
    EXPECT_EQ(element(p, "sig").event.ref_name, "alert");
    EXPECT_EQ(element(p, "unnamed").event.ref_name, "Msg_2");
    EXPECT_EQ(element(p, "esc").event.kind, EventKind::kEscalation);
    EXPECT_EQ(element(p, "esc").event.ref_name, "BIG");
    EXPECT_EQ(element(p, "err").event.kind, EventKind::kError);
    EXPECT_EQ(element(p, "err").event.ref_name, "E42");
}

TEST(ParserEvents, ReadsTheThreeTimerKinds) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"><bpmn:timerEventDefinition><bpmn:timeCycle xsi:type="bpmn:tFormalExpression">R3/PT10S</bpmn:timeCycle></bpmn:timerEventDefinition></bpmn:startEvent>
  <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition><bpmn:timeDuration> PT5M </bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
  <bpmn:intermediateCatchEvent id="until"><bpmn:timerEventDefinition><bpmn:timeDate>${deadline}</bpmn:timeDate></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
  <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="until"/>
  <bpmn:sequenceFlow id="f3" sourceRef="until" targetRef="end"/>)"));
    const Process& p = out.definitions.processes[0];
    EXPECT_EQ(element(p, "start").event.kind, EventKind::kTimer);
    EXPECT_EQ(element(p, "start").event.timer_kind, TimerKind::kCycle);
    EXPECT_EQ(element(p, "start").event.timer_expression, "R3/PT10S");
    EXPECT_EQ(element(p, "wait").event.timer_kind, TimerKind::kDuration);
    EXPECT_EQ(element(p, "wait").event.timer_expression, "PT5M");
    EXPECT_EQ(element(p, "until").event.timer_kind, TimerKind::kDate);
    EXPECT_EQ(element(p, "until").event.timer_expression, "${deadline}");
}

TEST(ParserEvents, ReadsPythmataTimerEventConfig) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start">
    <bpmn:extensionElements><pythmata:timerEventConfig timerType="cycle" timerValue="R/PT1H"/></bpmn:extensionElements>
  </bpmn:startEvent>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end"/>)"));
    const Element& s = element(out.definitions.processes[0], "start");
    EXPECT_EQ(s.event.kind, EventKind::kTimer);
    EXPECT_EQ(s.event.timer_kind, TimerKind::kCycle);
    EXPECT_EQ(s.event.timer_expression, "R/PT1H");
}

TEST(ParserEvents, ReadsConditionalLinkTerminateAndCompensationDefinitions) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"/>
  <bpmn:task id="booked"/>
  <bpmn:boundaryEvent id="undo" attachedToRef="booked"><bpmn:compensateEventDefinition/></bpmn:boundaryEvent>
  <bpmn:task id="cancelBooking" isForCompensation="true"/>
  <bpmn:association id="a1" sourceRef="undo" targetRef="cancelBooking"/>
  <bpmn:intermediateCatchEvent id="cond"><bpmn:conditionalEventDefinition><bpmn:condition xsi:type="bpmn:tFormalExpression">${ready}</bpmn:condition></bpmn:conditionalEventDefinition></bpmn:intermediateCatchEvent>
  <bpmn:intermediateThrowEvent id="jump"><bpmn:linkEventDefinition name="L1"/></bpmn:intermediateThrowEvent>
  <bpmn:intermediateCatchEvent id="land"><bpmn:linkEventDefinition name="L1"/></bpmn:intermediateCatchEvent>
  <bpmn:intermediateThrowEvent id="comp"><bpmn:compensateEventDefinition activityRef="booked" waitForCompletion="false"/></bpmn:intermediateThrowEvent>
  <bpmn:endEvent id="term"><bpmn:terminateEventDefinition/></bpmn:endEvent>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="booked"/>
  <bpmn:sequenceFlow id="f2" sourceRef="booked" targetRef="cond"/>
  <bpmn:sequenceFlow id="f3" sourceRef="cond" targetRef="jump"/>
  <bpmn:sequenceFlow id="f4" sourceRef="land" targetRef="comp"/>
  <bpmn:sequenceFlow id="f5" sourceRef="comp" targetRef="term"/>)"));
    const Process& p = out.definitions.processes[0];
    EXPECT_EQ(element(p, "cond").event.kind, EventKind::kConditional);
    EXPECT_EQ(element(p, "cond").event.condition, "${ready}");
    EXPECT_EQ(element(p, "jump").event.kind, EventKind::kLink);
    EXPECT_EQ(element(p, "jump").event.link_name, "L1");
    EXPECT_EQ(element(p, "land").event.link_name, "L1");
    EXPECT_EQ(element(p, "comp").event.kind, EventKind::kCompensation);
    EXPECT_EQ(element(p, "comp").event.activity_ref, "booked");
    EXPECT_FALSE(element(p, "comp").event.wait_for_completion);
    EXPECT_EQ(element(p, "term").event.kind, EventKind::kTerminate);
    const ElementIndex handler = p.element_index.at("cancelBooking");
    EXPECT_TRUE(element(p, "cancelBooking").is_for_compensation);
    EXPECT_EQ(element(p, "booked").compensation_handler, handler);
    EXPECT_EQ(element(p, "undo").compensation_handler, handler);
    EXPECT_TRUE(out.warnings.empty()) << describe(out.warnings);
}

TEST(ParserEvents, BoundaryEventsAttachWithCancelActivity) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"/>
  <bpmn:userTask id="review"/>
  <bpmn:boundaryEvent id="remind" attachedToRef="review" cancelActivity="false"><bpmn:timerEventDefinition><bpmn:timeCycle>R/PT1H</bpmn:timeCycle></bpmn:timerEventDefinition></bpmn:boundaryEvent>
  <bpmn:boundaryEvent id="fail" attachedToRef="review"><bpmn:errorEventDefinition/></bpmn:boundaryEvent>
  <bpmn:endEvent id="end"/><bpmn:endEvent id="reminded"/><bpmn:endEvent id="failed"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
  <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
  <bpmn:sequenceFlow id="f3" sourceRef="remind" targetRef="reminded"/>
  <bpmn:sequenceFlow id="f4" sourceRef="fail" targetRef="failed"/>)"));
    const Process& p = out.definitions.processes[0];
    const ElementIndex review = p.element_index.at("review");
    EXPECT_EQ(element(p, "remind").attached_to, review);
    EXPECT_FALSE(element(p, "remind").interrupting);
    EXPECT_TRUE(element(p, "fail").interrupting);
    EXPECT_EQ(element(p, "fail").event.kind, EventKind::kError);
    EXPECT_TRUE(element(p, "fail").event.ref_name.empty());  // catch-all
    EXPECT_EQ(element(p, "review").boundary_events.size(), 2u);
    EXPECT_TRUE(out.warnings.empty()) << describe(out.warnings);
}

TEST(ParserEvents, ErrorAndEscalationCatchersKeepCamundaCodeVariables) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"/><bpmn:subProcess id="sub"/><bpmn:endEvent id="end"/>
  <bpmn:boundaryEvent id="onError" attachedToRef="sub">
    <bpmn:errorEventDefinition errorRef="Err_1" camunda:errorCodeVariable="code" camunda:errorMessageVariable="msg"/>
  </bpmn:boundaryEvent>
  <bpmn:boundaryEvent id="onEsc" attachedToRef="sub" cancelActivity="false">
    <bpmn:escalationEventDefinition escalationRef="Esc_1" camunda:escalationCodeVariable="esc"/>
  </bpmn:boundaryEvent>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
  <bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="end"/>
  <bpmn:sequenceFlow id="f3" sourceRef="onError" targetRef="end"/>
  <bpmn:sequenceFlow id="f4" sourceRef="onEsc" targetRef="end"/>)",
                                         kNames));
    const Process& p = out.definitions.processes[0];
    EXPECT_EQ(element(p, "onError").event.ref_name, "E42");
    EXPECT_EQ(element(p, "onError").event.code_variable, "code");
    EXPECT_EQ(element(p, "onError").event.message_variable, "msg");
    EXPECT_EQ(element(p, "onEsc").event.ref_name, "BIG");
    EXPECT_EQ(element(p, "onEsc").event.code_variable, "esc");
}

TEST(ParserEvents, EventSubprocessStartEventsKeepIsInterrupting) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"/><bpmn:userTask id="work"/><bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
  <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
  <bpmn:subProcess id="onCancel" triggeredByEvent="true">
    <bpmn:startEvent id="cancelStart" isInterrupting="false"><bpmn:messageEventDefinition messageRef="Msg_1"/></bpmn:startEvent>
    <bpmn:endEvent id="cancelEnd"/>
    <bpmn:sequenceFlow id="c1" sourceRef="cancelStart" targetRef="cancelEnd"/>
  </bpmn:subProcess>)",
                                         kNames));
    const Process& p = out.definitions.processes[0];
    const Element& sub = element(p, "onCancel");
    EXPECT_TRUE(sub.triggered_by_event);
    EXPECT_EQ(p.event_subprocesses, std::vector<ElementIndex>{p.element_index.at("onCancel")});
    ASSERT_EQ(sub.start_events.size(), 1u);
    const Element& s = p.elements[sub.start_events[0]];
    EXPECT_FALSE(s.interrupting);
    EXPECT_EQ(s.event.ref_name, "order-received");
    EXPECT_EQ(p.start_events.size(), 1u);  // the event subprocess start is not a process start
    EXPECT_TRUE(out.warnings.empty()) << describe(out.warnings);
}

TEST(ParserEvents, TransactionWithCancelEndAndCancelBoundary) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"/>
  <bpmn:transaction id="tx">
    <bpmn:startEvent id="txStart"/><bpmn:endEvent id="txCancel"><bpmn:cancelEventDefinition/></bpmn:endEvent>
    <bpmn:sequenceFlow id="t1" sourceRef="txStart" targetRef="txCancel"/>
  </bpmn:transaction>
  <bpmn:boundaryEvent id="cancelled" attachedToRef="tx"><bpmn:cancelEventDefinition/></bpmn:boundaryEvent>
  <bpmn:endEvent id="end"/><bpmn:endEvent id="endCancelled"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="tx"/>
  <bpmn:sequenceFlow id="f2" sourceRef="tx" targetRef="end"/>
  <bpmn:sequenceFlow id="f3" sourceRef="cancelled" targetRef="endCancelled"/>)"));
    const Process& p = out.definitions.processes[0];
    EXPECT_EQ(element(p, "tx").type, ElementType::kTransaction);
    EXPECT_EQ(element(p, "txCancel").event.kind, EventKind::kCancel);
    EXPECT_EQ(element(p, "txCancel").parent, p.element_index.at("tx"));
    EXPECT_EQ(element(p, "cancelled").event.kind, EventKind::kCancel);
}

TEST(ParserEvents, MessageCorrelationKeyFromPythmataAttributeOrZeebeSubscription) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"/>
  <bpmn:intermediateCatchEvent id="byAttr" pythmata:correlationKey="order_id"><bpmn:messageEventDefinition messageRef="Msg_1"/></bpmn:intermediateCatchEvent>
  <bpmn:intermediateCatchEvent id="byZeebe"><bpmn:messageEventDefinition messageRef="Msg_Z"/></bpmn:intermediateCatchEvent>
  <bpmn:receiveTask id="receive" messageRef="Msg_Z"/>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="byAttr"/>
  <bpmn:sequenceFlow id="f2" sourceRef="byAttr" targetRef="byZeebe"/>
  <bpmn:sequenceFlow id="f3" sourceRef="byZeebe" targetRef="receive"/>
  <bpmn:sequenceFlow id="f4" sourceRef="receive" targetRef="end"/>)",
                                         std::string{kNames} + R"(
  <bpmn:message id="Msg_Z" name="payment">
    <bpmn:extensionElements><zeebe:subscription correlationKey="= orderId"/></bpmn:extensionElements>
  </bpmn:message>)"));
    const Process& p = out.definitions.processes[0];
    EXPECT_EQ(element(p, "byAttr").event.correlation_key, "order_id");
    EXPECT_EQ(element(p, "byZeebe").event.correlation_key, "orderId");
    EXPECT_EQ(element(p, "byZeebe").event.ref_name, "payment");
    EXPECT_EQ(element(p, "receive").message_ref_name, "payment");
    EXPECT_EQ(element(p, "receive").correlation_key, "orderId");
}

// --- tasks --------------------------------------------------------------------------------

std::string one_task(std::string_view task_xml, std::string_view root_extra = "") {
    return doc(std::string{R"(<bpmn:startEvent id="start"/><bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="t"/>
  <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="end"/>)"} +
                   std::string{task_xml},
               root_extra);
}

const Element& task_t(const ParseOutput& out) {
    return element(out.definitions.processes.at(0), "t");
}

TEST(ParserTasks, ScriptTaskKeepsLowerCasedFormatTextAndResultVariable) {
    const ParseOutput out = parse_ok(one_task(R"(
  <bpmn:scriptTask id="t" scriptFormat="Python" camunda:resultVariable="total">
    <bpmn:script><![CDATA[counter += 1]]></bpmn:script>
  </bpmn:scriptTask>)"));
    const Element& t = task_t(out);
    EXPECT_EQ(t.type, ElementType::kScriptTask);
    EXPECT_EQ(t.script_format, "python");
    EXPECT_EQ(t.script, "counter += 1");
    EXPECT_EQ(t.result_variable, "total");
}

TEST(ParserTasks, ZeebeScriptIsAFeelExpressionWithResultVariable) {
    const ParseOutput out = parse_ok(one_task(R"(
  <bpmn:scriptTask id="t"><bpmn:extensionElements>
    <zeebe:script expression="=a + b" resultVariable="sum"/>
  </bpmn:extensionElements></bpmn:scriptTask>)"));
    EXPECT_EQ(task_t(out).script, "a + b");
    EXPECT_EQ(task_t(out).script_format, "feel");
    EXPECT_EQ(task_t(out).result_variable, "sum");
}

TEST(ParserTasks, PythmataTaskConfigScriptIsAScriptInPython) {
    const ParseOutput out = parse_ok(one_task(R"(
  <bpmn:serviceTask id="t">
    <bpmn:extensionElements><pythmata:taskConfig><pythmata:script>
      result = x + y
    </pythmata:script></pythmata:taskConfig></bpmn:extensionElements>
  </bpmn:serviceTask>)"));
    const Element& t = task_t(out);
    EXPECT_EQ(t.script, "result = x + y");
    EXPECT_EQ(t.script_format, "python");
    EXPECT_TRUE(t.job_type.empty());  // a script, not an external job
}

TEST(ParserTasks, ServiceTaskJobTypeFollowsTheApiOrder) {
    const ParseOutput zeebe = parse_ok(one_task(R"(
  <bpmn:serviceTask id="t" camunda:topic="camundaTopic">
    <bpmn:extensionElements>
      <zeebe:taskDefinition type="payment-service" retries="5"/>
      <zeebe:taskHeaders><zeebe:header key="method" value="POST"/></zeebe:taskHeaders>
    </bpmn:extensionElements>
  </bpmn:serviceTask>)"));
    EXPECT_EQ(task_t(zeebe).job_type, "payment-service");
    EXPECT_EQ(task_t(zeebe).properties.at("method"), "POST");
    EXPECT_EQ(task_t(zeebe).job_retries, "5");
    EXPECT_FALSE(task_t(zeebe).properties.contains("retries"));

    const ParseOutput topic = parse_ok(
        one_task(R"(<bpmn:serviceTask id="t" camunda:type="external" camunda:topic="charge"/>)"));
    EXPECT_EQ(task_t(topic).job_type, "charge");

    const ParseOutput named = parse_ok(one_task(R"(
  <bpmn:serviceTask id="t"><bpmn:extensionElements>
    <pythmata:serviceTaskConfig taskName="send-invoice"/>
  </bpmn:extensionElements></bpmn:serviceTask>)"));
    EXPECT_EQ(task_t(named).job_type, "send-invoice");
    EXPECT_TRUE(task_t(named).service_name.empty());

    const ParseOutput bare = parse_ok(one_task(R"(<bpmn:serviceTask id="t"/>)"));
    EXPECT_EQ(task_t(bare).job_type, "t");
}

TEST(ParserTasks, BuiltInServiceNameAndPropertiesFromPythmataConfig) {
    const ParseOutput out = parse_ok(one_task(R"(
  <bpmn:serviceTask id="t"><bpmn:extensionElements>
    <pythmata:serviceTaskConfig taskName="http">
      <pythmata:properties>
        <pythmata:property name="url" value="http://127.0.0.1:9/x"/>
        <pythmata:property name="method" value="GET"/>
      </pythmata:properties>
    </pythmata:serviceTaskConfig>
  </bpmn:extensionElements></bpmn:serviceTask>)"));
    const Element& t = task_t(out);
    EXPECT_EQ(t.service_name, "http");
    EXPECT_TRUE(t.job_type.empty());
    EXPECT_EQ(t.properties.at("url"), "http://127.0.0.1:9/x");
    EXPECT_EQ(t.properties.at("method"), "GET");
}

TEST(ParserTasks, UserTaskAssignmentFromCamundaOrZeebe) {
    const ParseOutput camunda = parse_ok(one_task(R"(
  <bpmn:userTask id="t" name="Approve" camunda:assignee="${owner}" camunda:candidateGroups="sales,management" camunda:dueDate="${due}"/>)"));
    EXPECT_EQ(task_t(camunda).name, "Approve");
    EXPECT_EQ(task_t(camunda).assignee, "${owner}");
    EXPECT_EQ(task_t(camunda).candidate_groups, "sales,management");
    EXPECT_EQ(task_t(camunda).due_date, "${due}");

    const ParseOutput zeebe = parse_ok(one_task(R"(
  <bpmn:userTask id="t"><bpmn:extensionElements>
    <zeebe:assignmentDefinition assignee="=owner" candidateGroups="sales"/>
    <zeebe:taskSchedule dueDate="2026-01-01T00:00:00Z"/>
  </bpmn:extensionElements></bpmn:userTask>)"));
    EXPECT_EQ(task_t(zeebe).assignee, "${owner}");
    EXPECT_EQ(task_t(zeebe).candidate_groups, "sales");
    EXPECT_EQ(task_t(zeebe).due_date, "2026-01-01T00:00:00Z");
}

TEST(ParserTasks, SendAndReceiveTasksResolveTheirMessage) {
    const ParseOutput out = parse_ok(one_task(
        R"(<bpmn:receiveTask id="t" messageRef="Msg_1" pythmata:correlationKey="order_id"/>)",
        kNames));
    EXPECT_EQ(task_t(out).type, ElementType::kReceiveTask);
    EXPECT_EQ(task_t(out).message_ref_name, "order-received");
    EXPECT_EQ(task_t(out).correlation_key, "order_id");
    const ParseOutput send =
        parse_ok(one_task(R"(<bpmn:sendTask id="t" messageRef="Msg_1"/>)", kNames));
    EXPECT_EQ(task_t(send).message_ref_name, "order-received");
}

TEST(ParserTasks, InputOutputMappingsFromCamundaAndZeebe) {
    const ParseOutput camunda = parse_ok(one_task(R"(
  <bpmn:task id="t"><bpmn:extensionElements><camunda:inputOutput>
    <camunda:inputParameter name="amount">${order.amount}</camunda:inputParameter>
    <camunda:outputParameter name="approved">${result}</camunda:outputParameter>
  </camunda:inputOutput></bpmn:extensionElements></bpmn:task>)"));
    ASSERT_EQ(task_t(camunda).inputs.size(), 1u);
    EXPECT_EQ(task_t(camunda).inputs[0].target, "amount");
    EXPECT_EQ(task_t(camunda).inputs[0].source, "${order.amount}");
    ASSERT_EQ(task_t(camunda).outputs.size(), 1u);
    EXPECT_EQ(task_t(camunda).outputs[0].target, "approved");
    EXPECT_EQ(task_t(camunda).outputs[0].source, "${result}");

    const ParseOutput constants = parse_ok(one_task(R"(
  <bpmn:task id="t"><bpmn:extensionElements><camunda:inputOutput>
    <camunda:inputParameter name="code">AmountTooBig</camunda:inputParameter>
    <camunda:inputParameter name="quote">it's \ here</camunda:inputParameter>
    <camunda:inputParameter name="nothing"/>
  </camunda:inputOutput></bpmn:extensionElements></bpmn:task>)"));
    ASSERT_EQ(task_t(constants).inputs.size(), 3u);
    EXPECT_EQ(task_t(constants).inputs[0].source, "'AmountTooBig'");
    EXPECT_EQ(task_t(constants).inputs[1].source, R"('it\'s \\ here')");
    EXPECT_EQ(task_t(constants).inputs[2].source, "None");

    const auto scripted = parse_errors(one_task(R"(
  <bpmn:task id="t"><bpmn:extensionElements><camunda:inputOutput>
    <camunda:inputParameter name="x"><camunda:script scriptFormat="groovy">1</camunda:script></camunda:inputParameter>
  </camunda:inputOutput></bpmn:extensionElements></bpmn:task>)"));
    EXPECT_TRUE(mentions(scripted, "t", "unsupported element camunda:script"))
        << describe(scripted);

    const ParseOutput zeebe = parse_ok(one_task(R"(
  <bpmn:task id="t"><bpmn:extensionElements><zeebe:ioMapping>
    <zeebe:input source="=order.amount" target="amount"/>
    <zeebe:output source="=result" target="approved"/>
  </zeebe:ioMapping></bpmn:extensionElements></bpmn:task>)"));
    ASSERT_EQ(task_t(zeebe).inputs.size(), 1u);
    EXPECT_EQ(task_t(zeebe).inputs[0].source, "order.amount");
    EXPECT_EQ(task_t(zeebe).outputs[0].source, "result");
    EXPECT_EQ(task_t(zeebe).outputs[0].target, "approved");
}

TEST(ParserTasks, CallActivityFromCalledElementOrZeebeWithVariablePassing) {
    const auto missing = parse_errors(one_task(R"(<bpmn:callActivity id="t"/>)"));
    EXPECT_TRUE(mentions(missing, "t", "names no called element")) << describe(missing);

    const ParseOutput plain =
        parse_ok(one_task(R"(<bpmn:callActivity id="t" calledElement="child"/>)"));
    EXPECT_EQ(task_t(plain).called_element, "child");
    EXPECT_TRUE(task_t(plain).pass_all_variables_in);
    EXPECT_TRUE(task_t(plain).pass_all_variables_out);

    const ParseOutput mapped = parse_ok(one_task(R"(
  <bpmn:callActivity id="t" calledElement="child"><bpmn:extensionElements>
    <camunda:in source="a" target="b"/>
    <camunda:out variables="all"/>
  </bpmn:extensionElements></bpmn:callActivity>)"));
    EXPECT_FALSE(task_t(mapped).pass_all_variables_in);
    EXPECT_TRUE(task_t(mapped).pass_all_variables_out);
    ASSERT_EQ(task_t(mapped).inputs.size(), 1u);
    EXPECT_EQ(task_t(mapped).inputs[0].source, "a");
    EXPECT_EQ(task_t(mapped).inputs[0].target, "b");

    const ParseOutput all_in = parse_ok(one_task(R"(
  <bpmn:callActivity id="t" calledElement="child"><bpmn:extensionElements>
    <camunda:in variables="all"/>
  </bpmn:extensionElements></bpmn:callActivity>)"));
    EXPECT_TRUE(task_t(all_in).pass_all_variables_in);
    EXPECT_FALSE(task_t(all_in).pass_all_variables_out);

    const ParseOutput zeebe = parse_ok(one_task(R"(
  <bpmn:callActivity id="t"><bpmn:extensionElements>
    <zeebe:calledElement processId="child-process" propagateAllChildVariables="false"/>
  </bpmn:extensionElements></bpmn:callActivity>)"));
    EXPECT_EQ(task_t(zeebe).called_element, "child-process");
    EXPECT_TRUE(task_t(zeebe).pass_all_variables_in);
    EXPECT_FALSE(task_t(zeebe).pass_all_variables_out);
}

TEST(ParserTasks, MultiInstanceInCamundaZeebeAndSpiffStyles) {
    const ParseOutput camunda = parse_ok(one_task(R"(
  <bpmn:userTask id="t"><bpmn:multiInstanceLoopCharacteristics isSequential="true" camunda:collection="${reviewers}" camunda:elementVariable="reviewer">
    <bpmn:completionCondition>${nrOfCompletedInstances >= 2}</bpmn:completionCondition>
  </bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>)"));
    ASSERT_TRUE(task_t(camunda).multi_instance.has_value());
    const MultiInstance& c = *task_t(camunda).multi_instance;
    EXPECT_TRUE(c.sequential);
    EXPECT_EQ(c.collection, "${reviewers}");
    EXPECT_EQ(c.element_variable, "reviewer");
    EXPECT_EQ(c.completion_condition, "${nrOfCompletedInstances >= 2}");

    const ParseOutput zeebe = parse_ok(one_task(R"(
  <bpmn:task id="t"><bpmn:multiInstanceLoopCharacteristics><bpmn:extensionElements>
    <zeebe:loopCharacteristics inputCollection="= items" inputElement="item" outputCollection="results" outputElement="=item.result"/>
  </bpmn:extensionElements></bpmn:multiInstanceLoopCharacteristics></bpmn:task>)"));
    const MultiInstance& z = *task_t(zeebe).multi_instance;
    EXPECT_FALSE(z.sequential);
    EXPECT_EQ(z.collection, "items");
    EXPECT_EQ(z.element_variable, "item");
    EXPECT_EQ(z.output_collection, "results");
    EXPECT_EQ(z.output_element, "item.result");

    const ParseOutput spiff = parse_ok(one_task(R"(
  <bpmn:task id="t"><bpmn:multiInstanceLoopCharacteristics isSequential="true">
    <bpmn:loopDataInputRef>input_data</bpmn:loopDataInputRef>
    <bpmn:loopDataOutputRef>output_data</bpmn:loopDataOutputRef>
    <bpmn:inputDataItem id="input_item" name="input item"/>
    <bpmn:outputDataItem id="output_item" name="output item"/>
  </bpmn:multiInstanceLoopCharacteristics></bpmn:task>)"));
    const MultiInstance& s = *task_t(spiff).multi_instance;
    EXPECT_EQ(s.collection, "input_data");
    EXPECT_EQ(s.element_variable, "input_item");
    EXPECT_EQ(s.output_collection, "output_data");
    EXPECT_EQ(s.output_element, "output_item");

    const ParseOutput cardinality = parse_ok(one_task(R"(
  <bpmn:task id="t"><bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>${5-2}</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics></bpmn:task>)"));
    EXPECT_EQ(task_t(cardinality).multi_instance->loop_cardinality, "${5-2}");
}

TEST(ParserTasks, StandardLoopCharacteristics) {
    const ParseOutput out = parse_ok(one_task(R"(
  <bpmn:task id="t"><bpmn:standardLoopCharacteristics testBefore="true" loopMaximum="5">
    <bpmn:loopCondition>not done</bpmn:loopCondition>
  </bpmn:standardLoopCharacteristics></bpmn:task>)"));
    ASSERT_TRUE(task_t(out).standard_loop.has_value());
    EXPECT_EQ(task_t(out).standard_loop->condition, "not done");
    EXPECT_TRUE(task_t(out).standard_loop->test_before);
    EXPECT_EQ(task_t(out).standard_loop->maximum, 5);
}

TEST(ParserTasks, MultiInstanceSubProcessKeepsItsLoopAndItsChildren) {
    const std::string xml = R"(<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">
  <process id="p" isExecutable="true">
    <startEvent id="s"/><sequenceFlow id="f0" sourceRef="s" targetRef="sub"/>
    <subProcess id="sub">
      <multiInstanceLoopCharacteristics isSequential="true">
        <loopCardinality>3</loopCardinality>
      </multiInstanceLoopCharacteristics>
      <startEvent id="ss"/><sequenceFlow id="g0" sourceRef="ss" targetRef="se"/><endEvent id="se"/>
    </subProcess>
    <sequenceFlow id="f1" sourceRef="sub" targetRef="e"/><endEvent id="e"/>
  </process>
</definitions>)";
    const ParseOutput out = parse_ok(xml);
    const Process& p = out.definitions.processes[0];
    const Element& sub = p.elements[p.element_index.at("sub")];
    ASSERT_TRUE(sub.multi_instance.has_value());
    EXPECT_TRUE(sub.multi_instance->sequential);
    EXPECT_EQ(sub.multi_instance->loop_cardinality, "3");
    EXPECT_TRUE(p.element_index.count("ss"));
}

// --- validation ---------------------------------------------------------------------------

TEST(ParserValidation, InvalidUtf8IsRefusedNamingTheOffset) {
    const std::string bad = doc(kStraight, "", "id=\"p\" name=\"Bad \xff\xfe name\"");
    const auto errors = parse_errors(bad);
    EXPECT_TRUE(mentions(errors, "", "not valid UTF-8")) << describe(errors);
    // Overlong encodings and surrogates are invalid too; proper multi-byte text is fine.
    EXPECT_FALSE(parse(doc(kStraight, "", "id=\"p\" name=\"\xc0\xaf\"")));
    EXPECT_FALSE(parse(doc(kStraight, "", "id=\"p\" name=\"\xed\xa0\x80\"")));
    EXPECT_TRUE(parse(
        doc(kStraight, "", "id=\"p\" name=\"Bestellung \xc3\xbc \xe2\x82\xac \xf0\x9f\x98\x80\"")));
}

TEST(ParserValidation, DocumentWithOnlyNonExecutableProcessesIsNotDeployable) {
    const auto errors = parse_errors(doc(kStraight, "", "id=\"p\" isExecutable=\"false\""));
    EXPECT_TRUE(mentions(errors, "", "no executable process")) << describe(errors);
}

TEST(ParserValidation, ProcessesWithoutIsExecutableCountAsExecutableWhenNoneStatesIt) {
    const ParseOutput out = parse_ok(doc(kStraight, "", "id=\"p\""));
    EXPECT_TRUE(out.definitions.processes[0].executable);
}

TEST(ParserValidation, OnceAnyProcessStatesIsExecutableAnAbsentAttributeMeansFalse) {
    const std::string xml = R"(<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">
  <process id="a" isExecutable="true"><startEvent id="s1"/><endEvent id="e1"/><sequenceFlow id="f1" sourceRef="s1" targetRef="e1"/></process>
  <process id="b"><startEvent id="s2"/><endEvent id="e2"/><sequenceFlow id="f2" sourceRef="s2" targetRef="e2"/></process>
</definitions>)";
    const ParseOutput out = parse_ok(xml);
    ASSERT_EQ(out.definitions.processes.size(), 2u);
    EXPECT_TRUE(out.definitions.processes[0].executable);
    EXPECT_FALSE(out.definitions.processes[1].executable);
}

TEST(ParserValidation, ProblemsInANonExecutableProcessAreOnlyWarnings) {
    const std::string xml = R"(<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">
  <process id="a" isExecutable="true"><startEvent id="s1"/><endEvent id="e1"/><sequenceFlow id="f1" sourceRef="s1" targetRef="e1"/></process>
  <process id="b" isExecutable="false"><exclusiveGateway id="dead"/><complexGateway id="cg"/></process>
</definitions>)";
    const ParseOutput out = parse_ok(xml);
    EXPECT_TRUE(mentions(out.warnings, "dead", "no outgoing")) << describe(out.warnings);
    EXPECT_TRUE(mentions(out.warnings, "cg", "non-executable process b")) << describe(out.warnings);
}

TEST(ParserValidation, DuplicateIdsAreReported) {
    const auto errors = parse_errors(doc(std::string{kStraight} + R"(<bpmn:task id="work"/>)"));
    EXPECT_TRUE(mentions(errors, "work", "duplicate id")) << describe(errors);
}

TEST(ParserValidation, FlowsToMissingElementsAreReported) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/><bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="nowhere"/>
  <bpmn:sequenceFlow id="f2" sourceRef="ghost" targetRef="end"/>)"));
    EXPECT_TRUE(mentions(errors, "f1", "targetRef \"nowhere\"")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "f2", "sourceRef \"ghost\"")) << describe(errors);
}

TEST(ParserValidation, FlowsCrossingScopesAreReported) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/>
  <bpmn:subProcess id="sub"><bpmn:startEvent id="subStart"/><bpmn:task id="inner"/>
    <bpmn:sequenceFlow id="s1" sourceRef="subStart" targetRef="inner"/></bpmn:subProcess>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
  <bpmn:sequenceFlow id="bad" sourceRef="start" targetRef="inner"/>
  <bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="end"/>)"));
    EXPECT_TRUE(mentions(errors, "bad", "crosses scopes")) << describe(errors);
}

TEST(ParserValidation, BoundaryEventsMustBeAttachedToAnActivity) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/><bpmn:exclusiveGateway id="gw"/><bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>
  <bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="end"/>
  <bpmn:boundaryEvent id="b1" attachedToRef="gw"><bpmn:errorEventDefinition/></bpmn:boundaryEvent>
  <bpmn:boundaryEvent id="b2" attachedToRef="missing"><bpmn:errorEventDefinition/></bpmn:boundaryEvent>
  <bpmn:boundaryEvent id="b3"><bpmn:errorEventDefinition/></bpmn:boundaryEvent>)"));
    EXPECT_TRUE(mentions(errors, "b1", "not an activity")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "b2", "attached to nothing")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "b3", "attached to nothing")) << describe(errors);
}

TEST(ParserValidation, GatewayWithoutOutgoingFlowIsReported) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/><bpmn:parallelGateway id="gw"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>)"));
    EXPECT_TRUE(mentions(errors, "gw", "no outgoing sequence flow")) << describe(errors);
}

TEST(ParserValidation, DefaultFlowMustBeOneOfTheGatewaysOutgoingFlows) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/><bpmn:exclusiveGateway id="gw" default="f1"/>
  <bpmn:inclusiveGateway id="ig" default="nope"/><bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>
  <bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="ig"/>
  <bpmn:sequenceFlow id="f3" sourceRef="ig" targetRef="end"/>)"));
    EXPECT_TRUE(mentions(errors, "gw", "default flow \"f1\"")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "ig", "default flow \"nope\"")) << describe(errors);
}

TEST(ParserValidation, StartEventWithIncomingAndEndEventWithOutgoingFlowsAreReported) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/><bpmn:endEvent id="end"/><bpmn:task id="t"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end"/>
  <bpmn:sequenceFlow id="f2" sourceRef="end" targetRef="t"/>
  <bpmn:sequenceFlow id="f3" sourceRef="t" targetRef="start"/>)"));
    EXPECT_TRUE(mentions(errors, "start", "start event start has incoming")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "end", "end event end has outgoing")) << describe(errors);
}

TEST(ParserValidation, UnsupportedElementsAreNamedWithTheirIds) {
    const auto errors = parse_errors(doc(std::string{kStraight} + R"(
  <bpmn:complexGateway id="cg"/>
  <bpmn:adHocSubProcess id="adhoc"/>
  <bpmn:intermediateCatchEvent id="multi">
    <bpmn:messageEventDefinition messageRef="Msg_1"/><bpmn:timerEventDefinition><bpmn:timeDuration>PT1M</bpmn:timeDuration></bpmn:timerEventDefinition>
  </bpmn:intermediateCatchEvent>)",
                                         kNames));
    EXPECT_TRUE(mentions(errors, "cg", "unsupported element bpmn:complexGateway at id cg"))
        << describe(errors);
    EXPECT_TRUE(mentions(errors, "adhoc", "unsupported element bpmn:adHocSubProcess at id adhoc"))
        << describe(errors);
    EXPECT_TRUE(mentions(errors, "multi", "multiple event definitions")) << describe(errors);
}

TEST(ParserValidation, RefsToUndefinedMessagesSignalsAndErrorsAreReported) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"><bpmn:messageEventDefinition messageRef="NoSuchMessage"/></bpmn:startEvent>
  <bpmn:intermediateThrowEvent id="sig"><bpmn:signalEventDefinition signalRef="NoSuchSignal"/></bpmn:intermediateThrowEvent>
  <bpmn:intermediateCatchEvent id="nosig"><bpmn:signalEventDefinition/></bpmn:intermediateCatchEvent>
  <bpmn:endEvent id="err"><bpmn:errorEventDefinition errorRef="NoSuchError"/></bpmn:endEvent>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sig"/>
  <bpmn:sequenceFlow id="f2" sourceRef="sig" targetRef="nosig"/>
  <bpmn:sequenceFlow id="f3" sourceRef="nosig" targetRef="err"/>)"));
    EXPECT_TRUE(mentions(errors, "start", "refers to no bpmn:message")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "sig", "refers to no bpmn:signal")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "nosig", "has no signalRef")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "err", "refers to no bpmn:error")) << describe(errors);
}

TEST(ParserValidation, TimerEventWithoutValueIsReported) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/>
  <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition/></bpmn:intermediateCatchEvent>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
  <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="end"/>)"));
    EXPECT_TRUE(mentions(errors, "wait", "no timer value")) << describe(errors);
}

TEST(ParserValidation, MalformedLiteralTimerValuesAreReportedButExpressionsAreLeftAlone) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/>
  <bpmn:intermediateCatchEvent id="typo"><bpmn:timerEventDefinition><bpmn:timeDuration>PT5X</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
  <bpmn:intermediateCatchEvent id="cron"><bpmn:timerEventDefinition><bpmn:timeCycle>0 0 30 2 *</bpmn:timeCycle></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
  <bpmn:intermediateCatchEvent id="expr"><bpmn:timerEventDefinition><bpmn:timeDuration>${delay}</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
  <bpmn:intermediateCatchEvent id="py"><bpmn:timerEventDefinition><bpmn:timeDuration>timedelta(seconds=1)</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
  <bpmn:intermediateCatchEvent id="quoted"><bpmn:timerEventDefinition><bpmn:timeDuration>"PT0.5S"</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="typo"/>
  <bpmn:sequenceFlow id="f2" sourceRef="typo" targetRef="cron"/>
  <bpmn:sequenceFlow id="f3" sourceRef="cron" targetRef="expr"/>
  <bpmn:sequenceFlow id="f4" sourceRef="expr" targetRef="py"/>
  <bpmn:sequenceFlow id="f5" sourceRef="py" targetRef="quoted"/>
  <bpmn:sequenceFlow id="f6" sourceRef="quoted" targetRef="end"/>)"));
    EXPECT_TRUE(mentions(errors, "typo", "invalid ISO 8601 duration")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "cron", "never fires")) << describe(errors);
    for (const char* fine : {"expr", "py", "quoted"}) {
        EXPECT_FALSE(mentions(errors, fine, "")) << fine << "\n" << describe(errors);
    }
}

TEST(ParserValidation, CompensationBoundaryNeedsAHandlerAndNoFlows) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/><bpmn:task id="booked"/><bpmn:endEvent id="end"/>
  <bpmn:boundaryEvent id="lonely" attachedToRef="booked"><bpmn:compensateEventDefinition/></bpmn:boundaryEvent>
  <bpmn:boundaryEvent id="flowing" attachedToRef="booked"><bpmn:compensateEventDefinition/></bpmn:boundaryEvent>
  <bpmn:task id="undo" isForCompensation="true"/>
  <bpmn:association id="a1" sourceRef="flowing" targetRef="undo"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="booked"/>
  <bpmn:sequenceFlow id="f2" sourceRef="booked" targetRef="end"/>
  <bpmn:sequenceFlow id="f3" sourceRef="flowing" targetRef="undo"/>)"));
    EXPECT_TRUE(mentions(errors, "lonely", "has no handler")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "flowing", "cannot have outgoing")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "undo", "cannot have sequence flows")) << describe(errors);
}

TEST(ParserValidation, MoreThanOneNoneStartEventInAScopeIsReported) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="s1"/><bpmn:startEvent id="s2"/>
  <bpmn:startEvent id="byMessage"><bpmn:messageEventDefinition messageRef="Msg_1"/></bpmn:startEvent>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="s1" targetRef="end"/>
  <bpmn:sequenceFlow id="f2" sourceRef="s2" targetRef="end"/>
  <bpmn:sequenceFlow id="f3" sourceRef="byMessage" targetRef="end"/>)",
                                         kNames));
    EXPECT_TRUE(mentions(errors, "s2", "more than one none start event (s1, s2)"))
        << describe(errors);
    EXPECT_EQ(errors.size(), 1u) << describe(errors);
}

TEST(ParserValidation, LinkThrowWithoutMatchingCatchIsReported) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/>
  <bpmn:intermediateThrowEvent id="jump"><bpmn:linkEventDefinition name="A"/></bpmn:intermediateThrowEvent>
  <bpmn:intermediateCatchEvent id="land"><bpmn:linkEventDefinition name="B"/></bpmn:intermediateCatchEvent>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="jump"/>
  <bpmn:sequenceFlow id="f2" sourceRef="land" targetRef="end"/>)"));
    EXPECT_TRUE(mentions(errors, "jump", "no matching link catch event named \"A\""))
        << describe(errors);
}

TEST(ParserValidation, CancelEndEventOutsideATransactionIsReported) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/><bpmn:endEvent id="end"><bpmn:cancelEventDefinition/></bpmn:endEvent>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end"/>)"));
    EXPECT_TRUE(mentions(errors, "end", "inside a bpmn:transaction")) << describe(errors);
}

TEST(ParserValidation, EventDefinitionsInTheWrongPlaceAreReported) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"><bpmn:errorEventDefinition/></bpmn:startEvent>
  <bpmn:intermediateCatchEvent id="none"/>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="none"/>
  <bpmn:sequenceFlow id="f2" sourceRef="none" targetRef="end"/>
  <bpmn:subProcess id="evt" triggeredByEvent="true"><bpmn:startEvent id="plain"/></bpmn:subProcess>)"));
    EXPECT_TRUE(mentions(errors, "start", "error event definition is not allowed"))
        << describe(errors);
    EXPECT_TRUE(mentions(errors, "none", "no event definition")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "plain", "has no event definition")) << describe(errors);
}

TEST(ParserValidation, EventBasedGatewayMustLeadToCatchEvents) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/><bpmn:eventBasedGateway id="gw"/><bpmn:userTask id="u"/>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>
  <bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="u"/>
  <bpmn:sequenceFlow id="f3" sourceRef="u" targetRef="end"/>)"));
    EXPECT_TRUE(mentions(errors, "gw", "leads to u")) << describe(errors);
}

TEST(ParserValidation, ReportsEveryErrorNotOnlyTheFirst) {
    const auto errors = parse_errors(doc(R"(
  <bpmn:startEvent id="start"/><bpmn:parallelGateway id="gw"/><bpmn:complexGateway id="cg"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>
  <bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="missing"/>)"));
    EXPECT_TRUE(mentions(errors, "cg", "unsupported")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "f2", "targetRef")) << describe(errors);
    EXPECT_TRUE(mentions(errors, "gw", "no outgoing")) << describe(errors);
    EXPECT_GE(errors.size(), 3u);
}

TEST(ParserValidation, UnreachableElementsAreWarningsNotErrors) {
    const ParseOutput out = parse_ok(doc(std::string{kStraight} + R"(
  <bpmn:task id="island"/><bpmn:endEvent id="islandEnd"/>
  <bpmn:sequenceFlow id="i1" sourceRef="island" targetRef="islandEnd"/>)"));
    EXPECT_TRUE(mentions(out.warnings, "island", "unreachable")) << describe(out.warnings);
    EXPECT_TRUE(mentions(out.warnings, "islandEnd", "unreachable")) << describe(out.warnings);
    EXPECT_FALSE(mentions(out.warnings, "work", "unreachable")) << describe(out.warnings);
}

TEST(ParserValidation, LinkCatchReachedThroughItsThrowIsNotUnreachable) {
    const ParseOutput out = parse_ok(doc(R"(
  <bpmn:startEvent id="start"/>
  <bpmn:intermediateThrowEvent id="jump"><bpmn:linkEventDefinition name="A"/></bpmn:intermediateThrowEvent>
  <bpmn:intermediateCatchEvent id="land"><bpmn:linkEventDefinition name="A"/></bpmn:intermediateCatchEvent>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="jump"/>
  <bpmn:sequenceFlow id="f2" sourceRef="land" targetRef="end"/>)"));
    EXPECT_TRUE(out.warnings.empty()) << describe(out.warnings);
}

}  // namespace
}  // namespace pythmata::bpmn
