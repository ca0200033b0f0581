#pragma once

#include "pythmata/app/idempotency_service.hpp"
#include "pythmata/app/ports/clock.hpp"
#include "pythmata/app/ports/runtime_store.hpp"
#include "pythmata/app/settings.hpp"

namespace pythmata::app {

/// IdempotencyService over the RuntimeStore's idempotency records. Keys older than
/// `idempotency_retention` are forgotten (a reuse then runs the request again). Thread-safe; the
/// store and clock must outlive it.
class IdempotencyKeys final : public IdempotencyService {
  public:
    IdempotencyKeys(RuntimeStore& store, const Clock& clock, const EngineSettings& settings);

    [[nodiscard]] Result<IdempotencyDecision> begin(const std::string& key,
                                                    const std::string& request_hash) override;
    [[nodiscard]] Status finish(const std::string& key, const std::string& request_hash,
                                const IdempotentAnswer& answer) override;
    [[nodiscard]] Status abandon(const std::string& key) override;

  private:
    RuntimeStore& store_;
    const Clock& clock_;
    std::chrono::milliseconds retention_;
};

}  // namespace pythmata::app
