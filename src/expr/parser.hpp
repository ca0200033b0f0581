#pragma once

#include <optional>
#include <string_view>

#include "lexer.hpp"
#include "node.hpp"

namespace pythmata::expr {

/// Recursive-descent (precedence climbing) parser producing a folded Node tree. Errors are
/// recorded once (the first one wins) and every parse function then returns nullptr.
class Parser {
  public:
    /// Parses `source` from offset `start`; in statement mode line ends are tokens.
    Parser(std::string_view source, std::size_t start, bool statement_mode);

    /// A full expression (ternary level, no bare tuples).
    [[nodiscard]] NodePtr parse_expression();
    /// `a, b, c` as a tuple (kList with tuple set), or a single expression.
    [[nodiscard]] NodePtr parse_expression_list();

    [[nodiscard]] const Token& cur() const { return cur_; }
    [[nodiscard]] const Token& peek();
    void advance();

    [[nodiscard]] bool failed() const { return error_.has_value(); }
    [[nodiscard]] const CompileError& error() const { return *error_; }
    /// Records an error at `pos` (the first error wins); returns nullptr for convenience.
    NodePtr fail(std::string message, std::size_t pos);
    /// "unexpected X" for the current token.
    NodePtr unexpected();

  private:
    struct DepthGuard;

    NodePtr parse_ternary();
    NodePtr parse_or();
    NodePtr parse_and();
    NodePtr parse_not();
    NodePtr parse_comparison();
    NodePtr parse_additive();
    NodePtr parse_multiplicative();
    NodePtr parse_unary();
    NodePtr parse_power();
    NodePtr parse_postfix();
    NodePtr parse_primary();
    NodePtr parse_fstring(const Token& tok);
    NodePtr parse_call_args(NodePtr call, std::size_t min_args, std::size_t max_args,
                            std::string_view what);
    NodePtr parse_subscript(NodePtr base);
    bool expect_op(std::string_view op);
    bool starts_operand(const Token& t) const;
    NodePtr finish(NodePtr n);
    /// A left-associative chain `a op b op c` of `operand`s, while `next_op()` names the
    /// operator at the current token (std::nullopt ends the chain).
    template <typename NextOp>
    NodePtr binary_chain(NodePtr (Parser::*operand)(), NextOp next_op);

    std::string_view src_;
    Lexer lexer_;
    Token cur_;
    Token next_;
    bool has_next_ = false;
    std::uint32_t depth_ = 0;
    std::optional<CompileError> error_;
};

/// Makes a node of `kind` at `position`.
[[nodiscard]] NodePtr make_node(NodeKind kind, std::size_t position);

/// How compile_text treats text without `${`: as an expression, or as a literal string.
enum class TextMode { kExpression, kTemplate };

/// Compiles a whole expression or template text (see Expression::compile/compile_template).
[[nodiscard]] Result<NodePtr, CompileError> compile_text(std::string_view text, TextMode mode);

}  // namespace pythmata::expr
