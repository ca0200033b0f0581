#include "pythmata/common/uuid.hpp"

#include <cctype>
#include <cstdint>
#include <random>
#include <string_view>

namespace pythmata {

std::string new_uuid() {
    thread_local std::mt19937_64 gen{[] {
        std::random_device rd;
        return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    }()};
    std::uint64_t hi = gen();
    std::uint64_t lo = gen();
    hi = (hi & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;  // version 4
    lo = (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // RFC 4122 variant
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(36, '-');
    std::size_t o = 0;
    auto put = [&](std::uint64_t v, int nibbles) {
        for (int i = nibbles - 1; i >= 0; --i) {
            if (o == 8 || o == 13 || o == 18 || o == 23) {
                ++o;
            }
            out[o++] = kHex[(v >> (i * 4)) & 0xF];
        }
    };
    put(hi, 16);
    put(lo, 16);
    return out;
}

bool is_uuid(std::string_view t) {
    if (t.size() != 36) {
        return false;
    }
    for (std::size_t i = 0; i < t.size(); ++i) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (t[i] != '-') {
                return false;
            }
        } else if (!std::isxdigit(static_cast<unsigned char>(t[i]))) {
            return false;
        }
    }
    return true;
}

std::optional<std::array<unsigned char, 16>> uuid_bytes(std::string_view text) {
    if (!is_uuid(text)) {
        return std::nullopt;
    }
    const auto nibble = [](char c) {
        return static_cast<unsigned>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    };
    std::array<unsigned char, 16> bytes{};
    std::size_t out = 0;
    for (std::size_t i = 0; i < text.size(); i += 2) {
        if (text[i] == '-') {
            ++i;
        }
        bytes[out++] = static_cast<unsigned char>((nibble(text[i]) << 4) | nibble(text[i + 1]));
    }
    return bytes;
}

}  // namespace pythmata
