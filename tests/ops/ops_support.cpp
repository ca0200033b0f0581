#include "ops_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

namespace pythmata::test {

namespace fs = std::filesystem;

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    CommandResult result;
    int pipe_fds[2];
    if (argv.empty() || ::pipe(pipe_fds) != 0) {
        result.output = "cannot run the command";
        return result;
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(pipe_fds[1], STDOUT_FILENO);
        ::dup2(pipe_fds[1], STDERR_FILENO);
        ::close(pipe_fds[0]);
        ::close(pipe_fds[1]);
        std::vector<char*> args;
        for (const auto& arg : argv) {
            args.push_back(const_cast<char*>(arg.c_str()));
        }
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(pipe_fds[1]);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool killed = false;
    char buffer[4096];
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            ::kill(pid, SIGKILL);
            killed = true;
            break;
        }
        pollfd pfd{pipe_fds[0], POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
            continue;
        }
        const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
        if (n <= 0) {
            break;
        }
        result.output.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(pipe_fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!killed && WIFEXITED(status)) {
        result.code = WEXITSTATUS(status);
    }
    if (killed) {
        result.output += "\n(killed after " + std::to_string(timeout.count()) + " ms)";
    }
    return result;
}

TempDir::TempDir(const std::string& prefix) {
    std::string pattern = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) != nullptr) {
        path_ = pattern;
    }
}

TempDir::~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) {
        fs::remove_all(path_, ignored);
    }
}

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof address;
    std::uint16_t port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
        port = ntohs(address.sin_port);
    }
    ::close(fd);
    return port;
}

Result<std::string, HarnessFailure> loopback_nginx_conf(
    std::string conf, const fs::path& dir, std::uint16_t listen_port,
    const std::vector<std::uint16_t>& backends) {
    static const std::regex kBackend(R"(server [A-Za-z0-9_.-]+:8000 )");
    std::string out;
    std::size_t replaced = 0;
    auto begin = std::sregex_iterator(conf.begin(), conf.end(), kBackend);
    std::size_t last = 0;
    for (auto it = begin; it != std::sregex_iterator(); ++it) {
        if (replaced >= backends.size()) {
            return HarnessFailure{"nginx.conf has more backends than the test gave ports"};
        }
        out += conf.substr(last, static_cast<std::size_t>(it->position()) - last);
        out += "server 127.0.0.1:" + std::to_string(backends[replaced++]) + " ";
        last = static_cast<std::size_t>(it->position() + it->length());
    }
    out += conf.substr(last);
    if (replaced != backends.size()) {
        return HarnessFailure{"nginx.conf has " + std::to_string(replaced) + " backends, not " +
                              std::to_string(backends.size())};
    }
    const std::string listen = "listen 8080;";
    const auto at = out.find(listen);
    if (at == std::string::npos) {
        return HarnessFailure{"nginx.conf has no 'listen 8080;'"};
    }
    out.replace(at, listen.size(), "listen 127.0.0.1:" + std::to_string(listen_port) + ";");
    // pid file, temp paths and logs into the test's dir.
    out = std::regex_replace(out, std::regex("/tmp/"), dir.string() + "/");
    out = std::regex_replace(out, std::regex("access_log /dev/stdout;"),
                             "access_log " + (dir / "access.log").string() + ";");
    return out;
}

NginxProcess::NginxProcess(const fs::path& dir) {
    const std::string prefix = dir.string();
    const std::string conf = (dir / "nginx.conf").string();
    const std::string log = (dir / "nginx.stderr").string();
    pid_ = ::fork();
    if (pid_ == 0) {
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, STDERR_FILENO);
        ::dup2(fd, STDOUT_FILENO);
        ::execl(kNginx, kNginx, "-p", prefix.c_str(), "-c", conf.c_str(), "-e", "stderr", "-g",
                "daemon off;", static_cast<char*>(nullptr));
        ::_exit(127);
    }
}

NginxProcess::~NginxProcess() {
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
}

ServerProcess::Options ops_server_options(std::map<std::string, std::string> env) {
    ServerProcess::Options options;
    options.env = {{"PYTHMATA_STATE_CHECK_INTERVAL", "0.2"},
                   {"PYTHMATA_MAINTENANCE_INTERVAL", "0.2"},
                   {"PYTHMATA_LOG_LEVEL", "info"}};
    for (auto& [key, value] : env) {
        options.env[key] = std::move(value);
    }
    return options;
}

std::string bpmn_document(const std::string& process_body) {
    return R"(<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
             xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
             xmlns:pythmata="http://pythmata.org/schema/1.0/bpmn"
             id="defs" targetNamespace="http://pythmata.test/ops">
)" + process_body +
           "</definitions>\n";
}

namespace {

Result<HttpResponse, HarnessFailure> expect_status(Result<HttpResponse, HarnessFailure> response,
                                                   int status, const std::string& what) {
    if (!response) {
        return std::move(response).error();
    }
    if (response->status != status) {
        return HarnessFailure{what + ": expected " + std::to_string(status) + ", got " +
                              response->describe()};
    }
    return response;
}

const char* kUserTask = R"(  <process id="ops_task" isExecutable="true">
    <startEvent id="start"/>
    <userTask id="review"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
  </process>
)";

const char* kTimer = R"(  <process id="ops_timer" isExecutable="true">
    <startEvent id="start"/>
    <intermediateCatchEvent id="wait"><timerEventDefinition>
      <timeDuration xsi:type="tFormalExpression">PT0.3S</timeDuration>
    </timerEventDefinition></intermediateCatchEvent>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <sequenceFlow id="f2" sourceRef="wait" targetRef="end"/>
  </process>
)";

const char* kFailingScript = R"(  <process id="ops_script" isExecutable="true">
    <startEvent id="start"/>
    <scriptTask id="fragile" scriptFormat="lua"><script>error("fails on purpose")</script></scriptTask>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="fragile"/>
    <sequenceFlow id="f2" sourceRef="fragile" targetRef="end"/>
  </process>
)";

std::string failing_http(std::uint16_t closed_port) {
    return R"(  <process id="ops_http" isExecutable="true">
    <startEvent id="start"/>
    <serviceTask id="call">
      <extensionElements>
        <pythmata:serviceTaskConfig taskName="http">
          <pythmata:properties>
            <pythmata:property name="url" value="http://127.0.0.1:)" +
           std::to_string(closed_port) + R"(/nothing"/>
            <pythmata:property name="timeout" value="1000"/>
          </pythmata:properties>
        </pythmata:serviceTaskConfig>
      </extensionElements>
    </serviceTask>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="call"/>
    <sequenceFlow id="f2" sourceRef="call" targetRef="end"/>
  </process>
)";
}

}  // namespace

Result<void, HarnessFailure> produce_every_metric_family(HttpClient& client) {
    for (const auto& [name, body] :
         std::vector<std::pair<std::string, std::string>>{{"user task", kUserTask},
                                                          {"timer", kTimer},
                                                          {"script", kFailingScript},
                                                          {"http", failing_http(free_port())}}) {
        auto deployed =
            expect_status(client.send_xml("POST", "/api/v1/processes", bpmn_document(body)), 201,
                          "deploy the " + name + " model");
        if (!deployed) {
            return std::move(deployed).error();
        }
    }
    for (const char* key : {"ops_task", "ops_task", "ops_timer", "ops_script", "ops_http"}) {
        auto started = expect_status(
            client.send_json("POST", std::string("/api/v1/processes/") + key + "/instances",
                             {{"variables", nlohmann::json::object()}}),
            201, std::string("start ") + key);
        if (!started) {
            return std::move(started).error();
        }
    }
    // Complete the user tasks: instances end (process_execution_seconds).
    auto tasks = expect_status(client.get("/api/v1/tasks"), 200, "list tasks");
    if (!tasks) {
        return std::move(tasks).error();
    }
    // Held in a variable: a range-for over a member of a temporary would dangle.
    const nlohmann::json items = tasks->json()["data"]["items"];
    for (const auto& task : items) {
        auto done = expect_status(
            client.send_json("POST", "/api/v1/tasks/" + task["id"].get<std::string>() + "/complete",
                             {{"variables", nlohmann::json::object()}}),
            200, "complete a task");
        if (!done) {
            return std::move(done).error();
        }
    }
    // Reads through the definition cache.
    for (int i = 0; i < 2; ++i) {
        auto read = expect_status(client.get("/api/v1/processes/ops_task"), 200, "get ops_task");
        if (!read) {
            return std::move(read).error();
        }
    }
    // Wait (bounded) for the timer to fire and the failed service call to be counted.
    std::string last;
    const bool seen = eventually(std::chrono::seconds(10), [&] {
        auto metrics = client.get("/metrics");
        if (!metrics || metrics->status != 200) {
            return false;
        }
        last = metrics->body;
        return last.find("pythmata_errors_total{") != std::string::npos &&
               last.find("pythmata_timer_lateness_seconds_count 0") == std::string::npos &&
               last.find("pythmata_incidents_open 0") == std::string::npos;
    });
    if (!seen) {
        return HarnessFailure{
            "after 10 s /metrics still lacks a failed service call, a fired "
            "timer or an open incident:\n" +
            last};
    }
    return {};
}

}  // namespace pythmata::test
