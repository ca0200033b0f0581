#pragma once

#include <optional>
#include <string>

#include "pythmata/common/result.hpp"

namespace pythmata::app {

/// The first answer to a request that carried an Idempotency-Key.
struct IdempotentAnswer {
    int status = 0;
    std::string body;  ///< the response body exactly as first sent
};

/// What the http layer does with a request that carries an Idempotency-Key.
struct IdempotencyDecision {
    /// True: first use of the key; run the request, then call finish() (or abandon()).
    bool run = false;
    /// When run is false: the first request's answer, to send again unchanged.
    std::optional<IdempotentAnswer> replay;
};

/// Idempotency-Key handling for every mutating POST (API.md), kept apart from the use cases so
/// that any handler can be wrapped the same way:
///
///     auto d = idem.begin(key, sha256(method + path + body));   // 409s are errors
///     if (!d->run) reply(d->replay);
///     else { answer = handler(); answer is 5xx ? idem.abandon(key) : idem.finish(key, hash,
///     answer); }
///
/// The key is recorded as in flight before the request runs (so a concurrent duplicate gets
/// 409 IDEMPOTENCY_KEY_IN_FLIGHT instead of running twice); finish() makes the answer durable in
/// its own small commit. A crash between the request's commit and finish() leaves the key in
/// flight until the retention window (EngineSettings::idempotency_retention) passes: duplicates
/// are refused, never run twice. Blocking; thread-safe.
class IdempotencyService {
  public:
    virtual ~IdempotencyService() = default;

    /// Errors: 409 IDEMPOTENCY_KEY_REUSED (same key, different request hash),
    /// 409 IDEMPOTENCY_KEY_IN_FLIGHT (the first request is still running), store errors (503).
    [[nodiscard]] virtual Result<IdempotencyDecision> begin(const std::string& key,
                                                            const std::string& request_hash) = 0;
    /// Records the final answer of a request begun with run = true.
    [[nodiscard]] virtual Status finish(const std::string& key, const std::string& request_hash,
                                        const IdempotentAnswer& answer) = 0;
    /// Forgets an in-flight key whose request failed in a way a retry may fix (5xx).
    [[nodiscard]] virtual Status abandon(const std::string& key) = 0;
};

}  // namespace pythmata::app
