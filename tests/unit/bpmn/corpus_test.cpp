#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
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

std::string kind_tag(EventKind kind) {
    switch (kind) {
        case EventKind::kMessage:
            return "message";
        case EventKind::kTimer:
            return "timer";
        case EventKind::kSignal:
            return "signal";
        case EventKind::kError:
            return "error";
        case EventKind::kEscalation:
            return "escalation";
        case EventKind::kTerminate:
            return "terminate";
        case EventKind::kLink:
            return "link";
        case EventKind::kCompensation:
            return "compensate";
        case EventKind::kConditional:
            return "conditional";
        case EventKind::kCancel:
            return "cancel";
        case EventKind::kNone:
            break;
    }
    return "none";
}

// Does the parsed model contain what the manifest's independent annotation says the file
// holds ("userTask", "boundaryEvent:timer", "multiInstance(sequential)", ...)?
bool model_has(const Definitions& defs, const std::string& tag) {
    // Parts the parser ignores by design (lanes, data objects, pools) are not checked.
    if (tag == "collaboration" || tag == "laneSet" || tag == "dataObject" ||
        tag == "dataObjectReference") {
        return true;
    }
    for (const Process& p : defs.processes) {
        for (const SequenceFlow& f : p.flows) {
            if (tag == "conditionalSequenceFlow" && !f.condition.empty()) {
                return true;
            }
        }
        for (const Element& e : p.elements) {
            const auto colon = tag.find(':');
            const bool matched =
                (tag == "defaultFlow" && e.default_flow != kNoFlow) ||
                (tag == "compensationHandler" && e.is_for_compensation) ||
                (tag == "eventSubProcess" && e.triggered_by_event) ||
                (tag == "standardLoop" && e.standard_loop.has_value()) ||
                (tag == "multiInstance(parallel)" && e.multi_instance &&
                 !e.multi_instance->sequential) ||
                (tag == "multiInstance(sequential)" && e.multi_instance &&
                 e.multi_instance->sequential) ||
                (tag == "boundaryEvent(interrupting)" && e.type == ElementType::kBoundaryEvent &&
                 e.interrupting) ||
                (tag == "boundaryEvent(non-interrupting)" &&
                 e.type == ElementType::kBoundaryEvent && !e.interrupting) ||
                (colon != std::string::npos && e.type_name == tag.substr(0, colon) &&
                 kind_tag(e.event.kind) == tag.substr(colon + 1)) ||
                e.type_name == tag;
            if (matched) {
                return true;
            }
        }
    }
    return false;
}

TEST(BpmnCorpus, ParsedModelsContainEveryElementTheManifestLists) {
    const fs::path dir = shared_dir() / "bpmn-corpus" / "public";
    if (!fs::is_directory(dir)) {
        GTEST_SKIP() << "external BPMN corpus not found at " << dir
                     << "; corpus test skipped (set PYTHMATA_SHARED_DIR to run it)";
    }
    std::ifstream manifest{dir / "manifest.jsonl"};
    int checked = 0;
    for (std::string line; std::getline(manifest, line);) {
        if (line.empty()) {
            continue;
        }
        const auto entry = nlohmann::json::parse(line);
        std::vector<std::pair<std::string, nlohmann::json>> files{
            {entry.at("file").get<std::string>(), entry.at("elements")}};
        for (const auto& companion : entry.value("companion_files", nlohmann::json::array())) {
            files.emplace_back(companion.at("file").get<std::string>(),
                               companion.value("elements", nlohmann::json::array()));
        }
        for (const auto& [file, elements] : files) {
            SCOPED_TRACE(file);
            const auto result = parse(read_file(dir / file));
            ASSERT_TRUE(result.ok()) << describe(result.error());
            for (const auto& tag : elements) {
                EXPECT_TRUE(model_has(result->definitions, tag.get<std::string>()))
                    << "manifest lists " << tag << " but the parsed model has none";
                ++checked;
            }
        }
    }
    EXPECT_GT(checked, 0);
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
