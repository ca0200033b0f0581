#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pythmata/bpmn/parser.hpp"

namespace pythmata::bpmn {
namespace {

namespace fs = std::filesystem;

fs::path shared_dir() {
    if (const char* env = std::getenv("PYTHMATA_SHARED_DIR")) {
        return env;
    }
    return PYTHMATA_SHARED_DIR;
}

std::string read_file(const fs::path& path) {
    std::ifstream in{path, std::ios::binary};
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

std::string describe(const std::vector<Diagnostic>& diagnostics) {
    std::string out;
    for (const Diagnostic& d : diagnostics) {
        out += "  [" + d.element_id + "] " + d.message + "\n";
    }
    return out;
}

bool has_process(const Definitions& defs, const std::string& id) {
    for (const Process& p : defs.processes) {
        if (p.id == id) {
            return true;
        }
    }
    return false;
}

TEST(BpmnCorpus, EveryPublicModelParsesWithoutErrorsAndHoldsItsManifestProcess) {
    const fs::path dir = shared_dir() / "bpmn-corpus" / "public";
    if (!fs::is_directory(dir)) {
        GTEST_SKIP() << "external BPMN corpus not found at " << dir
                     << "; corpus test skipped (set PYTHMATA_SHARED_DIR to run it)";
    }
    std::map<std::string, std::string> expected_process;
    std::ifstream manifest{dir / "manifest.jsonl"};
    for (std::string line; std::getline(manifest, line);) {
        if (line.empty()) {
            continue;
        }
        const auto entry = nlohmann::json::parse(line);
        expected_process[entry.at("file").get<std::string>()] =
            entry.at("process_id").get<std::string>();
    }
    int parsed = 0;
    for (const auto& file : fs::directory_iterator{dir}) {
        if (file.path().extension() != ".bpmn") {
            continue;
        }
        SCOPED_TRACE(file.path().filename().string());
        const auto result = parse(read_file(file.path()));
        EXPECT_TRUE(result.ok()) << describe(result.error());
        if (!result.ok()) {
            continue;
        }
        ++parsed;
        const auto it = expected_process.find(file.path().filename().string());
        if (it != expected_process.end()) {
            EXPECT_TRUE(has_process(result->definitions, it->second))
                << "manifest process_id " << it->second << " missing";
        }
    }
    EXPECT_GT(parsed, 0);
    EXPECT_FALSE(expected_process.empty());
}

TEST(BpmnCorpus, PeerBenchmarkModelsParseWithoutErrors) {
    const fs::path dir = shared_dir() / "peers" / "bpmn-engine";
    if (!fs::is_directory(dir)) {
        GTEST_SKIP() << "peer models not found at " << dir << "; test skipped";
    }
    for (const char* name : {"straight.bpmn", "parallel.bpmn", "usertask.bpmn"}) {
        SCOPED_TRACE(name);
        const auto result = parse(read_file(dir / name));
        ASSERT_TRUE(result.ok()) << describe(result.error());
        ASSERT_FALSE(result->definitions.processes.empty());
        EXPECT_TRUE(result->definitions.processes.front().executable);
    }
}

}  // namespace
}  // namespace pythmata::bpmn
