#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pythmata::http {

/// True when an Accept-Encoding value accepts gzip (a "gzip" or "*" coding whose q is not 0).
[[nodiscard]] bool accepts_gzip(std::string_view accept_encoding);
/// True for media types worth compressing (JSON, text, XML, JavaScript).
[[nodiscard]] bool compressible(std::string_view content_type);
/// The gzip (RFC 1952) encoding of `data`; nullopt if zlib fails.
[[nodiscard]] std::optional<std::string> gzip_compress(std::string_view data, int level = 6);
/// The inverse of gzip_compress, refusing output over `max_size` bytes (tests, fuzzing).
[[nodiscard]] std::optional<std::string> gzip_decompress(std::string_view data,
                                                         std::size_t max_size = 64u << 20);

}  // namespace pythmata::http
