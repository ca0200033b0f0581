#include "postgres_server.hpp"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

namespace pythmata::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kBinDir = "/usr/lib/postgresql/15/bin";

/// Servers alive in this process, killed by an atexit handler if a test leaks one.
std::mutex& live_mutex() {
    static std::mutex mutex;
    return mutex;
}
std::set<pid_t>& live_pids() {
    static std::set<pid_t> pids;
    return pids;
}

void kill_leaked_servers() {
    std::lock_guard lock(live_mutex());
    for (pid_t pid : live_pids()) {
        ::kill(pid, SIGKILL);
    }
}

void track(pid_t pid) {
    static std::once_flag registered;
    std::call_once(registered, [] { std::atexit(kill_leaked_servers); });
    std::lock_guard lock(live_mutex());
    live_pids().insert(pid);
}

void untrack(pid_t pid) {
    std::lock_guard lock(live_mutex());
    live_pids().erase(pid);
}

/// The account the server runs as: `postgres` when we are root (PostgreSQL refuses root),
/// else ourselves.
struct RunAs {
    bool switch_user = false;
    uid_t uid = 0;
    gid_t gid = 0;
};

bool run_as(RunAs& out, std::string& why) {
    if (::geteuid() != 0) {
        out = {false, ::geteuid(), ::getegid()};
        return true;
    }
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
        why = "running as root but there is no 'postgres' user to run PostgreSQL as";
        return false;
    }
    out = {true, pw->pw_uid, pw->pw_gid};
    return true;
}

std::string quote(const std::string& text) {
    std::string quoted = "'";
    for (char c : text) {
        if (c == '\'') {
            quoted += "'\\''";
        } else {
            quoted += c;
        }
    }
    return quoted + "'";
}

bool give_to(const fs::path& path, const RunAs& user) {
    return ::chown(path.c_str(), user.uid, user.gid) == 0;
}

std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return 0;
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    std::uint16_t port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
        port = ntohs(address.sin_port);
    }
    ::close(fd);
    return port;
}

/// Where clusters live: $PYTHMATA_TEST_PG_ROOT, else /dev/shm when it is a tmpfs with room
/// (no disk contention with parallel builds; kill -9 of the server still loses nothing the page
/// cache holds, so crash tests stay meaningful), else the temp directory.
fs::path cluster_root() {
    if (const char* root = std::getenv("PYTHMATA_TEST_PG_ROOT"); root != nullptr && *root != 0) {
        return root;
    }
    std::error_code ec;
    const fs::path shm = "/dev/shm";
    const auto space = fs::space(shm, ec);
    if (!ec && fs::is_directory(shm, ec) && ::access(shm.c_str(), W_OK) == 0 &&
        space.available > (std::uintmax_t{1} << 30)) {
        return shm;
    }
    return fs::temp_directory_path();
}

/// An initdb'ed cluster shared by every test process of this user on this machine, made once
/// under an exclusive file lock; "READY" marks a complete one.
bool template_cluster(const RunAs& user, fs::path& data, std::string& why) {
    // Bump the suffix when the initdb options change, so that old templates are not reused.
    const fs::path root =
        cluster_root() / ("pythmata-pg15-template-v3-" + std::to_string(::getuid()));
    const fs::path lock_path = root.string() + ".lock";
    const int lock_fd = ::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX) != 0) {
        why = "cannot lock " + lock_path.string();
        if (lock_fd >= 0) {
            ::close(lock_fd);
        }
        return false;
    }
    bool ok = true;
    data = root / "data";
    if (!fs::exists(root / "READY")) {
        std::error_code ec;
        fs::remove_all(root, ec);
        fs::create_directories(root, ec);
        if (ec || !give_to(root, user)) {
            why = "cannot create " + root.string();
            ok = false;
        } else {
            const fs::path log = root / "initdb.log";
            std::string command =
                (user.switch_user ? std::string("runuser -u postgres -- ") : "") +
                (kBinDir / "initdb").string() + " -D " + quote(data.string()) +
                " -U postgres -A trust -E UTF8 --locale=C --wal-segsize=1 --no-sync > " +
                quote(log.string()) + " 2>&1";
            // The test database is made once here, in single-user mode, so that copies have it.
            const std::string create_db =
                "echo 'CREATE DATABASE " + std::string(PostgresServer::kDatabase) + ";' | " +
                (user.switch_user ? std::string("runuser -u postgres -- ") : "") +
                (kBinDir / "postgres").string() + " --single -D " + quote(data.string()) +
                " postgres >> " + quote(log.string()) + " 2>&1";
            if (std::system(command.c_str()) != 0 || std::system(create_db.c_str()) != 0) {
                std::ifstream in(log);
                std::stringstream text;
                text << in.rdbuf();
                why = "initdb failed: " + text.str();
                ok = false;
            } else {
                std::ofstream(root / "READY") << "initdb done\n";
            }
        }
    }
    ::flock(lock_fd, LOCK_UN);
    ::close(lock_fd);
    return ok;
}

/// Removes cluster dirs left by test processes that died without running destructors (their
/// servers died with them through PR_SET_PDEATHSIG). Each dir names its owner in "owner.pid".
void sweep_abandoned(const fs::path& root) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(root, ec)) {
        const std::string name = entry.path().filename().string();
        if (!name.starts_with("pythmata-pg-")) {
            continue;
        }
        std::ifstream owner_file(entry.path() / "owner.pid");
        pid_t owner = 0;
        if (!(owner_file >> owner) || owner <= 0) {
            continue;  // being set up right now, or not ours
        }
        if (::kill(owner, 0) != 0 && errno == ESRCH) {
            std::error_code ignored;
            fs::remove_all(entry.path(), ignored);
        }
    }
}

}  // namespace

std::unique_ptr<PostgresServer> PostgresServer::start_new(std::string& why) {
    if (!fs::exists(kBinDir / "postgres") || !fs::exists(kBinDir / "initdb")) {
        why = "PostgreSQL 15 is not installed (" + kBinDir.string() +
              "); run scripts/install-deps.sh";
        return nullptr;
    }
    RunAs user;
    if (!run_as(user, why)) {
        return nullptr;
    }
    fs::path template_data;
    if (!template_cluster(user, template_data, why)) {
        return nullptr;
    }
    sweep_abandoned(cluster_root());
    std::string pattern = (cluster_root() / "pythmata-pg-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        why = "mkdtemp failed";
        return nullptr;
    }
    const fs::path dir = pattern;
    std::ofstream(dir / "owner.pid") << ::getpid() << "\n";
    if (!give_to(dir, user)) {
        why = "cannot chown " + dir.string() + " to postgres";
        std::error_code ec;
        fs::remove_all(dir, ec);
        return nullptr;
    }
    // cp -a keeps the postgres ownership and the 0700 mode that the server insists on.
    const std::string copy =
        "cp -a " + quote(template_data.string()) + " " + quote((dir / "data").string());
    if (std::system(copy.c_str()) != 0) {
        why = "cannot copy the template cluster";
        std::error_code ec;
        fs::remove_all(dir, ec);
        return nullptr;
    }
    const std::uint16_t port = free_port();
    std::unique_ptr<PostgresServer> server(new PostgresServer(dir, port));
    if (port == 0 || !server->start()) {
        why =
            "PostgreSQL did not start on port " + std::to_string(port) + ": " + server->log_tail();
        return nullptr;
    }
    return server;
}

PostgresServer::PostgresServer(std::filesystem::path dir, std::uint16_t port)
    : dir_(std::move(dir)), port_(port) {}

PostgresServer::~PostgresServer() {
    // The cluster is thrown away: no need for a shutdown checkpoint.
    stop(Shutdown::kImmediate);
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

std::string PostgresServer::url(const std::string& database) const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + database;
}

std::string PostgresServer::schema_url(const std::string& schema,
                                       const std::string& database) const {
    return url(database) + "?options=-csearch_path%3D" + schema;
}

bool PostgresServer::start() {
    if (pid_ > 0) {
        return true;
    }
    RunAs user;
    std::string why;
    if (!run_as(user, why)) {
        return false;
    }
    // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
    const std::string binary = (kBinDir / "postgres").string();
    const std::string log = (dir_ / "postgres.log").string();
    std::vector<std::string> args = {
        binary, "-D", (dir_ / "data").string(), "-p", std::to_string(port_), "-c",
        "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=on", "-c",
        "max_connections=60", "-c", "shared_buffers=16MB", "-c", "logging_collector=off", "-c",
        // Segments in the data dir, so a killed server leaves
        // nothing behind in /dev/shm.
        "dynamic_shared_memory_type=mmap"};
    // $PYTHMATA_TEST_PG_LOG_DIR: every statement of every cluster logged into that directory,
    // kept after the test (bench/plans/review.sh reads the statements the store sends).
    if (const char* logs = std::getenv("PYTHMATA_TEST_PG_LOG_DIR"); logs != nullptr && *logs != 0) {
        for (const std::string& setting :
             std::vector<std::string>{"logging_collector=on", std::string("log_directory=") + logs,
                                      "log_filename=postgresql-" + std::to_string(port_) + ".log",
                                      "log_statement=all"}) {
            args.insert(args.end(), {"-c", setting});
        }
    }
    std::vector<char*> argv;
    for (auto& arg : args) {
        argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();

    const pid_t pid = ::fork();
    if (pid < 0) {
        return false;
    }
    if (pid == 0) {
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            ::dup2(fd, STDOUT_FILENO);
            ::dup2(fd, STDERR_FILENO);
            ::close(fd);
        }
        if (user.switch_user) {
            if (::setgroups(1, &user.gid) != 0 || ::setgid(user.gid) != 0 ||
                ::setuid(user.uid) != 0) {
                ::_exit(126);
            }
        }
        // Set after setuid, which clears it: the server dies with the test process.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) {
            ::_exit(125);
        }
        ::execv(binary.c_str(), argv.data());
        ::_exit(127);
    }
    pid_ = pid;
    track(pid_);
    if (!wait_ready(30s)) {
        stop(Shutdown::kImmediate, 5s);
        return false;
    }
    return true;
}

bool PostgresServer::wait_ready(std::chrono::milliseconds timeout) {
    const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port_) +
                                 " user=postgres dbname=postgres "
                                 "connect_timeout=2";
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            untrack(pid_);
            pid_ = -1;
            return false;
        }
        if (PQping(conninfo.c_str()) == PQPING_OK) {
            return true;
        }
        std::this_thread::sleep_for(50ms);
    }
    return false;
}

bool PostgresServer::stop(Shutdown mode, std::chrono::milliseconds timeout) {
    if (pid_ <= 0) {
        return true;
    }
    ::kill(pid_, mode == Shutdown::kFast ? SIGINT : SIGQUIT);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool stopped = false;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        const pid_t done = ::waitpid(pid_, &status, WNOHANG);
        if (done == pid_ || done < 0) {
            stopped = true;
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    if (!stopped) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    untrack(pid_);
    pid_ = -1;
    return stopped;
}

bool PostgresServer::create_database(const std::string& name) {
    return execute("CREATE DATABASE \"" + name + "\"");
}

bool PostgresServer::execute(const std::string& sql, const std::string& database) {
    const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port_) +
                                 " user=postgres connect_timeout=5 dbname=" + database;
    PGconn* connection = PQconnectdb(conninfo.c_str());
    bool ok = PQstatus(connection) == CONNECTION_OK;
    if (ok) {
        PGresult* result = PQexec(connection, sql.c_str());
        ok = PQresultStatus(result) == PGRES_COMMAND_OK;
        PQclear(result);
    }
    PQfinish(connection);
    return ok;
}

std::string PostgresServer::log_tail(std::size_t bytes) const {
    std::ifstream in(dir_ / "postgres.log");
    std::stringstream text;
    text << in.rdbuf();
    const std::string all = text.str();
    return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

}  // namespace pythmata::test
