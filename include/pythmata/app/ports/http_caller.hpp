#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "pythmata/common/result.hpp"

namespace pythmata::app {

/// One outgoing HTTP request of the built-in `http` service.
struct HttpCall {
    std::string method = "GET";
    std::string url;  ///< http://host[:port]/path?query (https when the adapter supports it)
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::chrono::milliseconds timeout{10'000};  ///< whole exchange, connect included
};

struct HttpReply {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

/// Makes outgoing HTTP calls for the built-in `http` service task. Implemented with Beast by the
/// http layer. Blocking (the runtime calls it from its service threads, at most
/// `max_parallel_tokens` at once); thread-safe. A reply with any status is a value; a failure to
/// get one (bad URL, connect failure, timeout) is an Error (code HTTP_CALL_FAILED).
class HttpCaller {
  public:
    virtual ~HttpCaller() = default;
    [[nodiscard]] virtual Result<HttpReply> call(const HttpCall& request) = 0;
};

}  // namespace pythmata::app
