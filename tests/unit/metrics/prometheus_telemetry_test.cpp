#include "pythmata/metrics/prometheus_telemetry.hpp"

#include <string>

#include <gtest/gtest.h>

namespace pythmata::metrics {
namespace {

using Level = app::Telemetry::CacheLevel;

bool contains(const std::string& text, const std::string& needle) {
    return text.find(needle) != std::string::npos;
}

TEST(PrometheusTelemetry, ExportsAllFourSeriesAtZeroBeforeAnyLookup) {
    Registry registry;
    PrometheusTelemetry telemetry(registry);
    const std::string text = registry.render();
    EXPECT_TRUE(contains(text, "# TYPE pythmata_definition_cache_hits_total counter")) << text;
    EXPECT_TRUE(contains(text, "# TYPE pythmata_definition_cache_misses_total counter")) << text;
    EXPECT_TRUE(contains(text, "pythmata_definition_cache_hits_total{level=\"l1\"} 0")) << text;
    EXPECT_TRUE(contains(text, "pythmata_definition_cache_hits_total{level=\"l2\"} 0")) << text;
    EXPECT_TRUE(contains(text, "pythmata_definition_cache_misses_total{level=\"l1\"} 0")) << text;
    EXPECT_TRUE(contains(text, "pythmata_definition_cache_misses_total{level=\"l2\"} 0")) << text;
}

TEST(PrometheusTelemetry, CountsHitsAndMissesUnderTheirLevelLabel) {
    Registry registry;
    PrometheusTelemetry telemetry(registry);
    telemetry.definition_cache_lookup(Level::kL1, true);
    telemetry.definition_cache_lookup(Level::kL1, true);
    telemetry.definition_cache_lookup(Level::kL1, false);
    telemetry.definition_cache_lookup(Level::kL2, false);
    telemetry.definition_cache_lookup(Level::kL2, false);
    telemetry.definition_cache_lookup(Level::kL2, false);

    const std::string text = registry.render();
    EXPECT_TRUE(contains(text, "pythmata_definition_cache_hits_total{level=\"l1\"} 2")) << text;
    EXPECT_TRUE(contains(text, "pythmata_definition_cache_misses_total{level=\"l1\"} 1")) << text;
    EXPECT_TRUE(contains(text, "pythmata_definition_cache_hits_total{level=\"l2\"} 0")) << text;
    EXPECT_TRUE(contains(text, "pythmata_definition_cache_misses_total{level=\"l2\"} 3")) << text;
}

TEST(PrometheusTelemetry, TwoInstancesOnOneRegistryShareTheSameSeries) {
    Registry registry;
    PrometheusTelemetry first(registry);
    PrometheusTelemetry second(registry);
    first.definition_cache_lookup(Level::kL1, true);
    second.definition_cache_lookup(Level::kL1, true);
    EXPECT_TRUE(contains(registry.render(), "pythmata_definition_cache_hits_total{level=\"l1\"} 2"))
        << registry.render();
}

}  // namespace
}  // namespace pythmata::metrics

namespace pythmata::metrics {
namespace {

TEST(PrometheusTelemetry, ExportsTheRuntimeSeriesUnderTheirContractNames) {
    Registry registry;
    PrometheusTelemetry telemetry(registry);
    telemetry.instance_started();
    telemetry.instance_started();
    telemetry.instance_ended("COMPLETED", 0.5);
    telemetry.active_instances_changed(2);
    telemetry.active_instances_changed(-1);
    telemetry.engine_executed(0.001, 7);
    telemetry.error("DB_CONFLICT");
    telemetry.error("DB_CONFLICT");
    telemetry.error("OVERLOADED");
    telemetry.batch_committed(42, 0.003);
    telemetry.timer_fired(1.5);

    const std::string text = registry.render();
    auto has = [&](const std::string& needle) { return text.find(needle) != std::string::npos; };
    EXPECT_TRUE(has("process_instances_total 2")) << text;
    EXPECT_TRUE(has("process_execution_seconds_count 1")) << text;
    EXPECT_TRUE(has("pythmata_active_instances 1")) << text;
    EXPECT_TRUE(has("pythmata_execution_time_seconds_count 1")) << text;
    EXPECT_TRUE(has("pythmata_tokens_processed_total 7")) << text;
    EXPECT_TRUE(has("pythmata_errors_total{kind=\"DB_CONFLICT\"} 2")) << text;
    EXPECT_TRUE(has("pythmata_errors_total{kind=\"OVERLOADED\"} 1")) << text;
    EXPECT_TRUE(has("pythmata_batch_size_sum 42")) << text;
    EXPECT_TRUE(has("pythmata_batch_commit_seconds_count 1")) << text;
    EXPECT_TRUE(has("pythmata_timer_lateness_seconds_count 1")) << text;
}

}  // namespace
}  // namespace pythmata::metrics
