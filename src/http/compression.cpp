#include "pythmata/http/compression.hpp"

#include <zlib.h>

#include <cstdlib>

#include "pythmata/http/message.hpp"

namespace pythmata::http {
namespace {

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
        text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
        text.remove_suffix(1);
    return text;
}

}  // namespace

bool accepts_gzip(std::string_view header) {
    bool star = false;
    bool gzip = false;
    bool gzip_refused = false;
    while (!header.empty()) {
        const auto comma = header.find(',');
        std::string_view item = trim(header.substr(0, comma));
        header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
        std::string_view coding = trim(item.substr(0, item.find(';')));
        bool zero = false;
        if (const auto q = item.find("q="); q != std::string_view::npos) {
            const std::string value(trim(item.substr(q + 2)));
            zero = std::strtod(value.c_str(), nullptr) <= 0.0;
        }
        if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) {
            (zero ? gzip_refused : gzip) = true;
        } else if (coding == "*" && !zero) {
            star = true;
        }
    }
    return gzip || (star && !gzip_refused);
}

bool compressible(std::string_view type) {
    const std::string_view media = trim(type.substr(0, type.find(';')));
    return media.rfind("text/", 0) == 0 || iequals(media, "application/json") ||
           iequals(media, "application/xml") || iequals(media, "application/javascript") ||
           (media.size() > 5 && iequals(media.substr(media.size() - 5), "+json")) ||
           (media.size() > 4 && iequals(media.substr(media.size() - 4), "+xml"));
}

std::optional<std::string> gzip_compress(std::string_view data, int level) {
    z_stream stream{};
    // windowBits 15 + 16: a gzip wrapper instead of zlib's.
    if (deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        return std::nullopt;
    }
    std::string out;
    out.resize(deflateBound(&stream, static_cast<uLong>(data.size())) + 32);
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&stream, Z_FINISH);
    const auto written = stream.total_out;
    deflateEnd(&stream);
    if (rc != Z_STREAM_END)
        return std::nullopt;
    out.resize(written);
    return out;
}

std::optional<std::string> gzip_decompress(std::string_view data, std::size_t max_size) {
    z_stream stream{};
    if (inflateInit2(&stream, 15 + 16) != Z_OK)
        return std::nullopt;
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    std::string out;
    char chunk[16384];
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        stream.next_out = reinterpret_cast<Bytef*>(chunk);
        stream.avail_out = sizeof chunk;
        rc = inflate(&stream, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END)
            break;
        out.append(chunk, sizeof chunk - stream.avail_out);
        if (out.size() > max_size) {
            rc = Z_BUF_ERROR;
            break;
        }
        if (rc == Z_OK && stream.avail_in == 0 && stream.avail_out != 0) {
            rc = Z_DATA_ERROR;  // truncated input
            break;
        }
    }
    inflateEnd(&stream);
    if (rc != Z_STREAM_END)
        return std::nullopt;
    return out;
}

}  // namespace pythmata::http
