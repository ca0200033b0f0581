#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pythmata/bpmn/parser.hpp"

namespace pythmata::bpmn {
namespace {

namespace fs = std::filesystem;

// A model touching most of the parser: subprocess, boundary events, gateways, extensions.
constexpr const char* kRich = R"(<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d">
  <bpmn:message id="m" name="go"/>
  <bpmn:error id="err" errorCode="E1"/>
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:exclusiveGateway id="g" default="f3"/>
    <bpmn:subProcess id="sub">
      <bpmn:startEvent id="ss"/>
      <bpmn:serviceTask id="svc"><bpmn:extensionElements>
        <zeebe:taskDefinition type="work"/></bpmn:extensionElements></bpmn:serviceTask>
      <bpmn:endEvent id="se"><bpmn:errorEventDefinition errorRef="err"/></bpmn:endEvent>
      <bpmn:sequenceFlow id="sf1" sourceRef="ss" targetRef="svc"/>
      <bpmn:sequenceFlow id="sf2" sourceRef="svc" targetRef="se"/>
    </bpmn:subProcess>
    <bpmn:boundaryEvent id="b" attachedToRef="sub"><bpmn:errorEventDefinition errorRef="err"/></bpmn:boundaryEvent>
    <bpmn:userTask id="u" camunda:assignee="kermit"><bpmn:multiInstanceLoopCharacteristics>
      <bpmn:loopCardinality>3</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>
    <bpmn:intermediateCatchEvent id="c"><bpmn:messageEventDefinition messageRef="m"/></bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="e"/>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="g"/>
    <bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="sub"><bpmn:conditionExpression>${x &gt; 1}</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="u"/>
    <bpmn:sequenceFlow id="f4" sourceRef="sub" targetRef="e"/>
    <bpmn:sequenceFlow id="f5" sourceRef="u" targetRef="c"/>
    <bpmn:sequenceFlow id="f6" sourceRef="c" targetRef="e"/>
    <bpmn:sequenceFlow id="f7" sourceRef="b" targetRef="e"/>
  </bpmn:process>
</bpmn:definitions>)";

// Whatever the input, a successful parse yields a model whose indices all point where they
// should: the engine relies on this and does no bounds checks on the hot path.
void expect_consistent(const Definitions& defs) {
    for (const Process& p : defs.processes) {
        const auto n = p.elements.size();
        for (std::size_t i = 0; i < n; ++i) {
            const Element& e = p.elements[i];
            ASSERT_EQ(p.element_index.at(e.id), i);
            ASSERT_TRUE(e.parent == kNoElement || e.parent < n);
            ASSERT_TRUE(e.attached_to == kNoElement || e.attached_to < n);
            ASSERT_TRUE(e.compensation_handler == kNoElement || e.compensation_handler < n);
            ASSERT_TRUE(e.default_flow == kNoFlow || std::find(e.outgoing.begin(), e.outgoing.end(),
                                                               e.default_flow) != e.outgoing.end());
            for (const FlowIndex f : e.outgoing) {
                ASSERT_LT(f, p.flows.size());
                ASSERT_EQ(p.flows[f].source, i);
            }
            for (const FlowIndex f : e.incoming) {
                ASSERT_LT(f, p.flows.size());
                ASSERT_EQ(p.flows[f].target, i);
            }
            for (const ElementIndex c : e.children) {
                ASSERT_LT(c, n);
                ASSERT_EQ(p.elements[c].parent, i);
            }
            for (const ElementIndex b : e.boundary_events) {
                ASSERT_LT(b, n);
                ASSERT_EQ(p.elements[b].attached_to, i);
            }
        }
        for (const SequenceFlow& f : p.flows) {
            ASSERT_LT(f.source, n);
            ASSERT_LT(f.target, n);
        }
    }
}

// Truncations at many points and random byte edits (deterministic seed): the parser must
// always return, either with errors or with a consistent model.
void mutate_and_parse(const std::string& original) {
    std::mt19937 rng{12345};
    constexpr std::string_view kAlphabet = "<>/\"'&=:;x \n!?[]-";
    const std::size_t step = std::max<std::size_t>(1, original.size() / 40);
    for (std::size_t cut = 0; cut < original.size(); cut += step) {
        const auto r = parse(std::string_view{original}.substr(0, cut));
        if (r.ok()) {
            expect_consistent(r->definitions);
        }
    }
    for (int round = 0; round < 150; ++round) {
        std::string text = original;
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < edits && !text.empty(); ++k) {
            const std::size_t at = rng() % text.size();
            switch (rng() % 3) {
                case 0:
                    text[at] = kAlphabet[rng() % kAlphabet.size()];
                    break;
                case 1:
                    text.erase(at, 1 + rng() % 16);
                    break;
                default:
                    text.insert(at, 1, kAlphabet[rng() % kAlphabet.size()]);
                    break;
            }
        }
        const auto r = parse(text);
        if (r.ok()) {
            expect_consistent(r->definitions);
        } else {
            ASSERT_FALSE(r.error().empty());
        }
    }
}

TEST(ParserRobustness, MutatedAndTruncatedDocumentsFailCleanlyOrYieldConsistentModels) {
    const auto r = parse(kRich);
    ASSERT_TRUE(r.ok());
    expect_consistent(r->definitions);
    mutate_and_parse(kRich);
}

TEST(ParserRobustness, MutatedCorpusDocumentsFailCleanlyOrYieldConsistentModels) {
    const char* env = std::getenv("PYTHMATA_SHARED_DIR");
    const fs::path dir =
        fs::path{env != nullptr ? env : PYTHMATA_SHARED_DIR} / "bpmn-corpus" / "public";
    if (!fs::is_directory(dir)) {
        GTEST_SKIP() << "external BPMN corpus not found at " << dir << "; test skipped";
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator{dir}) {
        if (entry.path().extension() == ".bpmn") {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    // Every fifth file keeps the test fast; the selection is stable.
    for (std::size_t i = 0; i < files.size(); i += 5) {
        SCOPED_TRACE(files[i].filename().string());
        std::ifstream in{files[i], std::ios::binary};
        std::ostringstream text;
        text << in.rdbuf();
        mutate_and_parse(text.str());
    }
}

}  // namespace
}  // namespace pythmata::bpmn
