#pragma once

#include "pythmata/common/error.hpp"
#include "pythmata/http/message.hpp"

namespace pythmata::http {

/// The ONE place where an error kind becomes an HTTP status.
[[nodiscard]] int status_for(ErrorKind kind);

/// The response for `error`: body {"detail","code","context"}, Retry-After on 429/503, Allow on
/// 405 (from context.allow). Internal errors never show `internal` or exception text.
/// A 5xx is also logged with its `internal` cause (which the body never shows) on the default
/// logger: at most one line per code per second (an outage answers thousands of requests a
/// second), each saying how many answers of that code it stands for.
[[nodiscard]] Response error_response(const Error& error);

}  // namespace pythmata::http
