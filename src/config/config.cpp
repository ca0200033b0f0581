#include "pythmata/config/config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string_view>
#include <variant>

#include <toml++/toml.h>

namespace pythmata::config {
namespace {

using Raw = std::variant<std::int64_t, double, bool, std::string>;

/// How one key is read, checked and stored.
struct Key {
    const char* name;
    enum class Kind { kString, kInt, kSeconds, kBool } kind;
    std::int64_t min = 0;
    std::int64_t max = 0;
    std::vector<std::string> choices = {};  // kString: allowed values, empty = any
    std::function<void(app::Settings&, const Raw&)> set = {};
    std::function<std::string(const app::Settings&)> show = {};
    /// kString: why the text is not acceptable (empty when it is), beyond `choices`.
    std::function<std::string(const std::string&)> text_error = {};
};

std::string quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
        }
        out.push_back(c);
    }
    return out + "\"";
}

std::string seconds_text(std::chrono::milliseconds ms) {
    std::ostringstream o;
    o << static_cast<double>(ms.count()) / 1000.0;
    return o.str();
}

// Builders for the four kinds; each returns a Key bound to one Settings field.
template <typename Section, typename Field>
Key int_key(const char* name, Section app::Settings::*sec, Field Section::*field, std::int64_t min,
            std::int64_t max) {
    return {name,
            Key::Kind::kInt,
            min,
            max,
            {},
            [=](app::Settings& s, const Raw& v) {
                (s.*sec).*field = static_cast<Field>(std::get<std::int64_t>(v));
            },
            [=](const app::Settings& s) { return std::to_string((s.*sec).*field); }};
}

template <typename Section>
Key ms_key(const char* name, Section app::Settings::*sec, std::chrono::milliseconds Section::*field,
           std::int64_t min, std::int64_t max) {
    return {name,
            Key::Kind::kInt,
            min,
            max,
            {},
            [=](app::Settings& s, const Raw& v) {
                (s.*sec).*field = std::chrono::milliseconds(std::get<std::int64_t>(v));
            },
            [=](const app::Settings& s) { return std::to_string(((s.*sec).*field).count()); }};
}

template <typename Section>
Key seconds_key(const char* name, Section app::Settings::*sec,
                std::chrono::milliseconds Section::*field, std::int64_t min_ms,
                std::int64_t max_ms) {
    return {name,
            Key::Kind::kSeconds,
            min_ms,
            max_ms,
            {},
            [=](app::Settings& s, const Raw& v) {
                (s.*sec).*field = std::chrono::milliseconds(std::get<std::int64_t>(v));
            },
            [=](const app::Settings& s) { return seconds_text((s.*sec).*field); }};
}

template <typename Section>
Key string_key(const char* name, Section app::Settings::*sec, std::string Section::*field,
               std::vector<std::string> choices = {}) {
    return {name,
            Key::Kind::kString,
            0,
            0,
            std::move(choices),
            [=](app::Settings& s, const Raw& v) { (s.*sec).*field = std::get<std::string>(v); },
            [=](const app::Settings& s) { return quote((s.*sec).*field); }};
}

/// A string that must never be printed: dump() shows "<set>" or "".
template <typename Section>
Key secret_key(const char* name, Section app::Settings::*sec, std::string Section::*field) {
    Key k = string_key<Section>(name, sec, field);
    k.show = [=](const app::Settings& s) {
        return std::string((s.*sec).*field).empty() ? std::string("\"\"") : std::string("<set>");
    };
    return k;
}

template <typename Section>
Key bool_key(const char* name, Section app::Settings::*sec, bool Section::*field) {
    return {
        name,
        Key::Kind::kBool,
        0,
        0,
        {},
        [=](app::Settings& s, const Raw& v) { (s.*sec).*field = std::get<bool>(v); },
        [=](const app::Settings& s) { return std::string((s.*sec).*field ? "true" : "false"); }};
}

constexpr unsigned kMaxRetentionDays = 36'500;

/// "Key=days,Key2=days" (spaces around items allowed; an empty text is no override) parsed into
/// a map, or why it cannot be.
Result<std::map<std::string, unsigned>, std::string> parse_retention_overrides(
    const std::string& text) {
    std::map<std::string, unsigned> out;
    const auto trim = [](std::string_view v) {
        while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) {
            v.remove_prefix(1);
        }
        while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) {
            v.remove_suffix(1);
        }
        return v;
    };
    std::string_view rest = text;
    while (!trim(rest).empty()) {
        const auto comma = rest.find(',');
        const std::string_view item = trim(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        const auto eq = item.find('=');
        const std::string_view key = trim(item.substr(0, eq));
        const std::string_view days =
            eq == std::string_view::npos ? std::string_view{} : trim(item.substr(eq + 1));
        unsigned value = 0;
        const auto [end, ec] = std::from_chars(days.data(), days.data() + days.size(), value);
        if (key.empty() || days.empty() || ec != std::errc() || end != days.data() + days.size() ||
            value > kMaxRetentionDays) {
            return "must be a comma-separated list of PROCESS_KEY=DAYS (DAYS from 0 to " +
                   std::to_string(kMaxRetentionDays) + "), e.g. \"OrderProcess=7,Audit=0\"; " +
                   quote(std::string(item)) + " is not";
        }
        if (!out.emplace(std::string(key), value).second) {
            return "names the process key " + quote(std::string(key)) + " twice";
        }
    }
    return out;
}

constexpr std::int64_t kKiB = 1024;
constexpr std::int64_t kMiB = 1024 * kKiB;
constexpr std::int64_t kGiB = 1024 * kMiB;
constexpr std::int64_t kHourMs = 3'600'000;

const std::vector<Key>& keys() {
    using S = app::Settings;
    using H = app::HttpSettings;
    using D = app::DbSettings;
    using C = app::CacheSettings;
    using E = app::EngineSettings;
    using L = app::LogSettings;
    static const std::vector<Key> kKeys = {
        string_key<H>("http_host", &S::http, &H::host),
        int_key<H>("http_port", &S::http, &H::port, 0, 65535),
        int_key<H>("http_threads", &S::http, &H::threads, 0, 256),
        int_key<H>("max_body_size", &S::http, &H::max_body_size, 1024, 4 * kGiB),
        int_key<H>("max_header_size", &S::http, &H::max_header_size, 1024, 1 * kMiB),
        ms_key<H>("http_read_timeout_ms", &S::http, &H::read_timeout, 100, kHourMs),
        ms_key<H>("http_idle_timeout_ms", &S::http, &H::idle_timeout, 100, kHourMs),
        ms_key<H>("http_request_timeout_ms", &S::http, &H::request_timeout, 100, kHourMs),
        int_key<H>("http_max_connections", &S::http, &H::max_connections, 1, 1'000'000),
        ms_key<H>("shutdown_timeout_ms", &S::http, &H::shutdown_timeout, 0, kHourMs),
        int_key<H>("gzip_min_size", &S::http, &H::gzip_min_size, 0, 4 * kGiB),
        int_key<H>("blocking_threads", &S::http, &H::blocking_threads, 0, 1024),
        int_key<H>("http_read_threads", &S::http, &H::read_threads, 0, 1024),
        int_key<H>("http_max_queued_requests", &S::http, &H::max_queued_requests, 1, 1'000'000),
        bool_key<H>("http_async_first", &S::http, &H::async_first),
        int_key<H>("ws_max_queued_events", &S::http, &H::ws_max_queued_events, 1, 1'000'000),
        secret_key<H>("api_keys", &S::http, &H::api_keys),
        secret_key<H>("jwt_hs256_secret", &S::http, &H::jwt_hs256_secret),
        string_key<H>("jwt_rs256_public_key_file", &S::http, &H::jwt_rs256_public_key_file),
        string_key<H>("jwt_issuer", &S::http, &H::jwt_issuer),
        string_key<H>("jwt_audience", &S::http, &H::jwt_audience),
        int_key<H>("jwt_leeway_seconds", &S::http, &H::jwt_leeway_seconds, 0, 86'400),
        string_key<H>("jwt_role_claim", &S::http, &H::jwt_role_claim),
        bool_key<H>("auth_open_ops", &S::http, &H::auth_open_ops),
        bool_key<H>("allow_unauthenticated", &S::http, &H::allow_unauthenticated),

        string_key<D>("db_url", &S::db, &D::url),
        int_key<D>("db_pool_size", &S::db, &D::pool_size, 1, 1000),
        int_key<D>("db_max_overflow", &S::db, &D::max_overflow, 0, 1000),
        seconds_key<D>("db_pool_timeout", &S::db, &D::pool_timeout, 1, kHourMs),
        ms_key<D>("db_statement_timeout_ms", &S::db, &D::statement_timeout, 0, kHourMs),
        string_key<D>("db_plan_cache_mode", &S::db, &D::plan_cache_mode,
                      {"force_generic_plan", "auto", "force_custom_plan"}),
        ms_key<D>("db_connect_timeout_ms", &S::db, &D::connect_timeout, 100, 600'000),
        ms_key<D>("db_tcp_timeout_ms", &S::db, &D::tcp_timeout, 0, kHourMs),
        ms_key<D>("db_overflow_idle_ms", &S::db, &D::overflow_idle, 0, kHourMs),
        int_key<D>("sqlite_wal_autocheckpoint", &S::db, &D::sqlite_wal_autocheckpoint, 100,
                   1'000'000),
        int_key<D>("db_delete_batch_size", &S::db, &D::delete_batch_size, 1, 1'000'000),

        string_key<C>("redis_url", &S::cache, &C::redis_url),
        int_key<C>("redis_pool_size", &S::cache, &C::redis_pool_size, 1, 1000),
        {"definition_cache_ttl",
         Key::Kind::kInt,
         1,
         30 * 86'400,
         {},
         [](S& s, const Raw& v) {
             s.cache.definition_ttl = std::chrono::seconds(std::get<std::int64_t>(v));
         },
         [](const S& s) { return std::to_string(s.cache.definition_ttl.count()); }},
        ms_key<C>("redis_timeout_ms", &S::cache, &C::redis_timeout, 1, 60'000),
        int_key<C>("definition_cache_max_entries", &S::cache, &C::l1_max_entries, 0, 10'000'000),

        int_key<E>("token_batch_size", &S::engine, &E::token_batch_size, 1, 100'000),
        int_key<E>("timer_batch_size", &S::engine, &E::timer_batch_size, 1, 100'000),
        int_key<E>("max_parallel_tokens", &S::engine, &E::max_parallel_tokens, 1, 100'000),
        seconds_key<E>("state_check_interval", &S::engine, &E::state_check_interval, 10, kHourMs),
        int_key<E>("max_variable_size", &S::engine, &E::max_variable_size, 1, 1 * kGiB),
        int_key<E>("max_total_variables", &S::engine, &E::max_total_variables, 1, 4 * kGiB),
        int_key<E>("max_tokens_per_instance", &S::engine, &E::max_tokens_per_instance, 1,
                   100'000'000),
        int_key<E>("max_steps_per_event", &S::engine, &E::max_steps_per_event, 1, 1'000'000'000),
        int_key<E>("max_call_depth", &S::engine, &E::max_call_depth, 1, 1000),
        int_key<E>("max_bpmn_size", &S::engine, &E::max_bpmn_size, 1024, 1 * kGiB),
        int_key<E>("max_bpmn_elements", &S::engine, &E::max_bpmn_elements, 1, 10'000'000),
        int_key<E>("script_max_instructions", &S::engine, &E::script_max_instructions, 1000,
                   std::int64_t{1} << 40),
        int_key<E>("script_max_memory", &S::engine, &E::script_max_memory, 64 * kKiB, 4 * kGiB),
        ms_key<E>("script_timeout_ms", &S::engine, &E::script_timeout, 1, kHourMs),
        string_key<E>("history_level", &S::engine, &E::history_level, {"none", "activity", "full"}),
        bool_key<E>("clock_control", &S::engine, &E::clock_control),
        int_key<E>("engine_queue_capacity", &S::engine, &E::queue_capacity, 1, 100'000'000),
        int_key<E>("engine_workers", &S::engine, &E::workers, 1, 256),
        ms_key<E>("max_job_wait_ms", &S::engine, &E::max_job_wait, 0, kHourMs),
        ms_key<E>("timer_lock_ms", &S::engine, &E::timer_lock, 1000, kHourMs),
        ms_key<E>("outbox_grace_ms", &S::engine, &E::outbox_grace, 10, kHourMs),
        int_key<E>("outbox_batch_size", &S::engine, &E::outbox_batch_size, 1, 100'000),
        ms_key<E>("outbox_lock_ms", &S::engine, &E::outbox_lock, 100, kHourMs),
        bool_key<E>("outbox_deliver_inline", &S::engine, &E::outbox_deliver_inline),
        int_key<E>("instance_state_cache", &S::engine, &E::state_cache_entries, 0, 10'000'000),
        int_key<E>("open_task_cache", &S::engine, &E::open_task_cache_entries, 0, 10'000'000),
        {"idempotency_retention",
         Key::Kind::kInt,
         60,
         365 * 86'400,
         {},
         [](S& s, const Raw& v) {
             s.engine.idempotency_retention = std::chrono::seconds(std::get<std::int64_t>(v));
         },
         [](const S& s) { return std::to_string(s.engine.idempotency_retention.count()); }},
        int_key<E>("history_retention_days", &S::engine, &E::history_retention_days, 0, 36'500),
        {"history_retention_overrides",
         Key::Kind::kString,
         0,
         0,
         {},
         [](S& s, const Raw& v) {
             // Checked by text_error before set is called.
             auto parsed = parse_retention_overrides(std::get<std::string>(v));
             s.engine.history_retention_overrides =
                 parsed ? std::move(parsed).value() : std::map<std::string, unsigned>{};
         },
         [](const S& s) {
             std::string text;
             for (const auto& [key, days] : s.engine.history_retention_overrides) {
                 text += (text.empty() ? "" : ",") + key + "=" + std::to_string(days);
             }
             return quote(text);
         },
         [](const std::string& text) {
             auto parsed = parse_retention_overrides(text);
             return parsed ? std::string() : parsed.error();
         }},
        int_key<E>("retention_batch_size", &S::engine, &E::retention_batch_size, 1, 100'000),
        seconds_key<E>("maintenance_interval", &S::engine, &E::maintenance_interval, 10,
                       24 * kHourMs),

        string_key<L>("log_level", &S::log, &L::level,
                      {"trace", "debug", "info", "warn", "error", "critical", "off"}),
        string_key<L>("log_format", &S::log, &L::format, {"text", "json"}),
        bool_key<L>("access_log", &S::log, &L::access_log),
    };
    return kKeys;
}

std::string env_name(const char* key) {
    std::string out = "PYTHMATA_";
    for (const char* p = key; *p != '\0'; ++p) {
        out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(*p))));
    }
    return out;
}

std::string describe(const Key& k) {
    switch (k.kind) {
        case Key::Kind::kInt:
            return "must be an integer from " + std::to_string(k.min) + " to " +
                   std::to_string(k.max);
        case Key::Kind::kSeconds: {
            std::ostringstream o;
            o << "must be a number of seconds from " << static_cast<double>(k.min) / 1000.0
              << " to " << static_cast<double>(k.max) / 1000.0;
            return o.str();
        }
        case Key::Kind::kBool:
            return "must be true or false";
        case Key::Kind::kString: {
            if (k.choices.empty()) {
                return "must be a string";
            }
            std::string s = "must be one of";
            for (const auto& c : k.choices) {
                s += " " + c;
            }
            return s;
        }
    }
    return {};
}

/// Checks a value already converted to the key's kind; returns the stored Raw or an error text.
Result<Raw, std::string> check(const Key& k, Raw v) {
    switch (k.kind) {
        case Key::Kind::kInt: {
            auto* i = std::get_if<std::int64_t>(&v);
            if (i == nullptr || *i < k.min || *i > k.max) {
                return describe(k);
            }
            return v;
        }
        case Key::Kind::kSeconds: {
            double secs = 0;
            if (auto* i = std::get_if<std::int64_t>(&v)) {
                secs = static_cast<double>(*i);
            } else if (auto* d = std::get_if<double>(&v)) {
                secs = *d;
            } else {
                return describe(k);
            }
            if (!std::isfinite(secs)) {
                return describe(k);
            }
            const auto ms = static_cast<std::int64_t>(std::llround(secs * 1000.0));
            if (ms < k.min || ms > k.max) {
                return describe(k);
            }
            return Raw{ms};
        }
        case Key::Kind::kBool:
            if (!std::holds_alternative<bool>(v)) {
                return describe(k);
            }
            return v;
        case Key::Kind::kString: {
            auto* s = std::get_if<std::string>(&v);
            if (s == nullptr) {
                return describe(k);
            }
            if (!k.choices.empty() &&
                std::find(k.choices.begin(), k.choices.end(), *s) == k.choices.end()) {
                return describe(k);
            }
            if (k.text_error) {
                if (std::string why = k.text_error(*s); !why.empty()) {
                    return why;
                }
            }
            return v;
        }
    }
    return describe(k);
}

std::string shown(const Raw& v) {
    return std::visit(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::string>) {
                return quote(x);
            } else if constexpr (std::is_same_v<T, bool>) {
                return x ? "true" : "false";
            } else {
                std::ostringstream o;
                o << x;
                return o.str();
            }
        },
        v);
}

/// An environment string converted to the key's kind (numbers parsed strictly, whole text).
std::optional<Raw> from_env_text(const Key& k, const std::string& text) {
    switch (k.kind) {
        case Key::Kind::kString:
            return Raw{text};
        case Key::Kind::kBool:
            if (text == "true" || text == "1" || text == "yes" || text == "on") {
                return Raw{true};
            }
            if (text == "false" || text == "0" || text == "no" || text == "off") {
                return Raw{false};
            }
            return std::nullopt;
        case Key::Kind::kInt: {
            std::int64_t v = 0;
            auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
            if (ec != std::errc() || p != text.data() + text.size()) {
                return std::nullopt;
            }
            return Raw{v};
        }
        case Key::Kind::kSeconds: {
            if (text.empty()) {
                return std::nullopt;
            }
            char* end = nullptr;
            const double v = std::strtod(text.c_str(), &end);
            if (end != text.c_str() + text.size()) {
                return std::nullopt;
            }
            return Raw{v};
        }
    }
    return std::nullopt;
}

std::optional<Raw> from_toml(const toml::node& node) {
    if (auto v = node.as_integer()) {
        return Raw{v->get()};
    }
    if (auto v = node.as_floating_point()) {
        return Raw{v->get()};
    }
    if (auto v = node.as_boolean()) {
        return Raw{v->get()};
    }
    if (auto v = node.as_string()) {
        return Raw{v->get()};
    }
    if (auto a = node.as_array()) {  // a list of strings (api_keys) is read comma-joined
        std::string joined;
        for (const auto& item : *a) {
            auto text = item.as_string();
            if (text == nullptr) {
                return std::nullopt;
            }
            joined += (joined.empty() ? "" : ",") + text->get();
        }
        return Raw{joined};
    }
    return std::nullopt;
}

const Key* find_key(std::string_view name) {
    for (const auto& k : keys()) {
        if (name == k.name) {
            return &k;
        }
    }
    return nullptr;
}

Status validate(const app::Settings& s) {
    const auto& url = s.db.url;
    if (!(url.starts_with("sqlite://") || url.starts_with("postgresql://") ||
          url.starts_with("postgres://"))) {
        return Error::invalid_argument(
            "db_url: must start with sqlite://, postgresql:// or postgres://, got " + quote(url));
    }
    if (url == "sqlite://") {
        return Error::invalid_argument(
            "db_url: sqlite:// needs a file path, e.g. sqlite://./var/pythmata.db");
    }
    if (!s.cache.redis_url.empty() && !s.cache.redis_url.starts_with("redis://")) {
        return Error::invalid_argument("redis_url: must be empty or start with redis://, got " +
                                       quote(s.cache.redis_url));
    }
    if (s.engine.max_variable_size > s.engine.max_total_variables) {
        return Error::invalid_argument("max_variable_size: must not exceed max_total_variables (" +
                                       std::to_string(s.engine.max_total_variables) + ")");
    }
    if (s.http.host.empty()) {
        return Error::invalid_argument("http_host: must not be empty");
    }
    return {};
}

}  // namespace

Result<app::Settings, std::string> load(const std::optional<std::filesystem::path>& file,
                                        const EnvLookup& env) {
    app::Settings out;
    if (file) {
        const std::string source = file->string();
        std::ifstream in(*file, std::ios::binary);
        if (!in) {
            return "cannot read configuration file " + source;
        }
        std::ostringstream text;
        text << in.rdbuf();
        toml::table parsed;
        try {
            // Debian builds toml++ with exceptions: a syntax error throws parse_error.
            parsed = toml::parse(text.str(), source);
        } catch (const toml::parse_error& err) {
            return source + ":" + std::to_string(err.source().begin.line) + ":" +
                   std::to_string(err.source().begin.column) + ": " +
                   std::string(err.description());
        }
        for (const auto& [name, node] : parsed) {
            const Key* k = find_key(name.str());
            if (k == nullptr) {
                return std::string(name.str()) + " (" + source + "): unknown setting";
            }
            auto raw = from_toml(node);
            if (!raw) {
                return std::string(k->name) + " (" + source + "): " + describe(*k);
            }
            auto checked = check(*k, *raw);
            if (!checked) {
                return std::string(k->name) + " (" + source + "): " + checked.error() + ", got " +
                       shown(*raw);
            }
            k->set(out, checked.value());
        }
    }
    for (const auto& k : keys()) {
        const std::string name = env_name(k.name);
        const char* value = env(name.c_str());
        if (value == nullptr) {
            continue;
        }
        auto raw = from_env_text(k, value);
        auto checked = raw ? check(k, *raw) : Result<Raw, std::string>(describe(k));
        if (!checked) {
            return std::string(k.name) + " (environment " + name + "): " + checked.error() +
                   ", got " + quote(value);
        }
        k.set(out, checked.value());
    }
    if (auto ok = validate(out); !ok) {
        return ok.error().message;
    }
    return out;
}

std::string dump(const app::Settings& settings) {
    std::string out;
    for (const auto& k : keys()) {
        out += std::string(k.name) + " = " + k.show(settings) + "\n";
    }
    return out;
}

}  // namespace pythmata::config
