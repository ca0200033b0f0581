#include "pythmata/app/definition_catalog.hpp"

#include <gtest/gtest.h>

#include "pythmata_fakes/fake_definition_store.hpp"
#include "pythmata_fakes/fake_remote_cache.hpp"
#include "pythmata_fakes/fake_telemetry.hpp"

namespace pythmata::app {
namespace {

std::string two_step_process(const std::string& id, const std::string& name = "Order") {
    return R"(<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d1" targetNamespace="t">
  <process id=")" +
           id + R"(" name=")" + name + R"(" isExecutable="true">
    <startEvent id="start"/>
    <userTask id="approve" name="Approve"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="approve"/>
    <sequenceFlow id="f2" sourceRef="approve" targetRef="end"/>
  </process>
</definitions>)";
}

class DefinitionCatalogTest : public ::testing::Test {
  protected:
    fakes::FakeDefinitionStore store;
    fakes::FakeRemoteCache::Hub hub;
    fakes::FakeRemoteCache remote{hub};
    fakes::FakeTelemetry telemetry;
    fakes::ManualClock clock;
    CacheSettings cache;
    EngineSettings engine;

    DefinitionCatalog make(RemoteCache* r) { return {store, r, telemetry, clock, cache, engine}; }
};

TEST_F(DefinitionCatalogTest, DeployCreatesVersionOneOfTheProcessKey) {
    auto catalog = make(nullptr);
    auto r = catalog.deploy({two_step_process("OrderProcess"), std::nullopt, std::nullopt});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(r->created);
    EXPECT_EQ(r->primary.key, "OrderProcess");
    EXPECT_EQ(r->primary.version, 1);
    EXPECT_EQ(r->primary.name, "Order");
    EXPECT_EQ(r->primary.hash.size(), 64u);
}

TEST_F(DefinitionCatalogTest, IdenticalRedeployReturnsTheLatestVersion) {
    auto catalog = make(nullptr);
    ASSERT_TRUE(catalog.deploy({two_step_process("P"), {}, {}}));
    auto again = catalog.deploy({two_step_process("P"), {}, {}});
    ASSERT_TRUE(again);
    EXPECT_FALSE(again->created);
    EXPECT_EQ(again->primary.version, 1);
    auto changed = catalog.deploy({two_step_process("P", "Renamed"), {}, {}});
    ASSERT_TRUE(changed);
    EXPECT_TRUE(changed->created);
    EXPECT_EQ(changed->primary.version, 2);
}

TEST_F(DefinitionCatalogTest, InvalidDocumentIs422WithElementErrors) {
    auto catalog = make(nullptr);
    const std::string dangling =
        R"(<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">
  <process id="P" isExecutable="true"><startEvent id="s"/>
  <sequenceFlow id="f" sourceRef="s" targetRef="nowhere"/></process></definitions>)";
    auto r = catalog.deploy({dangling, {}, {}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
    EXPECT_EQ(r.error().code, "INVALID_BPMN");
    ASSERT_TRUE(r.error().context["errors"].is_array());
    ASSERT_FALSE(r.error().context["errors"].empty());
    EXPECT_EQ(store.calls, 0) << "nothing reaches the store";
}

TEST_F(DefinitionCatalogTest, NotXmlIs422) {
    auto catalog = make(nullptr);
    auto r = catalog.deploy({"this is not xml", {}, {}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, "INVALID_BPMN");
}

TEST_F(DefinitionCatalogTest, DocumentOverTheSizeLimitIs413) {
    engine.max_bpmn_size = 100;
    auto catalog = make(nullptr);
    auto r = catalog.deploy({two_step_process("P"), {}, {}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::kTooLarge);
    EXPECT_EQ(r.error().code, "BPMN_TOO_LARGE");
}

TEST_F(DefinitionCatalogTest, PutWithAnotherKeyIsAConflict) {
    auto catalog = make(nullptr);
    auto r = catalog.deploy({two_step_process("P"), {}, std::string("Other")});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, "PROCESS_KEY_MISMATCH");
}

TEST_F(DefinitionCatalogTest, LatestIsServedFromL1AfterTheFirstLookup) {
    auto catalog = make(nullptr);
    ASSERT_TRUE(catalog.deploy({two_step_process("P"), {}, {}}));
    catalog.forget("P");
    const int before = store.calls;
    ASSERT_TRUE(catalog.latest("P"));
    ASSERT_TRUE(catalog.latest("P"));
    ASSERT_TRUE(catalog.latest("P"));
    EXPECT_EQ(store.calls - before, 1);
    EXPECT_EQ(telemetry.l1_hits, 2);
}

TEST_F(DefinitionCatalogTest, L1EntriesExpireAfterTheTtl) {
    auto catalog = make(nullptr);
    ASSERT_TRUE(catalog.deploy({two_step_process("P"), {}, {}}));
    const int before = store.calls;
    ASSERT_TRUE(catalog.latest("P"));
    clock.advance(cache.definition_ttl + Millis{1});
    ASSERT_TRUE(catalog.latest("P"));
    EXPECT_EQ(store.calls - before, 1);
}

TEST_F(DefinitionCatalogTest, AReplicaFindsTheDefinitionInL2WithoutTheStore) {
    auto first = make(&remote);
    ASSERT_TRUE(first.deploy({two_step_process("P"), {}, {}}));
    first.forget("P");
    ASSERT_TRUE(first.latest("P"));  // store -> L2
    fakes::FakeRemoteCache other_remote{hub};
    auto second = make(&other_remote);
    const int before = store.calls;
    auto r = second.latest("P");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->version, 1);
    EXPECT_EQ(store.calls, before);
    EXPECT_EQ(telemetry.l2_hits, 1);
}

TEST_F(DefinitionCatalogTest, RedeployInvalidatesOtherReplicasCaches) {
    auto first = make(&remote);
    fakes::FakeRemoteCache other_remote{hub};
    auto second = make(&other_remote);
    ASSERT_TRUE(first.deploy({two_step_process("P"), {}, {}}));
    ASSERT_EQ(second.latest("P")->version, 1);  // now cached in second's L1
    ASSERT_TRUE(first.deploy({two_step_process("P", "v2"), {}, {}}));
    EXPECT_EQ(second.latest("P")->version, 2);
}

TEST_F(DefinitionCatalogTest, CacheDownFallsBackToTheStore) {
    remote.down = true;
    auto catalog = make(&remote);
    ASSERT_TRUE(catalog.deploy({two_step_process("P"), {}, {}}));
    catalog.forget("P");
    auto r = catalog.latest("P");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->key, "P");
}

TEST_F(DefinitionCatalogTest, StoreDownIsUnavailable) {
    auto catalog = make(nullptr);
    store.unavailable = true;
    auto r = catalog.latest("P");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::kUnavailable);
    EXPECT_EQ(r.error().code, "DB_UNAVAILABLE");
}

TEST_F(DefinitionCatalogTest, UnknownKeyAndVersionAreNotFound) {
    auto catalog = make(nullptr);
    EXPECT_EQ(catalog.latest("nope").error().code, "PROCESS_NOT_FOUND");
    EXPECT_EQ(catalog.versions("nope", {}).error().code, "PROCESS_NOT_FOUND");
    ASSERT_TRUE(catalog.deploy({two_step_process("P"), {}, {}}));
    EXPECT_EQ(catalog.version("P", 7).error().code, "PROCESS_VERSION_NOT_FOUND");
    EXPECT_EQ(catalog.version("P", 1)->version, 1);
}

TEST_F(DefinitionCatalogTest, DeleteRefusesWhileInstancesRunUnlessCascade) {
    auto catalog = make(nullptr);
    ASSERT_TRUE(catalog.deploy({two_step_process("P"), {}, {}}));
    store.unfinished_instances = 3;
    auto refused = catalog.remove("P", false);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, "PROCESS_HAS_INSTANCES");
    EXPECT_TRUE(catalog.remove("P", true));
    EXPECT_EQ(catalog.latest("P").error().code, "PROCESS_NOT_FOUND");
    EXPECT_EQ(catalog.remove("P", true).error().code, "PROCESS_NOT_FOUND");
}

TEST_F(DefinitionCatalogTest, ConditionThatDoesNotCompileIs422NamingTheFlow) {
    auto catalog = make(nullptr);
    const std::string bad = R"(<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <process id="P" isExecutable="true"><startEvent id="s"/>
  <exclusiveGateway id="g"/><endEvent id="e1"/><endEvent id="e2"/>
  <sequenceFlow id="f0" sourceRef="s" targetRef="g"/>
  <sequenceFlow id="bad_flow" sourceRef="g" targetRef="e1">
    <conditionExpression xsi:type="tFormalExpression">${amount &gt;&gt; (}</conditionExpression>
  </sequenceFlow>
  <sequenceFlow id="f2" sourceRef="g" targetRef="e2"/></process></definitions>)";
    auto r = catalog.deploy({bad, {}, {}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, "INVALID_BPMN");
    EXPECT_NE(r.error().context.dump().find("bad_flow"), std::string::npos)
        << r.error().context.dump();
    EXPECT_EQ(store.calls, 0);
}

}  // namespace
}  // namespace pythmata::app
