// Housekeeping over the fake store: the open-incidents gauge, and history retention deleting
// only instances that ended before the cutoff, in batches of retention_batch_size, with
// per-process overrides (history_retention_overrides) taking their keys out of the default.
#include "pythmata/app/housekeeping.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "pythmata_fakes/fake_runtime_store.hpp"
#include "pythmata_fakes/fake_telemetry.hpp"

namespace pythmata::app {
namespace {

using std::chrono::hours;

class HousekeepingTest : public ::testing::Test {
  protected:
    /// An instance with `status`, ended `ended_ago` before now (none for running ones), with two
    /// history rows and, when `incident`, an open incident.
    void add(const std::string& id, const std::string& status, std::optional<hours> ended_ago,
             bool incident = false, std::optional<std::string> parent = std::nullopt) {
        Batch batch;
        InstanceWrite w;
        w.insert = true;
        w.instance.id = id;
        w.instance.definition_id = "def";
        w.instance.process_key = process_key;
        w.instance.process_version = 1;
        w.instance.status = status;
        w.instance.parent_instance_id = parent;
        w.instance.created_at = clock.now() - hours(24 * 400);
        w.instance.updated_at = w.instance.created_at;
        if (ended_ago) {
            w.instance.ended_at = clock.now() - *ended_ago;
        }
        for (const char* element : {"start", "end"}) {
            HistoryRow h;
            h.instance_id = id;
            h.element_id = element;
            h.element_type = "startEvent";
            h.at = w.instance.created_at;
            w.history.push_back(h);
        }
        if (incident) {
            IncidentRow i;
            i.id = id + "-incident";
            i.instance_id = id;
            i.engine_incident_id = 1;
            i.element_id = "script";
            i.kind = "SCRIPT";
            i.created_at = w.instance.created_at;
            w.incidents_opened.push_back(i);
        }
        batch.instances.push_back(std::move(w));
        ASSERT_TRUE(store.commit(batch).ok());
    }

    bool exists(const std::string& id) {
        auto row = store.instance(id, false);
        return row.ok() && row.value().has_value();
    }

    std::string process_key = "p";  ///< of the instances add() creates
    fakes::FakeRuntimeStore store;
    fakes::FakeTelemetry telemetry;
    fakes::ManualClock clock;
    EngineSettings settings;
};

TEST_F(HousekeepingTest, PublishesTheOpenIncidentCountAndDeletesNothingWhenRetentionIsOff) {
    add("old-done", "COMPLETED", hours(24 * 365));
    add("stuck", "ERROR", std::nullopt, true);
    settings.history_retention_days = 0;
    Housekeeping housekeeping(store, telemetry, clock, settings);
    auto result = housekeeping.run_once();
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result.value().instances, 0);
    EXPECT_EQ(telemetry.incidents_open.load(), 1);
    EXPECT_EQ(telemetry.active.load(), 1) << "the ERROR instance is not ended";
    EXPECT_TRUE(exists("old-done"));
}

TEST_F(HousekeepingTest, DeletesOnlyInstancesThatEndedBeforeTheCutoffWithTheirHistory) {
    add("done-40d", "COMPLETED", hours(24 * 40));
    add("cancelled-31d", "CANCELLED", hours(24 * 31));
    add("done-29d", "COMPLETED", hours(24 * 29));
    add("running", "RUNNING", std::nullopt);
    add("incident", "ERROR", std::nullopt, true);
    settings.history_retention_days = 30;
    Housekeeping housekeeping(store, telemetry, clock, settings);
    auto result = housekeeping.run_once();
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result.value().instances, 2);
    EXPECT_EQ(result.value().history, 4);
    EXPECT_FALSE(exists("done-40d"));
    EXPECT_FALSE(exists("cancelled-31d"));
    EXPECT_TRUE(exists("done-29d"));
    EXPECT_TRUE(exists("running"));
    EXPECT_TRUE(exists("incident"));
    auto kept = store.history("done-29d", PageRequest{});
    ASSERT_TRUE(kept.ok());
    EXPECT_EQ(kept.value().items.size(), 2u);
    EXPECT_EQ(telemetry.retained_instances_deleted.load(), 2);
    EXPECT_EQ(telemetry.retained_history_deleted.load(), 4);
}

TEST_F(HousekeepingTest, WorksInBatchesUntilAShortOne) {
    for (int i = 0; i < 7; ++i) {
        add("old-" + std::to_string(i), "COMPLETED", hours(24 * 100 + i));
    }
    settings.history_retention_days = 1;
    settings.retention_batch_size = 3;
    Housekeeping housekeeping(store, telemetry, clock, settings);
    auto result = housekeeping.run_once();
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result.value().instances, 7);
    EXPECT_EQ(store.instance_count(), 0u);
}

TEST_F(HousekeepingTest, AParentGoesOnlyAfterItsChildren) {
    add("parent", "COMPLETED", hours(24 * 50));
    add("child", "COMPLETED", hours(24 * 51), false, "parent");
    settings.history_retention_days = 1;
    settings.retention_batch_size = 1;
    Housekeeping housekeeping(store, telemetry, clock, settings);
    auto result = housekeeping.run_once();
    ASSERT_TRUE(result.ok());
    // Batch 1 takes the child (the parent still has one), batch 2 the parent, batch 3 is empty.
    EXPECT_EQ(result.value().instances, 2);
    EXPECT_FALSE(exists("parent"));
}

TEST_F(HousekeepingTest, APerProcessOverrideAppliesItsOwnDaysAndTheDefaultTheRest) {
    process_key = "Order";  // 7 days
    add("order-10d", "COMPLETED", hours(24 * 10));
    add("order-5d", "COMPLETED", hours(24 * 5));
    process_key = "Audit";  // kept forever
    add("audit-400d", "COMPLETED", hours(24 * 400));
    process_key = "Quote";  // 7 days as well: swept with Order in one filter
    add("quote-8d", "CANCELLED", hours(24 * 8));
    process_key = "p";  // the default, 30 days
    add("p-40d", "COMPLETED", hours(24 * 40));
    add("p-10d", "COMPLETED", hours(24 * 10));
    settings.history_retention_days = 30;
    settings.history_retention_overrides = {{"Order", 7}, {"Audit", 0}, {"Quote", 7}};
    settings.retention_batch_size = 1;  // several batches per sweep
    Housekeeping housekeeping(store, telemetry, clock, settings);
    auto result = housekeeping.run_once();
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result.value().instances, 3);
    EXPECT_FALSE(exists("order-10d"));
    EXPECT_TRUE(exists("order-5d"));
    EXPECT_TRUE(exists("audit-400d")) << "0 days keeps that process forever";
    EXPECT_FALSE(exists("quote-8d"));
    EXPECT_FALSE(exists("p-40d"));
    EXPECT_TRUE(exists("p-10d")) << "the 7-day override must not leak into the default";
}

TEST_F(HousekeepingTest, OverridesApplyWhenTheDefaultRetentionIsOff) {
    process_key = "Order";
    add("order-10d", "COMPLETED", hours(24 * 10));
    process_key = "p";
    add("p-4000d", "COMPLETED", hours(24 * 4000));
    settings.history_retention_days = 0;
    settings.history_retention_overrides = {{"Order", 1}};
    Housekeeping housekeeping(store, telemetry, clock, settings);
    auto result = housekeeping.run_once();
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result.value().instances, 1);
    EXPECT_FALSE(exists("order-10d"));
    EXPECT_TRUE(exists("p-4000d"));
}

TEST_F(HousekeepingTest, AStoreFailureIsCountedAndReturned) {
    add("old", "COMPLETED", hours(24 * 100));
    settings.history_retention_days = 1;
    store.unavailable = true;
    Housekeeping housekeeping(store, telemetry, clock, settings);
    auto result = housekeeping.run_once();
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(telemetry.errors(result.error().code), 1);
    store.unavailable = false;
    EXPECT_TRUE(exists("old"));
}

TEST_F(HousekeepingTest, TheThreadRunsAPassAtStartAndStopsPromptly) {
    add("old", "COMPLETED", hours(24 * 100));
    settings.history_retention_days = 1;
    settings.maintenance_interval = std::chrono::hours(1);
    Housekeeping housekeeping(store, telemetry, clock, settings);
    housekeeping.start();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (exists("old") && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_FALSE(exists("old"));
    const auto before = std::chrono::steady_clock::now();
    housekeeping.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(2));
}

}  // namespace
}  // namespace pythmata::app
