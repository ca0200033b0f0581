#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pythmata/app/records.hpp"
#include "pythmata/common/result.hpp"

namespace pythmata::app {

/// What a client sends to deploy: the document, and for PUT /processes/{key} the key it must hold.
struct DeployRequest {
    std::string bpmn_xml;
    std::optional<std::string> name;  ///< overrides the first process's name
    std::optional<std::string>
        required_key;  ///< PUT: 409 PROCESS_KEY_MISMATCH unless the document holds it
};

struct DeployResult {
    DefinitionRecord primary;                ///< the first executable process, with bpmn_xml
    std::vector<DefinitionRecord> deployed;  ///< every executable process (key, version, id)
    bool created = false;  ///< false: identical to the latest version (200, not 201)
};

/// The definitions use cases (API.md, "Process definitions"). Blocking calls: run them off the
/// I/O threads. Thread-safe. Error codes: INVALID_BPMN (422, context.errors), PROCESS_NOT_FOUND,
/// PROCESS_VERSION_NOT_FOUND (404), PROCESS_KEY_MISMATCH, PROCESS_HAS_INSTANCES (409),
/// BPMN_TOO_LARGE (413), and the store's DB_UNAVAILABLE / DB_POOL_TIMEOUT (503).
class DefinitionService {
  public:
    virtual ~DefinitionService() = default;

    [[nodiscard]] virtual Result<DeployResult> deploy(DeployRequest request) = 0;
    [[nodiscard]] virtual Result<PageResult<DefinitionRecord>> list(const DefinitionFilter& filter,
                                                                    const PageRequest& page) = 0;
    [[nodiscard]] virtual Result<DefinitionRecord> latest(const std::string& key) = 0;
    [[nodiscard]] virtual Result<PageResult<DefinitionRecord>> versions(
        const std::string& key, const PageRequest& page) = 0;
    [[nodiscard]] virtual Result<DefinitionRecord> version(const std::string& key, int version) = 0;
    [[nodiscard]] virtual Status remove(const std::string& key, bool cascade) = 0;

    /// The page `list(filter, page)` answers, when this replica holds it in memory; null when
    /// not (then call `list`). Never blocks on the store or the network: safe on an I/O thread.
    [[nodiscard]] virtual std::shared_ptr<const PageResult<DefinitionRecord>> cached_list(
        const DefinitionFilter& /*filter*/, const PageRequest& /*page*/) {
        return nullptr;
    }
};

}  // namespace pythmata::app
