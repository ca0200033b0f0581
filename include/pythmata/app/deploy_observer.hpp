#pragma once

#include <vector>

#include "pythmata/app/records.hpp"
#include "pythmata/common/result.hpp"

namespace pythmata::app {

/// Told by DefinitionCatalog about every newly created definition version (not about identical
/// redeploys), after the definitions are stored and before the deploy call answers. The runtime
/// uses it to write the start-event rows (timer, message and signal start events).
class DeployObserver {
  public:
    virtual ~DeployObserver() = default;
    /// An error fails the deploy call (the definitions stay stored).
    [[nodiscard]] virtual Status definitions_deployed(
        const std::vector<DefinitionRecord>& created) = 0;
};

}  // namespace pythmata::app
