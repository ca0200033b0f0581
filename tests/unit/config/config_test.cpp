#include "pythmata/config/config.hpp"

#include <fstream>
#include <map>

#include <gtest/gtest.h>

namespace pythmata::config {
namespace {

class ConfigTest : public ::testing::Test {
  protected:
    std::map<std::string, std::string> env_vars;
    EnvLookup env = [this](const char* name) -> const char* {
        auto it = env_vars.find(name);
        return it == env_vars.end() ? nullptr : it->second.c_str();
    };
    std::filesystem::path file = std::filesystem::temp_directory_path() /
                                 ("pythmata_config_test_" + std::to_string(::getpid()) + ".toml");

    std::filesystem::path write(const std::string& text) {
        std::ofstream(file) << text;
        return file;
    }
    void TearDown() override { std::filesystem::remove(file); }
};

TEST_F(ConfigTest, DefaultsMatchTheDesign) {
    auto s = load(std::nullopt, env);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->http.host, "127.0.0.1");
    EXPECT_EQ(s->http.port, 8000);
    EXPECT_EQ(s->db.url, "sqlite://./var/pythmata.db");
    EXPECT_EQ(s->cache.definition_ttl, std::chrono::seconds(300));
    EXPECT_EQ(s->engine.token_batch_size, 100u);
    EXPECT_EQ(s->engine.max_parallel_tokens, 50u);
    EXPECT_EQ(s->engine.state_check_interval, std::chrono::seconds(5));
    EXPECT_EQ(s->engine.max_variable_size, 1u << 20);
    EXPECT_EQ(s->engine.max_total_variables, 10u << 20);
}

TEST_F(ConfigTest, FileValuesApply) {
    auto s = load(write("http_port = 9000\ndb_pool_timeout = 2.5\nlog_format = \"json\"\n"
                        "clock_control = true\ndb_url = \"postgresql://u@127.0.0.1/db\"\n"),
                  env);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->http.port, 9000);
    EXPECT_EQ(s->db.pool_timeout, std::chrono::milliseconds(2500));
    EXPECT_EQ(s->log.format, "json");
    EXPECT_TRUE(s->engine.clock_control);
    EXPECT_EQ(s->db.url, "postgresql://u@127.0.0.1/db");
}

TEST_F(ConfigTest, EnvironmentOverridesTheFile) {
    env_vars["PYTHMATA_HTTP_PORT"] = "9100";
    env_vars["PYTHMATA_STATE_CHECK_INTERVAL"] = "0.5";
    env_vars["PYTHMATA_ACCESS_LOG"] = "off";
    auto s = load(write("http_port = 9000\n"), env);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->http.port, 9100);
    EXPECT_EQ(s->engine.state_check_interval, std::chrono::milliseconds(500));
    EXPECT_FALSE(s->log.access_log);
}

TEST_F(ConfigTest, OutOfRangeValueNamesTheKeyAndTheFile) {
    auto s = load(write("db_pool_size = -3\n"), env);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().find("db_pool_size"), std::string::npos) << s.error();
    EXPECT_NE(s.error().find(file.string()), std::string::npos) << s.error();
    EXPECT_NE(s.error().find("-3"), std::string::npos) << s.error();
}

TEST_F(ConfigTest, WrongTypeIsAnError) {
    auto s = load(write("http_port = \"eighty\"\n"), env);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().find("http_port"), std::string::npos) << s.error();
}

TEST_F(ConfigTest, UnknownKeyInTheFileIsAnError) {
    auto s = load(write("http_prot = 80\n"), env);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().find("http_prot"), std::string::npos) << s.error();
    EXPECT_NE(s.error().find("unknown setting"), std::string::npos) << s.error();
}

TEST_F(ConfigTest, BadEnvironmentValueNamesTheVariable) {
    env_vars["PYTHMATA_DB_POOL_SIZE"] = "12abc";
    auto s = load(std::nullopt, env);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().find("PYTHMATA_DB_POOL_SIZE"), std::string::npos) << s.error();
}

TEST_F(ConfigTest, UnknownChoiceIsRejected) {
    env_vars["PYTHMATA_LOG_LEVEL"] = "chatty";
    auto s = load(std::nullopt, env);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().find("log_level"), std::string::npos) << s.error();
}

TEST_F(ConfigTest, ThePlanCacheModeIsGenericUnlessSetToAnotherOfPostgresModes) {
    auto defaults = load(std::nullopt, env);
    ASSERT_TRUE(defaults) << defaults.error();
    EXPECT_EQ(defaults->db.plan_cache_mode, "force_generic_plan");
    env_vars["PYTHMATA_DB_PLAN_CACHE_MODE"] = "auto";
    auto set = load(std::nullopt, env);
    ASSERT_TRUE(set) << set.error();
    EXPECT_EQ(set->db.plan_cache_mode, "auto");
    env_vars["PYTHMATA_DB_PLAN_CACHE_MODE"] = "auto; DROP TABLE instances";
    auto bad = load(std::nullopt, env);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("db_plan_cache_mode"), std::string::npos) << bad.error();
}

TEST_F(ConfigTest, TheDeleteBatchSizeIsAPositiveNumberOfInstances) {
    auto defaults = load(std::nullopt, env);
    ASSERT_TRUE(defaults) << defaults.error();
    EXPECT_EQ(defaults->db.delete_batch_size, 5000u);
    env_vars["PYTHMATA_DB_DELETE_BATCH_SIZE"] = "250";
    auto set = load(std::nullopt, env);
    ASSERT_TRUE(set) << set.error();
    EXPECT_EQ(set->db.delete_batch_size, 250u);
    env_vars["PYTHMATA_DB_DELETE_BATCH_SIZE"] = "0";
    auto bad = load(std::nullopt, env);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("db_delete_batch_size"), std::string::npos) << bad.error();
}

TEST_F(ConfigTest, TheReadPoolSizeIsAutomaticUnlessSet) {
    auto defaults = load(std::nullopt, env);
    ASSERT_TRUE(defaults) << defaults.error();
    EXPECT_EQ(defaults->http.read_threads, 0u);  // twice the hardware threads, at least 4
    env_vars["PYTHMATA_HTTP_READ_THREADS"] = "6";
    auto set = load(std::nullopt, env);
    ASSERT_TRUE(set) << set.error();
    EXPECT_EQ(set->http.read_threads, 6u);
    env_vars["PYTHMATA_HTTP_READ_THREADS"] = "5000";
    auto bad = load(std::nullopt, env);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("http_read_threads"), std::string::npos) << bad.error();
}

TEST_F(ConfigTest, TheDatabaseTcpTimeoutDefaultsToThirtySecondsAndZeroTurnsItOff) {
    auto defaults = load(std::nullopt, env);
    ASSERT_TRUE(defaults) << defaults.error();
    EXPECT_EQ(defaults->db.tcp_timeout, std::chrono::milliseconds(30'000));
    env_vars["PYTHMATA_DB_TCP_TIMEOUT_MS"] = "0";
    auto off = load(std::nullopt, env);
    ASSERT_TRUE(off) << off.error();
    EXPECT_EQ(off->db.tcp_timeout, std::chrono::milliseconds(0));
    env_vars["PYTHMATA_DB_TCP_TIMEOUT_MS"] = "-5";
    auto bad = load(std::nullopt, env);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("db_tcp_timeout_ms"), std::string::npos) << bad.error();
}

TEST_F(ConfigTest, BadDatabaseSchemeIsRejected) {
    env_vars["PYTHMATA_DB_URL"] = "mysql://localhost/x";
    auto s = load(std::nullopt, env);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().find("db_url"), std::string::npos) << s.error();
}

TEST_F(ConfigTest, MalformedTomlReportsTheLine) {
    auto s = load(write("http_port = 80\nthis is not toml\n"), env);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().find(":2:"), std::string::npos) << s.error();
}

TEST_F(ConfigTest, MissingFileIsAnError) {
    auto s = load(std::filesystem::path("/nonexistent/pythmata.toml"), env);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().find("/nonexistent/pythmata.toml"), std::string::npos);
}

TEST_F(ConfigTest, ShippedConfigFileLoadsAndDocumentsEverySetting) {
    const std::filesystem::path shipped = PYTHMATA_SOURCE_DIR "/config/pythmata.toml";
    auto s = load(shipped, env);
    ASSERT_TRUE(s) << s.error();
    std::ifstream in(shipped);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Every key dump() knows is written in the shipped file (commented or not).
    std::istringstream lines(dump(app::Settings{}));
    for (std::string line; std::getline(lines, line);) {
        const auto key = line.substr(0, line.find(' '));
        EXPECT_NE(text.find(key + " = "), std::string::npos)
            << key << " is not in config/pythmata.toml";
    }
}

TEST_F(ConfigTest, DumpRoundTripsThroughTheLoader) {
    app::Settings custom;
    custom.http.port = 1234;
    custom.db.pool_timeout = std::chrono::milliseconds(1500);
    custom.log.format = "json";
    auto s = load(write(dump(custom)), env);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->http.port, 1234);
    EXPECT_EQ(s->db.pool_timeout, std::chrono::milliseconds(1500));
    EXPECT_EQ(s->log.format, "json");
}

TEST_F(ConfigTest, RetentionOverridesAreReadFromTheFileAndTheEnvironment) {
    auto s = load(write("history_retention_overrides = \"OrderProcess=7, Audit = 0\"\n"), env);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->engine.history_retention_overrides,
              (std::map<std::string, unsigned>{{"OrderProcess", 7}, {"Audit", 0}}));
    // A TOML array of "KEY=DAYS" strings works too; the environment wins over the file.
    env_vars["PYTHMATA_HISTORY_RETENTION_OVERRIDES"] = "Invoice=90";
    s = load(write("history_retention_overrides = [\"OrderProcess=7\", \"Audit=0\"]\n"), env);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->engine.history_retention_overrides,
              (std::map<std::string, unsigned>{{"Invoice", 90}}));
    // dump() writes it back in a form the loader reads.
    env_vars.clear();
    app::Settings custom;
    custom.engine.history_retention_overrides = {{"A", 1}, {"B", 0}};
    s = load(write(dump(custom)), env);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->engine.history_retention_overrides, custom.engine.history_retention_overrides);
}

TEST_F(ConfigTest, ABadRetentionOverrideStopsStartUpNamingTheKey) {
    for (const char* bad : {"OrderProcess", "OrderProcess=", "=7", "OrderProcess=-1",
                            "OrderProcess=7x", "OrderProcess=99999", "A=1,A=2"}) {
        env_vars["PYTHMATA_HISTORY_RETENTION_OVERRIDES"] = bad;
        auto s = load(std::nullopt, env);
        ASSERT_FALSE(s) << bad;
        EXPECT_NE(s.error().find("history_retention_overrides"), std::string::npos) << s.error();
        EXPECT_NE(s.error().find("PYTHMATA_HISTORY_RETENTION_OVERRIDES"), std::string::npos)
            << s.error();
    }
    env_vars["PYTHMATA_HISTORY_RETENTION_OVERRIDES"] = "";
    auto empty = load(std::nullopt, env);
    ASSERT_TRUE(empty) << empty.error();
    EXPECT_TRUE(empty->engine.history_retention_overrides.empty());
}

}  // namespace
}  // namespace pythmata::config
