#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pythmata/common/time.hpp"

namespace pythmata::app {

/// A stored process definition: one version of one process key.
struct DefinitionRecord {
    std::string id;   ///< UUID
    std::string key;  ///< the BPMN process id
    std::string name;
    int version = 0;  ///< 1, 2, ... per key
    std::string
        bpmn_xml;      ///< the whole document it was deployed in; may be left empty by list queries
    std::string hash;  ///< SHA-256 (hex) of the document, to detect identical redeploys
    TimePoint created_at;
};

/// One process of a document to deploy.
struct NewDefinition {
    std::string key;
    std::string name;
    std::string bpmn_xml;
    std::string hash;
};

struct DeployedDefinition {
    DefinitionRecord record;
    bool created = false;  ///< false: the document was identical to the latest version
};

struct PageRequest {
    int page = 1;        ///< from 1
    int page_size = 20;  ///< 1..1000
};

template <typename T>
struct PageResult {
    std::vector<T> items;
    std::int64_t total = 0;
};

struct DefinitionFilter {
    std::optional<std::string> key;   ///< exact key
    std::optional<std::string> name;  ///< substring of the name, case-insensitive
};

}  // namespace pythmata::app
