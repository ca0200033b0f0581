// GET /metrics of the real server: Prometheus text that `promtool check metrics` accepts, with
// the HTTP, database pool and definition cache series the dashboards use.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bpmn_samples.hpp"
#include "http_test_support.hpp"

namespace pythmata::test {
namespace {

constexpr const char* kPromtool = "/usr/bin/promtool";

/// One sample line of the text format: name, labels, value.
struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

/// Parses the sample lines (comments skipped), honouring quotes and escapes in label values
/// (route templates contain braces).
std::vector<Sample> parse_samples(const std::string& text) {
    std::vector<Sample> samples;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        Sample sample;
        std::size_t at = line.find_first_of("{ ");
        sample.name = line.substr(0, at);
        if (at != std::string::npos && line[at] == '{') {
            ++at;
            while (at < line.size() && line[at] != '}') {
                const std::size_t eq = line.find('=', at);
                if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
                    break;
                }
                const std::string name = line.substr(at, eq - at);
                std::string value;
                std::size_t i = eq + 2;
                for (; i < line.size() && line[i] != '"'; ++i) {
                    if (line[i] == '\\' && i + 1 < line.size()) {
                        ++i;
                        value.push_back(line[i] == 'n' ? '\n' : line[i]);
                    } else {
                        value.push_back(line[i]);
                    }
                }
                sample.labels[name] = value;
                at = i + 1;
                if (at < line.size() && line[at] == ',') {
                    ++at;
                }
            }
            ++at;  // past '}'
        }
        sample.value = std::strtod(line.c_str() + std::min(at, line.size()), nullptr);
        samples.push_back(std::move(sample));
    }
    return samples;
}

/// Runs `promtool check metrics` on `text` (stdin); returns its exit code and output.
std::pair<int, std::string> promtool_check(const std::string& text, const std::string& dir) {
    const std::string input = dir + "/metrics.txt";
    const std::string output = dir + "/promtool.out";
    {
        std::ofstream file(input, std::ios::binary);
        file << text;
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int in = ::open(input.c_str(), O_RDONLY);
        const int out = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(in, STDIN_FILENO);
        ::dup2(out, STDOUT_FILENO);
        ::dup2(out, STDERR_FILENO);
        ::execl(kPromtool, kPromtool, "check", "metrics", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::ifstream result(output);
    std::ostringstream all;
    all << result.rdbuf();
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, all.str()};
}

class Metrics : public ::testing::Test {
  protected:
    void SetUp() override {
        ServerProcess::Options options;
        options.env["PYTHMATA_LOG_LEVEL"] = "warn";
        auto started = ServerProcess::start(options);
        ASSERT_TRUE(started.ok()) << started.error().message;
        server_ = std::move(started).value();
        client_ = std::make_unique<HttpClient>(server_->port());
    }

    std::string scrape() {
        auto response = client_->get("/metrics");
        EXPECT_TRUE(response.ok()) << (response.ok() ? "" : response.error().message);
        if (!response.ok()) {
            return {};
        }
        EXPECT_EQ(response->status, 200) << response->describe();
        EXPECT_TRUE(response->header("Content-Type").value_or("").starts_with("text/plain"))
            << response->describe();
        return response->body;
    }

    std::unique_ptr<ServerProcess> server_;
    std::unique_ptr<HttpClient> client_;
};

TEST_F(Metrics, HttpRequestsAreCountedByRouteTemplateAndStatus) {
    const std::string key = unique_name("Counted");
    ASSERT_EQ(
        status_of(client_->send_xml("POST", "/api/v1/processes", bpmn::user_task_process(key))),
        201);
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(status_of(client_->get("/api/v1/processes/" + key)), 200);
    }
    const std::string missing = unique_name("NotThere");
    ASSERT_EQ(status_of(client_->get("/api/v1/processes/" + missing)), 404);
    ASSERT_EQ(status_of(client_->get("/api/v1/processes/" + missing + "x")), 404);

    const std::string text = scrape();
    EXPECT_EQ(text.find(key), std::string::npos) << "a raw path leaked into a label";
    EXPECT_EQ(text.find(missing), std::string::npos) << "a raw path leaked into a label";

    double ok_gets = -1;
    double missing_gets = -1;
    double deploys = -1;
    bool histogram = false;
    for (const auto& s : parse_samples(text)) {
        if (s.name == "pythmata_http_requests_total" && s.labels.count("route") != 0 &&
            s.labels.at("route") == "/api/v1/processes/{key}" && s.labels.count("method") != 0 &&
            s.labels.at("method") == "GET") {
            if (s.labels.count("status") != 0 && s.labels.at("status") == "200") {
                ok_gets = s.value;
            }
            if (s.labels.count("status") != 0 && s.labels.at("status") == "404") {
                missing_gets = s.value;
            }
        }
        if (s.name == "pythmata_http_requests_total" && s.labels.count("route") != 0 &&
            s.labels.at("route") == "/api/v1/processes" && s.labels.count("method") != 0 &&
            s.labels.at("method") == "POST" && s.labels.count("status") != 0 &&
            s.labels.at("status") == "201") {
            deploys = s.value;
        }
        if (s.name == "pythmata_http_request_duration_seconds_count" &&
            s.labels.count("route") != 0 && s.labels.at("route") == "/api/v1/processes/{key}") {
            histogram = s.value >= 5;
        }
    }
    EXPECT_EQ(ok_gets, 3) << text;
    EXPECT_EQ(missing_gets, 2) << text;
    EXPECT_EQ(deploys, 1) << text;
    EXPECT_TRUE(histogram) << "no pythmata_http_request_duration_seconds for the route:\n" << text;
    EXPECT_NE(text.find("pythmata_http_request_duration_seconds_bucket"), std::string::npos);
}

TEST_F(Metrics, PoolAndCacheSeriesArePresentAndCount) {
    const std::string key = unique_name("Cached");
    ASSERT_EQ(
        status_of(client_->send_xml("POST", "/api/v1/processes", bpmn::user_task_process(key))),
        201);
    ASSERT_EQ(status_of(client_->get("/api/v1/processes/" + key)), 200);
    ASSERT_EQ(status_of(client_->get("/api/v1/processes/" + unique_name("Nope"))), 404);
    const std::string text = scrape();
    EXPECT_NE(text.find("pythmata_db_pool_"), std::string::npos) << text;
    double hits = 0;
    double misses = 0;
    bool hits_seen = false;
    bool misses_seen = false;
    for (const auto& s : parse_samples(text)) {
        if (s.name == "pythmata_definition_cache_hits_total") {
            hits += s.value;
            hits_seen = true;
        }
        if (s.name == "pythmata_definition_cache_misses_total") {
            misses += s.value;
            misses_seen = true;
        }
    }
    ASSERT_TRUE(hits_seen) << text;
    ASSERT_TRUE(misses_seen) << text;
    EXPECT_GE(hits, 1) << "the GET after a deploy is served from the in-process cache";
    EXPECT_GE(misses, 1) << "an unknown key misses";
}

TEST_F(Metrics, PromtoolAcceptsTheExposition) {
    if (::access(kPromtool, X_OK) != 0) {
        GTEST_SKIP() << kPromtool << " is missing (Debian package prometheus; "
                     << "scripts/install-deps.sh installs it)";
    }
    // Traffic on several routes and statuses first, so that every family has samples.
    const std::string key = unique_name("Linted");
    ASSERT_EQ(
        status_of(client_->send_xml("POST", "/api/v1/processes", bpmn::user_task_process(key))),
        201);
    ASSERT_EQ(status_of(client_->get("/api/v1/processes/" + key)), 200);
    ASSERT_EQ(status_of(client_->get("/api/v1/nope")), 404);
    ASSERT_EQ(status_of(client_->request("DELETE", "/api/v1/processes")), 405);
    ASSERT_EQ(status_of(client_->get("/health/ready")), 200);
    const std::string text = scrape();
    ASSERT_FALSE(text.empty());
    const auto [code, output] = promtool_check(text, server_->dir().string());
    EXPECT_EQ(code, 0) << "promtool check metrics:\n" << output << "\non:\n" << text;
}

}  // namespace
}  // namespace pythmata::test
