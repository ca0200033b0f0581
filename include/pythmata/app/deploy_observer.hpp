#pragma once

#include <vector>

#include "pythmata/app/records.hpp"
#include "pythmata/common/result.hpp"

namespace pythmata::app {

/// Told by DefinitionCatalog about every newly created definition version, and about the
/// unchanged definitions of an identical redeploy, after the definitions are stored and before
/// the deploy call answers. The runtime uses it to write the start-event rows (timer, message and
/// signal start events), and to write them on a redeploy when the first deploy could not.
class DeployObserver {
  public:
    virtual ~DeployObserver() = default;
    /// An error fails the deploy call (the definitions stay stored).
    [[nodiscard]] virtual Status definitions_deployed(
        const std::vector<DefinitionRecord>& created) = 0;
    /// An identical redeploy found `existing` (already stored): writes their start-event rows
    /// if an earlier deploy's write failed, idempotently. An error fails the deploy call.
    [[nodiscard]] virtual Status definitions_redeployed(
        const std::vector<DefinitionRecord>& existing) {
        (void)existing;
        return {};
    }
};

}  // namespace pythmata::app
