// history_level: which elements each level records (app/history_level.hpp), and what the
// runtime writes at each level for an instance that passes exclusive and parallel gateways.

#include "pythmata/app/history_level.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "pythmata/app/instance_runtime.hpp"
#include "pythmata_fakes/fake_definition_store.hpp"
#include "pythmata_fakes/fake_runtime_store.hpp"
#include "pythmata_fakes/fake_telemetry.hpp"

namespace pythmata::app {
namespace {

using bpmn::ElementType;
using nlohmann::json;
using namespace std::chrono_literals;

TEST(HistoryLevel, SettingValuesNameTheLevels) {
    EXPECT_EQ(history_level_of("none"), HistoryLevel::kNone);
    EXPECT_EQ(history_level_of("activity"), HistoryLevel::kActivity);
    EXPECT_EQ(history_level_of("full"), HistoryLevel::kFull);
    EXPECT_FALSE(history_level_of("FULL").has_value());
    EXPECT_FALSE(history_level_of("").has_value());
}

TEST(HistoryLevel, ActivityRecordsEveryActivityAndEventButNoGateway) {
    const std::vector<ElementType> kept = {
        ElementType::kStartEvent,
        ElementType::kEndEvent,
        ElementType::kIntermediateCatchEvent,
        ElementType::kIntermediateThrowEvent,
        ElementType::kBoundaryEvent,
        ElementType::kTask,
        ElementType::kUserTask,
        ElementType::kServiceTask,
        ElementType::kScriptTask,
        ElementType::kSendTask,
        ElementType::kReceiveTask,
        ElementType::kManualTask,
        ElementType::kBusinessRuleTask,
        ElementType::kSubProcess,
        ElementType::kTransaction,
        ElementType::kCallActivity,
    };
    const std::vector<ElementType> gateways = {
        ElementType::kExclusiveGateway, ElementType::kInclusiveGateway,
        ElementType::kParallelGateway, ElementType::kEventBasedGateway};
    for (const ElementType type : kept) {
        EXPECT_TRUE(history_records(HistoryLevel::kActivity, type)) << static_cast<int>(type);
        EXPECT_TRUE(history_records(HistoryLevel::kFull, type)) << static_cast<int>(type);
        EXPECT_FALSE(history_records(HistoryLevel::kNone, type)) << static_cast<int>(type);
        EXPECT_FALSE(is_gateway(type));
    }
    for (const ElementType type : gateways) {
        EXPECT_TRUE(is_gateway(type));
        EXPECT_FALSE(history_records(HistoryLevel::kActivity, type)) << static_cast<int>(type);
        EXPECT_TRUE(history_records(HistoryLevel::kFull, type)) << static_cast<int>(type);
        EXPECT_FALSE(history_records(HistoryLevel::kNone, type)) << static_cast<int>(type);
    }
}

// start -> exclusive gateway "route" -> script "calc" -> parallel split -> tasks a, b -> join
// -> end. Gateways: route, split, join.
const std::string kGateways = R"(<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs_g" targetNamespace="t">
<process id="gated" isExecutable="true">
<startEvent id="start"/>
<sequenceFlow id="f0" sourceRef="start" targetRef="route"/>
<exclusiveGateway id="route" default="f2"/>
<sequenceFlow id="f1" sourceRef="route" targetRef="end_small">
  <conditionExpression>amount &lt; 10</conditionExpression>
</sequenceFlow>
<sequenceFlow id="f2" sourceRef="route" targetRef="calc"/>
<scriptTask id="calc" name="Calc" scriptFormat="python"><script>doubled = amount * 2</script></scriptTask>
<sequenceFlow id="f3" sourceRef="calc" targetRef="split"/>
<parallelGateway id="split"/>
<sequenceFlow id="f4" sourceRef="split" targetRef="a"/>
<sequenceFlow id="f5" sourceRef="split" targetRef="b"/>
<task id="a"/>
<task id="b"/>
<sequenceFlow id="f6" sourceRef="a" targetRef="join"/>
<sequenceFlow id="f7" sourceRef="b" targetRef="join"/>
<parallelGateway id="join"/>
<sequenceFlow id="f8" sourceRef="join" targetRef="end"/>
<endEvent id="end"/>
<endEvent id="end_small"/>
</process>
</definitions>)";

class HistoryLevelRuntime : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        settings.history_level = GetParam();
        catalog =
            std::make_unique<DefinitionCatalog>(defs, nullptr, telemetry, clock, cache, settings);
        runtime = std::make_unique<InstanceRuntime>(store, *catalog, telemetry, clock, settings,
                                                    nullptr, nullptr);
        catalog->set_deploy_observer(runtime.get());
        runtime->start();
        auto deployed = catalog->deploy({kGateways, std::nullopt, std::nullopt});
        ASSERT_TRUE(deployed.ok()) << deployed.error().message;
    }
    void TearDown() override {
        runtime->stop();
        catalog->set_deploy_observer(nullptr);
    }

    /// The history of a completed instance of "gated" with `amount`, as the runtime reads it.
    std::vector<ActivityView> history_of(int amount) {
        auto started =
            runtime->start_instance({"gated", std::nullopt, std::nullopt, {{"amount", amount}}});
        EXPECT_TRUE(started.ok());
        if (!started.ok()) {
            return {};
        }
        EXPECT_EQ(started.value().status, "COMPLETED");
        auto page = runtime->activities(started.value().id, {1, 1000});
        EXPECT_TRUE(page.ok());
        return page.ok() ? page.value().items : std::vector<ActivityView>{};
    }

    static std::set<std::string> elements(const std::vector<ActivityView>& history) {
        std::set<std::string> out;
        for (const auto& a : history) {
            out.insert(a.element_id);
        }
        return out;
    }

    fakes::FakeDefinitionStore defs;
    fakes::FakeRuntimeStore store;
    fakes::FakeTelemetry telemetry;
    fakes::ManualClock clock;
    CacheSettings cache;
    EngineSettings settings;
    std::unique_ptr<DefinitionCatalog> catalog;
    std::unique_ptr<InstanceRuntime> runtime;
};

TEST_P(HistoryLevelRuntime, RecordsWhatTheLevelSays) {
    const std::vector<ActivityView> big = history_of(50);
    const std::vector<ActivityView> small = history_of(5);
    const std::set<std::string> activities_big = {"start", "calc", "a", "b", "end"};
    const std::set<std::string> activities_small = {"start", "end_small"};
    if (GetParam() == "none") {
        EXPECT_TRUE(big.empty());
        EXPECT_TRUE(small.empty());
        return;
    }
    if (GetParam() == "activity") {
        EXPECT_EQ(elements(big), activities_big);
        EXPECT_EQ(elements(small), activities_small);
        for (const auto& a : big) {
            EXPECT_EQ(a.element_type.find("Gateway"), std::string::npos) << a.element_id;
        }
    } else {
        std::set<std::string> full_big = activities_big;
        full_big.insert({"route", "split", "join"});
        EXPECT_EQ(elements(big), full_big);
        EXPECT_EQ(elements(small), (std::set<std::string>{"start", "route", "end_small"}));
    }
    // Either way every recorded element completed once (a join starts once per arriving
    // token), in order, start first.
    ASSERT_FALSE(big.empty());
    EXPECT_EQ(big.front().element_id, "start");
    EXPECT_EQ(big.front().event, "STARTED");
    EXPECT_EQ(big.back().element_id, "end");
    EXPECT_EQ(big.back().event, "COMPLETED");
    std::map<std::string, int> completed;
    for (const auto& a : big) {
        completed[a.element_id] += a.event == "COMPLETED" ? 1 : 0;
    }
    for (const auto& [element, times] : completed) {
        EXPECT_EQ(times, 1) << element;
    }
}

INSTANTIATE_TEST_SUITE_P(Levels, HistoryLevelRuntime,
                         ::testing::Values("none", "activity", "full"));

}  // namespace
}  // namespace pythmata::app
