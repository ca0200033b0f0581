#include "pythmata/app/idempotency_keys.hpp"

namespace pythmata::app {

IdempotencyKeys::IdempotencyKeys(RuntimeStore& store, const Clock& clock,
                                 const EngineSettings& settings)
    : store_(store), clock_(clock), retention_(settings.idempotency_retention) {}

Result<IdempotencyDecision> IdempotencyKeys::begin(const std::string& key,
                                                   const std::string& request_hash) {
    if (key.empty() || key.size() > 255) {
        return Error::invalid_argument("Idempotency-Key must be 1 to 255 characters");
    }
    const TimePoint now = clock_.now();
    auto claim = store_.claim_idempotency_key(key, request_hash, now, now - retention_);
    if (!claim) {
        return std::move(claim).error();
    }
    if (claim->claimed) {
        return IdempotencyDecision{true, std::nullopt};
    }
    if (!claim->stored) {
        return Error::internal_error("idempotency claim refused without a stored record");
    }
    const IdempotencyRecord& stored = *claim->stored;
    if (stored.request_hash != request_hash) {
        Error e = Error::conflict("IDEMPOTENCY_KEY_REUSED",
                                  "this Idempotency-Key was used with a different request");
        e.context = {{"idempotency_key", key}};
        return e;
    }
    if (stored.status == 0) {
        Error e = Error::conflict("IDEMPOTENCY_KEY_IN_FLIGHT",
                                  "the first request with this Idempotency-Key is still running");
        e.context = {{"idempotency_key", key}};
        return e;
    }
    return IdempotencyDecision{false, IdempotentAnswer{stored.status, stored.body}};
}

Status IdempotencyKeys::finish(const std::string& key, const std::string& request_hash,
                               const IdempotentAnswer& answer) {
    Batch batch;
    batch.idempotency.push_back({key, request_hash, answer.status, answer.body, clock_.now()});
    return store_.commit(batch);
}

Status IdempotencyKeys::abandon(const std::string& key) {
    return store_.release_idempotency_key(key);
}

}  // namespace pythmata::app
