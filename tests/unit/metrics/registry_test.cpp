#include "pythmata/metrics/registry.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "pythmata/metrics/prometheus_telemetry.hpp"

namespace pythmata::metrics {
namespace {

constexpr const char* kPromtool = "/usr/bin/promtool";

struct CheckOutcome {
    int exit_code = -1;
    std::string output;
};

/// Pipes `text` into `promtool check metrics` and reports its exit code and messages.
CheckOutcome promtool_check(const std::string& text) {
    const auto dir = std::filesystem::temp_directory_path();
    const auto stem = "pythmata_metrics_" + std::to_string(::getpid());
    const auto input = dir / (stem + ".prom");
    const auto output = dir / (stem + ".out");
    {
        std::ofstream file(input, std::ios::binary);
        file << text;
    }
    const std::string command = std::string(kPromtool) + " check metrics < '" + input.string() +
                                "' > '" + output.string() + "' 2>&1";
    const int status = std::system(command.c_str());
    CheckOutcome outcome;
    if (status != -1 && WIFEXITED(status)) {
        outcome.exit_code = WEXITSTATUS(status);
    }
    std::ifstream result(output);
    outcome.output.assign(std::istreambuf_iterator<char>(result), {});
    std::filesystem::remove(input);
    std::filesystem::remove(output);
    return outcome;
}

TEST(MetricsRegistry, RendersEmptyRegistryAsEmptyText) {
    Registry registry;
    EXPECT_EQ(registry.render(), "");
}

TEST(MetricsRegistry, RendersCounterWithHelpTypeAndLabels) {
    Registry registry;
    auto& family = prometheus::BuildCounter()
                       .Name("pythmata_test_requests_total")
                       .Help("Requests seen by the test")
                       .Register(registry.prometheus());
    family.Add({{"route", "/api/v1/processes"}}).Increment(3);

    const std::string text = registry.render();
    EXPECT_NE(text.find("# HELP pythmata_test_requests_total Requests seen by the test\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("# TYPE pythmata_test_requests_total counter\n"), std::string::npos)
        << text;
    EXPECT_NE(text.find("pythmata_test_requests_total{route=\"/api/v1/processes\"} 3"),
              std::string::npos)
        << text;
}

TEST(MetricsRegistry, RendersGaugeValueAfterChanges) {
    Registry registry;
    auto& gauge = prometheus::BuildGauge()
                      .Name("pythmata_test_active")
                      .Help("Active things")
                      .Register(registry.prometheus())
                      .Add({});
    gauge.Set(5);
    gauge.Decrement(2);
    const std::string text = registry.render();
    EXPECT_NE(text.find("# TYPE pythmata_test_active gauge\n"), std::string::npos) << text;
    EXPECT_NE(text.find("pythmata_test_active 3"), std::string::npos) << text;
}

TEST(MetricsRegistry, RenderedTextPassesPromtoolCheck) {
    ASSERT_TRUE(std::filesystem::exists(kPromtool))
        << kPromtool << " is missing; scripts/install-deps.sh installs Debian's prometheus package";
    Registry registry;
    prometheus::BuildCounter()
        .Name("pythmata_test_errors_total")
        .Help("Errors by kind")
        .Register(registry.prometheus())
        .Add({{"kind", "db"}})
        .Increment();
    prometheus::BuildHistogram()
        .Name("pythmata_test_latency_seconds")
        .Help("Latency of test operations")
        .Register(registry.prometheus())
        .Add({{"route", "/x"}}, prometheus::Histogram::BucketBoundaries{0.01, 0.1, 1.0})
        .Observe(0.05);
    PrometheusTelemetry telemetry(registry);
    telemetry.definition_cache_lookup(app::Telemetry::CacheLevel::kL1, true);
    telemetry.definition_cache_lookup(app::Telemetry::CacheLevel::kL2, false);

    const CheckOutcome outcome = promtool_check(registry.render());
    EXPECT_EQ(outcome.exit_code, 0) << outcome.output << "\n--- input ---\n" << registry.render();
}

TEST(MetricsRegistry, PromtoolRejectsMalformedText) {
    // Guards the check above: the pipe really reaches promtool and its verdict is read.
    ASSERT_TRUE(std::filesystem::exists(kPromtool)) << kPromtool << " is missing";
    const CheckOutcome outcome = promtool_check("# TYPE broken counter\nbroken{oops 1\n");
    EXPECT_NE(outcome.exit_code, 0) << outcome.output;
}

}  // namespace
}  // namespace pythmata::metrics
