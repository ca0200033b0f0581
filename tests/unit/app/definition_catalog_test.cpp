#include "pythmata/app/definition_catalog.hpp"

#include <algorithm>
#include <functional>
#include <utility>

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

// --- the cached list ---------------------------------------------------------------------------

std::vector<std::string> keys_of(const PageResult<DefinitionRecord>& page) {
    std::vector<std::string> keys;
    for (const auto& r : page.items) {
        keys.push_back(r.key);
    }
    std::sort(keys.begin(), keys.end());
    return keys;
}

TEST_F(DefinitionCatalogTest, ListIsServedFromMemoryAfterTheFirstCall) {
    auto catalog = make(nullptr);
    ASSERT_TRUE(catalog.deploy({two_step_process("A"), {}, {}}));
    ASSERT_TRUE(catalog.deploy({two_step_process("B"), {}, {}}));
    const PageRequest page{1, 20};
    EXPECT_EQ(catalog.cached_list({}, page), nullptr) << "nothing cached before the first list";
    const int before = store.calls;
    auto first = catalog.list({}, page);
    ASSERT_TRUE(first);
    auto second = catalog.list({}, page);
    ASSERT_TRUE(second);
    EXPECT_EQ(store.calls - before, 1);
    auto cached = catalog.cached_list({}, page);
    ASSERT_NE(cached, nullptr);
    EXPECT_EQ(cached->total, 2);
    EXPECT_EQ(keys_of(*cached), (std::vector<std::string>{"A", "B"}));
    // Another page, page size or filter is another query.
    EXPECT_EQ(catalog.cached_list({}, PageRequest{2, 20}), nullptr);
    EXPECT_EQ(catalog.cached_list({}, PageRequest{1, 1}), nullptr);
    EXPECT_EQ(catalog.cached_list({std::string("A"), std::nullopt}, page), nullptr);
    auto only_a = catalog.list({std::string("A"), std::nullopt}, page);
    ASSERT_TRUE(only_a);
    EXPECT_EQ(keys_of(*only_a), (std::vector<std::string>{"A"}));
    // (key "A", no name) and (no key, name "A") are different queries.
    EXPECT_EQ(catalog.cached_list({std::nullopt, std::string("A")}, page), nullptr);
}

TEST_F(DefinitionCatalogTest, ADeployIsInThisReplicasListAtOnce) {
    auto catalog = make(nullptr);
    ASSERT_TRUE(catalog.deploy({two_step_process("A"), {}, {}}));
    ASSERT_EQ(catalog.list({}, {})->total, 1);
    ASSERT_TRUE(catalog.deploy({two_step_process("B"), {}, {}}));
    EXPECT_EQ(catalog.cached_list({}, {}), nullptr);
    auto after = catalog.list({}, {});
    ASSERT_TRUE(after);
    EXPECT_EQ(keys_of(*after), (std::vector<std::string>{"A", "B"}));
    // A new version replaces the latest in the list.
    ASSERT_TRUE(catalog.deploy({two_step_process("A", "A v2"), {}, {}}));
    auto v2 = catalog.list({std::string("A"), std::nullopt}, {});
    ASSERT_TRUE(v2);
    ASSERT_EQ(v2->items.size(), 1u);
    EXPECT_EQ(v2->items[0].version, 2);
}

TEST_F(DefinitionCatalogTest, AnIdenticalRedeployKeepsTheCachedList) {
    auto catalog = make(nullptr);
    ASSERT_TRUE(catalog.deploy({two_step_process("A"), {}, {}}));
    ASSERT_TRUE(catalog.list({}, {}));
    ASSERT_TRUE(catalog.deploy({two_step_process("A"), {}, {}}));  // 200, nothing created
    EXPECT_NE(catalog.cached_list({}, {}), nullptr);
}

TEST_F(DefinitionCatalogTest, ADeployOnAnotherReplicaReachesThisListByInvalidation) {
    auto first = make(&remote);
    fakes::FakeRemoteCache other_remote{hub};
    auto second = make(&other_remote);
    ASSERT_TRUE(first.deploy({two_step_process("A"), {}, {}}));
    ASSERT_EQ(second.list({}, {})->total, 1);  // cached on the second replica
    ASSERT_NE(second.cached_list({}, {}), nullptr);
    ASSERT_TRUE(first.deploy({two_step_process("B"), {}, {}}));
    EXPECT_EQ(second.cached_list({}, {}), nullptr) << "the invalidation dropped the page";
    auto after = second.list({}, {});
    ASSERT_TRUE(after);
    EXPECT_EQ(keys_of(*after), (std::vector<std::string>{"A", "B"}));
}

// A replica's own invalidation comes back through Redis after it dropped the key itself; it
// must not drop the latest entry loaded since (the runtime's non-blocking start needs it).
TEST_F(DefinitionCatalogTest, ItsOwnInvalidationComingBackLateKeepsTheLatestLoadedSince) {
    auto first = make(&remote);
    fakes::FakeRemoteCache other_remote{hub};
    auto second = make(&other_remote);
    remote.hold = true;
    ASSERT_TRUE(first.deploy({two_step_process("A"), {}, {}}));
    ASSERT_TRUE(first.latest("A"));
    ASSERT_NE(first.cached_latest("A"), nullptr);
    ASSERT_TRUE(second.latest("A"));
    remote.deliver_held();  // the deploy's message reaches both replicas now
    EXPECT_NE(first.cached_latest("A"), nullptr) << "its own message dropped the entry";
    EXPECT_EQ(second.cached_latest("A"), nullptr) << "the other replica's entry stays stale";

    // Another replica's deploy still drops it, and so does a bare key (an older replica).
    ASSERT_TRUE(second.deploy({two_step_process("A", "A v2"), {}, {}}));
    EXPECT_EQ(first.cached_latest("A"), nullptr);
    ASSERT_EQ(first.latest("A")->version, 2);
    ASSERT_NE(first.cached_latest("A"), nullptr);
    other_remote.publish(DefinitionCatalog::kInvalidationChannel, "A");
    EXPECT_EQ(first.cached_latest("A"), nullptr);
}

TEST_F(DefinitionCatalogTest, NoStaleListAfterADelete) {
    auto first = make(&remote);
    fakes::FakeRemoteCache other_remote{hub};
    auto second = make(&other_remote);
    ASSERT_TRUE(first.deploy({two_step_process("A"), {}, {}}));
    ASSERT_TRUE(first.deploy({two_step_process("B"), {}, {}}));
    ASSERT_EQ(first.list({}, {})->total, 2);
    ASSERT_EQ(second.list({}, {})->total, 2);
    ASSERT_TRUE(first.remove("A", true));
    for (auto* catalog : {&first, &second}) {
        EXPECT_EQ(catalog->cached_list({}, {}), nullptr);
        auto after = catalog->list({}, {});
        ASSERT_TRUE(after);
        EXPECT_EQ(keys_of(*after), (std::vector<std::string>{"B"}));
    }
}

TEST_F(DefinitionCatalogTest, CachedListPagesExpireAfterTheTtl) {
    auto catalog = make(nullptr);
    ASSERT_TRUE(catalog.deploy({two_step_process("A"), {}, {}}));
    ASSERT_TRUE(catalog.list({}, {}));
    clock.advance(cache.definition_ttl - Millis{1});
    EXPECT_NE(catalog.cached_list({}, {}), nullptr);
    clock.advance(Millis{1});
    EXPECT_EQ(catalog.cached_list({}, {}), nullptr);
}

TEST_F(DefinitionCatalogTest, TheListIsNotCachedWhenTheCacheIsOff) {
    cache.l1_max_entries = 0;
    auto catalog = make(nullptr);
    ASSERT_TRUE(catalog.deploy({two_step_process("A"), {}, {}}));
    ASSERT_TRUE(catalog.list({}, {}));
    EXPECT_EQ(catalog.cached_list({}, {}), nullptr);
}

TEST_F(DefinitionCatalogTest, StoreErrorsOfTheListAreNotCached) {
    auto catalog = make(nullptr);
    store.unavailable = true;
    EXPECT_EQ(catalog.list({}, {}).error().code, "DB_UNAVAILABLE");
    EXPECT_EQ(catalog.cached_list({}, {}), nullptr);
    store.unavailable = false;
    EXPECT_TRUE(catalog.list({}, {}));
}

/// A store whose list_latest runs `during_list` after it read its answer: an invalidation that
/// lands while the store answers.
class RacingStore final : public DefinitionStore {
  public:
    explicit RacingStore(DefinitionStore& inner) : inner_(inner) {}
    std::function<void()> during_list;

    Result<std::vector<DeployedDefinition>> deploy(const std::vector<NewDefinition>& d,
                                                   TimePoint now) override {
        return inner_.deploy(d, now);
    }
    Result<std::optional<DefinitionRecord>> latest(const std::string& key) override {
        return inner_.latest(key);
    }
    Result<std::optional<DefinitionRecord>> version(const std::string& key, int v) override {
        return inner_.version(key, v);
    }
    Result<std::optional<DefinitionRecord>> by_id(const std::string& id) override {
        return inner_.by_id(id);
    }
    Result<PageResult<DefinitionRecord>> list_latest(const DefinitionFilter& filter,
                                                     const PageRequest& page) override {
        auto r = inner_.list_latest(filter, page);
        if (during_list) {
            std::exchange(during_list, nullptr)();
        }
        return r;
    }
    Result<PageResult<DefinitionRecord>> versions(const std::string& key,
                                                  const PageRequest& page) override {
        return inner_.versions(key, page);
    }
    Result<std::int64_t> count_unfinished_instances(const std::string& key) override {
        return inner_.count_unfinished_instances(key);
    }
    Result<std::int64_t> delete_key(const std::string& key, bool cascade) override {
        return inner_.delete_key(key, cascade);
    }

  private:
    DefinitionStore& inner_;
};

TEST_F(DefinitionCatalogTest, AListReadWhileADeployLandsIsNotKept) {
    RacingStore racing(store);
    DefinitionCatalog catalog(racing, nullptr, telemetry, clock, cache, engine);
    ASSERT_TRUE(catalog.deploy({two_step_process("A"), {}, {}}));
    // The list reads {A}; before it returns, B is deployed (which invalidates).
    racing.during_list = [&] { ASSERT_TRUE(catalog.deploy({two_step_process("B"), {}, {}})); };
    auto raced = catalog.list({}, {});
    ASSERT_TRUE(raced);
    EXPECT_EQ(raced->total, 1);  // the answer of its moment
    EXPECT_EQ(catalog.cached_list({}, {}), nullptr) << "but it is not cached";
    auto next = catalog.list({}, {});
    ASSERT_TRUE(next);
    EXPECT_EQ(keys_of(*next), (std::vector<std::string>{"A", "B"}));
    EXPECT_NE(catalog.cached_list({}, {}), nullptr);
}

}  // namespace
}  // namespace pythmata::app
