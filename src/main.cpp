// The composition root: the only place that knows every adapter. It reads the settings, opens
// the store and the cache, builds the use cases on top of them and hands them to the HTTP
// server; everything else depends on interfaces.

#include <sys/resource.h>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "pythmata/app/definition_catalog.hpp"
#include "pythmata/app/housekeeping.hpp"
#include "pythmata/app/idempotency_keys.hpp"
#include "pythmata/app/instance_runtime.hpp"
#include "pythmata/app/ports/service_log.hpp"
#include "pythmata/app/system_clock.hpp"
#include "pythmata/bpmn/parser.hpp"
#include "pythmata/cache/redis_cache.hpp"
#include "pythmata/config/config.hpp"
#include "pythmata/engine/compiled_process.hpp"
#include "pythmata/http/auth.hpp"
#include "pythmata/http/event_hub.hpp"
#include "pythmata/http/http_caller.hpp"
#include "pythmata/http/server.hpp"
#include "pythmata/metrics/prometheus_telemetry.hpp"
#include "pythmata/metrics/registry.hpp"
#include "pythmata/store/store.hpp"

#ifndef PYTHMATA_VERSION
#define PYTHMATA_VERSION "0.1.0"
#endif

namespace {

using namespace pythmata;

constexpr std::string_view kUsage = R"(pythmata - a BPMN 2.0 process engine served over REST

Usage:
  pythmata serve [--config FILE]      run the server (API, engine, timers and jobs)
  pythmata worker [--config FILE]     run only the executor (timers, built-in service jobs) on
                                      the shared database; /health and /metrics on http_port
  pythmata validate FILE...           check BPMN files as a deploy would; exit 1 on any error
  pythmata config [--config FILE]     print the effective settings (file + PYTHMATA_* env)
  pythmata deploy FILE... [--url URL] deploy BPMN files to a running server
  pythmata start KEY [--var name=value]... [--business-key K] [--version N] [--url URL]
                                      start an instance of process KEY on a running server
                                      (a value that is valid JSON is sent as JSON, else a string)
  pythmata version                    print the version
  pythmata --help                     this text

Settings come from the defaults, then --config FILE (TOML, see config/pythmata.toml), then
environment variables PYTHMATA_<KEY> (e.g. PYTHMATA_HTTP_PORT=8080). A bad value stops start-up
with a message naming the key. Once listening, `serve` prints "listening on HOST:PORT" on stdout.
Client commands talk to --url, else $PYTHMATA_URL, else http://http_host:http_port, sending
Authorization: Bearer $PYTHMATA_TOKEN when it is set.
)";

/// spdlog flag %* : the message as a JSON string literal (for log_format = json).
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
  public:
    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        const std::string_view text(msg.payload.data(), msg.payload.size());
        std::string out;
        out.reserve(text.size() + 2);
        out.push_back('"');
        for (const char c : text) {
            switch (c) {
                case '"':
                    out += "\\\"";
                    break;
                case '\\':
                    out += "\\\\";
                    break;
                case '\n':
                    out += "\\n";
                    break;
                case '\r':
                    out += "\\r";
                    break;
                case '\t':
                    out += "\\t";
                    break;
                default:
                    if (static_cast<unsigned char>(c) < 0x20) {
                        char buffer[8];
                        std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
                        out += buffer;
                    } else {
                        out.push_back(c);
                    }
            }
        }
        out.push_back('"');
        dest.append(out.data(), out.data() + out.size());
    }
    [[nodiscard]] std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<JsonMessageFlag>();
    }
};

/// Loggers on stderr: "pythmata" for the application, "access" for one line per request (whose
/// message already is a JSON object in json format).
void setup_logging(const app::LogSettings& log) {
    // One sink per logger: a sink owns its formatter, and the two log different patterns.
    auto main_logger = std::make_shared<spdlog::logger>(
        "pythmata",
        std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::never));
    auto access_logger = std::make_shared<spdlog::logger>(
        "access", std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::never));
    const auto level = spdlog::level::from_str(log.level);
    main_logger->set_level(level);
    access_logger->set_level(log.access_log ? spdlog::level::info : spdlog::level::off);
    if (log.format == "json") {
        auto formatter = std::make_unique<spdlog::pattern_formatter>();
        formatter->add_flag<JsonMessageFlag>('*').set_pattern(
            R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n","message":%*})");
        main_logger->set_formatter(std::move(formatter));
        access_logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","access":%v})",
                                   spdlog::pattern_time_type::utc);
    } else {
        main_logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %n: %v", spdlog::pattern_time_type::utc);
        access_logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ access %v",
                                   spdlog::pattern_time_type::utc);
    }
    main_logger->flush_on(spdlog::level::warn);
    spdlog::register_logger(access_logger);
    spdlog::set_default_logger(main_logger);
    spdlog::flush_every(std::chrono::seconds(1));
}

/// The built-in `logger` service task writes to the "service" logger.
class SpdlogServiceLog final : public app::ServiceLog {
  public:
    explicit SpdlogServiceLog(std::shared_ptr<spdlog::logger> logger)
        : logger_(std::move(logger)) {}
    void write(std::string_view level, std::string_view instance_id, std::string_view element_id,
               std::string_view message) override {
        auto parsed = spdlog::level::from_str(std::string(level));
        if (parsed == spdlog::level::off)
            parsed = spdlog::level::info;
        logger_->log(parsed, "instance={} element={} {}", instance_id, element_id, message);
    }

  private:
    std::shared_ptr<spdlog::logger> logger_;
};

struct Options {
    std::string command;
    std::optional<std::filesystem::path> config;
    std::vector<std::string> files;
    std::string url;                                        ///< deploy/start: the server
    std::vector<std::pair<std::string, std::string>> vars;  ///< start: --var name=value
    std::optional<std::string> business_key;                ///< start: --business-key
    std::optional<int> version;                             ///< start: --version N
};

std::optional<Options> parse_args(int argc, char** argv, std::string& error) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h" || arg == "help") {
            options.command = "help";
        } else if (arg == "--version") {
            options.command = "version";
        } else if (arg == "--config" || arg == "-c") {
            if (i + 1 >= argc) {
                error = "--config needs a file";
                return std::nullopt;
            }
            options.config = argv[++i];
        } else if (arg.rfind("--config=", 0) == 0) {
            options.config = std::string(arg.substr(9));
        } else if (arg == "--url" || arg == "--var" || arg == "--business-key" ||
                   (arg == "--version" && options.command == "start")) {
            if (i + 1 >= argc) {
                error = std::string(arg) + " needs a value";
                return std::nullopt;
            }
            const std::string value = argv[++i];
            if (arg == "--url") {
                options.url = value;
            } else if (arg == "--business-key") {
                options.business_key = value;
            } else if (arg == "--version") {
                try {
                    options.version = std::stoi(value);
                } catch (const std::exception&) {
                    error = "--version needs a number";
                    return std::nullopt;
                }
            } else {
                const auto eq = value.find('=');
                if (eq == std::string::npos || eq == 0) {
                    error = "--var needs name=value, got '" + value + "'";
                    return std::nullopt;
                }
                options.vars.emplace_back(value.substr(0, eq), value.substr(eq + 1));
            }
        } else if (!arg.empty() && arg[0] == '-') {
            error = "unknown option " + std::string(arg);
            return std::nullopt;
        } else if (options.command.empty()) {
            options.command = arg;
        } else {
            options.files.emplace_back(arg);
        }
    }
    if (options.command.empty())
        options.command = "help";
    return options;
}

Result<app::Settings, std::string> load_settings(const Options& options) {
    return config::load(options.config, [](const char* name) { return std::getenv(name); });
}

int validate(const Options& options, const app::Settings& settings) {
    if (options.files.empty()) {
        std::cerr << "validate: name at least one BPMN file\n";
        return 2;
    }
    int failures = 0;
    for (const auto& file : options.files) {
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            std::cout << file << ": cannot read the file\n";
            ++failures;
            continue;
        }
        std::ostringstream text;
        text << in.rdbuf();
        bpmn::ParseLimits limits;
        limits.max_document_bytes = settings.engine.max_bpmn_size;
        limits.max_elements = settings.engine.max_bpmn_elements;
        auto parsed = bpmn::parse(text.str(), limits);
        std::vector<bpmn::Diagnostic> errors;
        if (!parsed) {
            errors = parsed.error();
        } else {
            engine::CompileOptions compile;
            compile.script_max_instructions = settings.engine.script_max_instructions;
            compile.script_max_memory = settings.engine.script_max_memory;
            compile.script_timeout_ms = settings.engine.script_timeout.count();
            for (const auto& process : parsed->definitions.processes) {
                if (!process.executable)
                    continue;
                auto compiled = engine::compile(parsed->definitions, process.id, compile);
                if (!compiled) {
                    errors.insert(errors.end(), compiled.error().begin(), compiled.error().end());
                }
            }
            for (const auto& warning : parsed->warnings) {
                std::cout << file << ": warning: "
                          << (warning.element_id.empty() ? "" : warning.element_id + ": ")
                          << warning.message << "\n";
            }
        }
        if (errors.empty()) {
            std::cout << file << ": ok";
            if (parsed) {
                std::cout << " (";
                bool first = true;
                for (const auto& process : parsed->definitions.processes) {
                    if (!process.executable)
                        continue;
                    std::cout << (first ? "" : ", ") << process.id;
                    first = false;
                }
                std::cout << ")";
            }
            std::cout << "\n";
        } else {
            ++failures;
            for (const auto& error : errors) {
                std::cout << file << ": error: "
                          << (error.element_id.empty() ? "" : error.element_id + ": ")
                          << error.message << "\n";
            }
        }
    }
    return failures == 0 ? 0 : 1;
}

/// The server a client command talks to: --url, else PYTHMATA_URL, else this machine's
/// http_host:http_port from the settings.
std::string server_url(const Options& options, const app::Settings& settings) {
    if (!options.url.empty())
        return options.url;
    if (const char* env = std::getenv("PYTHMATA_URL"); env != nullptr && *env != '\0')
        return env;
    return "http://" + settings.http.host + ":" + std::to_string(settings.http.port);
}

/// Sends one request to the server and prints the answer: the body on stdout for 2xx (exit 0),
/// else the error on stderr (exit 1).
int client_call(const std::string& method, const std::string& url, const std::string& content_type,
                const std::string& body) {
    http::BeastHttpCaller caller;
    app::HttpCall call;
    call.method = method;
    call.url = url;
    call.headers = {{"Content-Type", content_type}, {"Accept", "application/json"}};
    if (const char* token = std::getenv("PYTHMATA_TOKEN"); token != nullptr && *token != '\0')
        call.headers.emplace_back("Authorization", std::string("Bearer ") + token);
    call.body = body;
    call.timeout = std::chrono::seconds(60);
    auto reply = caller.call(call);
    if (!reply) {
        std::cerr << "pythmata: " << url << ": " << reply.error().message << "\n";
        return 1;
    }
    if (reply->status >= 200 && reply->status < 300) {
        std::cout << reply->body << "\n";
        return 0;
    }
    std::cerr << "pythmata: HTTP " << reply->status << ": " << reply->body << "\n";
    return 1;
}

int deploy(const Options& options, const app::Settings& settings) {
    if (options.files.empty()) {
        std::cerr << "deploy: name at least one BPMN file\n";
        return 2;
    }
    int failures = 0;
    for (const auto& file : options.files) {
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            std::cerr << file << ": cannot read the file\n";
            ++failures;
            continue;
        }
        std::ostringstream text;
        text << in.rdbuf();
        if (client_call("POST", server_url(options, settings) + "/api/v1/processes",
                        "application/xml", text.str()) != 0) {
            ++failures;
        }
    }
    return failures == 0 ? 0 : 1;
}

int start(const Options& options, const app::Settings& settings) {
    if (options.files.size() != 1) {
        std::cerr << "start: name exactly one process key\n";
        return 2;
    }
    nlohmann::json body = {{"variables", nlohmann::json::object()}};
    for (const auto& [name, value] : options.vars) {
        // A value that parses as JSON is taken as JSON (42, true, {"a":1}); anything else is a
        // string.
        auto parsed = nlohmann::json::parse(value, nullptr, false);
        body["variables"][name] = parsed.is_discarded() ? nlohmann::json(value) : parsed;
    }
    if (options.business_key)
        body["business_key"] = *options.business_key;
    if (options.version)
        body["version"] = *options.version;
    std::string key;
    for (const unsigned char c : options.files[0]) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            key.push_back(static_cast<char>(c));
        } else {
            char escaped[4];
            std::snprintf(escaped, sizeof escaped, "%%%02X", c);
            key += escaped;
        }
    }
    return client_call("POST",
                       server_url(options, settings) + "/api/v1/processes/" + key + "/instances",
                       "application/json", body.dump());
}

/// Descriptors the process needs besides its HTTP connections: the store's and Redis's
/// connections, listening socket, logs, pipes and libraries.
constexpr rlim_t kFileLimitReserve = 512;

/// Each connection holds a descriptor: raises the soft RLIMIT_NOFILE (often 1024) towards the
/// hard limit so that http_max_connections can be honoured, and warns when even the hard limit
/// is below it (connections beyond it then fail to be accepted).
void raise_file_limit(const app::Settings& settings, spdlog::logger& log) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return;
    const rlim_t wanted = static_cast<rlim_t>(settings.http.max_connections) + kFileLimitReserve +
                          settings.db.pool_size + settings.db.max_overflow;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
        rlimit raised = limit;
        raised.rlim_cur =
            limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            log.info("raised the open file limit from {} to {} for http_max_connections {}",
                     limit.rlim_cur, raised.rlim_cur, settings.http.max_connections);
            limit = raised;
        }
    }
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
        log.warn(
            "the open file limit ({}) is below what http_max_connections {} needs ({}); raise the "
            "hard limit (ulimit -Hn, systemd LimitNOFILE, docker --ulimit nofile) or lower "
            "http_max_connections",
            limit.rlim_cur, settings.http.max_connections, wanted);
    }
}

/// The two long-running roles share one wiring. `serve` runs the API, the engine and the
/// executor; `worker` (ops_only) runs the executor without the API: the same store, catalog and
/// runtime (the runtime's scheduler fires due timers and its service threads run built-in jobs,
/// locked per row so that any number of serve and worker processes share one database), and an
/// HTTP server that answers only /health, /health/ready and /metrics.
int run_node(app::Settings settings, bool ops_only) {
    setup_logging(settings.log);
    auto log = spdlog::default_logger();
    log->info("pythmata {} {} starting (store {}, http {}:{})", PYTHMATA_VERSION,
              ops_only ? "worker" : "server",
              settings.db.url.rfind("postgres", 0) == 0 ? "postgresql" : settings.db.url,
              settings.http.host, settings.http.port);
    if (ops_only && settings.db.url.rfind("sqlite", 0) == 0) {
        log->warn(
            "a worker on SQLite shares the file with at most one server on this machine; "
            "use PostgreSQL for replicas");
    }

    raise_file_limit(settings, *log);

    metrics::Registry registry;
    auto store = store::open_store(settings.db, registry);
    if (!store) {
        log->error("cannot open the store: {}{}", store.error().message,
                   store.error().internal.empty() ? "" : " (" + store.error().internal + ")");
        return 1;
    }
    std::unique_ptr<cache::RedisCache> redis;
    if (!settings.cache.redis_url.empty()) {
        auto created = cache::RedisCache::create(settings.cache, registry);
        if (!created) {
            log->error("cannot set up the Redis cache: {}", created.error().message);
            return 1;
        }
        redis = std::move(*created);
    }
    metrics::PrometheusTelemetry telemetry(registry);
    app::SystemClock clock;
    app::DefinitionCatalog definitions(**store, redis.get(), telemetry, clock, settings.cache,
                                       settings.engine);
    http::BeastHttpCaller http_caller;
    SpdlogServiceLog service_log(log->clone("service"));
    app::InstanceRuntime runtime(**store, definitions, telemetry, clock, settings.engine,
                                 &http_caller, &service_log);
    definitions.set_deploy_observer(&runtime);
    http::EventHub events;
    if (!ops_only)
        runtime.set_event_sink(&events);
    app::IdempotencyKeys idempotency(**store, clock, settings.engine);
    runtime.start();
    app::Housekeeping housekeeping(**store, telemetry, clock, settings.engine);
    housekeeping.start();

    if (settings.http.blocking_threads == 0) {
        // Most blocking requests wait for an engine batch to commit, not for a connection: enough
        // threads that a full batch can gather (token_batch_size per worker), at least the pool.
        settings.http.blocking_threads =
            std::max({128u, settings.db.pool_size + settings.db.max_overflow,
                      settings.engine.token_batch_size * settings.engine.workers});
    }
    http::ServerDeps deps{settings.http,
                          settings.log,
                          definitions,
                          {{"store", store->get(), true}, {"cache", redis.get(), false}},
                          registry,
                          spdlog::get("access"),
                          log};
    if (ops_only) {
        deps.ops_only = true;
    } else {
        deps.instances = &runtime;
        deps.idempotency = &idempotency;
        deps.events = &events;
    }
    http::Server server(std::move(deps));
    auto port = server.listen();
    if (!port) {
        log->error("{}", port.error().message);
        return 1;
    }
    std::cout << "listening on " << settings.http.host << ":" << *port << std::endl;
    log->info("{} listening on {}:{}", ops_only ? "worker (/health, /metrics)" : "server",
              settings.http.host, *port);
    server.run();
    housekeeping.stop();
    runtime.stop();
    definitions.set_deploy_observer(nullptr);
    log->info("stopped");
    spdlog::shutdown();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string error;
    const auto options = parse_args(argc, argv, error);
    if (!options) {
        std::cerr << "pythmata: " << error << "\n\n" << kUsage;
        return 2;
    }
    const std::string& command = options->command;
    if (command == "help") {
        std::cout << kUsage;
        return 0;
    }
    if (command == "version") {
        std::cout << "pythmata " << PYTHMATA_VERSION << "\n";
        return 0;
    }
    if (command != "serve" && command != "validate" && command != "config" && command != "deploy" &&
        command != "start" && command != "worker") {
        std::cerr << "pythmata: unknown command '" << command << "'\n\n" << kUsage;
        return 2;
    }
    auto settings = load_settings(*options);
    if (!settings) {
        std::cerr << "pythmata: invalid configuration: " << settings.error() << "\n";
        return 2;
    }
    if (command == "config") {
        std::cout << config::dump(*settings);
        return 0;
    }
    if (command == "validate")
        return validate(*options, *settings);
    if (command == "deploy")
        return deploy(*options, *settings);
    if (command == "start")
        return start(*options, *settings);
    if (command == "serve" || command == "worker") {
        // The secure default (http/auth): no unauthenticated API on a non-loopback address;
        // and a bad auth setting (api_keys entry, public key file) stops start-up here.
        auto auth = http::Authenticator::create(settings->http);
        auto bind = http::check_bind_policy(settings->http);
        if (!auth || !bind) {
            std::cerr << "pythmata: invalid configuration: "
                      << (!auth ? auth.error().message : bind.error().message) << "\n";
            return 2;
        }
    }
    if (command == "worker")
        return run_node(std::move(*settings), true);
    return run_node(std::move(*settings), false);
}
