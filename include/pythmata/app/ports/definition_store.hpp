#pragma once

#include <optional>
#include <string>
#include <vector>

#include "pythmata/app/records.hpp"
#include "pythmata/common/result.hpp"

namespace pythmata::app {

/// Durable storage of process definitions. Implemented by store/sqlite and store/postgres; both
/// pass tests/integration/store. Calls block: the http layer runs them on its blocking pool,
/// never on I/O threads. Thread-safe. Failures are values: DB_UNAVAILABLE, DB_POOL_TIMEOUT
/// (ErrorKind::kUnavailable, with retry_after_seconds), never vendor exceptions.
class DefinitionStore {
  public:
    virtual ~DefinitionStore() = default;

    /// Deploys every definition of one document in one transaction: for each key, when `hash`
    /// equals the latest version's hash the latest is returned with created=false, else version
    /// latest+1 is inserted. Safe against concurrent deploys of the same key from several
    /// replicas (unique (key, version), retried).
    [[nodiscard]] virtual Result<std::vector<DeployedDefinition>> deploy(
        const std::vector<NewDefinition>& definitions, TimePoint now) = 0;

    /// The latest version of `key`, with bpmn_xml; nullopt when the key is unknown.
    [[nodiscard]] virtual Result<std::optional<DefinitionRecord>> latest(
        const std::string& key) = 0;
    /// Version `version` of `key`, with bpmn_xml.
    [[nodiscard]] virtual Result<std::optional<DefinitionRecord>> version(const std::string& key,
                                                                          int version) = 0;
    /// By definition id (UUID), with bpmn_xml.
    [[nodiscard]] virtual Result<std::optional<DefinitionRecord>> by_id(const std::string& id) = 0;

    /// The latest version of each key matching `filter`, newest first, without bpmn_xml.
    [[nodiscard]] virtual Result<PageResult<DefinitionRecord>> list_latest(
        const DefinitionFilter& filter, const PageRequest& page) = 0;
    /// Every version of `key`, newest first, without bpmn_xml.
    [[nodiscard]] virtual Result<PageResult<DefinitionRecord>> versions(
        const std::string& key, const PageRequest& page) = 0;

    /// Instances of any version of `key` that have not ended (RUNNING, SUSPENDED, ERROR).
    [[nodiscard]] virtual Result<std::int64_t> count_unfinished_instances(
        const std::string& key) = 0;
    /// Deletes every version of `key` and every instance of it with its tasks, jobs, timers,
    /// subscriptions, incidents and history; without `cascade` only when none is unfinished
    /// (else 409 PROCESS_HAS_INSTANCES, checked in every transaction). The instances go in
    /// transactions of db_delete_batch_size, the versions with the last one: a key with more
    /// instances than one transaction can delete within db_statement_timeout_ms is deleted in
    /// steps, and a call cut short has deleted some instances but kept every version, which the
    /// next call finishes. Returns how many versions were deleted (0: unknown key).
    [[nodiscard]] virtual Result<std::int64_t> delete_key(const std::string& key, bool cascade) = 0;
};

/// Liveness of a dependency, for /health/ready.
class HealthCheck {
  public:
    virtual ~HealthCheck() = default;
    /// Empty when reachable; else a short reason. Must answer within about a second.
    [[nodiscard]] virtual Status ping() = 0;
};

}  // namespace pythmata::app
