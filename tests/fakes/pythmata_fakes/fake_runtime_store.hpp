#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "pythmata/app/ports/runtime_store.hpp"

namespace pythmata::fakes {

/// An in-memory RuntimeStore with the port's semantics, for app tests: a commit is all or
/// nothing (a stale expected_version or a duplicate id fails the whole batch with DB_CONFLICT);
/// closed waits are applied before opened ones; acquisition hands a row to one owner until its
/// lock expires (what FOR UPDATE SKIP LOCKED gives across replicas). Thread-safe.
///
/// Knobs: `fail_commits` fails that many next commits with `commit_error` (DB_UNAVAILABLE by
/// default) without writing anything; `unavailable` fails every call; `commit_delay` makes each
/// commit take that long (as a real fsync would), to let batches form; `commits` counts the
/// successful commits; `hand_out_outbox_twice` makes acquire_outbox return each row twice.
class FakeRuntimeStore final : public app::RuntimeStore {
  public:
    std::atomic<int> commits{0};
    std::atomic<int> fail_commits{0};
    std::atomic<bool> unavailable{false};
    std::atomic<std::chrono::milliseconds> commit_delay{std::chrono::milliseconds{0}};
    /// acquire_outbox hands every row out twice (two deliveries of one row racing).
    std::atomic<bool> hand_out_outbox_twice{false};
    Error commit_error = Error::unavailable("DB_UNAVAILABLE", "the database is unavailable");

    Status commit(const app::Batch& batch) override {
        if (const auto delay = commit_delay.load(); delay.count() > 0) {
            std::this_thread::sleep_for(delay);
        }
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        if (fail_commits > 0) {
            --fail_commits;
            return commit_error;
        }
        // Validate everything first: nothing is written when anything is wrong.
        std::set<std::string> new_ids;
        for (const auto& w : batch.instances) {
            auto it = instances_.find(w.instance.id);
            if (w.insert ? it != instances_.end()
                         : (it == instances_.end() || it->second.version != w.expected_version)) {
                return conflict("instance " + w.instance.id + " changed or exists");
            }
            for (const auto& r : w.waits_opened) {
                if (!new_ids.insert(r.id).second || exists_row(r.id)) {
                    return conflict("duplicate wait id " + r.id);
                }
            }
        }
        for (const auto& w : batch.instances) {
            apply(w);
        }
        for (const auto& rec : batch.idempotency) {
            idempotency_[rec.key] = rec;
        }
        for (const auto& [definition_id, rows] : batch.start_events) {
            std::erase_if(subscriptions_, [&](const Sub& s) {
                return s.instance_id.empty() && s.definition_id == definition_id;
            });
            std::erase_if(jobs_, [&](const auto& kv) {
                return kv.second.instance_id.empty() && kv.second.definition_id == definition_id;
            });
            for (const auto& r : rows) {
                open_row(r, nullptr, r.created_at);
            }
            start_event_marks_.insert(definition_id);
        }
        for (const auto& row : batch.outbox) {
            outbox_[row.id] = row;
        }
        for (const auto& id : batch.outbox_done) {
            outbox_.erase(id);
        }
        ++commits;
        return {};
    }

    Result<std::optional<app::InstanceRow>> instance(const std::string& id,
                                                     bool with_state) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        auto it = instances_.find(id);
        if (it == instances_.end()) {
            return std::optional<app::InstanceRow>{};
        }
        app::InstanceRow row = it->second;
        if (!with_state) {
            row.state.clear();
        }
        return std::optional{std::move(row)};
    }

    Result<app::PageResult<app::InstanceRow>> list_instances(
        const app::InstanceFilter& f, const app::PageRequest& page) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        std::vector<app::InstanceRow> all;
        for (const auto& [id, r] : instances_) {
            if ((f.status && r.status != *f.status) ||
                (f.process_key && r.process_key != *f.process_key) ||
                (f.business_key && r.business_key != f.business_key) ||
                (f.created_after && r.created_at <= *f.created_after) ||
                (f.created_before && r.created_at >= *f.created_before)) {
                continue;
            }
            all.push_back(r);
            all.back().state.clear();
        }
        std::sort(all.begin(), all.end(), [&](const auto& a, const auto& b) {
            return std::pair(a.created_at, seq_of_.at(a.id)) >
                   std::pair(b.created_at, seq_of_.at(b.id));
        });
        return paged(std::move(all), page);
    }

    Result<std::vector<std::string>> unfinished_instances(const std::string& key) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        std::vector<std::string> out;
        for (const auto& [id, r] : instances_) {
            if (r.process_key == key && !r.ended_at) {
                out.push_back(id);
            }
        }
        return out;
    }

    Result<std::optional<app::TaskRow>> task(const std::string& id) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        auto it = tasks_.find(id);
        return it == tasks_.end() ? std::optional<app::TaskRow>{} : std::optional{it->second};
    }

    Result<app::PageResult<app::TaskRow>> list_tasks(const app::TaskFilter& f,
                                                     const app::PageRequest& page) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        std::vector<app::TaskRow> all;
        for (const auto& [id, t] : tasks_) {
            if ((!f.state.empty() && t.state != f.state) ||
                (f.instance_id && t.instance_id != *f.instance_id) ||
                (f.process_key && t.process_key != *f.process_key) ||
                (f.assignee && t.assignee != f.assignee) ||
                (f.element_id && t.element_id != *f.element_id) ||
                (f.candidate_group &&
                 std::find(t.candidate_groups.begin(), t.candidate_groups.end(),
                           *f.candidate_group) == t.candidate_groups.end())) {
                continue;
            }
            all.push_back(t);
        }
        std::sort(all.begin(), all.end(), [&](const auto& a, const auto& b) {
            return std::pair(a.created_at, seq_of_.at(a.id)) >
                   std::pair(b.created_at, seq_of_.at(b.id));
        });
        return paged(std::move(all), page);
    }

    Result<bool> claim_task(const std::string& id, const std::string& assignee) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        auto it = tasks_.find(id);
        if (it == tasks_.end() || it->second.state != "OPEN") {
            return false;
        }
        it->second.assignee = assignee;
        return true;
    }

    Result<std::optional<app::SubscriptionRow>> find_message_subscription(
        const std::string& name, const std::optional<std::string>& key) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        for (bool start : {false, true}) {
            for (const auto& s : subscriptions_) {  // in order of creation
                if (s.message && s.name == name && s.instance_id.empty() == start &&
                    (start || !key || s.correlation_key == key)) {
                    return std::optional{s.row()};
                }
            }
        }
        return std::optional<app::SubscriptionRow>{};
    }

    Result<std::vector<app::SubscriptionRow>> signal_subscriptions(
        const std::string& name) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        std::vector<app::SubscriptionRow> out;
        for (const auto& s : subscriptions_) {
            if (!s.message && s.name == name) {
                out.push_back(s.row());
            }
        }
        return out;
    }

    Result<std::vector<app::JobRow>> acquire_jobs(const std::string& type, const std::string& owner,
                                                  int max, TimePoint now,
                                                  TimePoint lock_until) override {
        return acquire("job", &type, owner, max, now, lock_until);
    }
    Result<std::vector<app::JobRow>> acquire_timers(const std::string& owner, int max,
                                                    TimePoint now, TimePoint lock_until) override {
        return acquire("timer", nullptr, owner, max, now, lock_until);
    }

    Result<std::optional<app::JobRow>> job(const std::string& id) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        auto it = jobs_.find(id);
        return it == jobs_.end() ? std::optional<app::JobRow>{} : std::optional{it->second};
    }

    Status fail_job(const std::string& id, int retries, const std::string& message,
                    TimePoint retry_at) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        auto it = jobs_.find(id);
        if (it == jobs_.end()) {
            return Error::not_found("JOB_NOT_FOUND", "no job " + id);
        }
        it->second.retries = retries;
        it->second.error_message = message;
        it->second.due_at = retry_at;
        it->second.lock_owner.reset();
        it->second.lock_expires_at.reset();
        return {};
    }

    Status reschedule_timer(const std::string& id, std::optional<TimePoint> next_due,
                            std::int64_t repeat) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        auto it = jobs_.find(id);
        if (it == jobs_.end()) {
            return Error::not_found("TIMER_NOT_FOUND", "no timer " + id);
        }
        if (!next_due) {
            jobs_.erase(it);
            return {};
        }
        it->second.due_at = *next_due;
        it->second.repeat = repeat;
        it->second.lock_owner.reset();
        it->second.lock_expires_at.reset();
        return {};
    }

    Result<std::optional<TimePoint>> next_timer_due() override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        // A locked timer counts from when its lock expires.
        std::optional<TimePoint> out;
        for (const auto& [id, j] : jobs_) {
            if (j.kind != "timer") {
                continue;
            }
            const TimePoint at =
                j.lock_expires_at ? std::max(j.due_at, *j.lock_expires_at) : j.due_at;
            if (!out || at < *out) {
                out = at;
            }
        }
        return out;
    }

    Result<app::PageResult<app::JobRow>> list_timers(const std::optional<std::string>& instance_id,
                                                     const app::PageRequest& page) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        std::vector<app::JobRow> out;
        for (const auto& [id, j] : jobs_) {
            if (j.kind == "timer" && (!instance_id || j.instance_id == *instance_id)) {
                out.push_back(j);
            }
        }
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
            return std::tie(a.due_at, a.created_at, a.id) < std::tie(b.due_at, b.created_at, b.id);
        });
        return paged(std::move(out), page);
    }

    Result<std::optional<app::IncidentRow>> incident(const std::string& id) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        auto it = incidents_.find(id);
        return it == incidents_.end() ? std::optional<app::IncidentRow>{}
                                      : std::optional{it->second};
    }

    Result<app::PageResult<app::IncidentRow>> list_incidents(
        const app::IncidentFilter& f, const app::PageRequest& page) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        std::vector<app::IncidentRow> all;
        for (const auto& [id, r] : incidents_) {
            if ((f.instance_id && r.instance_id != *f.instance_id) ||
                (f.state && r.state != *f.state)) {
                continue;
            }
            all.push_back(r);
        }
        std::sort(all.begin(), all.end(), [&](const auto& a, const auto& b) {
            return std::pair(a.created_at, seq_of_.at(a.id)) >
                   std::pair(b.created_at, seq_of_.at(b.id));
        });
        return paged(std::move(all), page);
    }

    Result<app::PageResult<app::HistoryRow>> history(const std::string& instance_id,
                                                     const app::PageRequest& page) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        std::vector<app::HistoryRow> all;
        for (const auto& h : history_) {
            if (h.instance_id == instance_id) {
                all.push_back(h);
            }
        }
        return paged(std::move(all), page);
    }

    Result<app::IdempotencyClaim> claim_idempotency_key(const std::string& key,
                                                        const std::string& hash, TimePoint now,
                                                        TimePoint not_before) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        auto it = idempotency_.find(key);
        if (it != idempotency_.end() && it->second.created_at >= not_before) {
            return app::IdempotencyClaim{false, it->second};
        }
        idempotency_[key] = {key, hash, 0, {}, now};
        return app::IdempotencyClaim{true, std::nullopt};
    }

    Status release_idempotency_key(const std::string& key) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        auto it = idempotency_.find(key);
        if (it != idempotency_.end() && it->second.status == 0) {
            idempotency_.erase(it);
        }
        return {};
    }

    Result<app::InstanceCounts> counts() override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        app::InstanceCounts c;
        for (const auto& [id, r] : instances_) {
            if (r.status == "RUNNING") {
                ++c.running;
            } else if (r.status == "SUSPENDED") {
                ++c.suspended;
            } else if (r.status == "ERROR") {
                ++c.error;
            } else if (r.status == "COMPLETED") {
                ++c.completed;
            } else if (r.status == "CANCELLED") {
                ++c.cancelled;
            }
        }
        for (const auto& [id, t] : tasks_) {
            c.open_tasks += t.state == "OPEN" ? 1 : 0;
        }
        for (const auto& [id, j] : jobs_) {
            (j.kind == "job" ? c.pending_jobs : c.pending_timers) += 1;
        }
        for (const auto& [id, i] : incidents_) {
            c.open_incidents += i.state == "OPEN" ? 1 : 0;
        }
        return c;
    }

    Result<std::vector<app::OutboxRow>> acquire_outbox(const std::string& owner, int max,
                                                       TimePoint created_before, TimePoint now,
                                                       TimePoint lock_until) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        std::vector<app::OutboxRow*> due;
        for (auto& [id, row] : outbox_) {
            if (row.created_at <= created_before &&
                (!row.lock_expires_at || *row.lock_expires_at <= now)) {
                due.push_back(&row);
            }
        }
        std::sort(due.begin(), due.end(), [](const auto* a, const auto* b) {
            return std::tie(a->created_at, a->id) < std::tie(b->created_at, b->id);
        });
        std::vector<app::OutboxRow> out;
        for (auto* row : due) {
            if (static_cast<int>(out.size()) >= max) {
                break;
            }
            row->lock_owner = owner;
            row->lock_expires_at = lock_until;
            out.push_back(*row);
            if (hand_out_outbox_twice) {
                out.push_back(*row);
            }
        }
        return out;
    }

    Status delete_outbox(const std::vector<std::string>& ids) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        for (const auto& id : ids) {
            outbox_.erase(id);
        }
        return {};
    }

    Result<bool> outbox_row_exists(const std::string& id) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        return outbox_.contains(id);
    }

    Result<std::int64_t> outbox_pending() override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        return static_cast<std::int64_t>(outbox_.size());
    }

    Result<bool> start_events_written(const std::string& definition_id) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        return start_event_marks_.contains(definition_id);
    }

    /// The outbox rows not yet delivered (test inspection).
    std::vector<app::OutboxRow> outbox_rows() {
        std::lock_guard lock(mutex_);
        std::vector<app::OutboxRow> out;
        for (const auto& [id, row] : outbox_) {
            out.push_back(row);
        }
        return out;
    }

    Result<app::RetentionResult> delete_ended_instances(
        TimePoint cutoff, std::size_t max_instances, const app::ProcessKeyFilter& filter) override {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        std::vector<const app::InstanceRow*> ended;
        for (const auto& [id, r] : instances_) {
            const bool has_child = std::any_of(
                instances_.begin(), instances_.end(),
                [&](const auto& other) { return other.second.parent_instance_id == id; });
            if ((r.status == "COMPLETED" || r.status == "CANCELLED") && r.ended_at &&
                *r.ended_at < cutoff && !has_child && filter.admits(r.process_key)) {
                ended.push_back(&r);
            }
        }
        std::sort(ended.begin(), ended.end(),
                  [](const auto* a, const auto* b) { return *a->ended_at < *b->ended_at; });
        ended.resize(std::min(ended.size(), max_instances));
        std::vector<std::string> ids;
        for (const auto* r : ended) {
            ids.push_back(r->id);
        }
        app::RetentionResult result;
        for (const auto& id : ids) {
            const auto belongs = [&id](const auto& entry) {
                return entry.second.instance_id == id;
            };
            std::erase_if(tasks_, belongs);
            std::erase_if(jobs_, belongs);
            std::erase_if(incidents_, belongs);
            std::erase_if(subscriptions_, [&id](const Sub& s) { return s.instance_id == id; });
            result.history += static_cast<std::int64_t>(std::erase_if(
                history_, [&id](const app::HistoryRow& h) { return h.instance_id == id; }));
            instances_.erase(id);
            ++result.instances;
        }
        return result;
    }

    // Test helpers.
    [[nodiscard]] std::size_t instance_count() {
        std::lock_guard lock(mutex_);
        return instances_.size();
    }
    [[nodiscard]] std::size_t row_count() {
        std::lock_guard lock(mutex_);
        return instances_.size() + tasks_.size() + jobs_.size() + subscriptions_.size() +
               incidents_.size() + history_.size();
    }
    [[nodiscard]] std::vector<app::JobRow> jobs_of_kind(const std::string& kind) {
        std::lock_guard lock(mutex_);
        std::vector<app::JobRow> out;
        for (const auto& [id, j] : jobs_) {
            if (j.kind == kind) {
                out.push_back(j);
            }
        }
        return out;
    }
    [[nodiscard]] std::size_t subscription_count() {
        std::lock_guard lock(mutex_);
        return subscriptions_.size();
    }

  private:
    struct Sub {
        std::string id;
        bool message = true;
        std::string name;
        std::optional<std::string> correlation_key;
        std::string instance_id;
        std::optional<std::string> definition_id;
        std::uint64_t wait_id = 0;
        std::string element_id;

        [[nodiscard]] app::SubscriptionRow row() const {
            return {id, instance_id, definition_id, wait_id, element_id};
        }
    };

    static Error down() {
        return Error::unavailable("DB_UNAVAILABLE", "the database is unavailable");
    }
    static Error conflict(std::string m) { return Error::conflict("DB_CONFLICT", std::move(m)); }

    bool exists_row(const std::string& id) const {
        return tasks_.count(id) != 0 || jobs_.count(id) != 0 ||
               std::any_of(subscriptions_.begin(), subscriptions_.end(),
                           [&](const Sub& s) { return s.id == id; });
    }

    void apply(const app::InstanceWrite& w) {
        const std::string& iid = w.instance.id;
        if (w.insert) {
            seq_of_[iid] = ++seq_;
        }
        app::InstanceRow row = w.instance;
        const TimePoint now = row.updated_at;
        // Closed waits first: a re-armed cycle timer is closed and opened in one write.
        for (auto wid : w.waits_closed) {
            const bool completed = std::find(w.tasks_completed.begin(), w.tasks_completed.end(),
                                             wid) != w.tasks_completed.end();
            // Only in the tables closed_in names, as the stores do: a write that names the
            // wrong ones leaves a row open here too.
            for (auto& [id, t] : tasks_) {
                if ((completed || w.closed_in.user_tasks) && t.instance_id == iid &&
                    t.wait_id == wid && t.state == "OPEN") {
                    t.state = completed ? "COMPLETED" : "CANCELLED";
                    t.completed_at = now;
                }
            }
            if (completed) {
                continue;
            }
            std::erase_if(jobs_, [&](const auto& kv) {
                return w.closed_in.jobs && kv.second.instance_id == iid && kv.second.wait_id == wid;
            });
            std::erase_if(subscriptions_, [&](const Sub& s) {
                return (s.message ? w.closed_in.messages : w.closed_in.signals) &&
                       s.instance_id == iid && s.wait_id == wid;
            });
        }
        for (const auto& r : w.waits_opened) {
            open_row(r, &row, now);
        }
        for (const auto& h : w.history) {
            history_.push_back(h);
        }
        for (const auto& i : w.incidents_opened) {
            incidents_[i.id] = i;
            seq_of_[i.id] = ++seq_;
        }
        for (auto engine_id : w.incidents_resolved) {
            for (auto& [id, i] : incidents_) {
                if (i.instance_id == iid && i.engine_incident_id == engine_id &&
                    i.state == "OPEN") {
                    i.state = "RESOLVED";
                    i.resolved_at = now;
                }
            }
        }
        row.open_incidents = 0;
        for (const auto& [id, i] : incidents_) {
            row.open_incidents += i.instance_id == iid && i.state == "OPEN" ? 1 : 0;
        }
        instances_[iid] = std::move(row);
    }

    void open_row(const app::WaitRow& r, const app::InstanceRow* inst, TimePoint now) {
        seq_of_[r.id] = ++seq_;
        switch (r.kind) {
            case app::WaitRowKind::kUserTask: {
                app::TaskRow t;
                t.id = r.id;
                t.instance_id = r.instance_id;
                t.wait_id = r.wait_id;
                t.process_key = inst != nullptr ? inst->process_key : std::string();
                t.element_id = r.element_id;
                t.name = r.name;
                t.assignee = r.assignee;
                t.candidate_groups = r.candidate_groups;
                t.state = "OPEN";
                t.created_at = r.created_at;
                t.due_at = r.due_at;
                tasks_[r.id] = std::move(t);
                break;
            }
            case app::WaitRowKind::kJob:
            case app::WaitRowKind::kTimer: {
                app::JobRow j;
                j.id = r.id;
                const bool timer = r.kind == app::WaitRowKind::kTimer;
                j.kind = timer ? "timer" : "job";
                j.type = timer ? (r.instance_id.empty() ? "timer-start" : "timer") : r.name;
                j.instance_id = r.instance_id;
                j.definition_id = r.definition_id;
                j.wait_id = r.wait_id;
                j.element_id = r.element_id;
                j.due_at = r.due_at.value_or(now);
                j.repeat = r.repeat;
                j.retries = r.retries;
                j.payload = r.payload;
                j.created_at = r.created_at;
                jobs_[r.id] = std::move(j);
                break;
            }
            case app::WaitRowKind::kMessage:
            case app::WaitRowKind::kSignal: {
                Sub s;
                s.id = r.id;
                s.message = r.kind == app::WaitRowKind::kMessage;
                s.name = r.name;
                s.correlation_key = r.correlation_key;
                s.instance_id = r.instance_id;
                s.definition_id = r.definition_id;
                s.wait_id = r.wait_id;
                s.element_id = r.element_id;
                subscriptions_.push_back(std::move(s));
                break;
            }
        }
    }

    Result<std::vector<app::JobRow>> acquire(const std::string& kind, const std::string* type,
                                             const std::string& owner, int max, TimePoint now,
                                             TimePoint lock_until) {
        std::lock_guard lock(mutex_);
        if (unavailable) {
            return down();
        }
        std::vector<app::JobRow*> due;
        for (auto& [id, j] : jobs_) {
            if (j.kind == kind && (type == nullptr || j.type == *type) && j.due_at <= now &&
                (kind == "timer" || j.retries > 0) &&
                (!j.lock_expires_at || *j.lock_expires_at <= now)) {
                due.push_back(&j);
            }
        }
        std::sort(due.begin(), due.end(), [&](const auto* a, const auto* b) {
            return std::pair(a->due_at, seq_of_.at(a->id)) <
                   std::pair(b->due_at, seq_of_.at(b->id));
        });
        std::vector<app::JobRow> out;
        for (auto* j : due) {
            if (static_cast<int>(out.size()) >= max) {
                break;
            }
            j->lock_owner = owner;
            j->lock_expires_at = lock_until;
            out.push_back(*j);
        }
        return out;
    }

    template <typename T>
    static app::PageResult<T> paged(std::vector<T> all, const app::PageRequest& page) {
        app::PageResult<T> out;
        out.total = static_cast<std::int64_t>(all.size());
        const auto begin = std::min(all.size(), std::size_t(page.page - 1) * page.page_size);
        const auto end = std::min(all.size(), begin + page.page_size);
        out.items.assign(std::make_move_iterator(all.begin() + begin),
                         std::make_move_iterator(all.begin() + end));
        return out;
    }

    std::mutex mutex_;
    std::int64_t seq_ = 0;
    std::map<std::string, std::int64_t> seq_of_;  // insertion order of every row id
    std::map<std::string, app::InstanceRow> instances_;
    std::map<std::string, app::TaskRow> tasks_;
    std::map<std::string, app::JobRow> jobs_;
    std::vector<Sub> subscriptions_;
    std::map<std::string, app::IncidentRow> incidents_;
    std::vector<app::HistoryRow> history_;
    std::map<std::string, app::IdempotencyRecord> idempotency_;
    std::map<std::string, app::OutboxRow> outbox_;
    std::set<std::string> start_event_marks_;
};

}  // namespace pythmata::fakes
