#include "pythmata/common/time.hpp"

#include <cctype>
#include <cstdio>

namespace pythmata {

std::string format_rfc3339(TimePoint t) {
    using namespace std::chrono;
    const auto day = floor<days>(t);
    const year_month_day ymd{day};
    const hh_mm_ss hms{t - day};
    // YYYY-MM-DDTHH:MM:SS.mmmZ, written digit by digit (snprintf's parsing showed in profiles:
    // every instance in every answer carries two or three of these).
    std::string out(24, '0');
    auto put = [&out](std::size_t at, unsigned value, int digits) {
        for (int i = digits - 1; i >= 0; --i) {
            out[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
            value /= 10;
        }
    };
    const int year = int(ymd.year());
    if (year < 0 || year > 9999) {  // outside RFC 3339's four digits: the old, general way
        char buf[40];
        std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", year,
                      unsigned(ymd.month()), unsigned(ymd.day()), int(hms.hours().count()),
                      int(hms.minutes().count()), int(hms.seconds().count()),
                      int(hms.subseconds().count()));
        return buf;
    }
    put(0, static_cast<unsigned>(year), 4);
    out[4] = '-';
    put(5, unsigned(ymd.month()), 2);
    out[7] = '-';
    put(8, unsigned(ymd.day()), 2);
    out[10] = 'T';
    put(11, static_cast<unsigned>(hms.hours().count()), 2);
    out[13] = ':';
    put(14, static_cast<unsigned>(hms.minutes().count()), 2);
    out[16] = ':';
    put(17, static_cast<unsigned>(hms.seconds().count()), 2);
    out[19] = '.';
    put(20, static_cast<unsigned>(hms.subseconds().count()), 3);
    out[23] = 'Z';
    return out;
}

namespace {

bool read_digits(std::string_view s, std::size_t& pos, std::size_t count, int& out) {
    if (pos + count > s.size()) {
        return false;
    }
    int v = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const char c = s[pos + i];
        if (!std::isdigit(static_cast<unsigned char>(c))) {
            return false;
        }
        v = v * 10 + (c - '0');
    }
    pos += count;
    out = v;
    return true;
}

bool expect(std::string_view s, std::size_t& pos, char c) {
    if (pos < s.size() && s[pos] == c) {
        ++pos;
        return true;
    }
    return false;
}

}  // namespace

std::optional<TimePoint> parse_rfc3339(std::string_view s) {
    using namespace std::chrono;
    std::size_t pos = 0;
    int y = 0, mo = 0, d = 0;
    if (!read_digits(s, pos, 4, y) || !expect(s, pos, '-') || !read_digits(s, pos, 2, mo) ||
        !expect(s, pos, '-') || !read_digits(s, pos, 2, d)) {
        return std::nullopt;
    }
    const year_month_day ymd{year{y}, month{unsigned(mo)}, day{unsigned(d)}};
    if (!ymd.ok()) {
        return std::nullopt;
    }
    TimePoint t = time_point_cast<Millis>(sys_days{ymd});
    if (pos == s.size()) {
        return t;
    }
    if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ') {
        return std::nullopt;
    }
    ++pos;
    int h = 0, mi = 0, sec = 0;
    if (!read_digits(s, pos, 2, h) || !expect(s, pos, ':') || !read_digits(s, pos, 2, mi)) {
        return std::nullopt;
    }
    if (expect(s, pos, ':') && !read_digits(s, pos, 2, sec)) {
        return std::nullopt;
    }
    if (h > 23 || mi > 59 || sec > 60) {
        return std::nullopt;
    }
    int ms = 0;
    if (expect(s, pos, '.') || expect(s, pos, ',')) {
        int scale = 100;
        std::size_t digits = 0;
        while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
            ms += (s[pos] - '0') * scale;
            scale /= 10;
            ++pos;
            ++digits;
        }
        if (digits == 0) {
            return std::nullopt;
        }
    }
    t += hours{h} + minutes{mi} + seconds{sec} + Millis{ms};
    if (pos == s.size()) {
        return t;  // no zone: taken as UTC
    }
    if (s[pos] == 'Z' || s[pos] == 'z') {
        return pos + 1 == s.size() ? std::optional{t} : std::nullopt;
    }
    if (s[pos] != '+' && s[pos] != '-') {
        return std::nullopt;
    }
    const int sign = s[pos] == '+' ? 1 : -1;
    ++pos;
    int oh = 0, om = 0;
    if (!read_digits(s, pos, 2, oh)) {
        return std::nullopt;
    }
    expect(s, pos, ':');
    if (pos < s.size() && !read_digits(s, pos, 2, om)) {
        return std::nullopt;
    }
    if (pos != s.size() || oh > 23 || om > 59) {
        return std::nullopt;
    }
    return t - sign * (hours{oh} + minutes{om});
}

}  // namespace pythmata
