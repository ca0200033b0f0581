#include "pythmata/app/instance_runtime.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

#include "pythmata/app/history_level.hpp"
#include "pythmata/bpmn/parser.hpp"
#include "pythmata/bpmn/timer_spec.hpp"
#include "pythmata/common/sha256.hpp"
#include "pythmata/common/uuid.hpp"
#include "pythmata/engine/engine.hpp"
#include "pythmata/expr/expression.hpp"
#include "task_pool.hpp"

namespace pythmata::app {
namespace {

using Json = nlohmann::json;
using Steady = std::chrono::steady_clock;

constexpr const char* kSuspended = "SUSPENDED";
constexpr const char* kServicePrefix = "pythmata:";
constexpr int kMessageRetries = 3;      // a matched subscription consumed by a racing message
constexpr int kTimerRounds = 1000;      // bound of acquisitions in one scheduler pass
constexpr int kTimerCatchUp = 1000;     // bound of skipped past firings of a start timer
constexpr std::size_t kAuxThreads = 2;  // follow-up deliveries (signals, messages, children)
constexpr std::size_t kScanFactor = 4;  // queue items a worker looks at per batch slot
// Pause between scheduler passes when a due timer cannot fire yet (locked, suspended).
constexpr std::chrono::milliseconds kMinSchedulerSleep{50};
// Outbox batches the sweeper takes back to back at most before it waits for the next pass.
constexpr int kOutboxPassesPerWake = 10;

double seconds_since(Steady::time_point t0) {
    return std::chrono::duration<double>(Steady::now() - t0).count();
}

double seconds_between(TimePoint from, TimePoint to) {
    return std::chrono::duration<double>(to - from).count();
}

/// A deployed definition compiled for the engine. Immutable, shared.
struct Definition {
    DefinitionRecord record;  // bpmn_xml dropped after compiling
    std::shared_ptr<const engine::CompiledProcess> process;
};
using DefinitionPtr = std::shared_ptr<const Definition>;

struct Outcome {
    InstanceRow row;  // without the state text
    /// The user tasks this command opened in this instance (not in children it called).
    std::vector<TaskRef> opened_tasks;
};
using Callback = std::function<void(Result<Outcome>)>;

struct StartWork {
    DefinitionPtr definition;
    Json variables = Json::object();
    std::optional<std::string> business_key;
    std::string start_event_id;
    std::optional<std::string> parent_instance_id;
    std::optional<std::uint64_t> parent_wait_id;
    std::uint32_t call_depth = 0;
    /// The id is derived, not random (call activity children): refuse, for this item only, to
    /// start it twice instead of failing the whole batch's commit.
    bool check_exists = false;
};
struct CommandWork {
    engine::Command command;
    std::optional<std::string> job_id;  // FailJob: the job row the incident names
    bool completes_task = false;
};
struct StatusWork {
    bool suspend = true;
};
using Work = std::variant<StartWork, CommandWork, StatusWork>;

struct Item {
    std::string instance_id;
    Work work;
    Callback done;
    /// The outbox row this command delivers: deleted in the same commit as the command, so that
    /// a delivery is never committed twice.
    std::optional<std::string> outbox_id = std::nullopt;
    /// A due timer's firing (fire_due_timers): a batch that starts with one takes up to
    /// timer_batch_size commands instead of token_batch_size.
    bool timer_firing = false;
};

/// An instance as a worker knows it: the stored row (without the state text and the variables,
/// which the state holds) and its state.
struct Cached {
    InstanceRow row;
    engine::InstanceState state;
    DefinitionPtr definition;
};

/// Per-worker LRU of recent instances. Only its worker thread touches it.
class StateCache {
  public:
    explicit StateCache(std::size_t capacity) : capacity_(capacity) {}

    Cached* find(const std::string& id) {
        auto it = index_.find(id);
        if (it == index_.end()) {
            return nullptr;
        }
        order_.splice(order_.begin(), order_, it->second);
        return &*it->second;
    }
    void put(Cached c) {
        if (capacity_ == 0) {
            return;
        }
        erase(c.row.id);
        order_.push_front(std::move(c));
        index_[order_.front().row.id] = order_.begin();
        while (order_.size() > capacity_) {
            index_.erase(order_.back().row.id);
            order_.pop_back();
        }
    }
    void erase(const std::string& id) {
        auto it = index_.find(id);
        if (it != index_.end()) {
            order_.erase(it->second);
            index_.erase(it);
        }
    }

  private:
    std::size_t capacity_;
    std::list<Cached> order_;
    std::unordered_map<std::string, std::list<Cached>::iterator> index_;
};

/// Where the user tasks opened on this replica wait (open_task_cache): task id -> (instance,
/// wait), so that completing one needs no store read of the task. Entries go when a completion
/// through them ends, and the oldest go when it is full; a stale entry (the task was completed or
/// cancelled another way) costs a refused command, answered from the store as before.
/// Thread-safe.
class OpenTasks {
  public:
    struct Where {
        std::string instance_id;
        std::uint64_t wait_id = 0;
    };

    explicit OpenTasks(std::size_t capacity) : capacity_(capacity) {}

    void put(const std::string& task_id, const std::string& instance_id, std::uint64_t wait_id) {
        if (capacity_ == 0) {
            return;
        }
        std::lock_guard lock(mutex_);
        const std::uint64_t seq = next_++;
        entries_[task_id] = Entry{{instance_id, wait_id}, seq};
        order_.emplace_back(seq, task_id);
        while (entries_.size() > capacity_ && !order_.empty()) {
            drop_front();
        }
        while (!order_.empty() && stale(order_.front())) {
            order_.pop_front();
        }
        if (order_.size() > 2 * capacity_ + 64) {  // entries erased behind a long-lived one
            std::erase_if(order_, [this](const auto& o) { return stale(o); });
        }
    }
    [[nodiscard]] std::optional<Where> find(const std::string& task_id) {
        std::lock_guard lock(mutex_);
        auto it = entries_.find(task_id);
        return it == entries_.end() ? std::nullopt : std::optional<Where>(it->second.where);
    }
    void erase(const std::string& task_id) {
        std::lock_guard lock(mutex_);
        entries_.erase(task_id);
    }

  private:
    struct Entry {
        Where where;
        std::uint64_t seq = 0;
    };
    [[nodiscard]] bool stale(const std::pair<std::uint64_t, std::string>& o) const {
        auto it = entries_.find(o.second);
        return it == entries_.end() || it->second.seq != o.first;
    }
    void drop_front() {
        const auto& [seq, id] = order_.front();
        if (auto it = entries_.find(id); it != entries_.end() && it->second.seq == seq) {
            entries_.erase(it);
        }
        order_.pop_front();
    }

    const std::size_t capacity_;
    std::mutex mutex_;
    std::unordered_map<std::string, Entry> entries_;
    std::deque<std::pair<std::uint64_t, std::string>> order_;  // insertion order, oldest first
    std::uint64_t next_ = 0;
};

struct ChildStart {
    std::string parent_id;
    std::uint64_t wait_id = 0;
    std::string process_key;
    Json variables;
    std::uint32_t depth = 0;
    std::optional<std::string> business_key;
};

struct ParentNotice {
    std::string parent_id;
    engine::Command command;
};

/// What to do after the batch is durable.
struct FollowUps {
    std::vector<ChildStart> children;
    std::optional<ParentNotice> parent;
    std::vector<std::string> cancel_children;  // call waits closed without their child's answer
    std::vector<engine::SignalThrown> signals;
    std::vector<engine::MessageSent> messages;
    std::optional<TimePoint> earliest_timer;
    bool jobs = false;
    bool builtin_jobs = false;
    bool resumed = false;
};

struct Prepared {
    InstanceWrite write;
    Cached next;
    FollowUps follow;
    std::vector<OutboxRow> outbox;  // the follow-ups made durable with the write
    bool started = false;
    bool was_active = false;
    bool variables_changed = false;
    std::string previous_status;
};

struct Worker {
    explicit Worker(std::size_t cache_capacity) : cache(cache_capacity) {}
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<Item> queue;
    bool closed = false;
    std::thread thread;
    StateCache cache;
};

/// Reads variables from a JSON object (templates of built-in services).
class JsonSource final : public expr::VariableSource {
  public:
    explicit JsonSource(const Json& vars) : vars_(vars) {}
    [[nodiscard]] const expr::Value* find(std::string_view name) const override {
        if (!vars_.is_object()) {
            return nullptr;
        }
        auto it = vars_.find(std::string(name));
        return it == vars_.end() ? nullptr : &*it;
    }

  private:
    const Json& vars_;
};

std::string token_state(engine::TokenPhase p) {
    switch (p) {
        case engine::TokenPhase::kArrive:
            return "ARRIVING";
        case engine::TokenPhase::kWaiting:
            return "WAITING";
        case engine::TokenPhase::kComplete:
            return "COMPLETING";
        case engine::TokenPhase::kJoin:
            return "JOINING";
        case engine::TokenPhase::kIncident:
            return "INCIDENT";
        case engine::TokenPhase::kCompensating:
            return "COMPENSATING";
    }
    return "UNKNOWN";
}

HistoryEventKind history_kind(engine::HistoryEvent e) {
    switch (e) {
        case engine::HistoryEvent::kStarted:
            return HistoryEventKind::kStarted;
        case engine::HistoryEvent::kCompleted:
            return HistoryEventKind::kCompleted;
        case engine::HistoryEvent::kCancelled:
            return HistoryEventKind::kCancelled;
        case engine::HistoryEvent::kTerminated:
            return HistoryEventKind::kTerminated;
        case engine::HistoryEvent::kFailed:
            return HistoryEventKind::kFailed;
    }
    return HistoryEventKind::kStarted;
}

std::string history_text(HistoryEventKind e) {
    switch (e) {
        case HistoryEventKind::kStarted:
            return "STARTED";
        case HistoryEventKind::kCompleted:
            return "COMPLETED";
        case HistoryEventKind::kCancelled:
            return "CANCELLED";
        case HistoryEventKind::kTerminated:
            return "TERMINATED";
        case HistoryEventKind::kFailed:
            return "FAILED";
    }
    return "STARTED";
}

/// What work handed to an engine that has stopped taking it gets.
Error engine_stopped() {
    return Error::unavailable("SHUTTING_DOWN", "the engine is not running");
}

Error task_done(const std::string& id, const std::string& state) {
    Error e = Error::conflict("TASK_ALREADY_COMPLETED",
                              "user task '" + id + "' is " + state + ", not OPEN");
    e.context = {{"task_id", id}, {"state", state}};
    return e;
}

/// By value: a caller done with the row moves it in, and its strings and variables move.
InstanceView to_view(InstanceRow r) {
    InstanceView v;
    v.id = std::move(r.id);
    v.process_key = std::move(r.process_key);
    v.process_version = r.process_version;
    v.definition_id = std::move(r.definition_id);
    v.business_key = std::move(r.business_key);
    v.status = std::move(r.status);
    v.variables = std::move(r.variables);
    v.active_elements = std::move(r.active_elements);
    v.incidents = r.open_incidents;
    v.parent_instance_id = std::move(r.parent_instance_id);
    v.created_at = r.created_at;
    v.updated_at = r.updated_at;
    v.ended_at = r.ended_at;
    return v;
}

/// The answer of a start or a task completion: the instance and the user tasks it opened.
InstanceView to_view(Outcome out) {
    InstanceView v = to_view(std::move(out.row));
    v.opened_tasks = std::move(out.opened_tasks);
    return v;
}

TaskView to_view(const TaskRow& r) {
    TaskView v;
    v.id = r.id;
    v.instance_id = r.instance_id;
    v.process_key = r.process_key;
    v.element_id = r.element_id;
    v.name = r.name;
    v.assignee = r.assignee;
    v.candidate_groups = r.candidate_groups;
    v.state = r.state;
    v.created_at = r.created_at;
    v.due_at = r.due_at;
    v.completed_at = r.completed_at;
    return v;
}

IncidentView to_view(const IncidentRow& r) {
    return {r.id,      r.instance_id, r.element_id, r.kind,
            r.message, r.state,       r.created_at, r.resolved_at};
}

/// A store page as a page of views (each row moved into `view`), or the store's error.
template <typename View, typename Row, typename ToView>
Result<PageResult<View>> page_of(Result<PageResult<Row>> rows, ToView&& view) {
    if (!rows) {
        return std::move(rows).error();
    }
    PageResult<View> out;
    out.total = rows->total;
    out.items.reserve(rows->items.size());
    for (Row& r : rows->items) {
        out.items.push_back(view(std::move(r)));
    }
    return out;
}

/// The overloads of to_view() as one callable for page_of().
constexpr auto kToView = [](auto&& row) { return to_view(std::forward<decltype(row)>(row)); };

JobView to_job_view(const JobRow& r) {
    JobView v;
    v.id = r.id;
    v.type = r.type;
    v.instance_id = r.instance_id;
    v.element_id = r.element_id;
    v.retries = r.retries;
    if (r.payload.is_object()) {
        v.variables = r.payload.value("variables", Json::object());
        v.headers = r.payload.value("headers", Json::object());
    }
    return v;
}

Error instance_not_found(const std::string& id) {
    Error e = Error::not_found("INSTANCE_NOT_FOUND", "no instance with id '" + id + "'");
    e.context = {{"instance_id", id}};
    return e;
}

bool is_code(const Error& e, std::string_view code) {
    return e.code == code;
}

/// A name-based UUID (SHA-256 of `name`, version 5 and RFC 4122 variant bits): the same name
/// always gives the same id, so that a repeated start of the same thing conflicts.
std::string name_uuid(const std::string& name) {
    std::string h = sha256_hex(name);
    h[12] = '5';                                                  // version 5 (name-based)
    h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];  // RFC 4122 variant
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
           "-" + h.substr(20, 12);
}

/// The id of the child instance a call wait starts: a name-based UUID of (parent, wait), so that
/// the parent can cancel its child without a lookup, and a repeated start of the same call
/// cannot create a second child (the insert conflicts).
std::string child_instance_id(const std::string& parent_id, std::uint64_t wait_id) {
    return name_uuid(parent_id + "/call/" + std::to_string(wait_id));
}

/// The id of an instance that a start event starts on behalf of outbox row `outbox_id` (a thrown
/// signal or message): a replay of the row starts nothing new (the insert conflicts).
std::string outbox_start_id(const std::string& outbox_id, const std::string& definition_id,
                            const std::string& element_id) {
    return name_uuid(outbox_id + "/start/" + definition_id + "/" + element_id);
}

// Outbox row kinds (OutboxRow::kind).
constexpr const char* kChildStart = "child_start";
constexpr const char* kParentNotice = "parent_notice";
constexpr const char* kCancelChild = "cancel_child";
constexpr const char* kSignal = "signal";
constexpr const char* kMessage = "message";

/// Errors that say an outbox delivery has nothing left to do: the wait it answers is closed, the
/// instance it targets ended or is gone, the instance it starts exists already, another delivery
/// of the same row committed.
bool delivery_settled(const Error& e) {
    return is_code(e, "WAIT_NOT_FOUND") || is_code(e, "INSTANCE_NOT_RUNNING") ||
           is_code(e, "INSTANCE_NOT_FOUND") || is_code(e, "INSTANCE_EXISTS") ||
           is_code(e, "OUTBOX_DELIVERED");
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct InstanceRuntime::Impl {
    Impl(RuntimeStore& store, DefinitionCatalog& catalog, Telemetry& telemetry, const Clock& clock,
         const EngineSettings& settings, HttpCaller* http, ServiceLog* log)
        : store_(store),
          catalog_(catalog),
          telemetry_(telemetry),
          clock_(clock),
          settings_(settings),
          http_(http),
          log_(log),
          owner_("pythmata-" + new_uuid()),
          open_tasks_(settings.open_task_cache_entries),
          aux_(kAuxThreads),
          services_(std::max(1u, settings.max_parallel_tokens)),
          started_at_(Steady::now()) {
        limits_.max_tokens = settings.max_tokens_per_instance;
        limits_.max_steps_per_event = settings.max_steps_per_event;
        limits_.max_variable_size = settings.max_variable_size;
        limits_.max_total_variables = settings.max_total_variables;
        limits_.max_call_depth = settings.max_call_depth;
        history_level_ = history_level_of(settings.history_level).value_or(HistoryLevel::kActivity);
        limits_.history = history_level_ != HistoryLevel::kNone;
        const unsigned n = std::max(1u, settings.workers);
        const std::size_t per_worker = std::max<std::size_t>(1, settings.state_cache_entries / n);
        for (unsigned i = 0; i < n; ++i) {
            workers_.push_back(std::make_unique<Worker>(per_worker));
        }
    }

    // --- clock -------------------------------------------------------------------------------

    [[nodiscard]] TimePoint now() const { return clock_.now() + Millis(offset_ms_.load()); }

    // --- definitions -------------------------------------------------------------------------

    Result<DefinitionPtr> compiled(DefinitionRecord record) {
        if (record.bpmn_xml.empty()) {
            auto full = catalog_.by_id(record.id);
            if (!full) {
                return std::move(full).error();
            }
            record = std::move(full).value();
        }
        {
            std::lock_guard lock(definitions_mutex_);
            auto it = definitions_.find(record.id);
            if (it != definitions_.end()) {
                return it->second;
            }
        }
        auto parsed = bpmn::parse(record.bpmn_xml);
        if (!parsed) {
            return Error::internal_error("stored definition " + record.id + " does not parse");
        }
        engine::CompileOptions options;
        options.script_max_instructions = settings_.script_max_instructions;
        options.script_max_memory = settings_.script_max_memory;
        options.script_timeout_ms = settings_.script_timeout.count();
        auto process = engine::compile(parsed->definitions, record.key, options);
        if (!process) {
            return Error::internal_error("stored definition " + record.id + " does not compile");
        }
        record.bpmn_xml.clear();
        auto def =
            std::make_shared<const Definition>(Definition{std::move(record), process.value()});
        std::lock_guard lock(definitions_mutex_);
        if (definitions_.size() >= std::max<std::size_t>(settings_.state_cache_entries / 10, 64)) {
            definitions_.clear();  // rare: more definitions than expected; recompile on demand
        }
        definitions_.emplace(def->record.id, def);
        return def;
    }

    Result<DefinitionPtr> definition_by_id(const std::string& id) {
        {
            std::lock_guard lock(definitions_mutex_);
            auto it = definitions_.find(id);
            if (it != definitions_.end()) {
                return it->second;
            }
        }
        auto record = catalog_.by_id(id);
        if (!record) {
            return std::move(record).error();
        }
        return compiled(std::move(record).value());
    }

    /// The latest version of `key` when it is compiled and in memory already; null otherwise
    /// (the caller then takes the blocking way, definition_for).
    DefinitionPtr cached_definition(const std::string& key) {
        auto record = catalog_.cached_latest(key);
        if (!record) {
            return nullptr;
        }
        std::lock_guard lock(definitions_mutex_);
        auto it = definitions_.find(record->id);
        return it == definitions_.end() ? nullptr : it->second;
    }

    Result<DefinitionPtr> definition_for(const std::string& key, std::optional<int> version) {
        auto record = version ? catalog_.version(key, *version) : catalog_.latest(key);
        if (!record) {
            return std::move(record).error();
        }
        return compiled(std::move(record).value());
    }

    // --- input limits ------------------------------------------------------------------------

    /// True when a string or key anywhere in `value` holds U+0000, which PostgreSQL's jsonb
    /// cannot store: refused on every way in, on both stores, so that both behave alike.
    static bool holds_nul(const Json& value) {
        if (value.is_string()) {
            return value.get_ref<const std::string&>().find('\0') != std::string::npos;
        }
        if (value.is_object()) {
            for (auto it = value.begin(); it != value.end(); ++it) {
                if (it.key().find('\0') != std::string::npos || holds_nul(it.value()))
                    return true;
            }
        } else if (value.is_array()) {
            for (const auto& item : value) {
                if (holds_nul(item))
                    return true;
            }
        }
        return false;
    }

    Status check_variables(const Json& vars) {
        if (!vars.is_object()) {
            return Error::invalid_argument("variables must be a JSON object");
        }
        if (holds_nul(vars)) {
            return Error::invalid_argument(
                "variables must not contain the NUL character (U+0000) in strings or names");
        }
        std::size_t total = 0;
        for (auto it = vars.begin(); it != vars.end(); ++it) {
            const std::size_t n =
                it.value().dump(-1, ' ', false, Json::error_handler_t::replace).size();
            if (n > settings_.max_variable_size) {
                Error e = Error::too_large("VARIABLE_TOO_LARGE",
                                           "variable '" + it.key() + "' is larger than " +
                                               std::to_string(settings_.max_variable_size) +
                                               " bytes (setting max_variable_size)");
                e.context = {
                    {"variable", it.key()}, {"size", n}, {"limit", settings_.max_variable_size}};
                return e;
            }
            total += n + it.key().size();
        }
        if (total > settings_.max_total_variables) {
            Error e = Error::too_large("VARIABLES_TOO_LARGE",
                                       "the variables are larger than " +
                                           std::to_string(settings_.max_total_variables) +
                                           " bytes (setting max_total_variables)");
            e.context = {{"size", total}, {"limit", settings_.max_total_variables}};
            return e;
        }
        return {};
    }

    // --- submission --------------------------------------------------------------------------

    std::size_t worker_index(const std::string& id) const {
        return std::hash<std::string>{}(id) % workers_.size();
    }
    Worker& worker_for(const std::string& id) { return *workers_[worker_index(id)]; }

    /// Queues internal work (never refused for capacity) all at once: each worker's share under
    /// one lock, so that a worker finds a burst (due timers) whole instead of taking it one item
    /// at a time as it arrives. Returns how many items were not queued because the engine is
    /// stopping; their callbacks are not called.
    std::size_t submit_internal_all(std::vector<Item>& items) {
        if (!accepting_.load()) {
            return items.size();
        }
        std::vector<std::vector<Item*>> shares(workers_.size());
        for (Item& item : items) {
            shares[worker_index(item.instance_id)].push_back(&item);
        }
        std::size_t refused = 0;
        for (std::size_t k = 0; k < shares.size(); ++k) {
            if (shares[k].empty()) {
                continue;
            }
            Worker& w = *workers_[k];
            {
                std::lock_guard lock(w.mutex);
                if (w.closed) {
                    refused += shares[k].size();
                    continue;
                }
                queued_.fetch_add(shares[k].size());
                for (Item* item : shares[k]) {
                    w.queue.push_back(std::move(*item));
                }
            }
            w.cv.notify_one();
        }
        return refused;
    }

    /// Queues `item`. External requests respect queue_capacity; internal follow-ups (effects of
    /// committed work) are never refused for capacity, so that no committed effect is lost.
    /// On a refusal `item` is left as it was (its callback not called).
    Status submit(Item&& item, bool external) {
        if (!accepting_.load()) {
            return engine_stopped();
        }
        if (external) {
            if (queued_.fetch_add(1) >= settings_.queue_capacity) {
                queued_.fetch_sub(1);
                telemetry_.error("OVERLOADED");
                return Error::overloaded(
                    "the engine queue is full (setting engine_queue_capacity)");
            }
        } else {
            queued_.fetch_add(1);
        }
        Worker& w = worker_for(item.instance_id);
        {
            std::lock_guard lock(w.mutex);
            if (w.closed) {
                queued_.fetch_sub(1);
                return engine_stopped();
            }
            w.queue.push_back(std::move(item));
        }
        w.cv.notify_one();
        return {};
    }

    /// Submits and waits for the committed outcome.
    /// `outbox_id`: the outbox row the command delivers (deleted with its commit), or null.
    Result<Outcome> run(std::string instance_id, Work work, bool external = true,
                        const std::string* outbox_id = nullptr) {
        auto promise = std::make_shared<std::promise<Result<Outcome>>>();
        auto future = promise->get_future();
        Item item{std::move(instance_id), std::move(work),
                  [promise](Result<Outcome> r) { promise->set_value(std::move(r)); },
                  outbox_id != nullptr ? std::optional<std::string>(*outbox_id) : std::nullopt};
        if (auto st = submit(std::move(item), external); !st) {
            return std::move(st).error();
        }
        return future.get();
    }

    /// The checks of a start request that need no I/O (its variables, its business key).
    Status check_start(const StartInstanceRequest& request) {
        if (auto st = check_variables(request.variables); !st) {
            return st;
        }
        if (request.business_key && request.business_key->find('\0') != std::string::npos) {
            return Error::invalid_argument(
                "business_key must not contain the NUL character (U+0000)");
        }
        return {};
    }

    /// Submits an external request whose answer goes to `done` (on the worker thread, or here
    /// when the queue refuses it).
    void run_async(std::string instance_id, Work work, Callback done) {
        Item item{std::move(instance_id), std::move(work), std::move(done)};
        if (auto st = submit(std::move(item), true); !st) {
            item.done(std::move(st).error());
        }
    }

    /// Whether the engine's refusal of a task completion means the task is no longer open (its
    /// answer is then refused_completion's).
    static bool task_closed(const Error& e) {
        return is_code(e, "WAIT_NOT_FOUND") || is_code(e, "INSTANCE_NOT_RUNNING");
    }

    /// The answer to a task completion the engine refused with WAIT_NOT_FOUND or
    /// INSTANCE_NOT_RUNNING: a racing request completed the task first (its instance may even
    /// have ended since), so it is answered as for a task that was already completed, with the
    /// state the store has now. Reads the store.
    Result<InstanceView> refused_completion(const std::string& task_id, Error refusal) {
        auto now_row = store_.task(task_id);
        if (now_row && now_row.value() && now_row.value()->state != "OPEN") {
            return task_done(task_id, now_row.value()->state);
        }
        if (is_code(refusal, "WAIT_NOT_FOUND")) {
            return task_done(task_id, "COMPLETED");
        }
        return refusal;
    }

    /// Submits without waiting; failures of the follow-up are counted, not returned.
    void post(std::string instance_id, Work work) {
        Item item{std::move(instance_id), std::move(work), [this](Result<Outcome> r) {
                      if (!r) {
                          telemetry_.error(r.error().code);
                      }
                  }};
        if (auto st = submit(std::move(item), false); !st) {
            telemetry_.error(st.error().code);
        }
    }

    // --- the engine workers ------------------------------------------------------------------

    void worker_loop(Worker& w) {
        const std::size_t command_batch = std::max(1u, settings_.token_batch_size);
        const std::size_t timer_batch = std::max(command_batch, timer_batch_size());
        for (;;) {
            std::vector<Item> items;
            {
                std::unique_lock lock(w.mutex);
                w.cv.wait(lock, [&] { return stopping_workers_ || !w.queue.empty(); });
                if (w.queue.empty()) {
                    w.closed = true;
                    return;
                }
                const std::size_t batch_size =
                    w.queue.front().timer_firing ? timer_batch : command_batch;
                // One command per instance per batch: a second one waits for the next batch, so
                // that every InstanceWrite is one step from the stored version.
                std::unordered_set<std::string> ids;
                std::vector<Item> deferred;
                std::size_t scanned = 0;
                while (!w.queue.empty() && items.size() < batch_size &&
                       scanned < batch_size * kScanFactor) {
                    ++scanned;
                    Item it = std::move(w.queue.front());
                    w.queue.pop_front();
                    if (ids.insert(it.instance_id).second) {
                        items.push_back(std::move(it));
                    } else {
                        deferred.push_back(std::move(it));
                    }
                }
                for (auto it = deferred.rbegin(); it != deferred.rend(); ++it) {
                    w.queue.push_front(std::move(*it));
                }
            }
            queued_.fetch_sub(items.size());
            process_batch(w, items);
        }
    }

    Result<Cached*> load(Worker& w, const std::string& id, bool fresh) {
        if (!fresh) {
            if (Cached* c = w.cache.find(id)) {
                return c;
            }
        }
        w.cache.erase(id);
        auto row = store_.instance(id, true);
        if (!row) {
            return std::move(row).error();
        }
        if (!row.value()) {
            return instance_not_found(id);
        }
        return cache_row(w, std::move(*row.value()));
    }

    /// Puts a stored row (with its state) into the worker's cache: the state parsed, the
    /// definition resolved.
    Result<Cached*> cache_row(Worker& w, InstanceRow row) {
        const std::string id = row.id;
        auto state = engine::InstanceState::deserialize(row.state);
        if (!state) {
            return Error::internal_error("instance " + id +
                                         ": stored state unreadable: " + state.error());
        }
        auto def = definition_by_id(row.definition_id);
        if (!def) {
            return std::move(def).error();
        }
        Cached c;
        c.row = std::move(row);
        c.row.state.clear();
        c.row.variables = nullptr;  // the state holds them; fill_row() copies them back
        c.state = std::move(state).value();
        c.definition = std::move(def).value();
        w.cache.put(std::move(c));
        return w.cache.find(id);
    }

    /// Reads the instances of the batch's timer firings that the worker does not hold in ONE
    /// store call, instead of one round trip per firing. A failure here is no error: each item
    /// then reads its instance itself (and reports what fails).
    void prefetch_timer_instances(Worker& w, const std::vector<Item>& items) {
        std::vector<std::string> missing;
        for (const auto& item : items) {
            if (item.timer_firing && w.cache.find(item.instance_id) == nullptr) {
                missing.push_back(item.instance_id);
            }
        }
        if (missing.size() < 2) {
            return;
        }
        auto rows = store_.instances(missing, true);
        if (!rows) {
            return;
        }
        for (auto& row : rows.value()) {
            (void)cache_row(w, std::move(row));
        }
    }

    void fill_row(Cached& c, bool suspended, TimePoint now) {
        const auto& proc = *c.definition->process;
        c.row.variables = c.state.variables;
        c.row.status = suspended && !c.state.ended() ? std::string(kSuspended)
                                                     : std::string(c.state.api_status());
        c.row.active_elements.clear();
        for (auto e : c.state.active_elements()) {
            c.row.active_elements.push_back(proc.element_id(e));
        }
        c.row.open_incidents = static_cast<std::int64_t>(c.state.incidents.size());
        c.row.updated_at = now;
        if (c.state.ended() && !c.row.ended_at) {
            c.row.ended_at = now;
        }
    }

    WaitRow wait_row(const engine::WaitOpened& o, const Cached& c, TimePoint now) {
        WaitRow r;
        r.id = new_uuid();
        r.instance_id = c.row.id;
        r.definition_id = c.row.definition_id;
        r.wait_id = o.id;
        r.element_id = o.element_id;
        r.created_at = now;
        switch (o.kind) {
            case engine::WaitKind::kUserTask:
                r.kind = WaitRowKind::kUserTask;
                r.name = o.name;
                if (!o.assignee.empty()) {
                    r.assignee = o.assignee;
                }
                r.candidate_groups = o.candidate_groups;
                r.due_at = o.due_at;
                break;
            case engine::WaitKind::kJob:
                r.kind = WaitRowKind::kJob;
                r.name = o.service_name.empty() ? o.job_type : kServicePrefix + o.service_name;
                r.due_at = now;
                r.payload = {{"variables", o.variables},
                             {"headers", o.headers},
                             {"service", o.service_name}};
                break;
            case engine::WaitKind::kTimer:
                r.kind = WaitRowKind::kTimer;
                r.name = o.name;
                r.due_at = o.due_at.value_or(now);
                r.repeat = o.repeat;
                break;
            case engine::WaitKind::kMessage:
                r.kind = WaitRowKind::kMessage;
                r.name = o.message_name;
                if (!o.correlation_key.empty()) {
                    r.correlation_key = o.correlation_key;
                }
                break;
            case engine::WaitKind::kSignal:
                r.kind = WaitRowKind::kSignal;
                r.name = o.signal_name;
                break;
            case engine::WaitKind::kCall:
            case engine::WaitKind::kConditional:
                break;  // not persisted as rows (handled by the caller)
        }
        return r;
    }

    static const engine::Wait* find_wait(const std::vector<engine::Wait>& waits,
                                         engine::WaitId id) {
        auto it = std::find_if(waits.begin(), waits.end(),
                               [id](const engine::Wait& wait) { return wait.id == id; });
        return it == waits.end() ? nullptr : &*it;
    }

    /// Adds the table that holds the rows of waits of `kind` (none for calls and conditions).
    static void add_table(WaitTables& in, engine::WaitKind kind) {
        switch (kind) {
            case engine::WaitKind::kUserTask:
                in.user_tasks = true;
                break;
            case engine::WaitKind::kJob:
            case engine::WaitKind::kTimer:
                in.jobs = true;
                break;
            case engine::WaitKind::kMessage:
                in.messages = true;
                break;
            case engine::WaitKind::kSignal:
                in.signals = true;
                break;
            case engine::WaitKind::kCall:
            case engine::WaitKind::kConditional:
                break;
        }
    }

    /// Turns the effects of one execute() into the instance's write and its follow-ups.
    /// `waits_before`: the instance's waits before the command (none for a start).
    void translate(const engine::Effects& fx, Prepared& p, engine::WaitId first_new,
                   const CommandWork* cmd, bool was_ended, TimePoint now,
                   const std::vector<engine::Wait>& waits_before = {}) {
        Cached& c = p.next;
        const auto& proc = *c.definition->process;
        InstanceWrite& w = p.write;
        w.waits_closed = fx.waits_closed;
        engine::WaitId answered = 0;  // the call wait whose child's answer this command is
        if (cmd != nullptr) {
            if (const auto* cc = std::get_if<engine::CompleteCall>(&cmd->command)) {
                answered = cc->wait_id;
            } else if (const auto* fc = std::get_if<engine::FailCall>(&cmd->command)) {
                answered = fc->wait_id;
            }
        }
        // The tables holding the closed waits' rows, by their kinds before the command (a wait
        // not found there could be in any); a closed call wait other than the answered one
        // cancels its child.
        w.closed_in = WaitTables{false, false, false, false};
        for (const engine::WaitId id : fx.waits_closed) {
            const engine::Wait* before = find_wait(waits_before, id);
            if (before == nullptr) {
                w.closed_in = WaitTables{};
                continue;
            }
            add_table(w.closed_in, before->kind);
            if (before->kind == engine::WaitKind::kCall && id != answered) {
                p.follow.cancel_children.push_back(child_instance_id(c.row.id, id));
            }
        }
        std::unordered_set<engine::WaitId> live;
        for (const auto& wait : c.state.waits) {
            live.insert(wait.id);
        }
        for (const auto& o : fx.waits_opened) {
            // A wait re-armed and then closed by the same command (a cycle timer whose path
            // ended the instance) has no row to open.
            if (!live.contains(o.id)) {
                continue;
            }
            // A cycle timer that fired and re-armed keeps its wait id: its old row goes.
            if (o.id < first_new && std::find(w.waits_closed.begin(), w.waits_closed.end(), o.id) ==
                                        w.waits_closed.end()) {
                w.waits_closed.push_back(o.id);
                add_table(w.closed_in, o.kind);
            }
            if (o.kind == engine::WaitKind::kCall) {
                p.follow.children.push_back({c.row.id, o.id, o.called_process, o.variables,
                                             c.state.call_depth + 1, c.row.business_key});
                continue;
            }
            if (o.kind == engine::WaitKind::kConditional) {
                continue;
            }
            WaitRow row = wait_row(o, c, now);
            if (row.kind == WaitRowKind::kJob) {
                (o.service_name.empty() ? p.follow.jobs : p.follow.builtin_jobs) = true;
            }
            if (row.kind == WaitRowKind::kTimer && row.due_at &&
                (!p.follow.earliest_timer || *row.due_at < *p.follow.earliest_timer)) {
                p.follow.earliest_timer = row.due_at;
            }
            w.waits_opened.push_back(std::move(row));
        }
        if (cmd != nullptr && cmd->completes_task) {
            const auto wid = std::get<engine::CompleteTask>(cmd->command).wait_id;
            if (std::find(fx.waits_closed.begin(), fx.waits_closed.end(), wid) !=
                fx.waits_closed.end()) {
                w.tasks_completed.push_back(wid);
            }
        }
        if (limits_.history) {
            w.history.reserve(fx.history.size());
            for (const auto& h : fx.history) {
                // `activity` leaves gateways out; `full` keeps every element.
                if (!history_records(history_level_, proc.process().elements[h.element].type)) {
                    continue;
                }
                w.history.push_back({c.row.id, proc.element_id(h.element),
                                     proc.element_type(h.element), proc.element_name(h.element),
                                     history_kind(h.event), h.at});
            }
        }
        for (const auto& inc : fx.incidents_opened) {
            IncidentRow r;
            r.id = new_uuid();
            r.instance_id = c.row.id;
            r.engine_incident_id = inc.id;
            if (cmd != nullptr && inc.kind == "JOB_FAILED") {
                r.job_id = cmd->job_id;
            }
            r.element_id = proc.element_id(inc.element);
            r.kind = inc.kind;
            r.message = inc.message;
            r.created_at = now;
            // A failing script, expression or job is a runtime error of that kind.
            telemetry_.error(inc.kind);
            w.incidents_opened.push_back(std::move(r));
        }
        w.incidents_resolved = fx.incidents_resolved;
        p.follow.signals = fx.signals;
        p.follow.messages = fx.messages;
        if (!was_ended && c.state.ended() && c.row.parent_instance_id && c.row.parent_wait_id) {
            const auto wid = *c.row.parent_wait_id;
            engine::Command notice;
            if (c.state.status == engine::InstanceStatus::kCompleted) {
                notice = engine::CompleteCall{wid, c.state.variables};
            } else if (c.state.status == engine::InstanceStatus::kError && fx.uncaught_error) {
                notice = engine::FailCall{wid, fx.uncaught_error->code, fx.uncaught_error->message};
            } else {
                notice = engine::FailCall{wid, "",
                                          "the called instance " + c.row.id + " ended " +
                                              std::string(c.state.api_status())};
            }
            p.follow.parent = ParentNotice{*c.row.parent_instance_id, std::move(notice)};
        }
    }

    Result<engine::Effects> execute(Cached& c, const engine::Command& command, TimePoint now) {
        const auto t0 = Steady::now();
        auto fx = engine::Engine::execute(*c.definition->process, c.state, command, now, limits_);
        telemetry_.engine_executed(seconds_since(t0), fx ? fx.value().tokens_processed : 0);
        if (!fx) {
            return fx.error().to_error();
        }
        return std::move(fx).value();
    }

    Result<Prepared> prepare(Worker& w, Item& item, TimePoint now, bool fresh) {
        // A delivery whose row is gone was committed by another delivery of the same row (the
        // live one and the sweeper's, racing): a second one could reach another target.
        if (item.outbox_id) {
            auto pending = store_.outbox_row_exists(*item.outbox_id);
            if (!pending) {
                return std::move(pending).error();
            }
            if (!pending.value()) {
                return Error::conflict("OUTBOX_DELIVERED",
                                       "outbox row " + *item.outbox_id + " was delivered already");
            }
        }
        if (auto* s = std::get_if<StartWork>(&item.work)) {
            if (s->check_exists) {
                auto existing = store_.instance(item.instance_id, false);
                if (!existing) {
                    return std::move(existing).error();
                }
                if (existing.value()) {
                    return Error::conflict("INSTANCE_EXISTS",
                                           "instance " + item.instance_id + " exists already");
                }
            }
            Prepared p;
            Cached& c = p.next;
            c.definition = s->definition;
            const auto& rec = s->definition->record;
            c.row.id = item.instance_id;
            c.row.definition_id = rec.id;
            c.row.process_key = rec.key;
            c.row.process_version = rec.version;
            c.row.business_key = s->business_key;
            c.row.parent_instance_id = s->parent_instance_id;
            c.row.parent_wait_id = s->parent_wait_id;
            c.row.created_at = now;
            c.row.version = 1;
            auto fx =
                execute(c, engine::Start{s->variables, s->start_event_id, s->call_depth}, now);
            if (!fx) {
                return std::move(fx).error();
            }
            fill_row(c, false, now);
            p.started = true;
            translate(fx.value(), p, 1, nullptr, false, now);
            p.write.insert = true;
            p.write.instance = c.row;
            p.write.instance.state = c.state.serialize();
            return p;
        }
        auto loaded = load(w, item.instance_id, fresh);
        if (!loaded) {
            return std::move(loaded).error();
        }
        const Cached& current = *loaded.value();
        const bool suspended = current.row.status == kSuspended;
        const bool was_ended = current.state.ended();
        Prepared p;
        p.was_active = !was_ended;
        p.previous_status = current.row.status;
        p.next = current;
        Cached& c = p.next;
        c.row.version = current.row.version + 1;
        if (auto* s = std::get_if<StatusWork>(&item.work)) {
            if (was_ended) {
                return Error::conflict("INSTANCE_NOT_RUNNING",
                                       "instance '" + item.instance_id + "' has ended");
            }
            fill_row(c, s->suspend, now);
            p.follow.resumed = suspended && !s->suspend;
        } else {
            auto& cmd = std::get<CommandWork>(item.work);
            if (suspended && !std::holds_alternative<engine::Cancel>(cmd.command)) {
                Error e =
                    Error::conflict("INSTANCE_SUSPENDED", "instance '" + item.instance_id +
                                                              "' is suspended; resume it first");
                e.context = {{"instance_id", item.instance_id}};
                return e;
            }
            const engine::WaitId first_new = c.state.next_wait;
            auto fx = execute(c, cmd.command, now);
            if (!fx) {
                return std::move(fx).error();
            }
            fill_row(c, suspended, now);
            p.variables_changed = fx.value().variables_changed;
            translate(fx.value(), p, first_new, &cmd, was_ended, now, current.state.waits);
        }
        p.write.insert = false;
        p.write.expected_version = current.row.version;
        p.write.instance = c.row;
        p.write.instance.state = c.state.serialize();
        return p;
    }

    void process_batch(Worker& w, std::vector<Item>& items) {
        std::vector<std::optional<Prepared>> prepared(items.size());
        std::vector<std::optional<Error>> failed(items.size());
        const TimePoint now = this->now();
        Batch batch;
        std::vector<std::size_t> in_batch;
        // Outbox rows delivered since the last commit ride along (no round trip of their own).
        std::vector<std::string> done_ids = take_outbox_done();
        prefetch_timer_instances(w, items);
        bool committed_batch = false;
        for (int attempt = 0; attempt < 2; ++attempt) {
            batch = Batch{};
            batch.outbox_done = done_ids;
            in_batch.clear();
            for (std::size_t i = 0; i < items.size(); ++i) {
                prepared[i].reset();
                failed[i].reset();
                try {
                    auto p = prepare(w, items[i], now, attempt > 0);
                    // A cached state may be behind another replica's write: on a refusal that a
                    // newer state could change, reload once.
                    if (!p && attempt == 0 && !std::holds_alternative<StartWork>(items[i].work) &&
                        (is_code(p.error(), "WAIT_NOT_FOUND") ||
                         is_code(p.error(), "INCIDENT_NOT_FOUND") ||
                         is_code(p.error(), "INSTANCE_NOT_RUNNING"))) {
                        p = prepare(w, items[i], now, true);
                    }
                    if (!p) {
                        failed[i] = std::move(p).error();
                        continue;
                    }
                    prepared[i] = std::move(p).value();
                } catch (const std::exception& ex) {
                    failed[i] = Error::internal_error(std::string("engine worker: ") + ex.what());
                    continue;
                }
                make_outbox(*prepared[i]);
                batch.outbox.insert(batch.outbox.end(), prepared[i]->outbox.begin(),
                                    prepared[i]->outbox.end());
                if (items[i].outbox_id) {
                    batch.outbox_done.push_back(*items[i].outbox_id);
                }
                batch.instances.push_back(std::move(prepared[i]->write));
                in_batch.push_back(i);
            }
            if (batch.instances.empty()) {
                break;
            }
            const auto t0 = Steady::now();
            Status committed = Error::internal_error("commit threw");
            try {
                committed = store_.commit(batch);
            } catch (const std::exception& ex) {
                committed = Error::internal_error(std::string("commit: ") + ex.what());
            }
            if (committed) {
                telemetry_.batch_committed(in_batch.size(), seconds_since(t0));
                batches_.fetch_add(1);
                committed_batch = true;
                break;
            }
            telemetry_.error(committed.error().code);
            for (std::size_t i : in_batch) {
                w.cache.erase(items[i].instance_id);
            }
            if (committed.error().kind == ErrorKind::kConflict && attempt == 0) {
                continue;  // reload the instances and run the batch again, once
            }
            for (std::size_t i : in_batch) {
                prepared[i].reset();
                failed[i] = committed.error();
            }
            break;
        }
        if (!committed_batch && !done_ids.empty()) {
            mark_outbox_done(std::move(done_ids));  // the next commit or the sweeper deletes them
        }
        std::vector<const InstanceWrite*> writes(items.size(), nullptr);
        for (std::size_t k = 0; k < in_batch.size(); ++k) {
            writes[in_batch[k]] = &batch.instances[k];
        }
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (!prepared[i]) {
                Error e = failed[i] ? std::move(*failed[i])
                                    : Error::internal_error("command was not processed");
                if (e.kind == ErrorKind::kInternal || e.kind == ErrorKind::kTooLarge) {
                    telemetry_.error(e.code);
                }
                items[i].done(std::move(e));
                continue;
            }
            finish_item(w, items[i], std::move(*prepared[i]), writes[i]);
        }
    }

    void finish_item(Worker& w, Item& item, Prepared p, const InstanceWrite* write) {
        Cached& c = p.next;
        if (events_ != nullptr && write != nullptr && events_->has_subscribers()) {
            publish_events(p, *write);
        }
        commands_.fetch_add(1);
        const bool active = !c.state.ended();
        if (p.started) {
            started_.fetch_add(1);
            telemetry_.instance_started();
        }
        if (active != p.was_active) {
            telemetry_.active_instances_changed(active ? 1 : -1);
        }
        if (!active && (p.started || p.was_active)) {
            ended_.fetch_add(1);
            telemetry_.instance_ended(c.row.status, seconds_between(c.row.created_at, now()));
        }
        Outcome out;
        if (active) {
            // The variables move to the answer (the state holds them; fill_row() copies them
            // back), the rest of the row is copied.
            Json variables = std::move(c.row.variables);
            c.row.variables = nullptr;
            out = Outcome{c.row, {}};
            out.row.variables = std::move(variables);
            w.cache.put(std::move(c));
        } else {
            const std::string id = c.row.id;
            out = Outcome{std::move(c.row), {}};  // an ended instance leaves the cache: no copy
            w.cache.erase(id);
        }
        if (write != nullptr) {
            for (const auto& wr : write->waits_opened) {
                if (wr.kind == WaitRowKind::kUserTask) {
                    const std::string& instance =
                        wr.instance_id.empty() ? item.instance_id : wr.instance_id;
                    open_tasks_.put(wr.id, instance, wr.wait_id);
                    if (instance == item.instance_id) {
                        out.opened_tasks.push_back({wr.id, wr.element_id, wr.name});
                    }
                }
            }
        }
        FollowUps follow = std::move(p.follow);
        std::vector<OutboxRow> outbox = std::move(p.outbox);
        item.done(std::move(out));
        dispatch(std::move(follow), item.instance_id, std::move(outbox));
    }

    void publish_events(const Prepared& p, const InstanceWrite& write) {
        const InstanceRow& row = p.next.row;
        std::vector<InstanceEvent> events;
        auto event = [&](const char* type, TimePoint at, Json data) {
            events.push_back({type, row.id, row.process_key, at, std::move(data)});
        };
        if (p.started || row.status != p.previous_status) {
            event("INSTANCE_STATUS", row.updated_at, {{"status", row.status}});
        }
        for (const auto& h : write.history) {
            event("ACTIVITY", h.at,
                  {{"element_id", h.element_id},
                   {"element_type", h.element_type},
                   {"name", h.name},
                   {"event", history_text(h.event)}});
        }
        if (p.started || p.variables_changed) {
            event("VARIABLES", row.updated_at, {{"variables", row.variables}});
        }
        for (const auto& wr : write.waits_opened) {
            if (wr.kind == WaitRowKind::kUserTask) {
                event("TASK_CREATED", wr.created_at,
                      {{"task_id", wr.id},
                       {"element_id", wr.element_id},
                       {"name", wr.name},
                       {"assignee", wr.assignee ? Json(*wr.assignee) : Json()},
                       {"candidate_groups", wr.candidate_groups}});
            }
        }
        if (!events.empty()) {
            events_->publish(std::move(events));
        }
    }

    // --- follow-ups ----------------------------------------------------------------------------

    void dispatch(FollowUps f, const std::string& instance_id, std::vector<OutboxRow> outbox) {
        // Effects into other instances are outbox rows, committed with the batch: delivered now,
        // or by the sweeper of any replica when this delivery does not happen (a crash).
        if (settings_.outbox_deliver_inline) {
            for (auto& row : outbox) {
                deliver(std::move(row));
            }
        }
        if (f.jobs) {
            {
                std::lock_guard lock(jobs_mutex_);
                ++jobs_epoch_;
            }
            jobs_cv_.notify_all();
        }
        if (f.builtin_jobs) {
            request_service_poll();
        }
        if (f.earliest_timer) {
            wake_scheduler_by(*f.earliest_timer);
        }
        if (f.resumed) {
            aux_.post([this, instance_id] { fire_instance_timers(instance_id); });
        }
    }

    // --- the outbox ------------------------------------------------------------------------------

    /// Turns the follow-ups that act on other instances into outbox rows (written with the
    /// batch, delivered after it) and takes them out of `p.follow`.
    void make_outbox(Prepared& p) {
        FollowUps& f = p.follow;
        p.outbox.clear();
        if (f.children.empty() && !f.parent && f.cancel_children.empty() && f.signals.empty() &&
            f.messages.empty()) {
            return;  // most commands: nothing to write
        }
        const TimePoint at = clock_.now();  // wall time: the grace period ignores clock control
        auto add = [&](const char* kind, Json payload) {
            OutboxRow row;
            row.id = new_uuid();
            row.kind = kind;
            row.payload = std::move(payload);
            row.created_at = at;
            p.outbox.push_back(std::move(row));
        };
        for (auto& c : f.children) {
            add(kChildStart, {{"parent_id", c.parent_id},
                              {"wait_id", c.wait_id},
                              {"process_key", c.process_key},
                              {"variables", std::move(c.variables)},
                              {"depth", c.depth},
                              {"business_key", c.business_key ? Json(*c.business_key) : Json()}});
        }
        if (f.parent) {
            Json payload = {{"parent_id", f.parent->parent_id}};
            if (auto* cc = std::get_if<engine::CompleteCall>(&f.parent->command)) {
                payload["wait_id"] = cc->wait_id;
                payload["complete"] = true;
                payload["variables"] = std::move(cc->variables);
            } else if (const auto* fc = std::get_if<engine::FailCall>(&f.parent->command)) {
                payload["wait_id"] = fc->wait_id;
                payload["complete"] = false;
                payload["error_code"] = fc->error_code;
                payload["message"] = fc->message;
            }
            add(kParentNotice, std::move(payload));
        }
        for (auto& child : f.cancel_children) {
            add(kCancelChild, {{"instance_id", std::move(child)}});
        }
        for (auto& sig : f.signals) {
            add(kSignal, {{"name", std::move(sig.name)},
                          {"variables", std::move(sig.variables)},
                          {"source", p.next.row.id}});
        }
        for (auto& m : f.messages) {
            add(kMessage,
                {{"name", std::move(m.name)},
                 {"correlation_key", m.correlation_key.empty() ? Json() : Json(m.correlation_key)},
                 {"variables", std::move(m.variables)}});
        }
        f.children.clear();
        f.parent.reset();
        f.cancel_children.clear();
        f.signals.clear();
        f.messages.clear();
    }

    /// Records outbox rows whose delivery is complete without a commit of its own (a broadcast,
    /// a target that had nothing left to do): the next batch commit, or the sweeper, deletes them.
    void mark_outbox_done(std::vector<std::string> ids) {
        std::lock_guard lock(outbox_mutex_);
        for (auto& id : ids) {
            outbox_done_.push_back(std::move(id));
        }
    }
    void mark_outbox_done(const std::string& id) { mark_outbox_done(std::vector<std::string>{id}); }

    std::vector<std::string> take_outbox_done() {
        std::lock_guard lock(outbox_mutex_);
        std::vector<std::string> out;
        out.swap(outbox_done_);
        return out;
    }

    /// The completion of a delivery that commits into one instance: a commit deleted the row
    /// already; a refusal that leaves nothing to do settles it; anything else leaves it for the
    /// sweeper (a suspended parent, the store down).
    Callback settle(std::string outbox_id) {
        return [this, outbox_id = std::move(outbox_id)](Result<Outcome> r) {
            if (r) {
                return;
            }
            if (delivery_settled(r.error())) {
                mark_outbox_done(outbox_id);
            } else if (!is_code(r.error(), "INSTANCE_SUSPENDED")) {
                telemetry_.error(r.error().code);
            }
        };
    }

    /// Carries out one outbox row (live, right after its commit, or replayed by the sweeper).
    /// Every kind is safe to replay: see the class comment.
    void deliver(OutboxRow row) {
        const Json& p = row.payload;
        try {
            if (row.kind == kChildStart) {
                ChildStart child;
                child.parent_id = p.at("parent_id").get<std::string>();
                child.wait_id = p.at("wait_id").get<std::uint64_t>();
                child.process_key = p.at("process_key").get<std::string>();
                child.variables = p.value("variables", Json::object());
                child.depth = p.value("depth", 0u);
                if (p.contains("business_key") && p["business_key"].is_string()) {
                    child.business_key = p["business_key"].get<std::string>();
                }
                aux_.post([this, child = std::move(child), id = row.id]() mutable {
                    start_child(std::move(child), id);
                });
            } else if (row.kind == kParentNotice) {
                engine::Command command;
                const auto wait = p.at("wait_id").get<std::uint64_t>();
                if (p.value("complete", false)) {
                    command = engine::CompleteCall{wait, p.value("variables", Json::object())};
                } else {
                    command = engine::FailCall{wait, p.value("error_code", std::string()),
                                               p.value("message", std::string())};
                }
                submit_delivery(p.at("parent_id").get<std::string>(),
                                CommandWork{std::move(command), {}, false}, row.id);
            } else if (row.kind == kCancelChild) {
                // Not started yet, or ended already: nothing to cancel, and that is fine.
                submit_delivery(p.at("instance_id").get<std::string>(),
                                CommandWork{engine::Cancel{}, {}, false}, row.id);
            } else if (row.kind == kSignal) {
                aux_.post([this, name = p.at("name").get<std::string>(),
                           vars = p.value("variables", Json::object()),
                           source = p.value("source", std::string()), id = row.id] {
                    auto r = fan_out(name, vars, source, false, &id);
                    if (r.transient) {
                        telemetry_.error(r.transient->code);  // the sweeper delivers again
                        return;
                    }
                    mark_outbox_done(id);
                });
            } else if (row.kind == kMessage) {
                MessageRequest req;
                req.name = p.at("name").get<std::string>();
                if (p.contains("correlation_key") && p["correlation_key"].is_string()) {
                    req.correlation_key = p["correlation_key"].get<std::string>();
                }
                req.variables = p.value("variables", Json::object());
                aux_.post([this, req = std::move(req), id = row.id]() mutable {
                    auto r = correlate(std::move(req), false, &id);
                    if (!r) {
                        if (is_code(r.error(), "MESSAGE_NOT_CORRELATED")) {
                            mark_outbox_done(id);  // no receiver: a thrown message is lost
                        } else if (!is_code(r.error(), "OUTBOX_DELIVERED")) {
                            telemetry_.error(r.error().code);
                        }
                    }
                });
            } else {
                telemetry_.error("OUTBOX_UNKNOWN_KIND");
            }
        } catch (const Json::exception&) {
            telemetry_.error("OUTBOX_UNREADABLE");  // not ours to fix by replaying: leave it
        }
    }

    /// Queues a command that delivers outbox row `outbox_id` into `instance_id`.
    void submit_delivery(std::string instance_id, Work work, const std::string& outbox_id) {
        Item item{std::move(instance_id), std::move(work), settle(outbox_id), outbox_id};
        if (auto st = submit(std::move(item), false); !st) {
            telemetry_.error(st.error().code);
        }
    }

    /// Starts the child of a call wait (outbox row `outbox_id`); its id is derived from the
    /// parent and the wait, so a replay finds it started and does nothing.
    void start_child(ChildStart child, const std::string& outbox_id) {
        auto fail_parent = [&](const Error& e) {
            submit_delivery(child.parent_id,
                            CommandWork{engine::FailCall{child.wait_id, "",
                                                         "called process '" + child.process_key +
                                                             "' could not start: " + e.message},
                                        {},
                                        false},
                            outbox_id);
        };
        // A parent that ended meanwhile (cancelled before a replayed start got here) calls
        // nobody: its cancel of this child may have found nothing to cancel.
        if (auto parent = store_.instance(child.parent_id, false);
            parent && (!parent.value() || parent.value()->ended_at)) {
            mark_outbox_done(outbox_id);
            return;
        }
        auto def = definition_for(child.process_key, std::nullopt);
        if (!def) {
            if (def.error().kind == ErrorKind::kUnavailable) {
                telemetry_.error(def.error().code);  // the sweeper tries again
                return;
            }
            fail_parent(def.error());
            return;
        }
        StartWork s;
        s.definition = std::move(def).value();
        s.variables = std::move(child.variables);
        s.business_key = child.business_key;
        s.parent_instance_id = child.parent_id;
        s.parent_wait_id = child.wait_id;
        s.call_depth = child.depth;
        s.check_exists = true;
        Item item{
            child_instance_id(child.parent_id, child.wait_id), std::move(s),
            [this, child, outbox_id](Result<Outcome> r) {
                if (r) {
                    return;  // the child's insert deleted the row
                }
                if (r.error().kind == ErrorKind::kConflict) {
                    mark_outbox_done(outbox_id);  // this call's child exists already
                    return;
                }
                telemetry_.error(r.error().code);
                if (r.error().kind == ErrorKind::kUnavailable) {
                    return;  // the sweeper tries again
                }
                submit_delivery(
                    child.parent_id,
                    CommandWork{engine::FailCall{child.wait_id, "",
                                                 "called process '" + child.process_key +
                                                     "' could not start: " + r.error().message},
                                {},
                                false},
                    outbox_id);
            },
            outbox_id};
        if (auto st = submit(std::move(item), false); !st) {
            telemetry_.error(st.error().code);  // shutting down: the sweeper of the next start
        }
    }

    /// One sweeper pass: deletes the rows delivered since the last commit, then takes the rows
    /// that outlived outbox_grace_ms (a crash between their commit and their delivery, here or
    /// on another replica) and delivers them again. Returns how many rows it took.
    Result<std::size_t> sweep_outbox() {
        if (auto done = take_outbox_done(); !done.empty()) {
            if (auto st = store_.delete_outbox(done); !st) {
                mark_outbox_done(std::move(done));
                return std::move(st).error();
            }
        }
        const TimePoint wall = clock_.now();
        auto rows = store_.acquire_outbox(
            owner_, static_cast<int>(std::max(1u, settings_.outbox_batch_size)),
            wall - settings_.outbox_grace, wall, wall + settings_.outbox_lock);
        if (!rows) {
            return std::move(rows).error();
        }
        const std::size_t n = rows->size();
        for (auto& row : rows.value()) {
            deliver(std::move(row));
        }
        if (auto pending = store_.outbox_pending(); pending) {
            telemetry_.outbox_pending(pending.value());
        }
        return n;
    }

    void outbox_loop() {
        int passes = 0;
        while (!stopping_outbox_) {
            auto swept = sweep_outbox();
            if (!swept) {
                telemetry_.error(swept.error().code);
            }
            const bool more = swept && swept.value() >= std::max(1u, settings_.outbox_batch_size);
            std::unique_lock lock(outbox_wait_mutex_);
            // A backlog (after a crash): take the next rows at once, but only a few batches
            // ahead of the deliveries, so that none waits in a queue until its lock expires.
            if (more && ++passes < kOutboxPassesPerWake) {
                continue;
            }
            passes = 0;
            outbox_cv_.wait_for(lock, settings_.state_check_interval,
                                [&] { return stopping_outbox_.load(); });
        }
    }

    struct FanOut {
        Result<SignalResult> result = SignalResult{};
        std::optional<Error> transient;  // a target that could not be reached (store down, ...)
    };

    /// Fan-out of a signal to every subscription (except `exclude`'s own, already delivered by
    /// the engine) and every signal start event. Waits for the commits; counts what fired.
    Result<SignalResult> broadcast(const std::string& name, const Json& vars,
                                   const std::string& exclude, bool external) {
        return fan_out(name, vars, exclude, external, nullptr).result;
    }

    /// broadcast() for outbox row `outbox_id` (when not null): a start event starts an instance
    /// whose id derives from the row, so that a replay starts none twice; a subscription that
    /// got the signal already is closed, so a replay skips it.
    FanOut fan_out(const std::string& name, const Json& vars, const std::string& exclude,
                   bool external, const std::string* outbox_id) {
        FanOut out;
        auto subs = store_.signal_subscriptions(name);
        if (!subs) {
            out.transient = subs.error();
            out.result = std::move(subs).error();
            return out;
        }
        std::vector<std::future<Result<Outcome>>> pending;
        std::optional<Error> first_error;
        for (const auto& s : subs.value()) {
            if (!exclude.empty() && s.instance_id == exclude) {
                continue;
            }
            Item item;
            if (s.instance_id.empty()) {
                if (!s.definition_id) {
                    continue;
                }
                auto def = definition_by_id(*s.definition_id);
                if (!def) {
                    first_error = first_error.value_or(def.error());
                    continue;
                }
                StartWork start;
                start.definition = std::move(def).value();
                start.variables = vars;
                start.start_event_id = s.element_id;
                if (outbox_id != nullptr) {
                    item.instance_id = outbox_start_id(*outbox_id, *s.definition_id, s.element_id);
                    start.check_exists = true;
                } else {
                    item.instance_id = new_uuid();
                }
                item.work = std::move(start);
            } else {
                item.instance_id = s.instance_id;
                item.work = CommandWork{engine::Signal{s.wait_id, vars}, {}, false};
            }
            auto promise = std::make_shared<std::promise<Result<Outcome>>>();
            pending.push_back(promise->get_future());
            item.done = [promise](Result<Outcome> r) { promise->set_value(std::move(r)); };
            // Only the first item of an external fan-out is subject to queue capacity: a
            // half-delivered signal is worse than a briefly longer queue.
            if (auto st = submit(std::move(item), external && pending.size() == 1); !st) {
                pending.pop_back();
                out.transient = out.transient.value_or(st.error());
                if (pending.empty() && external) {
                    out.result = std::move(st).error();
                    return out;
                }
                first_error = first_error.value_or(st.error());
            }
        }
        SignalResult result;
        for (auto& f : pending) {
            auto r = f.get();
            if (r) {
                ++result.triggered;
            } else if (r.error().kind == ErrorKind::kUnavailable ||
                       r.error().kind == ErrorKind::kInternal) {
                first_error = first_error.value_or(r.error());
                if (r.error().kind == ErrorKind::kUnavailable) {
                    out.transient = out.transient.value_or(r.error());
                }
            }
            // Waits consumed meanwhile, ended and suspended instances, instances an earlier
            // delivery of the same outbox row started: not triggered.
        }
        if (first_error && result.triggered == 0 && !pending.empty()) {
            out.result = *first_error;
            return out;
        }
        out.result = result;
        return out;
    }

    /// Correlates `req`; for outbox row `outbox_id` (when not null) the delivering command deletes
    /// the row in its own commit, and a message start event starts an instance whose id derives
    /// from the row, so that a replay delivers nothing twice.
    Result<MessageCorrelation> correlate(MessageRequest req, bool external,
                                         const std::string* outbox_id = nullptr) {
        for (int attempt = 0; attempt < kMessageRetries; ++attempt) {
            auto sub = store_.find_message_subscription(req.name, req.correlation_key);
            if (!sub) {
                return std::move(sub).error();
            }
            if (!sub.value()) {
                break;
            }
            const SubscriptionRow& s = *sub.value();
            if (s.instance_id.empty()) {
                if (!s.definition_id) {
                    break;
                }
                auto def = definition_by_id(*s.definition_id);
                if (!def) {
                    return std::move(def).error();
                }
                StartWork start;
                start.definition = std::move(def).value();
                start.variables = req.variables;
                start.business_key = req.business_key;
                start.start_event_id = s.element_id;
                std::string id = new_uuid();
                if (outbox_id != nullptr) {
                    id = outbox_start_id(*outbox_id, *s.definition_id, s.element_id);
                    start.check_exists = true;
                }
                auto r = run(id, std::move(start), external, outbox_id);
                if (!r && outbox_id != nullptr && is_code(r.error(), "INSTANCE_EXISTS")) {
                    mark_outbox_done(*outbox_id);  // a replay: the first delivery started it
                    return MessageCorrelation{id, s.element_id, true};
                }
                if (!r) {
                    return std::move(r).error();
                }
                return MessageCorrelation{r.value().row.id, s.element_id, true};
            }
            auto r = run(s.instance_id,
                         CommandWork{engine::CorrelateMessage{s.wait_id, req.variables}, {}, false},
                         external, outbox_id);
            if (r) {
                return MessageCorrelation{s.instance_id, s.element_id, false};
            }
            // Consumed by a racing message (or the instance ended): look again.
            if (!is_code(r.error(), "WAIT_NOT_FOUND") &&
                !is_code(r.error(), "INSTANCE_NOT_RUNNING")) {
                return std::move(r).error();
            }
        }
        Error e = Error::not_found(
            "MESSAGE_NOT_CORRELATED",
            "no subscription or message start event waits for message '" + req.name + "'");
        e.context = {{"name", req.name}};
        if (req.correlation_key) {
            e.context["correlation_key"] = *req.correlation_key;
        }
        return e;
    }

    // --- timers --------------------------------------------------------------------------------

    void wake_scheduler_by(TimePoint due) {
        std::lock_guard lock(scheduler_mutex_);
        if (!next_wake_ || due < *next_wake_) {
            next_wake_ = due;
            wake_requested_ = true;
            scheduler_cv_.notify_all();
        }
    }

    void scheduler_loop() {
        while (!stopping_scheduler_) {
            if (auto st = fire_due_timers(); !st) {
                telemetry_.error(st.error().code);
            }
            request_service_poll();
            std::optional<TimePoint> due;
            if (auto next = store_.next_timer_due(); next) {
                due = next.value();
            }
            std::unique_lock lock(scheduler_mutex_);
            if (due && (!next_wake_ || *due < *next_wake_)) {
                next_wake_ = due;
            }
            auto deadline = Steady::now() + settings_.state_check_interval;
            if (next_wake_) {
                const auto left = std::chrono::duration_cast<Steady::duration>(*next_wake_ - now());
                deadline = std::min(
                    deadline, Steady::now() + std::max<Steady::duration>(left, kMinSchedulerSleep));
            }
            wake_requested_ = false;
            scheduler_cv_.wait_until(lock, deadline,
                                     [&] { return stopping_scheduler_.load() || wake_requested_; });
            next_wake_.reset();
        }
    }

    /// Timer firings of one fire_due_timers pass handed to the engine workers, not yet done.
    struct TimerFlight {
        std::mutex mutex;
        std::condition_variable cv;
        std::size_t in_flight = 0;
        std::vector<std::pair<std::string, Error>> failed;  // timer row id, why
    };

    /// Due timers an engine worker fires in one commit at most (setting timer_batch_size).
    std::size_t timer_batch_size() const {
        return std::max<std::size_t>(1, settings_.timer_batch_size);
    }

    /// Fires every due timer. Timers are acquired `round` at a time (what the engine workers
    /// commit in one batch each: timer_batch_size x engine_workers) and handed to the workers
    /// without waiting, so that the next acquisition overlaps the firing of the previous one; at
    /// most two rounds are in flight. Each firing is its instance's command, committed in the
    /// worker's batch together with the deletion of the timer row. Returns when all have fired.
    Status fire_due_timers() {
        std::lock_guard tick(tick_mutex_);
        const std::size_t round = timer_batch_size() * workers_.size();
        const std::size_t max_in_flight = 2 * round;
        auto flight = std::make_shared<TimerFlight>();
        Status result;
        for (int pass = 0; pass < kTimerRounds; ++pass) {
            {
                std::unique_lock lock(flight->mutex);
                flight->cv.wait(lock, [&] { return flight->in_flight + round <= max_in_flight; });
            }
            settle_failed_timers(*flight);
            const TimePoint now = this->now();
            auto rows = store_.acquire_timers(owner_, static_cast<int>(round), now,
                                              now + settings_.timer_lock);
            if (!rows) {
                result = std::move(rows).error();
                break;
            }
            if (rows->empty()) {
                // A firing still in flight may re-arm a timer that is due already (a cycle):
                // it is acquirable once that firing committed.
                std::unique_lock lock(flight->mutex);
                if (flight->in_flight == 0) {
                    break;
                }
                flight->cv.wait(lock, [&] { return flight->in_flight == 0; });
                continue;
            }
            std::vector<Item> firings;
            firings.reserve(rows->size());
            for (const auto& row : rows.value()) {
                telemetry_.timer_fired(std::max(0.0, seconds_between(row.due_at, now)));
                if (row.instance_id.empty()) {
                    fire_start_timer(row, now);
                    continue;
                }
                firings.push_back(
                    Item{row.instance_id, CommandWork{engine::FireTimer{row.wait_id}, {}, false},
                         [flight, id = row.id](Result<Outcome> r) {
                             std::lock_guard lock(flight->mutex);
                             --flight->in_flight;
                             if (!r) {
                                 flight->failed.emplace_back(id, std::move(r).error());
                             }
                             flight->cv.notify_all();
                         },
                         std::nullopt,
                         /*timer_firing=*/true});
            }
            {
                std::lock_guard lock(flight->mutex);
                flight->in_flight += firings.size();
            }
            // The round goes to the workers whole: a worker's batch takes as many as are due.
            if (const std::size_t refused = submit_internal_all(firings); refused > 0) {
                {
                    std::lock_guard lock(flight->mutex);
                    flight->in_flight -= refused;  // not queued: their callbacks never run
                }
                result = engine_stopped();
                break;
            }
        }
        {
            std::unique_lock lock(flight->mutex);
            flight->cv.wait(lock, [&] { return flight->in_flight == 0; });
        }
        settle_failed_timers(*flight);
        return result;
    }

    /// The firings that failed: a stale row (its wait or instance is gone) is deleted; others
    /// stay locked and are retried after timer_lock.
    void settle_failed_timers(TimerFlight& flight) {
        std::vector<std::pair<std::string, Error>> failed;
        {
            std::lock_guard lock(flight.mutex);
            failed.swap(flight.failed);
        }
        for (const auto& [id, e] : failed) {
            if (is_code(e, "WAIT_NOT_FOUND") || is_code(e, "INSTANCE_NOT_RUNNING") ||
                is_code(e, "INSTANCE_NOT_FOUND")) {
                (void)store_.reschedule_timer(id, std::nullopt, 0);
            } else if (!is_code(e, "INSTANCE_SUSPENDED")) {
                telemetry_.error(e.code);
            }
        }
    }

    void fire_start_timer(const JobRow& row, TimePoint now) {
        if (!row.definition_id) {
            (void)store_.reschedule_timer(row.id, std::nullopt, 0);
            return;
        }
        auto def = definition_by_id(*row.definition_id);
        if (!def) {
            if (def.error().kind == ErrorKind::kNotFound) {
                (void)store_.reschedule_timer(row.id, std::nullopt, 0);
            }
            return;
        }
        const auto& proc = *def.value()->process;
        auto element = proc.find(row.element_id);
        if (!element) {
            (void)store_.reschedule_timer(row.id, std::nullopt, 0);
            return;
        }
        StartWork start;
        start.definition = def.value();
        start.start_event_id = row.element_id;
        auto r = run(new_uuid(), std::move(start), false);
        if (!r && r.error().kind == ErrorKind::kUnavailable) {
            return;  // stays locked; retried after timer_lock
        }
        if (!r) {
            telemetry_.error(r.error().code);
        }
        std::optional<TimePoint> next;
        std::int64_t repeat = row.repeat;
        if (repeat != 0) {
            next = proc.timer_next(*element, row.due_at, 0);
            repeat = repeat < 0 ? -1 : repeat - 1;
            // Firings missed while no scheduler ran are skipped, not replayed.
            for (int i = 0; i < kTimerCatchUp && next && *next <= now && repeat != 0; ++i) {
                next = proc.timer_next(*element, *next, 0);
                repeat = repeat < 0 ? -1 : repeat - 1;
            }
        }
        (void)store_.reschedule_timer(row.id, next, repeat);
    }

    void fire_instance_timers(const std::string& instance_id) {
        // The due ones, in due order: read page by page up to the first timer not due yet, all
        // before any fires (a firing deletes its row and would shift the pages).
        const TimePoint now = this->now();
        constexpr int kPage = 1000;
        std::vector<std::uint64_t> due;
        for (int number = 1;; ++number) {
            auto timers = store_.list_timers(instance_id, PageRequest{number, kPage});
            if (!timers) {
                return;
            }
            bool later = false;
            for (const auto& t : timers->items) {
                if (t.due_at > now) {
                    later = true;
                    break;
                }
                due.push_back(t.wait_id);
            }
            if (later || timers->items.size() < static_cast<std::size_t>(kPage)) {
                break;
            }
        }
        for (const std::uint64_t wait_id : due) {
            post(instance_id, CommandWork{engine::FireTimer{wait_id}, {}, false});
        }
    }

    // --- built-in services -------------------------------------------------------------------

    void request_service_poll() {
        if (!service_poll_pending_.exchange(true)) {
            if (!aux_.post([this] {
                    service_poll_pending_ = false;
                    poll_services();
                })) {
                service_poll_pending_ = false;
            }
        }
    }

    void poll_services() {
        for (const char* service : {"logger", "http"}) {
            const int room = static_cast<int>(settings_.max_parallel_tokens) - services_in_flight_;
            if (room <= 0) {
                return;
            }
            const TimePoint now = this->now();
            auto rows = store_.acquire_jobs(kServicePrefix + std::string(service), owner_, room,
                                            now, now + settings_.timer_lock);
            if (!rows) {
                telemetry_.error(rows.error().code);
                return;
            }
            for (auto& row : rows.value()) {
                ++services_in_flight_;
                if (!services_.post([this, row = std::move(row)] {
                        run_service(row);
                        --services_in_flight_;
                        request_service_poll();
                    })) {
                    --services_in_flight_;
                }
            }
        }
    }

    static std::string header(const Json& headers, const char* name, std::string fallback = {}) {
        auto it = headers.find(name);
        if (it == headers.end()) {
            return fallback;
        }
        return it->is_string() ? it->get<std::string>() : it->dump();
    }

    Result<std::string> render(const std::string& text, const Json& vars) {
        if (text.find("${") == std::string::npos && text.find("#{") == std::string::npos) {
            return text;
        }
        auto compiled = expr::Expression::compile_template(text);
        if (!compiled) {
            return Error::invalid("EXPRESSION", "'" + text + "': " + compiled.error().message);
        }
        JsonSource src(vars);
        expr::EvalContext ctx;
        ctx.now = now();
        auto v = compiled.value().evaluate(src, ctx);
        if (!v) {
            return Error::invalid("EXPRESSION", "'" + text + "': " + v.error().message);
        }
        return v.value().is_string() ? v.value().get<std::string>()
                                     : expr::to_display_string(v.value());
    }

    /// Runs a built-in service job; answers the engine with CompleteJob, or fails the attempt.
    void run_service(const JobRow& row) {
        const Json headers = row.payload.value("headers", Json::object());
        const Json vars = row.payload.value("variables", Json::object());
        const std::string service = row.payload.value("service", std::string());
        // A suspended instance advances on nothing: try again later without using a retry.
        if (auto inst = store_.instance(row.instance_id, false);
            inst && inst.value() && inst.value()->status == kSuspended) {
            (void)store_.fail_job(row.id, row.retries, "instance suspended",
                                  now() + settings_.state_check_interval);
            return;
        }
        Result<Json> output = Json::object();
        if (service == "logger") {
            output = run_logger(row, headers, vars);
        } else if (service == "http") {
            output = run_http(headers, vars);
        } else {
            output =
                Error::invalid("UNKNOWN_SERVICE", "unknown built-in service '" + service + "'");
        }
        if (output) {
            auto r = run(row.instance_id,
                         CommandWork{engine::CompleteJob{row.wait_id, std::move(output).value()},
                                     row.id, false},
                         false);
            if (!r) {
                telemetry_.error(r.error().code);
            }
            return;
        }
        const std::string message = output.error().message;
        telemetry_.error("SERVICE_FAILED");
        const int retries = row.retries - 1;
        if (retries > 0) {
            (void)store_.fail_job(row.id, retries, message, now() + settings_.state_check_interval);
            return;
        }
        auto r = run(row.instance_id,
                     CommandWork{engine::FailJob{row.wait_id, message}, row.id, false}, false);
        if (!r) {
            telemetry_.error(r.error().code);
        }
    }

    Result<Json> run_logger(const JobRow& row, const Json& headers, const Json& vars) {
        auto message = render(header(headers, "message"), vars);
        if (!message) {
            return std::move(message).error();
        }
        std::string text = std::move(message).value();
        const std::string include = header(headers, "include_variables", "false");
        if (include == "true" || include == "True" || include == "1") {
            text += (text.empty() ? "" : " ") + vars.dump();
        }
        if (log_ != nullptr) {
            log_->write(header(headers, "level", "info"), row.instance_id, row.element_id, text);
        }
        return Json::object();
    }

    Result<Json> run_http(const Json& headers, const Json& vars) {
        if (http_ == nullptr) {
            return Error::unavailable("HTTP_CALL_FAILED", "no HTTP client is configured");
        }
        HttpCall call;
        auto url = render(header(headers, "url"), vars);
        if (!url) {
            return std::move(url).error();
        }
        call.url = std::move(url).value();
        if (call.url.empty()) {
            return Error::invalid("HTTP_CALL_FAILED", "the http service task names no url");
        }
        call.method = header(headers, "method", "GET");
        std::transform(call.method.begin(), call.method.end(), call.method.begin(),
                       [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
        auto body = render(header(headers, "body"), vars);
        if (!body) {
            return std::move(body).error();
        }
        call.body = std::move(body).value();
        const std::string extra = header(headers, "headers");
        if (!extra.empty()) {
            auto h = Json::parse(extra, nullptr, false);
            if (!h.is_object()) {
                return Error::invalid("HTTP_CALL_FAILED", "headers must be a JSON object");
            }
            for (auto it = h.begin(); it != h.end(); ++it) {
                auto v = render(it->is_string() ? it->get<std::string>() : it->dump(), vars);
                if (!v) {
                    return std::move(v).error();
                }
                call.headers.emplace_back(it.key(), std::move(v).value());
            }
        }
        if (!call.body.empty() &&
            std::none_of(call.headers.begin(), call.headers.end(), [](const auto& kv) {
                std::string k = kv.first;
                std::transform(k.begin(), k.end(), k.begin(), ::tolower);
                return k == "content-type";
            })) {
            call.headers.emplace_back("Content-Type", "application/json");
        }
        const std::string timeout = header(headers, "timeout");
        if (!timeout.empty()) {
            try {
                call.timeout = std::chrono::milliseconds(std::stoll(timeout));
            } catch (const std::exception&) {
                return Error::invalid("HTTP_CALL_FAILED", "timeout must be milliseconds");
            }
        }
        auto reply = http_->call(call);
        if (!reply) {
            return std::move(reply).error();
        }
        if (reply->status >= 400) {
            return Error::unavailable(
                "HTTP_CALL_FAILED",
                call.method + " " + call.url + " answered " + std::to_string(reply->status));
        }
        Json out = Json::object();
        const std::string target =
            header(headers, "output_variable", header(headers, "result_variable"));
        if (!target.empty()) {
            Json parsed = Json::parse(reply->body, nullptr, false);
            out[target] = {{"status", reply->status},
                           {"body", parsed.is_discarded() ? Json(reply->body) : parsed}};
        }
        return out;
    }

    // --- members -------------------------------------------------------------------------------

    RuntimeStore& store_;
    DefinitionCatalog& catalog_;
    Telemetry& telemetry_;
    const Clock& clock_;
    EngineSettings settings_;
    HttpCaller* http_;
    ServiceLog* log_;
    InstanceEventSink* events_ = nullptr;
    engine::EngineLimits limits_;
    HistoryLevel history_level_ = HistoryLevel::kActivity;  ///< history_level
    const std::string owner_;

    std::vector<std::unique_ptr<Worker>> workers_;
    std::atomic<std::size_t> queued_{0};
    std::atomic<bool> accepting_{false};
    std::atomic<bool> stopping_workers_{false};
    bool started_threads_ = false;
    bool stopped_ = false;
    std::mutex lifecycle_mutex_;

    std::mutex definitions_mutex_;
    std::unordered_map<std::string, DefinitionPtr> definitions_;
    OpenTasks open_tasks_;

    std::mutex scheduler_mutex_;
    std::condition_variable scheduler_cv_;
    std::optional<TimePoint> next_wake_;
    bool wake_requested_ = false;
    std::atomic<bool> stopping_scheduler_{false};
    std::thread scheduler_;
    std::mutex tick_mutex_;

    std::mutex jobs_mutex_;
    std::condition_variable jobs_cv_;
    std::uint64_t jobs_epoch_ = 0;

    TaskPool aux_;
    TaskPool services_;
    std::atomic<int> services_in_flight_{0};
    std::atomic<bool> service_poll_pending_{false};

    std::mutex outbox_mutex_;
    std::vector<std::string> outbox_done_;  // delivered rows not yet deleted
    std::mutex outbox_wait_mutex_;
    std::condition_variable outbox_cv_;
    std::atomic<bool> stopping_outbox_{false};
    std::thread outbox_thread_;

    std::atomic<std::int64_t> offset_ms_{0};

    std::atomic<std::int64_t> started_{0};
    std::atomic<std::int64_t> ended_{0};
    std::atomic<std::int64_t> commands_{0};
    std::atomic<std::int64_t> batches_{0};
    const Steady::time_point started_at_;
};

// ---------------------------------------------------------------------------------------------

InstanceRuntime::InstanceRuntime(RuntimeStore& store, DefinitionCatalog& catalog,
                                 Telemetry& telemetry, const Clock& clock,
                                 const EngineSettings& settings, HttpCaller* http, ServiceLog* log)
    : impl_(std::make_unique<Impl>(store, catalog, telemetry, clock, settings, http, log)) {}

InstanceRuntime::~InstanceRuntime() {
    stop();
}

void InstanceRuntime::start() {
    Impl& m = *impl_;
    std::lock_guard lock(m.lifecycle_mutex_);
    if (m.started_threads_) {
        return;
    }
    m.started_threads_ = true;
    m.accepting_ = true;
    if (auto counts = m.store_.counts(); counts) {
        m.telemetry_.active_instances_changed(counts->running + counts->suspended + counts->error);
    }
    for (auto& w : m.workers_) {
        Worker* worker = w.get();
        w->thread = std::thread([&m, worker] { m.worker_loop(*worker); });
    }
    m.scheduler_ = std::thread([&m] { m.scheduler_loop(); });
    m.outbox_thread_ = std::thread([&m] { m.outbox_loop(); });
}

void InstanceRuntime::stop() {
    Impl& m = *impl_;
    std::lock_guard lock(m.lifecycle_mutex_);
    if (m.stopped_) {
        return;
    }
    m.stopped_ = true;
    {
        std::lock_guard s(m.scheduler_mutex_);
        m.stopping_scheduler_ = true;
    }
    m.scheduler_cv_.notify_all();
    if (m.scheduler_.joinable()) {
        m.scheduler_.join();
    }
    {
        std::lock_guard o(m.outbox_wait_mutex_);
        m.stopping_outbox_ = true;
    }
    m.outbox_cv_.notify_all();
    if (m.outbox_thread_.joinable()) {
        m.outbox_thread_.join();
    }
    m.jobs_cv_.notify_all();
    // Deliveries of committed effects (signals, messages, child starts) still run; queued
    // built-in service calls are dropped: their jobs stay in the store for the next start.
    m.aux_.stop(true);
    m.services_.stop(false);
    m.accepting_ = false;
    for (auto& w : m.workers_) {
        {
            std::lock_guard wl(w->mutex);
            m.stopping_workers_ = true;
            if (!w->thread.joinable()) {
                w->closed = true;
            }
        }
        w->cv.notify_all();
    }
    for (auto& w : m.workers_) {
        if (w->thread.joinable()) {
            w->thread.join();
        }
        // Anything still queued (never started workers) is answered, not dropped silently.
        std::deque<Item> left;
        {
            std::lock_guard wl(w->mutex);
            w->closed = true;
            left.swap(w->queue);
        }
        for (auto& item : left) {
            item.done(Error::unavailable("SHUTTING_DOWN", "the engine is shutting down"));
        }
    }
    // Delivered outbox rows not yet deleted: delete them now rather than replay them at the
    // next start (a replay would be harmless, only slower).
    if (auto done = m.take_outbox_done(); !done.empty()) {
        (void)m.store_.delete_outbox(done);
    }
}

Status InstanceRuntime::fire_due_timers() {
    return impl_->fire_due_timers();
}

void InstanceRuntime::set_event_sink(InstanceEventSink* sink) {
    impl_->events_ = sink;
}

// --- instances ---------------------------------------------------------------------------------

Result<InstanceView> InstanceRuntime::start_instance(StartInstanceRequest request) {
    Impl& m = *impl_;
    if (auto st = m.check_start(request); !st) {
        return std::move(st).error();
    }
    auto def = m.definition_for(request.process_key, request.version);
    if (!def) {
        return std::move(def).error();
    }
    StartWork start;
    start.definition = std::move(def).value();
    start.variables = std::move(request.variables);
    start.business_key = std::move(request.business_key);
    auto r = m.run(new_uuid(), std::move(start));
    if (!r) {
        return std::move(r).error();
    }
    return to_view(std::move(r).value());
}

bool InstanceRuntime::try_start_instance(StartInstanceRequest& request, InstanceCallback& done) {
    Impl& m = *impl_;
    if (request.version) {
        return false;  // a named version: definition_for reads it
    }
    DefinitionPtr definition = m.cached_definition(request.process_key);
    if (!definition) {
        return false;  // not compiled in memory yet: start_instance loads it
    }
    if (auto st = m.check_start(request); !st) {
        done(std::move(st).error());
        return true;
    }
    StartWork start;
    start.definition = std::move(definition);
    start.variables = std::move(request.variables);
    start.business_key = std::move(request.business_key);
    m.run_async(new_uuid(), std::move(start), [done = std::move(done)](Result<Outcome> r) {
        if (!r) {
            done(std::move(r).error());
            return;
        }
        done(to_view(std::move(r).value()));
    });
    return true;
}

Result<PageResult<InstanceView>> InstanceRuntime::list_instances(const InstanceQuery& query,
                                                                 const PageRequest& page) {
    InstanceFilter f{query.status, query.process_key, query.business_key, query.created_after,
                     query.created_before};
    return page_of<InstanceView>(impl_->store_.list_instances(f, page), kToView);
}

Result<InstanceView> InstanceRuntime::instance(const std::string& id) {
    auto row = impl_->store_.instance(id, false);
    if (!row) {
        return std::move(row).error();
    }
    if (!row.value()) {
        return instance_not_found(id);
    }
    return to_view(*row.value());
}

Result<InstanceView> InstanceRuntime::cancel_instance(const std::string& id) {
    auto r = impl_->run(id, CommandWork{engine::Cancel{}, {}, false});
    if (!r) {
        return std::move(r).error();
    }
    return to_view(r.value().row);
}

Result<InstanceView> InstanceRuntime::suspend_instance(const std::string& id) {
    auto r = impl_->run(id, StatusWork{true});
    if (!r) {
        return std::move(r).error();
    }
    return to_view(r.value().row);
}

Result<InstanceView> InstanceRuntime::resume_instance(const std::string& id) {
    auto r = impl_->run(id, StatusWork{false});
    if (!r) {
        return std::move(r).error();
    }
    return to_view(r.value().row);
}

Result<nlohmann::json> InstanceRuntime::variables(const std::string& id) {
    auto v = instance(id);
    if (!v) {
        return std::move(v).error();
    }
    return std::move(v.value().variables);
}

Result<nlohmann::json> InstanceRuntime::set_variables(const std::string& id,
                                                      nlohmann::json variables) {
    if (auto st = impl_->check_variables(variables); !st) {
        return std::move(st).error();
    }
    auto r = impl_->run(id, CommandWork{engine::SetVariables{std::move(variables)}, {}, false});
    if (!r) {
        return std::move(r).error();
    }
    return std::move(r.value().row.variables);
}

Result<std::vector<TokenView>> InstanceRuntime::tokens(const std::string& id) {
    Impl& m = *impl_;
    auto row = m.store_.instance(id, true);
    if (!row) {
        return std::move(row).error();
    }
    if (!row.value()) {
        return instance_not_found(id);
    }
    auto state = engine::InstanceState::deserialize(row.value()->state);
    if (!state) {
        return Error::internal_error("instance " + id + ": stored state unreadable");
    }
    auto def = m.definition_by_id(row.value()->definition_id);
    if (!def) {
        return std::move(def).error();
    }
    std::vector<TokenView> out;
    for (const auto& t : state.value().tokens) {
        out.push_back({def.value()->process->element_id(t.element), token_state(t.phase), t.scope});
    }
    return out;
}

Result<PageResult<ActivityView>> InstanceRuntime::activities(const std::string& id,
                                                             const PageRequest& page) {
    auto exists = instance(id);
    if (!exists) {
        return std::move(exists).error();
    }
    return page_of<ActivityView>(impl_->store_.history(id, page), [](HistoryRow&& h) {
        return ActivityView{std::move(h.element_id), std::move(h.element_type), std::move(h.name),
                            history_text(h.event), h.at};
    });
}

// --- tasks ---------------------------------------------------------------------------------------

namespace {
Error task_not_found(const std::string& id) {
    Error e = Error::not_found("TASK_NOT_FOUND", "no user task with id '" + id + "'");
    e.context = {{"task_id", id}};
    return e;
}
}  // namespace

Result<PageResult<TaskView>> InstanceRuntime::list_tasks(const TaskQuery& query,
                                                         const PageRequest& page) {
    TaskFilter f{query.instance_id,     query.process_key, query.assignee,
                 query.candidate_group, query.element_id,  query.state};
    return page_of<TaskView>(impl_->store_.list_tasks(f, page), kToView);
}

Result<TaskView> InstanceRuntime::task(const std::string& id) {
    auto row = impl_->store_.task(id);
    if (!row) {
        return std::move(row).error();
    }
    if (!row.value()) {
        return task_not_found(id);
    }
    TaskView v = to_view(*row.value());
    auto inst = instance(v.instance_id);
    if (!inst) {
        return std::move(inst).error();
    }
    v.variables = std::move(inst.value().variables);
    return v;
}

Result<TaskView> InstanceRuntime::claim_task(const std::string& id, const std::string& assignee) {
    Impl& m = *impl_;
    if (assignee.empty()) {
        return Error::invalid_argument("assignee must not be empty");
    }
    auto row = m.store_.task(id);
    if (!row) {
        return std::move(row).error();
    }
    if (!row.value()) {
        return task_not_found(id);
    }
    if (row.value()->state != "OPEN") {
        return task_done(id, row.value()->state);
    }
    auto claimed = m.store_.claim_task(id, assignee);
    if (!claimed) {
        return std::move(claimed).error();
    }
    if (!claimed.value()) {
        return task_done(id, "COMPLETED");
    }
    row.value()->assignee = assignee;
    return to_view(*row.value());
}

Result<InstanceView> InstanceRuntime::complete_task(const std::string& id,
                                                    nlohmann::json variables) {
    Impl& m = *impl_;
    if (auto st = m.check_variables(variables); !st) {
        return std::move(st).error();
    }
    auto row = m.store_.task(id);
    if (!row) {
        return std::move(row).error();
    }
    if (!row.value()) {
        return task_not_found(id);
    }
    if (row.value()->state != "OPEN") {
        return task_done(id, row.value()->state);
    }
    auto r = m.run(
        row.value()->instance_id,
        CommandWork{engine::CompleteTask{row.value()->wait_id, std::move(variables)}, {}, true});
    if (!r) {
        if (Impl::task_closed(r.error())) {
            return m.refused_completion(id, std::move(r).error());
        }
        return std::move(r).error();
    }
    m.open_tasks_.erase(id);
    return to_view(std::move(r).value());
}

bool InstanceRuntime::try_complete_task(const std::string& id, nlohmann::json& variables,
                                        InstanceCallback& done) {
    Impl& m = *impl_;
    auto where = m.open_tasks_.find(id);
    if (!where) {
        return false;  // opened elsewhere or forgotten: complete_task reads it from the store
    }
    if (auto st = m.check_variables(variables); !st) {
        done(std::move(st).error());
        return true;
    }
    m.run_async(std::move(where->instance_id),
                CommandWork{engine::CompleteTask{where->wait_id, std::move(variables)}, {}, true},
                [&m, id, done = std::move(done)](Result<Outcome> r) mutable {
                    if (r) {
                        m.open_tasks_.erase(id);
                        done(to_view(std::move(r).value()));
                        return;
                    }
                    if (!Impl::task_closed(r.error())) {
                        done(std::move(r).error());
                        return;
                    }
                    // The answer needs the task's stored state: read it off the engine thread.
                    m.open_tasks_.erase(id);
                    auto shared = std::make_shared<InstanceCallback>(std::move(done));
                    auto refusal = std::make_shared<Error>(std::move(r).error());
                    if (!m.aux_.post([&m, id, shared, refusal] {
                            (*shared)(m.refused_completion(id, std::move(*refusal)));
                        })) {
                        (*shared)(std::move(*refusal));  // shutting down
                    }
                });
    return true;
}

// --- messages and signals
// --------------------------------------------------------------------------

Result<MessageCorrelation> InstanceRuntime::correlate_message(MessageRequest request) {
    if (request.name.empty()) {
        return Error::invalid_argument("name must not be empty");
    }
    for (const auto* text : {&request.business_key, &request.correlation_key}) {
        if (*text && (*text)->find('\0') != std::string::npos) {
            return Error::invalid_argument(
                "business_key and correlation_key must not contain the NUL character (U+0000)");
        }
    }
    if (auto st = impl_->check_variables(request.variables); !st) {
        return std::move(st).error();
    }
    return impl_->correlate(std::move(request), true);
}

Result<SignalResult> InstanceRuntime::broadcast_signal(SignalRequest request) {
    if (request.name.empty()) {
        return Error::invalid_argument("name must not be empty");
    }
    if (auto st = impl_->check_variables(request.variables); !st) {
        return std::move(st).error();
    }
    return impl_->broadcast(request.name, request.variables, {}, true);
}

// --- jobs ----------------------------------------------------------------------------------------

namespace {
Error job_not_found(const std::string& id) {
    Error e = Error::not_found("JOB_NOT_FOUND", "no active job with id '" + id + "'");
    e.context = {{"job_id", id}};
    return e;
}
}  // namespace

Result<std::vector<JobView>> InstanceRuntime::activate_jobs(ActivateJobsRequest request) {
    Impl& m = *impl_;
    if (request.type.empty()) {
        return Error::invalid_argument("type must not be empty");
    }
    if (request.max_jobs < 1) {
        return Error::invalid_argument("max_jobs must be at least 1");
    }
    if (request.lock.count() <= 0 || request.wait.count() < 0) {
        return Error::invalid_argument("lock_ms must be positive and wait_ms not negative");
    }
    const std::string worker = request.worker.empty() ? "anonymous" : request.worker;
    const auto wait = std::min(request.wait, m.settings_.max_job_wait);
    const auto deadline = Steady::now() + wait;
    for (;;) {
        std::uint64_t epoch = 0;
        {
            std::lock_guard lock(m.jobs_mutex_);
            epoch = m.jobs_epoch_;
        }
        const TimePoint now = m.now();
        auto rows =
            m.store_.acquire_jobs(request.type, worker, request.max_jobs, now, now + request.lock);
        if (!rows) {
            return std::move(rows).error();
        }
        if (!rows->empty() || Steady::now() >= deadline || m.stopping_scheduler_) {
            std::vector<JobView> out;
            for (const auto& r : rows.value()) {
                out.push_back(to_job_view(r));
            }
            return out;
        }
        // Long poll: wake when this replica commits new jobs, else re-check every
        // state_check_interval (jobs of other replicas, retry backoffs running out).
        std::unique_lock lock(m.jobs_mutex_);
        const auto until = std::min(deadline, Steady::now() + m.settings_.state_check_interval);
        m.jobs_cv_.wait_until(
            lock, until, [&] { return m.jobs_epoch_ != epoch || m.stopping_scheduler_.load(); });
    }
}

namespace {
Result<JobRow> active_job(RuntimeStore& store, const std::string& id) {
    auto row = store.job(id);
    if (!row) {
        return std::move(row).error();
    }
    if (!row.value() || row.value()->kind != "job") {
        return job_not_found(id);
    }
    return std::move(*row.value());
}

Status job_outcome(Result<Outcome> r, const std::string& id) {
    if (!r) {
        if (is_code(r.error(), "WAIT_NOT_FOUND")) {
            return job_not_found(id);
        }
        return std::move(r).error();
    }
    return {};
}
}  // namespace

Status InstanceRuntime::complete_job(const std::string& id, nlohmann::json variables) {
    Impl& m = *impl_;
    if (auto st = m.check_variables(variables); !st) {
        return st;
    }
    auto job = active_job(m.store_, id);
    if (!job) {
        return std::move(job).error();
    }
    return job_outcome(
        m.run(job->instance_id,
              CommandWork{engine::CompleteJob{job->wait_id, std::move(variables)}, id, false}),
        id);
}

Status InstanceRuntime::fail_job(const std::string& id, FailJobRequest request) {
    Impl& m = *impl_;
    if (request.retries < 0 || request.retry_backoff.count() < 0) {
        return Error::invalid_argument("retries and retry_backoff_ms must not be negative");
    }
    auto job = active_job(m.store_, id);
    if (!job) {
        return std::move(job).error();
    }
    if (request.retries > 0) {
        return m.store_.fail_job(id, request.retries, request.error_message,
                                 m.now() + request.retry_backoff);
    }
    std::string message = request.error_message.empty() ? "the job failed with no retries left"
                                                        : request.error_message;
    return job_outcome(
        m.run(job->instance_id,
              CommandWork{engine::FailJob{job->wait_id, std::move(message)}, id, false}),
        id);
}

Status InstanceRuntime::throw_job_error(const std::string& id, JobErrorRequest request) {
    Impl& m = *impl_;
    if (request.error_code.empty()) {
        return Error::invalid_argument("error_code must not be empty");
    }
    if (auto st = m.check_variables(request.variables); !st) {
        return st;
    }
    auto job = active_job(m.store_, id);
    if (!job) {
        return std::move(job).error();
    }
    return job_outcome(
        m.run(job->instance_id, CommandWork{engine::ThrowJobError{job->wait_id, request.error_code,
                                                                  request.error_message,
                                                                  std::move(request.variables)},
                                            id, false}),
        id);
}

// --- timers, incidents, clock, stats
// ---------------------------------------------------------------

Result<PageResult<TimerView>> InstanceRuntime::list_timers(
    const std::optional<std::string>& instance_id, const PageRequest& page) {
    return page_of<TimerView>(impl_->store_.list_timers(instance_id, page), [](auto&& r) {
        return TimerView{std::move(r.id), std::move(r.instance_id), std::move(r.element_id),
                         r.due_at, r.repeat};
    });
}

Result<PageResult<IncidentView>> InstanceRuntime::list_incidents(const IncidentQuery& query,
                                                                 const PageRequest& page) {
    return page_of<IncidentView>(
        impl_->store_.list_incidents({query.instance_id, query.state}, page), kToView);
}

Result<IncidentView> InstanceRuntime::resolve_incident(const std::string& id) {
    Impl& m = *impl_;
    auto row = m.store_.incident(id);
    if (!row) {
        return std::move(row).error();
    }
    if (!row.value()) {
        Error e = Error::not_found("INCIDENT_NOT_FOUND", "no incident with id '" + id + "'");
        e.context = {{"incident_id", id}};
        return e;
    }
    if (row.value()->state != "OPEN") {
        Error e = Error::conflict("INCIDENT_ALREADY_RESOLVED",
                                  "incident '" + id + "' is already resolved");
        e.context = {{"incident_id", id}};
        return e;
    }
    auto r =
        m.run(row.value()->instance_id,
              CommandWork{engine::ResolveIncident{row.value()->engine_incident_id}, {}, false});
    if (!r) {
        if (is_code(r.error(), "INCIDENT_NOT_FOUND")) {
            Error e = Error::conflict("INCIDENT_ALREADY_RESOLVED",
                                      "incident '" + id + "' is already resolved");
            e.context = {{"incident_id", id}};
            return e;
        }
        return std::move(r).error();
    }
    IncidentView v = to_view(*row.value());
    v.state = "RESOLVED";
    v.resolved_at = r.value().row.updated_at;
    return v;
}

bool InstanceRuntime::clock_control() const {
    return impl_->settings_.clock_control;
}

namespace {
Error no_clock_control() {
    return Error::not_found("NOT_FOUND", "clock control is off (setting clock_control)");
}
}  // namespace

Result<ClockView> InstanceRuntime::clock() {
    if (!clock_control()) {
        return no_clock_control();
    }
    return ClockView{impl_->now(), impl_->offset_ms_.load() != 0};
}

Result<ClockView> InstanceRuntime::advance_clock(const std::string& duration) {
    Impl& m = *impl_;
    if (!clock_control()) {
        return no_clock_control();
    }
    auto spec = bpmn::TimerSpec::parse(bpmn::TimerKind::kDuration, duration);
    if (!spec) {
        return Error::invalid_argument("duration must be an ISO 8601 duration such as PT1H: " +
                                       spec.error());
    }
    const TimePoint now = m.now();
    auto until = spec.value().first(now);
    if (!until || *until <= now) {
        return Error::invalid_argument("duration must be positive");
    }
    m.offset_ms_ += (*until - now).count();
    if (auto st = m.fire_due_timers(); !st) {
        return std::move(st).error();
    }
    return clock();
}

Result<ClockView> InstanceRuntime::reset_clock() {
    if (!clock_control()) {
        return no_clock_control();
    }
    impl_->offset_ms_ = 0;
    return clock();
}

Result<StatsView> InstanceRuntime::stats() {
    Impl& m = *impl_;
    auto counts = m.store_.counts();
    if (!counts) {
        return std::move(counts).error();
    }
    StatsView v;
    const auto& c = counts.value();
    v.running = c.running;
    v.suspended = c.suspended;
    v.error = c.error;
    v.completed = c.completed;
    v.cancelled = c.cancelled;
    v.open_tasks = c.open_tasks;
    v.pending_jobs = c.pending_jobs;
    v.pending_timers = c.pending_timers;
    v.open_incidents = c.open_incidents;
    v.instances_started = m.started_.load();
    v.instances_ended = m.ended_.load();
    v.commands_processed = m.commands_.load();
    v.batches_committed = m.batches_.load();
    v.uptime_seconds = seconds_since(m.started_at_);
    if (v.uptime_seconds > 0) {
        v.started_per_second = static_cast<double>(v.instances_started) / v.uptime_seconds;
        v.commands_per_second = static_cast<double>(v.commands_processed) / v.uptime_seconds;
    }
    v.queued_commands = static_cast<std::int64_t>(m.queued_.load());
    return v;
}

// --- deploy hook ---------------------------------------------------------------------------------

Status InstanceRuntime::definitions_redeployed(const std::vector<DefinitionRecord>& existing) {
    std::vector<DefinitionRecord> missing;
    for (const auto& record : existing) {
        auto written = impl_->store_.start_events_written(record.id);
        if (!written) {
            return std::move(written).error();
        }
        if (!written.value()) {
            missing.push_back(record);
        }
    }
    if (missing.empty()) {
        return {};
    }
    return definitions_deployed(missing);
}

Status InstanceRuntime::definitions_deployed(const std::vector<DefinitionRecord>& created) {
    Impl& m = *impl_;
    Batch batch;
    const TimePoint now = m.now();
    std::optional<TimePoint> earliest;
    for (const auto& record : created) {
        auto def = m.compiled(record);
        if (!def) {
            return std::move(def).error();
        }
        const auto& proc = *def.value()->process;
        const auto& model = proc.process();
        std::vector<WaitRow> rows;
        auto base = [&](bpmn::ElementIndex e, WaitRowKind kind) {
            WaitRow r;
            r.id = new_uuid();
            r.kind = kind;
            r.definition_id = record.id;
            r.element_id = proc.element_id(e);
            r.created_at = now;
            return r;
        };
        for (auto e : proc.start_events(bpmn::EventKind::kMessage)) {
            WaitRow r = base(e, WaitRowKind::kMessage);
            r.name = model.elements[e].event.ref_name;
            rows.push_back(std::move(r));
        }
        for (auto e : proc.start_events(bpmn::EventKind::kSignal)) {
            WaitRow r = base(e, WaitRowKind::kSignal);
            r.name = model.elements[e].event.ref_name;
            rows.push_back(std::move(r));
        }
        for (auto e : proc.start_events(bpmn::EventKind::kTimer)) {
            auto due = proc.timer_first(e, now);
            if (!due) {
                continue;  // a timer value written as an expression, or one that never fires
            }
            WaitRow r = base(e, WaitRowKind::kTimer);
            r.name = proc.element_name(e);
            r.due_at = *due;
            const auto& ev = model.elements[e].event;
            auto spec = bpmn::TimerSpec::parse(ev.timer_kind, ev.timer_expression);
            const std::int64_t reps = spec ? spec.value().repetitions() : 1;
            r.repeat = reps < 0 ? -1 : std::max<std::int64_t>(reps - 1, 0);
            if (!earliest || *due < *earliest) {
                earliest = *due;
            }
            rows.push_back(std::move(r));
        }
        batch.start_events.emplace_back(record.id, std::move(rows));
        // A new version replaces the previous one's timer start events (messages and signals
        // start the latest version anyway).
        if (record.version > 1) {
            auto previous = m.catalog_.version(record.key, record.version - 1);
            if (previous) {
                batch.start_events.emplace_back(previous.value().id, std::vector<WaitRow>{});
            }
        }
    }
    if (batch.start_events.empty()) {
        return {};
    }
    if (auto st = m.store_.commit(batch); !st) {
        return st;
    }
    if (earliest) {
        m.wake_scheduler_by(*earliest);
    }
    return {};
}

}  // namespace pythmata::app
