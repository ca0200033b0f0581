// The `pythmata` command line: --help, version, validate, config, and start-up refusing a bad
// setting with a message naming the key.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "bpmn_samples.hpp"
#include "http_test_support.hpp"

namespace pythmata::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class Cli : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "pythmata-cli-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
    }
    void TearDown() override {
        std::error_code ignored;
        fs::remove_all(dir_, ignored);
    }

    std::string write(const std::string& name, const std::string& text) {
        const fs::path path = dir_ / name;
        std::ofstream(path, std::ios::binary) << text;
        return path.string();
    }

    /// Runs pythmata in the temp dir; fails the test when it cannot be run.
    CommandOutput run(const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env = {}) {
        auto output = run_pythmata(args, env, 20s, dir_);
        if (!output) {
            ADD_FAILURE() << output.error().message;
            return {};
        }
        return std::move(output).value();
    }

    fs::path dir_;
};

std::string everything(const CommandOutput& output) {
    return output.out + output.err;
}

TEST_F(Cli, HelpExits0AndNamesEveryCommand) {
    for (const std::string flag : {"--help", "-h"}) {
        const auto output = run({flag});
        EXPECT_TRUE(output.status.success()) << output.status.describe();
        for (const char* word : {"serve", "validate", "version", "config", "--config"}) {
            EXPECT_NE(everything(output).find(word), std::string::npos) << word << " in\n"
                                                                        << everything(output);
        }
    }
}

TEST_F(Cli, VersionPrintsTheProjectVersion) {
    const auto output = run({"version"});
    EXPECT_TRUE(output.status.success()) << output.status.describe();
    EXPECT_NE(output.out.find(PYTHMATA_PROJECT_VERSION), std::string::npos) << output.out;
}

TEST_F(Cli, AnUnknownCommandOrOptionExitsNonZero) {
    const auto command = run({"frobnicate"});
    EXPECT_FALSE(command.status.success()) << command.status.describe();
    EXPECT_NE(everything(command).find("frobnicate"), std::string::npos) << everything(command);
    const auto option = run({"serve", "--no-such-option"});
    EXPECT_FALSE(option.status.success());
    EXPECT_NE(everything(option).find("--no-such-option"), std::string::npos) << everything(option);
}

TEST_F(Cli, ValidateAcceptsValidFiles) {
    const auto one = write("one.bpmn", bpmn::user_task_process("One"));
    const auto two = write("two.bpmn", bpmn::collaboration("A", "B", "C"));
    const auto output = run({"validate", one, two});
    EXPECT_TRUE(output.status.success()) << output.status.describe() << "\n" << everything(output);
}

TEST_F(Cli, ValidateRejectsAnInvalidFileNamingTheElement) {
    const auto good = write("good.bpmn", bpmn::user_task_process("Good"));
    const auto bad = write("bad.bpmn", bpmn::dangling_flow("Bad", "flow_to_nowhere"));
    const auto output = run({"validate", good, bad});
    EXPECT_TRUE(output.status.exited && output.status.code == 1) << output.status.describe();
    EXPECT_NE(everything(output).find("flow_to_nowhere"), std::string::npos) << everything(output);
    EXPECT_NE(everything(output).find("bad.bpmn"), std::string::npos) << everything(output);
}

TEST_F(Cli, ValidateRefusesUnsafeAndBrokenDocuments) {
    for (const auto& [name, text] : std::vector<std::pair<std::string, std::string>>{
             {"laughs.bpmn", bpmn::billion_laughs("L")},
             {"xxe.bpmn", bpmn::external_entity("X")},
             {"deep.bpmn", bpmn::deeply_nested("D", 5000)},
             {"garbage.bpmn", "not xml"}}) {
        const auto output = run({"validate", write(name, text)});
        EXPECT_TRUE(output.status.exited && output.status.code == 1)
            << name << ": " << output.status.describe() << "\n"
            << everything(output);
    }
}

TEST_F(Cli, ValidateOfAMissingFileFailsNamingIt) {
    const std::string missing = (dir_ / "does-not-exist.bpmn").string();
    const auto output = run({"validate", missing});
    EXPECT_FALSE(output.status.success());
    EXPECT_NE(everything(output).find("does-not-exist.bpmn"), std::string::npos)
        << everything(output);
    const auto nothing = run({"validate"});
    EXPECT_FALSE(nothing.status.success()) << "validate without files";
}

/// The flat keys documented in config/pythmata.toml.
std::set<std::string> documented_keys() {
    std::ifstream file(std::string(PYTHMATA_SOURCE_DIR) + "/config/pythmata.toml");
    std::set<std::string> keys;
    std::string line;
    const std::regex setting(R"(^([a-z0-9_]+)\s*=)");
    std::smatch match;
    while (std::getline(file, line)) {
        if (std::regex_search(line, match, setting)) {
            keys.insert(match[1]);
        }
    }
    return keys;
}

TEST_F(Cli, ConfigPrintsEveryEffectiveSetting) {
    const auto keys = documented_keys();
    ASSERT_GT(keys.size(), 20u);
    const auto output = run({"config"}, {{"PYTHMATA_HTTP_PORT", "18123"},
                                         {"PYTHMATA_LOG_LEVEL", "debug"},
                                         {"PYTHMATA_DB_URL", "sqlite:///tmp/elsewhere.db"}});
    ASSERT_TRUE(output.status.success()) << output.status.describe() << "\n" << output.err;
    for (const auto& key : keys) {
        EXPECT_TRUE(std::regex_search(output.out, std::regex("(^|\n)" + key + "\\s*=")))
            << key << " missing from\n"
            << output.out;
    }
    EXPECT_TRUE(std::regex_search(output.out, std::regex(R"((^|\n)http_port\s*=\s*18123\b)")))
        << output.out;
    EXPECT_TRUE(std::regex_search(output.out, std::regex(R"((^|\n)log_level\s*=\s*"debug")")))
        << output.out;
    EXPECT_NE(output.out.find("sqlite:///tmp/elsewhere.db"), std::string::npos) << output.out;
}

TEST_F(Cli, ConfigReadsTheFileAndTheEnvironmentWins) {
    const auto file = write("custom.toml", "http_port = 18124\nmax_body_size = 4096\n");
    const auto from_file = run({"config", "--config", file});
    ASSERT_TRUE(from_file.status.success()) << from_file.err;
    EXPECT_TRUE(std::regex_search(from_file.out, std::regex(R"((^|\n)http_port\s*=\s*18124\b)")))
        << from_file.out;
    EXPECT_TRUE(std::regex_search(from_file.out, std::regex(R"((^|\n)max_body_size\s*=\s*4096\b)")))
        << from_file.out;
    const auto overridden = run({"config", "--config", file}, {{"PYTHMATA_HTTP_PORT", "18125"}});
    ASSERT_TRUE(overridden.status.success()) << overridden.err;
    EXPECT_TRUE(std::regex_search(overridden.out, std::regex(R"((^|\n)http_port\s*=\s*18125\b)")))
        << overridden.out;
    // The printed settings are a valid config file that gives the same settings back.
    const auto round_trip = write("round.toml", overridden.out);
    const auto again = run({"config", "--config", round_trip});
    ASSERT_TRUE(again.status.success()) << again.err;
    EXPECT_EQ(again.out, overridden.out);
}

TEST_F(Cli, ABadSettingStopsStartUpNamingTheKey) {
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"PYTHMATA_HTTP_PORT", "not-a-port"}, {"PYTHMATA_HTTP_PORT", "70000"},
        {"PYTHMATA_LOG_LEVEL", "loud"},       {"PYTHMATA_MAX_BODY_SIZE", "-5"},
        {"PYTHMATA_DB_URL", "mysql://nope"},
    };
    for (const auto& [name, value] : bad) {
        std::string key = name.substr(std::string("PYTHMATA_").size());
        for (auto& c : key) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        for (const std::string command : {"config", "serve"}) {
            const auto output = run({command}, {{name, value}});
            EXPECT_FALSE(output.status.success())
                << command << " with " << name << "=" << value << ": " << output.status.describe();
            EXPECT_NE(output.err.find(key), std::string::npos)
                << command << " with " << name << "=" << value << " should name " << key
                << " on stderr:\n"
                << everything(output);
            EXPECT_EQ(output.out.find("listening on"), std::string::npos);
        }
    }
}

TEST_F(Cli, AnUnknownKeyOrAMissingConfigFileStopsStartUp) {
    const auto file = write("typo.toml", "htp_port = 8000\n");
    const auto typo = run({"serve", "--config", file});
    EXPECT_FALSE(typo.status.success());
    EXPECT_NE(typo.err.find("htp_port"), std::string::npos) << everything(typo);
    const auto missing = run({"serve", "--config", (dir_ / "absent.toml").string()});
    EXPECT_FALSE(missing.status.success());
    EXPECT_NE(missing.err.find("absent.toml"), std::string::npos) << everything(missing);
}

TEST_F(Cli, ServeWithAConfigFileListensWhereTheFileSays) {
    // `serve --config FILE`: the file's settings apply (here the store path and the log level).
    const std::string db = (dir_ / "from-file.db").string();
    const auto file =
        write("serve.toml", "db_url = \"sqlite://" + db + "\"\nlog_level = \"warn\"\n");
    ServerProcess::Options options;
    options.args = {"serve", "--config", file};
    options.default_store = false;
    auto server = ServerProcess::start(options);
    ASSERT_TRUE(server.ok()) << server.error().message;
    HttpClient client(server.value()->port());
    EXPECT_EQ(status_of(client.get("/health")), 200);
    EXPECT_TRUE(fs::exists(db)) << "the store was not opened where configured";
    PYTHMATA_ASSERT_OK(status, server.value()->terminate());
    EXPECT_TRUE(status.success()) << status.describe();
}

}  // namespace
}  // namespace pythmata::test
