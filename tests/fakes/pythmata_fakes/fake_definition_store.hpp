#pragma once

#include <algorithm>
#include <map>
#include <mutex>

#include "pythmata/app/ports/definition_store.hpp"
#include "pythmata/common/uuid.hpp"

namespace pythmata::fakes {

/// An in-memory DefinitionStore with the port's semantics, for app tests. `unavailable` makes
/// every call fail with DB_UNAVAILABLE; `calls` counts calls, to see what the cache saved.
class FakeDefinitionStore final : public app::DefinitionStore {
  public:
    bool unavailable = false;
    int calls = 0;
    std::int64_t unfinished_instances = 0;

    Result<std::vector<app::DeployedDefinition>> deploy(const std::vector<app::NewDefinition>& defs,
                                                        TimePoint now) override {
        std::lock_guard lock(mutex_);
        if (auto e = check()) {
            return *e;
        }
        std::vector<app::DeployedDefinition> out;
        for (const auto& d : defs) {
            auto& versions = by_key_[d.key];
            if (!versions.empty() && versions.back().hash == d.hash) {
                out.push_back({versions.back(), false});
                continue;
            }
            app::DefinitionRecord r{
                new_uuid(), d.key,  d.name, static_cast<int>(versions.size()) + 1,
                d.bpmn_xml, d.hash, now};
            versions.push_back(r);
            out.push_back({r, true});
        }
        return out;
    }
    Result<std::optional<app::DefinitionRecord>> latest(const std::string& key) override {
        std::lock_guard lock(mutex_);
        if (auto e = check()) {
            return *e;
        }
        auto it = by_key_.find(key);
        if (it == by_key_.end() || it->second.empty()) {
            return std::optional<app::DefinitionRecord>{};
        }
        return std::optional{it->second.back()};
    }
    Result<std::optional<app::DefinitionRecord>> version(const std::string& key, int v) override {
        std::lock_guard lock(mutex_);
        if (auto e = check()) {
            return *e;
        }
        auto it = by_key_.find(key);
        if (it == by_key_.end() || v < 1 || v > static_cast<int>(it->second.size())) {
            return std::optional<app::DefinitionRecord>{};
        }
        return std::optional{it->second[v - 1]};
    }
    Result<std::optional<app::DefinitionRecord>> by_id(const std::string& id) override {
        std::lock_guard lock(mutex_);
        if (auto e = check()) {
            return *e;
        }
        for (const auto& [key, versions] : by_key_) {
            for (const auto& r : versions) {
                if (r.id == id) {
                    return std::optional{r};
                }
            }
        }
        return std::optional<app::DefinitionRecord>{};
    }
    Result<app::PageResult<app::DefinitionRecord>> list_latest(
        const app::DefinitionFilter& f, const app::PageRequest& page) override {
        std::lock_guard lock(mutex_);
        if (auto e = check()) {
            return *e;
        }
        std::vector<app::DefinitionRecord> all;
        for (const auto& [key, versions] : by_key_) {
            if (!versions.empty() && (!f.key || *f.key == key)) {
                all.push_back(versions.back());
            }
        }
        return paged(std::move(all), page);
    }
    Result<app::PageResult<app::DefinitionRecord>> versions(const std::string& key,
                                                            const app::PageRequest& page) override {
        std::lock_guard lock(mutex_);
        if (auto e = check()) {
            return *e;
        }
        auto it = by_key_.find(key);
        std::vector<app::DefinitionRecord> all;
        if (it != by_key_.end()) {
            all.assign(it->second.rbegin(), it->second.rend());
        }
        return paged(std::move(all), page);
    }
    Result<std::int64_t> count_unfinished_instances(const std::string&) override {
        std::lock_guard lock(mutex_);
        if (auto e = check()) {
            return *e;
        }
        return unfinished_instances;
    }
    Result<std::int64_t> delete_key(const std::string& key, bool) override {
        std::lock_guard lock(mutex_);
        if (auto e = check()) {
            return *e;
        }
        auto it = by_key_.find(key);
        if (it == by_key_.end()) {
            return std::int64_t{0};
        }
        auto n = static_cast<std::int64_t>(it->second.size());
        by_key_.erase(it);
        return n;
    }

  private:
    std::optional<Error> check() {
        ++calls;
        if (unavailable) {
            return Error::unavailable("DB_UNAVAILABLE", "the database is unavailable");
        }
        return std::nullopt;
    }
    static app::PageResult<app::DefinitionRecord> paged(std::vector<app::DefinitionRecord> all,
                                                        const app::PageRequest& page) {
        app::PageResult<app::DefinitionRecord> out;
        out.total = static_cast<std::int64_t>(all.size());
        const auto begin = std::min(all.size(), std::size_t(page.page - 1) * page.page_size);
        const auto end = std::min(all.size(), begin + page.page_size);
        out.items.assign(all.begin() + begin, all.begin() + end);
        return out;
    }

    std::mutex mutex_;
    std::map<std::string, std::vector<app::DefinitionRecord>> by_key_;
};

}  // namespace pythmata::fakes
