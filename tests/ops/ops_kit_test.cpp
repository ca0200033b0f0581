// The operations kit in docker/ checked by the tools that will read it: promtool for the
// Prometheus config and alert rules, `nginx -t` for nginx.conf (adapted to loopback), and the
// Grafana dashboard, whose every metric (and every metric of the alert rules) must be one the
// real server exports on GET /metrics once deploys, instances, timers, tasks, incidents and
// failed service calls have produced a sample in every family.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "http_client.hpp"
#include "ops_support.hpp"
#include "server_process.hpp"

namespace pythmata::test {
namespace {

namespace fs = std::filesystem;

const fs::path kDocker = fs::path(PYTHMATA_SOURCE_DIR) / "docker";

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

/// The metric names a PromQL text refers to: every identifier with the prefix pythmata_ or
/// process_ (recording rules use "pythmata:" and are not matched; job names have no '_').
std::set<std::string> metric_names_in(const std::string& promql) {
    static const std::regex kName(R"((?:^|[^A-Za-z0-9_:])((?:pythmata|process)_[A-Za-z0-9_]+))");
    std::set<std::string> names;
    for (auto it = std::sregex_iterator(promql.begin(), promql.end(), kName);
         it != std::sregex_iterator(); ++it) {
        names.insert((*it)[1].str());
    }
    return names;
}

/// Every "expr" string anywhere in the dashboard.
void collect_exprs(const nlohmann::json& node, std::vector<std::string>& out) {
    if (node.is_object()) {
        for (const auto& [key, value] : node.items()) {
            if (key == "expr" && value.is_string()) {
                out.push_back(value.get<std::string>());
            } else {
                collect_exprs(value, out);
            }
        }
    } else if (node.is_array()) {
        for (const auto& item : node) {
            collect_exprs(item, out);
        }
    }
}

/// The alert rules file without its comment lines (names in comments do not count).
std::string rules_without_comments() {
    std::istringstream in(read_text(kDocker / "alerts.yml"));
    std::string line, out;
    while (std::getline(in, line)) {
        const auto first = line.find_first_not_of(' ');
        if (first != std::string::npos && line[first] == '#') {
            continue;
        }
        out += line + "\n";
    }
    return out;
}

/// Sample names of a Prometheus text exposition (histograms appear as _bucket/_sum/_count).
std::set<std::string> exported_names(const std::string& text) {
    std::set<std::string> names;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        names.insert(line.substr(0, line.find_first_of("{ ")));
    }
    return names;
}

TEST(OpsKit, PromtoolAcceptsThePrometheusConfigAndTheAlertRules) {
    if (!fs::exists("/usr/bin/promtool")) {
        GTEST_SKIP() << "promtool is not installed (scripts/install-deps.sh installs prometheus)";
    }
    const auto config = run_command(
        {"/usr/bin/promtool", "check", "config", (kDocker / "prometheus.yml").string()});
    EXPECT_EQ(config.code, 0) << config.output;
    const auto rules =
        run_command({"/usr/bin/promtool", "check", "rules", (kDocker / "alerts.yml").string()});
    EXPECT_EQ(rules.code, 0) << rules.output;
    // The config loads the rules file that sits next to it (as mounted in docker-compose.yml).
    EXPECT_NE(config.output.find("1 rule files found"), std::string::npos) << config.output;
}

TEST(OpsKit, PromtoolRejectsABrokenRule) {
    // The check above can fail: a rule with a PromQL syntax error is refused.
    if (!fs::exists("/usr/bin/promtool")) {
        GTEST_SKIP() << "promtool is not installed";
    }
    TempDir dir("ops-promtool");
    std::string rules = read_text(kDocker / "alerts.yml");
    const auto at = rules.find("expr: up{");
    ASSERT_NE(at, std::string::npos);
    rules.insert(at + 6, "sum(");
    write_text(dir.path() / "alerts.yml", rules);
    const auto result =
        run_command({"/usr/bin/promtool", "check", "rules", (dir.path() / "alerts.yml").string()});
    EXPECT_NE(result.code, 0) << result.output;
}

TEST(OpsKit, NginxAcceptsTheConfigAdaptedToLoopback) {
    if (!fs::exists(kNginx)) {
        GTEST_SKIP() << "nginx is not installed (scripts/install-deps.sh installs it)";
    }
    TempDir dir("ops-nginx");
    const auto conf = loopback_nginx_conf(read_text(kDocker / "nginx.conf"), dir.path(),
                                          free_port(), {free_port(), free_port(), free_port()});
    ASSERT_TRUE(conf) << conf.error().message;
    // The adaptation changed only addresses and paths: three backends, keep-alive, the
    // WebSocket upgrade and the request id are all still there.
    const std::string& text = conf.value();
    EXPECT_EQ(text.find("server pythmata"), std::string::npos) << text;
    const std::regex backend(R"(server 127\.0\.0\.1:\d+ )");
    EXPECT_EQ(std::distance(std::sregex_iterator(text.begin(), text.end(), backend),
                            std::sregex_iterator()),
              3)
        << text;
    EXPECT_NE(text.find("keepalive 64;"), std::string::npos);
    EXPECT_NE(text.find("proxy_set_header Upgrade $http_upgrade;"), std::string::npos);
    EXPECT_NE(text.find("proxy_set_header X-Request-Id"), std::string::npos);
    write_text(dir.path() / "nginx.conf", text);
    const auto result = run_command({kNginx, "-t", "-q", "-e", "stderr", "-p", dir.path().string(),
                                     "-c", (dir.path() / "nginx.conf").string()});
    EXPECT_EQ(result.code, 0) << result.output << "\n--- config ---\n" << text;

    // And nginx -t does refuse a broken one.
    write_text(dir.path() / "broken.conf", text + "\nthis is not a directive\n");
    const auto broken = run_command({kNginx, "-t", "-q", "-e", "stderr", "-p", dir.path().string(),
                                     "-c", (dir.path() / "broken.conf").string()});
    EXPECT_NE(broken.code, 0) << broken.output;
}

TEST(OpsKit, NginxInFrontOfThreeServersBalancesKeepsRequestIdsAndUpgradesWebSockets) {
    if (!fs::exists(kNginx) || ::geteuid() != 0) {
        GTEST_SKIP() << "needs nginx and root (nginx drops its workers to nobody)";
    }
    std::vector<std::unique_ptr<ServerProcess>> servers;
    std::vector<std::uint16_t> ports;
    for (int i = 0; i < 3; ++i) {
        auto server = ServerProcess::start(ops_server_options());
        ASSERT_TRUE(server) << server.error().message;
        ports.push_back((*server)->port());
        servers.push_back(std::move(server).value());
    }
    TempDir dir("ops-nginx-run");
    ::chmod(dir.path().c_str(), 0755);
    const std::uint16_t port = free_port();
    const auto conf =
        loopback_nginx_conf(read_text(kDocker / "nginx.conf"), dir.path(), port, ports);
    ASSERT_TRUE(conf) << conf.error().message;
    write_text(dir.path() / "nginx.conf", conf.value());
    NginxProcess nginx(dir.path());
    HttpClient client(port);
    ASSERT_TRUE(eventually(std::chrono::seconds(10), [&] {
        auto health = client.get("/health");
        return health && health->status == 200;
    })) << read_text(dir.path() / "nginx.stderr");

    for (int i = 0; i < 6; ++i) {
        const std::string rid = "ops-rid-" + std::to_string(i);
        auto response = client.get("/health", {{"X-Request-Id", rid}});
        ASSERT_TRUE(response) << response.error().message;
        EXPECT_EQ(response->status, 200);
        EXPECT_EQ(response->header("X-Request-Id"), rid) << response->describe();
    }
    // Round-robin: every replica logged some of the request ids (spdlog flushes each second).
    for (std::size_t i = 0; i < servers.size(); ++i) {
        EXPECT_TRUE(eventually(std::chrono::seconds(5),
                               [&] {
                                   return servers[i]->stderr_tail(100'000).find("rid=ops-rid-") !=
                                          std::string::npos;
                               }))
            << "replica " << i << " got none of the requests:\n"
            << servers[i]->stderr_tail();
    }
    // /metrics is scraped per replica, never through the proxy.
    auto metrics = client.get("/metrics");
    ASSERT_TRUE(metrics) << metrics.error().message;
    EXPECT_EQ(metrics->status, 404);

    // The WebSocket handshake goes through with its Upgrade headers.
    HttpClient ws(port);
    ASSERT_TRUE(
        ws.send_raw("GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n"));
    auto read = ws.read_until_close(std::chrono::milliseconds(1500));
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(read->bytes.rfind("HTTP/1.1 101", 0), 0u) << read->bytes;
    EXPECT_NE(read->bytes.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos) << read->bytes;
}

TEST(OpsKit, TheDashboardParsesAndHasThePanelsOperatorsNeed) {
    const auto dashboard =
        nlohmann::json::parse(read_text(kDocker / "grafana" / "dashboard.json"), nullptr, false);
    ASSERT_FALSE(dashboard.is_discarded()) << "docker/grafana/dashboard.json is not JSON";
    ASSERT_TRUE(dashboard.contains("panels") && dashboard["panels"].is_array());
    std::set<std::string> titles;
    std::set<int> ids;
    for (const auto& panel : dashboard["panels"]) {
        titles.insert(panel.value("title", ""));
        ids.insert(panel.value("id", -1));
        ASSERT_TRUE(panel.contains("targets") && !panel["targets"].empty())
            << panel.value("title", "") << " has no query";
        EXPECT_EQ(panel["datasource"].value("uid", ""), "prometheus")
            << panel.value("title", "") << ": the provisioned datasource has uid prometheus";
    }
    EXPECT_EQ(ids.size(), dashboard["panels"].size()) << "panel ids must be unique";
    for (const char* needed :
         {"Active instances", "Process execution time (start to end)", "Error rate",
          "Token throughput", "HTTP requests by route", "HTTP latency p99 by route",
          "Batch size (commands per group commit)", "Group commit latency", "DB pool in use / size",
          "Definition cache hit ratio", "Timer lateness", "Open incidents"}) {
        EXPECT_TRUE(titles.count(needed)) << "no panel titled '" << needed << "'";
    }
    // The provisioning points Grafana at the file the compose file mounts.
    EXPECT_NE(read_text(kDocker / "grafana" / "provisioning" / "dashboards" / "pythmata.yml")
                  .find("/var/lib/grafana/dashboards"),
              std::string::npos);
    EXPECT_NE(read_text(kDocker / "docker-compose.yml")
                  .find("./grafana/dashboard.json:/var/lib/grafana/dashboards/"),
              std::string::npos);
}

TEST(OpsKit, MetricNamesAreFoundInQueries) {
    // The extraction the next test relies on: names with either prefix, none from recording
    // rule names or label values.
    const auto names = metric_names_in(
        R"(sum(rate(pythmata_http_requests_total{job=~"pythmata|pythmata-worker"}[5m])) / )"
        R"(histogram_quantile(0.9, rate(process_execution_seconds_bucket[1m])) + )"
        R"(pythmata:http_requests:rate5m)");
    EXPECT_EQ(names, (std::set<std::string>{"pythmata_http_requests_total",
                                            "process_execution_seconds_bucket"}));
}

TEST(OpsKit, EveryMetricTheDashboardAndTheAlertsUseIsExportedByTheServer) {
    std::vector<std::string> exprs;
    const auto dashboard =
        nlohmann::json::parse(read_text(kDocker / "grafana" / "dashboard.json"), nullptr, false);
    ASSERT_FALSE(dashboard.is_discarded());
    collect_exprs(dashboard, exprs);
    ASSERT_GE(exprs.size(), 20u);
    std::set<std::string> used;
    for (const auto& expr : exprs) {
        const auto names = metric_names_in(expr);
        used.insert(names.begin(), names.end());
    }
    const auto in_rules = metric_names_in(rules_without_comments());
    EXPECT_GE(in_rules.size(), 8u);
    used.insert(in_rules.begin(), in_rules.end());
    for (const char* seed : {"process_instances_total", "process_execution_seconds_bucket",
                             "pythmata_active_instances", "pythmata_execution_time_seconds_bucket",
                             "pythmata_errors_total", "pythmata_tokens_processed_total"}) {
        EXPECT_TRUE(used.count(seed)) << "the dashboard does not use the seed metric " << seed;
    }

    auto server = ServerProcess::start(ops_server_options());
    ASSERT_TRUE(server) << server.error().message;
    HttpClient client((*server)->port());
    auto produced = produce_every_metric_family(client);
    ASSERT_TRUE(produced) << produced.error().message << "\n" << (*server)->stderr_tail();

    auto metrics = client.get("/metrics");
    ASSERT_TRUE(metrics) << metrics.error().message;
    ASSERT_EQ(metrics->status, 200);
    const auto exported = exported_names(metrics->body);
    for (const auto& name : used) {
        EXPECT_TRUE(exported.count(name))
            << name << " is used by docker/grafana/dashboard.json or docker/alerts.yml but the "
            << "server does not export it";
    }
}

}  // namespace
}  // namespace pythmata::test
