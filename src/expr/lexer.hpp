#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pythmata/expr/expression.hpp"

namespace pythmata::expr {

enum class TokenKind : std::uint8_t {
    kEnd,
    kName,     ///< identifier or keyword (keywords are contextual; the parser decides)
    kInt,      ///< int_value
    kFloat,    ///< float_value
    kString,   ///< text holds the decoded contents
    kFString,  ///< f-string: text holds the raw contents between the quotes
    kOp,       ///< punctuation / operator, text holds its spelling
    kNewline,  ///< end of a logical line (statement mode only)
};

struct Token {
    TokenKind kind = TokenKind::kEnd;
    std::string text;
    std::int64_t int_value = 0;
    double float_value = 0.0;
    std::size_t position = 0;     ///< offset of the first character in the source
    bool raw_fstring = false;     ///< kFString written rf"..." (no escapes)
    std::size_t body_offset = 0;  ///< kFString: offset of the contents in the source

    [[nodiscard]] bool is_op(std::string_view s) const {
        return kind == TokenKind::kOp && text == s;
    }
    [[nodiscard]] bool is_name(std::string_view s) const {
        return kind == TokenKind::kName && text == s;
    }
};

/// Splits source text into tokens on demand. In statement mode it reports kNewline at line
/// ends outside brackets and honours `\` line continuations; `#` starts a comment in both modes.
class Lexer {
  public:
    Lexer(std::string_view source, std::size_t start, bool statement_mode);

    /// The next token, or a CompileError for malformed input (bad number, unterminated string,
    /// unknown character).
    [[nodiscard]] std::optional<CompileError> next(Token& out);

    /// Offset just after the last token returned.
    [[nodiscard]] std::size_t offset() const { return pos_; }

    /// Decodes the escapes of a string literal body (Python rules; unknown escapes are kept).
    [[nodiscard]] static std::string decode_escapes(std::string_view body);

  private:
    std::optional<CompileError> lex_number(Token& out);
    std::optional<CompileError> lex_string(Token& out, bool raw, bool fstring);

    std::string_view src_;
    std::size_t pos_;
    bool statement_mode_;
    int bracket_depth_ = 0;
};

}  // namespace pythmata::expr
