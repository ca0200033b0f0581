#pragma once

// The external BPMN corpus (bpmn-corpus/public: cases.json, manifest.jsonl and the models) as
// both conformance runners read it: the in-process runner (engine_conformance_test.cpp) and the
// REST runner (rest_conformance_test.cpp). The skip list lives here, once: a case or a run is
// skipped when cases.json marks it `engine_specific` (with the reason, listed in docs/bpmn.md
// under "Engine-specific corpus cases"), so both runners have the same pass list.

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace pythmata::conformance {

/// The corpus directory: PYTHMATA_BPMN_CORPUS at run time, else <shared>/bpmn-corpus/public
/// (PYTHMATA_SHARED_DIR is a compile definition of both runners).
inline std::filesystem::path corpus_dir() {
    if (const char* env = std::getenv("PYTHMATA_BPMN_CORPUS")) {
        return env;
    }
    return std::filesystem::path(PYTHMATA_SHARED_DIR) / "bpmn-corpus" / "public";
}

/// The whole file as bytes; empty when it cannot be read.
inline std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// Every case of cases.json (empty when the corpus is absent or the file is not a JSON array).
inline std::vector<nlohmann::json> load_cases() {
    std::vector<nlohmann::json> out;
    auto path = corpus_dir() / "cases.json";
    if (!std::filesystem::exists(path)) {
        return out;
    }
    nlohmann::json all = nlohmann::json::parse(read_text(path), nullptr, false);
    if (all.is_array()) {
        for (auto& c : all) {
            out.push_back(c);
        }
    }
    return out;
}

/// Case ids (the test parameters); the case itself is looked up by id.
inline std::vector<std::string> case_ids() {
    std::vector<std::string> ids;
    for (const auto& c : load_cases()) {
        ids.push_back(c["id"].get<std::string>());
    }
    return ids;
}

/// The case with this id, or a discarded/null value when there is none.
inline nlohmann::json find_case(const std::string& id) {
    for (auto& c : load_cases()) {
        if (c["id"] == id) {
            return c;
        }
    }
    return nlohmann::json();
}

/// Why a whole case is skipped (its `engine_specific` reason), or nullopt when it runs.
inline std::optional<std::string> case_skip_reason(const nlohmann::json& c) {
    if (c.contains("engine_specific") && !c["engine_specific"].is_null()) {
        const auto& why = c["engine_specific"];
        return why.is_string() ? why.get<std::string>() : why.dump();
    }
    return std::nullopt;
}

/// Whether one run of a case is skipped (marked `engine_specific` in cases.json).
inline bool run_skipped(const nlohmann::json& run) {
    return run.contains("engine_specific") && !run["engine_specific"].is_null();
}

/// A gtest-safe test name for a case id (every non-alphanumeric character becomes '_').
inline std::string case_name(const ::testing::TestParamInfo<std::string>& info) {
    std::string n = info.param;
    for (auto& ch : n) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) {
            ch = '_';
        }
    }
    return n;
}

}  // namespace pythmata::conformance
