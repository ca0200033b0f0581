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
