#pragma once

#include "pythmata/common/error.hpp"
#include "pythmata/http/message.hpp"

namespace pythmata::http {

/// The ONE place where an error kind becomes an HTTP status.
[[nodiscard]] int status_for(ErrorKind kind);

/// The response for `error`: body {"detail","code","context"}, Retry-After on 429/503, Allow on
/// 405 (from context.allow). Internal errors never show `internal` or exception text.
[[nodiscard]] Response error_response(const Error& error);

}  // namespace pythmata::http
