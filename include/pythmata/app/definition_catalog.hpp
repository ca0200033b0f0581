#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "pythmata/app/definition_service.hpp"
#include "pythmata/app/deploy_observer.hpp"
#include "pythmata/app/ports/clock.hpp"
#include "pythmata/app/ports/definition_store.hpp"
#include "pythmata/app/ports/remote_cache.hpp"
#include "pythmata/app/ports/telemetry.hpp"
#include "pythmata/app/settings.hpp"

namespace pythmata::app {

/// The definitions use cases over the store, with a two-level cache for lookups:
/// L1 in process (records by id, which never change, and the latest record per key, which
/// expires after `definition_ttl`), L2 the RemoteCache when one is given (same keys, same TTL),
/// then the store. Deploys and deletes drop the key from this replica's L1, erase it from L2,
/// and publish the key on kInvalidationChannel so other replicas drop theirs. A message names the
/// replica that sent it ("<replica uuid>|<key>"; a bare key from an older replica is understood
/// too), and a replica skips its own: it dropped the key when it published, and its own message,
/// coming back later, would drop a latest entry loaded since (a cache miss after every deploy).
///
/// The list of latest versions is kept in process too, one page per (filter, page) query, at
/// most `l1_max_entries` pages, each for at most `definition_ttl`: every invalidation of any key
/// (a deploy that creates a version, a delete, or another replica's message on
/// kInvalidationChannel) drops every page, and a page read from the store while an invalidation
/// happened is not kept, so no page older than the last invalidation is ever served.
///
/// Thread-safe. The store, cache, telemetry and clock must outlive the catalog. Blocking: calls
/// go to the store and the cache synchronously, except `cached_list`.
class DefinitionCatalog final : public DefinitionService {
  public:
    static constexpr const char* kInvalidationChannel = "pythmata:definitions:invalidate";

    /// `remote` may be null (no Redis configured). Subscribes to invalidations when given.
    DefinitionCatalog(DefinitionStore& store, RemoteCache* remote, Telemetry& telemetry,
                      const Clock& clock, const CacheSettings& cache, const EngineSettings& engine);

    [[nodiscard]] Result<DeployResult> deploy(DeployRequest request) override;
    [[nodiscard]] Result<PageResult<DefinitionRecord>> list(const DefinitionFilter& filter,
                                                            const PageRequest& page) override;
    [[nodiscard]] Result<DefinitionRecord> latest(const std::string& key) override;
    [[nodiscard]] Result<PageResult<DefinitionRecord>> versions(const std::string& key,
                                                                const PageRequest& page) override;
    [[nodiscard]] Result<DefinitionRecord> version(const std::string& key, int version) override;
    [[nodiscard]] Status remove(const std::string& key, bool cascade) override;
    [[nodiscard]] std::shared_ptr<const PageResult<DefinitionRecord>> cached_list(
        const DefinitionFilter& filter, const PageRequest& page) override;

    /// The latest version of `key` if this replica's memory (L1) holds it, else null; never
    /// blocks (no Redis, no store).
    [[nodiscard]] std::shared_ptr<const DefinitionRecord> cached_latest(const std::string& key);

    /// A definition by id (cached), for the runtime: instances name their definition by id.
    [[nodiscard]] Result<DefinitionRecord> by_id(const std::string& id);

    /// Drops `key`'s latest-version entry and every cached list page from this replica's L1
    /// (what an invalidation does).
    void forget(const std::string& key);

    /// Registers the one observer told about newly created versions (null: none). Call before
    /// serving; the observer must outlive the catalog or be reset to null first.
    void set_deploy_observer(DeployObserver* observer) { observer_ = observer; }

  private:
    struct LatestEntry {
        std::shared_ptr<const DefinitionRecord> record;
        TimePoint expires_at;
    };
    struct ListEntry {
        std::shared_ptr<const PageResult<DefinitionRecord>> page;
        TimePoint expires_at;
    };

    [[nodiscard]] std::shared_ptr<const DefinitionRecord> l1_latest(const std::string& key);
    [[nodiscard]] std::shared_ptr<const DefinitionRecord> l1_by_id(const std::string& id);
    void l1_put(const std::shared_ptr<const DefinitionRecord>& record, bool as_latest);
    void invalidate(const std::string& key);
    [[nodiscard]] std::optional<DefinitionRecord> l2_get(const std::string& cache_key);
    void l2_put(const std::string& cache_key, const DefinitionRecord& record);

    DefinitionStore& store_;
    RemoteCache* remote_;
    const std::string sender_;  ///< this catalog's id in its invalidation messages
    DeployObserver* observer_ = nullptr;
    Telemetry& telemetry_;
    const Clock& clock_;
    CacheSettings cache_;
    EngineSettings engine_;

    std::mutex mutex_;
    std::unordered_map<std::string, LatestEntry> latest_;  // key -> latest
    std::unordered_map<std::string, std::shared_ptr<const DefinitionRecord>> by_id_;
    std::list<std::string> by_id_order_;  // insertion order, oldest first, for eviction
    std::unordered_map<std::string, ListEntry> lists_;  // list_key(filter, page) -> page
    std::uint64_t list_generation_ = 0;                 // bumped by every invalidation
};

}  // namespace pythmata::app
