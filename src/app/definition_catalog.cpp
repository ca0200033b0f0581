#include "pythmata/app/definition_catalog.hpp"

#include <algorithm>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "pythmata/bpmn/parser.hpp"
#include "pythmata/common/sha256.hpp"
#include "pythmata/common/uuid.hpp"
#include "pythmata/engine/compiled_process.hpp"

namespace pythmata::app {
namespace {

/// An invalidation message: "<sender uuid>|<key>", or a bare key (a replica of an earlier
/// version, which sent no sender); the sender is empty then.
std::pair<std::string_view, std::string_view> split_invalidation(std::string_view message) {
    constexpr std::size_t kUuid = 36;
    if (message.size() > kUuid && message[kUuid] == '|' && is_uuid(message.substr(0, kUuid))) {
        return {message.substr(0, kUuid), message.substr(kUuid + 1)};
    }
    return {std::string_view{}, message};
}

std::string latest_cache_key(const std::string& key) {
    return "pythmata:def:latest:" + key;
}
std::string id_cache_key(const std::string& id) {
    return "pythmata:def:id:" + id;
}

nlohmann::json to_json(const DefinitionRecord& r) {
    return {{"id", r.id},
            {"key", r.key},
            {"name", r.name},
            {"version", r.version},
            {"xml", r.bpmn_xml},
            {"hash", r.hash},
            {"created_at", to_epoch_ms(r.created_at)}};
}

std::optional<DefinitionRecord> from_json(std::string_view text) {
    auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) {
        return std::nullopt;
    }
    try {
        DefinitionRecord r;
        r.id = j.at("id").get<std::string>();
        r.key = j.at("key").get<std::string>();
        r.name = j.at("name").get<std::string>();
        r.version = j.at("version").get<int>();
        r.bpmn_xml = j.at("xml").get<std::string>();
        r.hash = j.at("hash").get<std::string>();
        r.created_at = from_epoch_ms(j.at("created_at").get<std::int64_t>());
        return r;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;  // a foreign or outdated entry: treat as a miss
    }
}

/// One list query as a map key: lengths keep ("a", "b,c") and ("a,b", "c") apart.
std::string list_key(const DefinitionFilter& filter, const PageRequest& page) {
    std::string out = std::to_string(page.page) + ',' + std::to_string(page.page_size);
    for (const auto& part : {filter.key, filter.name}) {
        out += part ? ',' + std::to_string(part->size()) + ':' + *part : std::string(",-");
    }
    return out;
}

Error process_not_found(const std::string& key) {
    Error e = Error::not_found("PROCESS_NOT_FOUND", "no process definition with key '" + key + "'");
    e.context = {{"key", key}};
    return e;
}

}  // namespace

DefinitionCatalog::DefinitionCatalog(DefinitionStore& store, RemoteCache* remote,
                                     Telemetry& telemetry, const Clock& clock,
                                     const CacheSettings& cache, const EngineSettings& engine)
    : store_(store),
      remote_(remote),
      sender_(new_uuid()),
      telemetry_(telemetry),
      clock_(clock),
      cache_(cache),
      engine_(engine) {
    if (remote_ != nullptr) {
        remote_->subscribe(kInvalidationChannel, [this](std::string_view message) {
            const auto [sender, key] = split_invalidation(message);
            if (sender != sender_) {
                forget(std::string(key));
            }
        });
    }
}

Result<DeployResult> DefinitionCatalog::deploy(DeployRequest request) {
    if (request.bpmn_xml.size() > engine_.max_bpmn_size) {
        Error e = Error::too_large("BPMN_TOO_LARGE", "the BPMN document is larger than " +
                                                         std::to_string(engine_.max_bpmn_size) +
                                                         " bytes (setting max_bpmn_size)");
        e.context = {{"limit", engine_.max_bpmn_size}, {"size", request.bpmn_xml.size()}};
        return e;
    }
    bpmn::ParseLimits limits;
    limits.max_document_bytes = engine_.max_bpmn_size;
    limits.max_elements = engine_.max_bpmn_elements;
    auto parsed = bpmn::parse(request.bpmn_xml, limits);
    if (!parsed) {
        nlohmann::json errors = nlohmann::json::array();
        for (const auto& d : parsed.error()) {
            errors.push_back({{"element_id", d.element_id}, {"message", d.message}});
        }
        std::string first = parsed.error().empty() ? "invalid document" : parsed.error()[0].message;
        return Error::invalid("INVALID_BPMN", "the BPMN document is invalid: " + first,
                              {{"errors", std::move(errors)}});
    }

    // Semantic checks: every expression, script and timer of every executable process must
    // compile, so that nothing invalid is stored.
    engine::CompileOptions options;
    options.script_max_instructions = engine_.script_max_instructions;
    options.script_max_memory = engine_.script_max_memory;
    options.script_timeout_ms = engine_.script_timeout.count();
    nlohmann::json compile_errors = nlohmann::json::array();
    for (const auto& process : parsed->definitions.processes) {
        if (!process.executable) {
            continue;
        }
        auto compiled = engine::compile(parsed->definitions, process.id, options);
        if (!compiled) {
            for (const auto& d : compiled.error()) {
                compile_errors.push_back({{"element_id", d.element_id}, {"message", d.message}});
            }
        }
    }
    if (!compile_errors.empty()) {
        std::string first = compile_errors[0]["message"].get<std::string>();
        return Error::invalid("INVALID_BPMN", "the BPMN document is invalid: " + first,
                              {{"errors", std::move(compile_errors)}});
    }

    const std::string hash = sha256_hex(request.bpmn_xml);
    std::vector<NewDefinition> to_deploy;
    for (const auto& process : parsed->definitions.processes) {
        if (!process.executable) {
            continue;
        }
        NewDefinition d{process.id, process.name, request.bpmn_xml, hash};
        if (to_deploy.empty() && request.name && !request.name->empty()) {
            d.name = *request.name;
        }
        to_deploy.push_back(std::move(d));
    }
    if (to_deploy.empty()) {
        return Error::invalid(
            "INVALID_BPMN", "the document holds no executable process",
            {{"errors",
              {{{"element_id", ""}, {"message", "no process with isExecutable=\"true\""}}}}});
    }
    if (request.required_key) {
        auto it = std::find_if(to_deploy.begin(), to_deploy.end(), [&](const NewDefinition& d) {
            return d.key == *request.required_key;
        });
        if (it == to_deploy.end()) {
            Error e = Error::conflict(
                "PROCESS_KEY_MISMATCH",
                "the document holds no executable process with id '" + *request.required_key + "'");
            e.context = {{"key", *request.required_key}};
            return e;
        }
        // The key named in the path is the primary definition of the answer.
        std::rotate(to_deploy.begin(), it, it + 1);
    }

    auto stored = store_.deploy(to_deploy, clock_.now());
    if (!stored) {
        return std::move(stored).error();
    }
    DeployResult result;
    for (auto& outcome : stored.value()) {
        result.created = result.created || outcome.created;
        if (outcome.created) {
            invalidate(outcome.record.key);
        }
        result.deployed.push_back(outcome.record);
    }
    result.primary = result.deployed.front();
    for (const auto& r : result.deployed) {
        l1_put(std::make_shared<const DefinitionRecord>(r), /*as_latest=*/true);
    }
    if (observer_ != nullptr) {
        std::vector<DefinitionRecord> created;
        for (const auto& outcome : stored.value()) {
            if (outcome.created) {
                created.push_back(outcome.record);
            }
        }
        if (!created.empty()) {
            if (auto observed = observer_->definitions_deployed(created); !observed) {
                return std::move(observed).error();
            }
        }
        // An identical redeploy repairs the start-event rows a failed first deploy left out.
        std::vector<DefinitionRecord> existing;
        for (const auto& outcome : stored.value()) {
            if (!outcome.created) {
                existing.push_back(outcome.record);
            }
        }
        if (!existing.empty()) {
            if (auto observed = observer_->definitions_redeployed(existing); !observed) {
                return std::move(observed).error();
            }
        }
    }
    return result;
}

Result<PageResult<DefinitionRecord>> DefinitionCatalog::list(const DefinitionFilter& filter,
                                                             const PageRequest& page) {
    if (auto hit = cached_list(filter, page)) {
        return *hit;
    }
    std::uint64_t generation = 0;
    {
        std::lock_guard lock(mutex_);
        generation = list_generation_;
    }
    auto found = store_.list_latest(filter, page);
    if (!found || cache_.l1_max_entries == 0) {
        return found;
    }
    auto page_ptr = std::make_shared<const PageResult<DefinitionRecord>>(found.value());
    std::lock_guard lock(mutex_);
    // An invalidation while the store answered may have dropped a newer page than this one.
    if (generation == list_generation_) {
        if (lists_.size() >= cache_.l1_max_entries) {
            lists_.clear();  // rare: more distinct queries than the cache holds; start over
        }
        lists_[list_key(filter, page)] = {std::move(page_ptr),
                                          clock_.now() + cache_.definition_ttl};
    }
    return found;
}

std::shared_ptr<const PageResult<DefinitionRecord>> DefinitionCatalog::cached_list(
    const DefinitionFilter& filter, const PageRequest& page) {
    const std::string k = list_key(filter, page);
    std::lock_guard lock(mutex_);
    auto it = lists_.find(k);
    if (it == lists_.end()) {
        return nullptr;
    }
    if (clock_.now() >= it->second.expires_at) {
        lists_.erase(it);
        return nullptr;
    }
    return it->second.page;
}

Result<DefinitionRecord> DefinitionCatalog::latest(const std::string& key) {
    if (auto hit = l1_latest(key)) {
        telemetry_.definition_cache_lookup(Telemetry::CacheLevel::kL1, true);
        return *hit;
    }
    telemetry_.definition_cache_lookup(Telemetry::CacheLevel::kL1, false);
    if (auto l2 = l2_get(latest_cache_key(key))) {
        l1_put(std::make_shared<const DefinitionRecord>(*l2), true);
        return *std::move(l2);
    }
    auto found = store_.latest(key);
    if (!found) {
        return std::move(found).error();
    }
    if (!found.value()) {
        return process_not_found(key);
    }
    l2_put(latest_cache_key(key), **found);
    l2_put(id_cache_key((*found)->id), **found);
    l1_put(std::make_shared<const DefinitionRecord>(**found), true);
    return *std::move(found.value());
}

std::shared_ptr<const DefinitionRecord> DefinitionCatalog::cached_latest(const std::string& key) {
    auto hit = l1_latest(key);
    if (hit) {
        telemetry_.definition_cache_lookup(Telemetry::CacheLevel::kL1, true);
    }
    return hit;  // a miss is counted by latest(), which the caller goes on to
}

Result<PageResult<DefinitionRecord>> DefinitionCatalog::versions(const std::string& key,
                                                                 const PageRequest& page) {
    auto found = store_.versions(key, page);
    if (found && found->total == 0) {
        return process_not_found(key);
    }
    return found;
}

Result<DefinitionRecord> DefinitionCatalog::version(const std::string& key, int version) {
    auto found = store_.version(key, version);
    if (!found) {
        return std::move(found).error();
    }
    if (!found.value()) {
        Error e =
            Error::not_found("PROCESS_VERSION_NOT_FOUND",
                             "process '" + key + "' has no version " + std::to_string(version));
        e.context = {{"key", key}, {"version", version}};
        return e;
    }
    l1_put(std::make_shared<const DefinitionRecord>(**found), false);
    return *std::move(found.value());
}

Result<DefinitionRecord> DefinitionCatalog::by_id(const std::string& id) {
    if (auto hit = l1_by_id(id)) {
        telemetry_.definition_cache_lookup(Telemetry::CacheLevel::kL1, true);
        return *hit;
    }
    telemetry_.definition_cache_lookup(Telemetry::CacheLevel::kL1, false);
    if (auto l2 = l2_get(id_cache_key(id))) {
        l1_put(std::make_shared<const DefinitionRecord>(*l2), false);
        return *std::move(l2);
    }
    auto found = store_.by_id(id);
    if (!found) {
        return std::move(found).error();
    }
    if (!found.value()) {
        return Error::not_found("DEFINITION_NOT_FOUND",
                                "no process definition with id '" + id + "'");
    }
    l2_put(id_cache_key(id), **found);
    l1_put(std::make_shared<const DefinitionRecord>(**found), false);
    return *std::move(found.value());
}

Status DefinitionCatalog::remove(const std::string& key, bool cascade) {
    if (!cascade) {
        auto running = store_.count_unfinished_instances(key);
        if (!running) {
            return std::move(running).error();
        }
        if (running.value() > 0) {
            Error e =
                Error::conflict("PROCESS_HAS_INSTANCES",
                                "process '" + key + "' has " + std::to_string(running.value()) +
                                    " unfinished instances; delete with cascade=true to cancel "
                                    "and delete them");
            e.context = {{"key", key}, {"instances", running.value()}};
            return e;
        }
    }
    auto deleted = store_.delete_key(key, cascade);
    if (!deleted) {
        return std::move(deleted).error();
    }
    if (deleted.value() == 0) {
        return process_not_found(key);
    }
    invalidate(key);
    std::lock_guard lock(mutex_);
    for (auto it = by_id_.begin(); it != by_id_.end();) {
        it = it->second->key == key ? by_id_.erase(it) : std::next(it);
    }
    by_id_order_.remove_if([this](const std::string& id) { return !by_id_.contains(id); });
    return {};
}

void DefinitionCatalog::forget(const std::string& key) {
    std::lock_guard lock(mutex_);
    latest_.erase(key);
    lists_.clear();  // any page may list `key`
    ++list_generation_;
}

std::shared_ptr<const DefinitionRecord> DefinitionCatalog::l1_latest(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = latest_.find(key);
    if (it == latest_.end()) {
        return nullptr;
    }
    if (clock_.now() >= it->second.expires_at) {
        latest_.erase(it);
        return nullptr;
    }
    return it->second.record;
}

std::shared_ptr<const DefinitionRecord> DefinitionCatalog::l1_by_id(const std::string& id) {
    std::lock_guard lock(mutex_);
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second;
}

void DefinitionCatalog::l1_put(const std::shared_ptr<const DefinitionRecord>& record,
                               bool as_latest) {
    if (cache_.l1_max_entries == 0) {
        return;
    }
    std::lock_guard lock(mutex_);
    if (as_latest) {
        auto& entry = latest_[record->key];
        // Never replace a newer latest with an older one (a slow reader racing a deploy).
        if (!entry.record || entry.record->version <= record->version) {
            entry = {record, clock_.now() + cache_.definition_ttl};
        }
        if (latest_.size() > cache_.l1_max_entries) {
            latest_.clear();  // rare: more keys than the cache holds; start over rather than scan
            latest_[record->key] = {record, clock_.now() + cache_.definition_ttl};
        }
    }
    if (by_id_.emplace(record->id, record).second) {
        by_id_order_.push_back(record->id);
        while (by_id_.size() > cache_.l1_max_entries) {
            by_id_.erase(by_id_order_.front());
            by_id_order_.pop_front();
        }
    }
}

void DefinitionCatalog::invalidate(const std::string& key) {
    forget(key);
    if (remote_ != nullptr) {
        remote_->erase(latest_cache_key(key));
        remote_->publish(kInvalidationChannel, sender_ + "|" + key);
    }
}

std::optional<DefinitionRecord> DefinitionCatalog::l2_get(const std::string& cache_key) {
    if (remote_ == nullptr) {
        return std::nullopt;
    }
    auto text = remote_->get(cache_key);
    auto record = text ? from_json(*text) : std::nullopt;
    telemetry_.definition_cache_lookup(Telemetry::CacheLevel::kL2, record.has_value());
    return record;
}

void DefinitionCatalog::l2_put(const std::string& cache_key, const DefinitionRecord& record) {
    if (remote_ != nullptr) {
        remote_->set(cache_key, to_json(record).dump(), cache_.definition_ttl);
    }
}

}  // namespace pythmata::app
