#pragma once

#include "pythmata/app/ports/http_caller.hpp"

namespace pythmata::http {

/// app::HttpCaller on a Beast HTTP/1.1 client: one connection per call (no pooling), the whole
/// exchange bounded by the call's timeout, response bodies limited to `max_response_size`.
/// http:// only; https:// URLs fail with HTTP_CALL_FAILED naming the scheme. Thread-safe (each
/// call has its own io_context).
class BeastHttpCaller final : public app::HttpCaller {
  public:
    explicit BeastHttpCaller(std::size_t max_response_size = 8u << 20)
        : max_response_size_(max_response_size) {}
    [[nodiscard]] Result<app::HttpReply> call(const app::HttpCall& request) override;

  private:
    std::size_t max_response_size_;
};

}  // namespace pythmata::http
