#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pythmata/common/error.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/http/message.hpp"

namespace pythmata::http {

/// Values of the `{name}` segments of the matched template, percent-decoded, in order.
class PathParams {
  public:
    void add(std::string name, std::string value) {
        values_.emplace_back(std::move(name), std::move(value));
    }
    /// The value of `{name}`; empty when the template has no such segment.
    [[nodiscard]] const std::string& get(std::string_view name) const;

  private:
    std::vector<std::pair<std::string, std::string>> values_;
};

using Handler = std::function<Response(const Request&, const PathParams&)>;

/// Where a handler runs: kInline on the connection's I/O thread (cheap, never blocks), kBlocking
/// on the bounded blocking pool (anything that touches the store, the engine or a lock).
/// kInlineFirst: the route's `inline_answer` runs on the I/O thread first (it must never block,
/// e.g. it answers from memory); when it has no answer, `handler` runs as for kBlocking (for a
/// GET, as for kRead).
/// kAsyncFirst: the route's `async_answer` runs on the I/O thread first and may hand the request
/// to something that answers later (the engine): no blocking-pool thread waits for it. When it
/// declines, `handler` runs as for kBlocking. Both count against the same queue bound and
/// request timeout. kRead: like kBlocking, but on the small read pool (http_read_threads): a
/// short read of the store or the cache that never waits for an engine commit. A few threads
/// that take the next read while the queue holds one cost far less CPU per request than a
/// large pool that wakes a sleeping thread for each (docs/benchmarks.md, "Session 8").
enum class Execution { kInline, kBlocking, kInlineFirst, kAsyncFirst, kRead };

/// A kInlineFirst route's non-blocking attempt: a response, or nullopt to go to the pool.
using InlineHandler = std::function<std::optional<Response>(const Request&, const PathParams&)>;

/// How a kAsyncFirst route answers: called once, from any thread, with a function that makes
/// the response; the server calls that function on the connection's I/O thread.
using AsyncReply = std::function<void(std::function<Response()>)>;

/// A kAsyncFirst route's attempt: false to go to the pool (nothing taken, `reply` not called);
/// true when it took the request and will call `reply` exactly once. Must never block.
using AsyncHandler = std::function<bool(const Request&, const PathParams&, const AsyncReply&)>;

/// The least role a route needs when auth is on (http/auth): viewer < operator < admin.
enum class Role { kViewer = 1, kOperator = 2, kAdmin = 3 };

struct Route {
    std::string method;
    std::string pattern;  ///< e.g. "/api/v1/processes/{key}/versions/{version}"
    Execution execution = Execution::kBlocking;
    Handler handler;
    Role role = Role::kViewer;    ///< required role (auth)
    InlineHandler inline_answer;  ///< kInlineFirst only
    AsyncHandler async_answer;    ///< kAsyncFirst only
};

/// A match: the route and its parameters. Unknown paths and methods are values, not exceptions:
/// 404 NOT_FOUND, and 405 METHOD_NOT_ALLOWED with context.allow listing the path's methods.
struct Match {
    const Route* route = nullptr;
    PathParams params;
};

/// The route table: literal segments and `{param}` segments, matched segment by segment (a
/// literal beats a parameter). HEAD matches GET routes. Built once, then read-only (thread-safe).
class Router {
  public:
    void add(Route route);
    /// Matches `path` (no query, still percent-encoded). Errors: NOT_FOUND, METHOD_NOT_ALLOWED,
    /// INVALID_ARGUMENT for a segment with a bad escape.
    [[nodiscard]] Result<Match> match(std::string_view method, std::string_view path) const;
    [[nodiscard]] const std::vector<Route>& routes() const { return routes_; }

  private:
    struct Compiled {
        std::vector<std::string> segments;  ///< "{x}" for parameters
    };
    std::vector<Route> routes_;
    std::vector<Compiled> compiled_;
};

}  // namespace pythmata::http
