#include "lexer.hpp"

#include <cerrno>
#include <cstdlib>

namespace pythmata::expr {
namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
}

bool is_name_char(char c) {
    return is_name_start(c) || is_digit(c);
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

CompileError error_at(std::string message, std::size_t pos) {
    return CompileError{std::move(message) + " at " + std::to_string(pos), pos};
}

// Operators, longest first so that maximal munch works by first match.
constexpr std::string_view kOperators[] = {
    "**=", "//=", "**", "//", "==", "!=", "<=", ">=", "&&", "||", "+=", "-=",
    "*=",  "/=",  "%=", "+",  "-",  "*",  "/",  "%",  "<",  ">",  "=",  "!",
    "(",   ")",   "[",  "]",  "{",  "}",  ",",  ":",  ".",  "?",  ";",
};

}  // namespace

Lexer::Lexer(std::string_view source, std::size_t start, bool statement_mode)
    : src_(source), pos_(start), statement_mode_(statement_mode) {}

std::optional<CompileError> Lexer::next(Token& out) {
    out.text.clear();
    out.raw_fstring = false;
    // Skip blanks, comments and (outside statement mode or inside brackets) line ends.
    while (pos_ < src_.size()) {
        const char c = src_[pos_];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            ++pos_;
        } else if (c == '\\' && pos_ + 1 < src_.size() &&
                   (src_[pos_ + 1] == '\n' || src_[pos_ + 1] == '\r')) {
            pos_ += 2;
        } else if (c == '#') {
            while (pos_ < src_.size() && src_[pos_] != '\n') {
                ++pos_;
            }
        } else if (c == '\n') {
            if (statement_mode_ && bracket_depth_ == 0) {
                out.kind = TokenKind::kNewline;
                out.position = pos_++;
                return std::nullopt;
            }
            ++pos_;
        } else {
            break;
        }
    }
    out.position = pos_;
    if (pos_ >= src_.size()) {
        out.kind = TokenKind::kEnd;
        return std::nullopt;
    }
    const char c = src_[pos_];
    if (is_digit(c) || (c == '.' && pos_ + 1 < src_.size() && is_digit(src_[pos_ + 1]))) {
        return lex_number(out);
    }
    if (c == '\'' || c == '"') {
        return lex_string(out, false, false);
    }
    if (is_name_start(c)) {
        // String prefixes: f, r, rf, fr (any case); b/u prefixes are not supported.
        std::size_t end = pos_;
        while (end < src_.size() && is_name_char(src_[end])) {
            ++end;
        }
        const std::string_view word = src_.substr(pos_, end - pos_);
        if (end < src_.size() && (src_[end] == '\'' || src_[end] == '"') && word.size() <= 2) {
            bool raw = false;
            bool fstring = false;
            bool prefix = true;
            for (char p : word) {
                if (p == 'r' || p == 'R') {
                    raw = true;
                } else if (p == 'f' || p == 'F') {
                    fstring = true;
                } else if (p == 'u' || p == 'U') {
                    // u'' is a plain string in Python 3
                } else {
                    prefix = false;
                }
            }
            if (prefix) {
                pos_ = end;
                auto err = lex_string(out, raw, fstring);
                out.position = end - word.size();
                return err;
            }
        }
        out.kind = TokenKind::kName;
        out.text.assign(word);
        pos_ = end;
        return std::nullopt;
    }
    for (std::string_view op : kOperators) {
        if (src_.substr(pos_, op.size()) == op) {
            out.kind = TokenKind::kOp;
            out.text.assign(op);
            pos_ += op.size();
            if (op == "(" || op == "[" || op == "{") {
                ++bracket_depth_;
            } else if ((op == ")" || op == "]" || op == "}") && bracket_depth_ > 0) {
                --bracket_depth_;
            }
            return std::nullopt;
        }
    }
    if (c == '&' || c == '|' || c == '^' || c == '~' || c == '@') {
        return error_at(std::string("unsupported operator '") + c + "'", pos_);
    }
    return error_at(std::string("unexpected character '") + c + "'", pos_);
}

std::optional<CompileError> Lexer::lex_number(Token& out) {
    const std::size_t start = pos_;
    std::string digits;
    bool is_float = false;
    int base = 10;
    if (src_[pos_] == '0' && pos_ + 1 < src_.size()) {
        const char p = src_[pos_ + 1];
        if (p == 'x' || p == 'X') {
            base = 16;
        } else if (p == 'o' || p == 'O') {
            base = 8;
        } else if (p == 'b' || p == 'B') {
            base = 2;
        }
        if (base != 10) {
            pos_ += 2;
        }
    }
    auto take_digits = [&](bool hex) {
        while (pos_ < src_.size()) {
            const char c = src_[pos_];
            if (c == '_') {
                ++pos_;
            } else if (is_digit(c) || (hex && hex_value(c) >= 0)) {
                digits.push_back(c);
                ++pos_;
            } else {
                break;
            }
        }
    };
    take_digits(base == 16);
    if (base == 10) {
        if (pos_ < src_.size() && src_[pos_] == '.' &&
            !(pos_ + 1 < src_.size() && is_name_start(src_[pos_ + 1]))) {
            is_float = true;
            digits.push_back('.');
            ++pos_;
            take_digits(false);
        }
        if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
            std::size_t p = pos_ + 1;
            if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) {
                ++p;
            }
            if (p < src_.size() && is_digit(src_[p])) {
                is_float = true;
                digits.push_back('e');
                digits.append(src_.substr(pos_ + 1, p - pos_ - 1));
                pos_ = p;
                take_digits(false);
            }
        }
    }
    if (digits.empty() || digits == ".") {
        return error_at("malformed number", start);
    }
    if (pos_ < src_.size() && is_name_char(src_[pos_])) {
        return error_at("malformed number", start);
    }
    errno = 0;
    char* end = nullptr;
    if (is_float) {
        out.kind = TokenKind::kFloat;
        out.float_value = std::strtod(digits.c_str(), &end);
    } else {
        out.kind = TokenKind::kInt;
        const long long v = std::strtoll(digits.c_str(), &end, base);
        if (errno == ERANGE) {
            return error_at("integer literal too large", start);
        }
        out.int_value = v;
    }
    if (end == nullptr || *end != '\0') {
        return error_at("malformed number", start);
    }
    out.text.assign(src_.substr(start, pos_ - start));
    return std::nullopt;
}

std::optional<CompileError> Lexer::lex_string(Token& out, bool raw, bool fstring) {
    const std::size_t start = pos_;
    const char quote = src_[pos_];
    const bool triple = src_.substr(pos_, 3) == std::string(3, quote);
    pos_ += triple ? 3 : 1;
    const std::size_t body_start = pos_;
    while (true) {
        if (pos_ >= src_.size()) {
            return error_at("unterminated string", start);
        }
        const char c = src_[pos_];
        if (c == '\\') {
            pos_ += 2;
            continue;
        }
        if (c == '\n' && !triple) {
            return error_at("unterminated string", start);
        }
        if (c == quote && (!triple || src_.substr(pos_, 3) == std::string(3, quote))) {
            break;
        }
        ++pos_;
    }
    const std::string_view body = src_.substr(body_start, pos_ - body_start);
    pos_ += triple ? 3 : 1;
    if (fstring) {
        out.kind = TokenKind::kFString;
        out.text.assign(body);
        out.raw_fstring = raw;
        out.body_offset = body_start;
    } else {
        out.kind = TokenKind::kString;
        out.text = raw ? std::string(body) : decode_escapes(body);
    }
    return std::nullopt;
}

std::string Lexer::decode_escapes(std::string_view body) {
    std::string out;
    out.reserve(body.size());
    for (std::size_t i = 0; i < body.size(); ++i) {
        const char c = body[i];
        if (c != '\\' || i + 1 >= body.size()) {
            out.push_back(c);
            continue;
        }
        const char e = body[++i];
        switch (e) {
            case 'n':
                out.push_back('\n');
                break;
            case 't':
                out.push_back('\t');
                break;
            case 'r':
                out.push_back('\r');
                break;
            case '0':
                out.push_back('\0');
                break;
            case '\\':
            case '\'':
            case '"':
                out.push_back(e);
                break;
            case '\n':
                break;  // line continuation inside a string
            case 'x':
            case 'u':
            case 'U': {
                const std::size_t width = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
                std::uint32_t cp = 0;
                bool ok = i + width < body.size();
                for (std::size_t k = 1; ok && k <= width; ++k) {
                    const int h = hex_value(body[i + k]);
                    ok = h >= 0;
                    cp = cp * 16 + static_cast<std::uint32_t>(h < 0 ? 0 : h);
                }
                if (ok && cp <= 0x10FFFF) {
                    append_utf8(out, cp);
                    i += width;
                } else {
                    out.push_back('\\');
                    out.push_back(e);
                }
                break;
            }
            default:
                out.push_back('\\');
                out.push_back(e);
                break;
        }
    }
    return out;
}

}  // namespace pythmata::expr
