#include "parser.hpp"

#include <algorithm>
#include <array>

#include "evaluator.hpp"

namespace pythmata::expr {
namespace {

/// Words that act as infix operators after an operand; in operand position they are names.
constexpr std::array<std::string_view, 15> kInfixWords = {
    "and", "or", "in", "is", "if", "else", "not", "eq", "ne", "lt", "gt", "le", "ge", "div", "mod",
};

bool is_infix_word(std::string_view w) {
    return std::find(kInfixWords.begin(), kInfixWords.end(), w) != kInfixWords.end();
}

class EmptySource : public VariableSource {
  public:
    const Value* find(std::string_view) const override { return nullptr; }
};

bool foldable(const Node& n) {
    switch (n.kind) {
        case NodeKind::kConst:
        case NodeKind::kVar:
            return false;
        case NodeKind::kCall:
            if (n.fn == Builtin::kNow) {
                return false;
            }
            break;
        default:
            break;
    }
    return std::all_of(n.kids.begin(), n.kids.end(),
                       [](const NodePtr& k) { return k->kind == NodeKind::kConst; });
}

std::string describe_token(const Token& t) {
    switch (t.kind) {
        case TokenKind::kEnd:
            return "end of expression";
        case TokenKind::kNewline:
            return "end of line";
        case TokenKind::kString:
        case TokenKind::kFString:
            return "string";
        default:
            return "'" + t.text + "'";
    }
}

std::optional<Op> comparison_op(const Token& t) {
    if (t.kind == TokenKind::kOp) {
        if (t.text == "==") {
            return Op::kEq;
        }
        if (t.text == "!=") {
            return Op::kNe;
        }
        if (t.text == "<") {
            return Op::kLt;
        }
        if (t.text == "<=") {
            return Op::kLe;
        }
        if (t.text == ">") {
            return Op::kGt;
        }
        if (t.text == ">=") {
            return Op::kGe;
        }
        return std::nullopt;
    }
    if (t.kind != TokenKind::kName) {
        return std::nullopt;
    }
    if (t.text == "eq") {
        return Op::kEq;
    }
    if (t.text == "ne") {
        return Op::kNe;
    }
    if (t.text == "lt") {
        return Op::kLt;
    }
    if (t.text == "le") {
        return Op::kLe;
    }
    if (t.text == "gt") {
        return Op::kGt;
    }
    if (t.text == "ge") {
        return Op::kGe;
    }
    if (t.text == "in") {
        return Op::kIn;
    }
    if (t.text == "is") {
        return Op::kIs;
    }
    return std::nullopt;
}

}  // namespace

NodePtr make_node(NodeKind kind, std::size_t position) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->position = static_cast<std::uint32_t>(position);
    return n;
}

struct Parser::DepthGuard {
    explicit DepthGuard(Parser& p) : parser(p) { ++parser.depth_; }
    ~DepthGuard() { --parser.depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;
    [[nodiscard]] bool ok() {
        if (parser.depth_ > kMaxDepth) {
            parser.fail("expression nested too deeply (limit " + std::to_string(kMaxDepth) + ")",
                        parser.cur_.position);
            return false;
        }
        return !parser.failed();
    }
    Parser& parser;
};

Parser::Parser(std::string_view source, std::size_t start, bool statement_mode)
    : src_(source), lexer_(source, start, statement_mode) {
    advance();
}

void Parser::advance() {
    if (has_next_) {
        std::swap(cur_, next_);
        has_next_ = false;
        return;
    }
    if (auto err = lexer_.next(cur_)) {
        if (!error_) {
            error_ = std::move(*err);
        }
        cur_.kind = TokenKind::kEnd;
    }
}

const Token& Parser::peek() {
    if (!has_next_) {
        if (auto err = lexer_.next(next_)) {
            if (!error_) {
                error_ = std::move(*err);
            }
            next_.kind = TokenKind::kEnd;
        }
        has_next_ = true;
    }
    return next_;
}

NodePtr Parser::fail(std::string message, std::size_t pos) {
    if (!error_) {
        error_ = CompileError{std::move(message), pos};
    }
    return nullptr;
}

NodePtr Parser::unexpected() {
    if (cur_.kind == TokenKind::kEnd) {
        return fail("unexpected end of expression", cur_.position);
    }
    return fail("unexpected " + describe_token(cur_) + " at " + std::to_string(cur_.position),
                cur_.position);
}

bool Parser::expect_op(std::string_view op) {
    if (failed()) {
        return false;
    }
    if (!cur_.is_op(op)) {
        if (cur_.kind == TokenKind::kEnd) {
            fail("expected '" + std::string(op) + "' before end of expression", cur_.position);
        } else {
            fail("expected '" + std::string(op) + "' but found " + describe_token(cur_) + " at " +
                     std::to_string(cur_.position),
                 cur_.position);
        }
        return false;
    }
    advance();
    return true;
}

NodePtr Parser::finish(NodePtr n) {
    if (!n || failed()) {
        return nullptr;
    }
    std::uint32_t depth = 0;
    for (const auto& k : n->kids) {
        depth = std::max(depth, k->depth);
    }
    n->depth = depth + 1;
    if (n->depth > kMaxDepth) {
        return fail("expression nested too deeply (limit " + std::to_string(kMaxDepth) + ")",
                    n->position);
    }
    if (foldable(*n)) {
        // Constant subtrees are evaluated once here. Failures (1/0, 'a' * 10**9) are left for
        // run time, where they surface as EvalErrors with the real limits.
        static const EmptySource kNoVariables;
        EvalContext ctx;
        ctx.max_steps = 10'000;
        ctx.max_string_size = 4096;
        Evaluator ev(kNoVariables, ctx);
        Operand out;
        if (ev.eval(*n, out)) {
            auto c = make_node(NodeKind::kConst, n->position);
            c->value = out.release();
            return c;
        }
    }
    return n;
}

bool Parser::starts_operand(const Token& t) const {
    switch (t.kind) {
        case TokenKind::kName:
            return !is_infix_word(t.text);
        case TokenKind::kInt:
        case TokenKind::kFloat:
        case TokenKind::kString:
        case TokenKind::kFString:
            return true;
        case TokenKind::kOp:
            return t.text == "(" || t.text == "[" || t.text == "{" || t.text == "!";
        default:
            return false;
    }
}

NodePtr Parser::parse_expression() {
    return parse_ternary();
}

NodePtr Parser::parse_expression_list() {
    const std::size_t pos = cur_.position;
    NodePtr first = parse_ternary();
    if (!first || !cur_.is_op(",")) {
        return first;
    }
    auto tuple = make_node(NodeKind::kList, pos);
    tuple->tuple = true;
    tuple->kids.push_back(std::move(first));
    while (cur_.is_op(",")) {
        advance();
        if (!starts_operand(cur_) && !cur_.is_op("-") && !cur_.is_op("+") && !cur_.is_name("not")) {
            break;  // trailing comma
        }
        NodePtr e = parse_ternary();
        if (!e) {
            return nullptr;
        }
        tuple->kids.push_back(std::move(e));
    }
    return finish(std::move(tuple));
}

NodePtr Parser::parse_ternary() {
    DepthGuard guard(*this);
    if (!guard.ok()) {
        return nullptr;
    }
    const std::size_t pos = cur_.position;
    NodePtr cond = parse_or();
    if (!cond) {
        return nullptr;
    }
    if (cur_.is_op("?")) {
        advance();
        NodePtr a = parse_ternary();
        if (!a || !expect_op(":")) {
            return nullptr;
        }
        NodePtr b = parse_ternary();
        if (!b) {
            return nullptr;
        }
        auto n = make_node(NodeKind::kCond, pos);
        n->kids.push_back(std::move(cond));
        n->kids.push_back(std::move(a));
        n->kids.push_back(std::move(b));
        return finish(std::move(n));
    }
    if (cur_.is_name("if")) {
        advance();
        NodePtr c = parse_or();
        if (!c) {
            return nullptr;
        }
        if (!cur_.is_name("else")) {
            return fail(
                "expected 'else' in conditional expression at " + std::to_string(cur_.position),
                cur_.position);
        }
        advance();
        NodePtr b = parse_ternary();
        if (!b) {
            return nullptr;
        }
        auto n = make_node(NodeKind::kCond, pos);
        n->kids.push_back(std::move(c));
        n->kids.push_back(std::move(cond));
        n->kids.push_back(std::move(b));
        return finish(std::move(n));
    }
    return cond;
}

template <typename NextOp>
NodePtr Parser::binary_chain(NodePtr (Parser::*operand)(), NextOp next_op) {
    NodePtr left = (this->*operand)();
    while (left) {
        const std::optional<Op> op = next_op();
        if (!op) {
            break;
        }
        const std::size_t pos = cur_.position;
        advance();
        NodePtr right = (this->*operand)();
        if (!right) {
            return nullptr;
        }
        auto n = make_node(NodeKind::kBinary, pos);
        n->op = *op;
        n->kids.push_back(std::move(left));
        n->kids.push_back(std::move(right));
        left = finish(std::move(n));
    }
    return left;
}

NodePtr Parser::parse_or() {
    return binary_chain(&Parser::parse_and, [this]() -> std::optional<Op> {
        if (cur_.is_op("||")) {
            return Op::kOrBool;
        }
        if (cur_.is_name("or")) {
            return Op::kOrPy;
        }
        return std::nullopt;
    });
}

NodePtr Parser::parse_and() {
    return binary_chain(&Parser::parse_not, [this]() -> std::optional<Op> {
        if (cur_.is_op("&&")) {
            return Op::kAndBool;
        }
        if (cur_.is_name("and")) {
            return Op::kAndPy;
        }
        return std::nullopt;
    });
}

NodePtr Parser::parse_not() {
    // Python `not` binds looser than comparisons: `not a == b` is `not (a == b)`.
    if (cur_.is_name("not")) {
        DepthGuard guard(*this);
        if (!guard.ok()) {
            return nullptr;
        }
        const std::size_t pos = cur_.position;
        advance();
        NodePtr operand = parse_not();
        if (!operand) {
            return nullptr;
        }
        auto n = make_node(NodeKind::kUnary, pos);
        n->op = Op::kNot;
        n->kids.push_back(std::move(operand));
        return finish(std::move(n));
    }
    return parse_comparison();
}

NodePtr Parser::parse_comparison() {
    const std::size_t pos = cur_.position;
    NodePtr first = parse_additive();
    if (!first) {
        return nullptr;
    }
    NodePtr chain;
    while (true) {
        std::optional<Op> op = comparison_op(cur_);
        if (!op && cur_.is_name("not") && peek().is_name("in")) {
            op = Op::kNotIn;
            advance();
        }
        if (!op) {
            break;
        }
        advance();
        if (*op == Op::kIs && cur_.is_name("not")) {
            op = Op::kIsNot;
            advance();
        }
        NodePtr right = parse_additive();
        if (!right) {
            return nullptr;
        }
        if (!chain) {
            chain = make_node(NodeKind::kCompare, pos);
            chain->kids.push_back(std::move(first));
        }
        chain->ops.push_back(*op);
        chain->kids.push_back(std::move(right));
    }
    if (!chain) {
        return first;
    }
    return finish(std::move(chain));
}

NodePtr Parser::parse_additive() {
    return binary_chain(&Parser::parse_multiplicative, [this]() -> std::optional<Op> {
        if (cur_.is_op("+")) {
            return Op::kAdd;
        }
        if (cur_.is_op("-")) {
            return Op::kSub;
        }
        return std::nullopt;
    });
}

NodePtr Parser::parse_multiplicative() {
    return binary_chain(&Parser::parse_unary, [this]() -> std::optional<Op> {
        if (cur_.is_op("*")) {
            return Op::kMul;
        }
        if (cur_.is_op("/") || cur_.is_name("div")) {
            return Op::kDiv;
        }
        if (cur_.is_op("//")) {
            return Op::kFloorDiv;
        }
        if (cur_.is_op("%") || cur_.is_name("mod")) {
            return Op::kMod;
        }
        return std::nullopt;
    });
}

NodePtr Parser::parse_unary() {
    std::optional<Op> op;
    if (cur_.is_op("-")) {
        op = Op::kNeg;
    } else if (cur_.is_op("+")) {
        op = Op::kPos;
    } else if (cur_.is_op("!")) {
        op = Op::kNot;
    } else if (cur_.is_name("empty") && starts_operand(peek())) {
        op = Op::kEmpty;
    }
    if (!op) {
        return parse_power();
    }
    DepthGuard guard(*this);
    if (!guard.ok()) {
        return nullptr;
    }
    const std::size_t pos = cur_.position;
    advance();
    NodePtr operand = parse_unary();
    if (!operand) {
        return nullptr;
    }
    auto n = make_node(NodeKind::kUnary, pos);
    n->op = *op;
    n->kids.push_back(std::move(operand));
    return finish(std::move(n));
}

NodePtr Parser::parse_power() {
    NodePtr base = parse_postfix();
    if (!base || !cur_.is_op("**")) {
        return base;
    }
    const std::size_t pos = cur_.position;
    advance();
    NodePtr exponent = parse_unary();  // right-associative, and 2 ** -1 is allowed
    if (!exponent) {
        return nullptr;
    }
    auto n = make_node(NodeKind::kBinary, pos);
    n->op = Op::kPow;
    n->kids.push_back(std::move(base));
    n->kids.push_back(std::move(exponent));
    return finish(std::move(n));
}

NodePtr Parser::parse_postfix() {
    NodePtr node = parse_primary();
    while (node && !failed()) {
        if (cur_.is_op(".")) {
            advance();
            if (cur_.kind != TokenKind::kName) {
                return fail("expected a name after '.' at " + std::to_string(cur_.position),
                            cur_.position);
            }
            const Token name = cur_;
            advance();
            if (cur_.is_op("(")) {
                Method m{};
                std::size_t min_args = 0;
                std::size_t max_args = 0;
                if (!find_method(name.text, m, min_args, max_args)) {
                    return fail(
                        "unknown method '" + name.text + "' at " + std::to_string(name.position),
                        name.position);
                }
                auto call = make_node(NodeKind::kMethod, name.position);
                call->method = m;
                call->kids.push_back(std::move(node));
                node = parse_call_args(std::move(call), min_args + 1, max_args + 1,
                                       "method '" + name.text + "'");
            } else if (node->kind == NodeKind::kVar) {
                node->path.push_back(name.text);  // identifiers are stored pre-split
            } else {
                auto attr = make_node(NodeKind::kAttr, name.position);
                attr->name = name.text;
                attr->kids.push_back(std::move(node));
                node = finish(std::move(attr));
            }
        } else if (cur_.is_op("[")) {
            node = parse_subscript(std::move(node));
        } else if (cur_.is_op("(")) {
            return fail("only built-in functions and methods can be called (at " +
                            std::to_string(cur_.position) + ")",
                        cur_.position);
        } else {
            break;
        }
    }
    return node;
}

NodePtr Parser::parse_subscript(NodePtr base) {
    const std::size_t pos = cur_.position;
    advance();  // [
    NodePtr lo;
    if (!cur_.is_op(":")) {
        lo = parse_ternary();
        if (!lo) {
            return nullptr;
        }
    }
    if (cur_.is_op(":")) {
        advance();
        NodePtr hi;
        if (!cur_.is_op("]")) {
            if (cur_.is_op(":")) {
                return fail(
                    "slice steps are not supported (at " + std::to_string(cur_.position) + ")",
                    cur_.position);
            }
            hi = parse_ternary();
            if (!hi) {
                return nullptr;
            }
        }
        if (cur_.is_op(":")) {
            return fail("slice steps are not supported (at " + std::to_string(cur_.position) + ")",
                        cur_.position);
        }
        if (!expect_op("]")) {
            return nullptr;
        }
        auto n = make_node(NodeKind::kSlice, pos);
        n->kids.push_back(std::move(base));
        n->kids.push_back(lo ? std::move(lo) : make_node(NodeKind::kConst, pos));
        n->kids.push_back(hi ? std::move(hi) : make_node(NodeKind::kConst, pos));
        return finish(std::move(n));
    }
    if (!expect_op("]")) {
        return nullptr;
    }
    auto n = make_node(NodeKind::kIndex, pos);
    n->kids.push_back(std::move(base));
    n->kids.push_back(std::move(lo));
    return finish(std::move(n));
}

NodePtr Parser::parse_call_args(NodePtr call, std::size_t min_args, std::size_t max_args,
                                std::string_view what) {
    const std::size_t pos = cur_.position;
    advance();  // (
    while (!cur_.is_op(")")) {
        if (cur_.kind == TokenKind::kName && peek().is_op("=")) {
            return fail(
                "keyword arguments are not supported (at " + std::to_string(cur_.position) + ")",
                cur_.position);
        }
        NodePtr arg = parse_ternary();
        if (!arg) {
            return nullptr;
        }
        if (cur_.is_name("for")) {
            return fail("generator expressions are not supported (at " +
                            std::to_string(cur_.position) + ")",
                        cur_.position);
        }
        call->kids.push_back(std::move(arg));
        if (call->kids.size() > kMaxArgs + 1) {
            return fail("too many arguments to " + std::string(what), pos);
        }
        if (!cur_.is_op(",")) {
            break;
        }
        advance();
    }
    if (!expect_op(")")) {
        return nullptr;
    }
    const std::size_t argc = call->kids.size();
    if (argc < min_args || argc > max_args) {
        const std::size_t shift = call->kind == NodeKind::kMethod ? 1 : 0;
        std::string expected = std::to_string(min_args - shift);
        if (max_args != min_args) {
            expected += " to " + std::to_string(max_args - shift);
        }
        return fail(std::string(what) + " takes " + expected + " argument(s), " +
                        std::to_string(argc - shift) + " given (at " + std::to_string(pos) + ")",
                    pos);
    }
    return finish(std::move(call));
}

NodePtr Parser::parse_fstring(const Token& tok) {
    auto tmpl = make_node(NodeKind::kTemplate, tok.position);
    tmpl->rendering = Rendering::kPython;
    const std::size_t begin = tok.body_offset;
    const std::size_t end = begin + tok.text.size();
    std::string literal;
    auto flush = [&]() {
        if (!literal.empty()) {
            auto c = make_node(NodeKind::kConst, tok.position);
            c->value = tok.raw_fstring ? literal : Lexer::decode_escapes(literal);
            tmpl->kids.push_back(std::move(c));
            literal.clear();
        }
    };
    std::size_t i = begin;
    while (i < end) {
        const char c = src_[i];
        if ((c == '{' || c == '}') && i + 1 < end && src_[i + 1] == c) {
            literal.push_back(c);
            i += 2;
            continue;
        }
        if (c == '}') {
            return fail("single '}' is not allowed in an f-string at " + std::to_string(i), i);
        }
        if (c != '{') {
            literal.push_back(c);
            ++i;
            continue;
        }
        flush();
        Parser inner(src_.substr(0, end), i + 1, false);
        NodePtr e = inner.parse_expression();
        if (!e) {
            error_ = inner.error();
            return nullptr;
        }
        if (inner.cur().is_op(":") || inner.cur().is_op("!")) {
            return fail("f-string format specs and conversions are not supported (at " +
                            std::to_string(inner.cur().position) + ")",
                        inner.cur().position);
        }
        if (!inner.cur().is_op("}")) {
            return fail("expected '}' in f-string at " + std::to_string(inner.cur().position),
                        inner.cur().position);
        }
        tmpl->kids.push_back(std::move(e));
        i = inner.cur().position + 1;
    }
    flush();
    if (tmpl->kids.empty()) {
        auto c = make_node(NodeKind::kConst, tok.position);
        c->value = std::string();
        return c;
    }
    return finish(std::move(tmpl));
}

NodePtr Parser::parse_primary() {
    if (failed()) {
        return nullptr;
    }
    const Token tok = cur_;
    switch (tok.kind) {
        case TokenKind::kInt: {
            advance();
            auto n = make_node(NodeKind::kConst, tok.position);
            n->value = tok.int_value;
            return n;
        }
        case TokenKind::kFloat: {
            advance();
            auto n = make_node(NodeKind::kConst, tok.position);
            n->value = tok.float_value;
            return n;
        }
        case TokenKind::kString: {
            advance();
            std::string s = tok.text;
            while (cur_.kind == TokenKind::kString) {  // 'a' 'b' is 'ab', as in Python
                s += cur_.text;
                advance();
            }
            auto n = make_node(NodeKind::kConst, tok.position);
            n->value = std::move(s);
            return n;
        }
        case TokenKind::kFString: {
            advance();
            return parse_fstring(tok);
        }
        case TokenKind::kName:
            break;
        case TokenKind::kOp:
            if (tok.text == "(") {
                advance();
                if (cur_.is_op(")")) {
                    advance();
                    auto n = make_node(NodeKind::kConst, tok.position);
                    n->value = Value::array();
                    return n;
                }
                NodePtr inner = parse_expression_list();
                if (!inner || !expect_op(")")) {
                    return nullptr;
                }
                return inner;
            }
            if (tok.text == "[") {
                advance();
                auto list = make_node(NodeKind::kList, tok.position);
                while (!cur_.is_op("]")) {
                    NodePtr e = parse_ternary();
                    if (!e) {
                        return nullptr;
                    }
                    if (cur_.is_name("for")) {
                        return fail("list comprehensions are not supported (at " +
                                        std::to_string(cur_.position) + ")",
                                    cur_.position);
                    }
                    list->kids.push_back(std::move(e));
                    if (!cur_.is_op(",")) {
                        break;
                    }
                    advance();
                }
                if (!expect_op("]")) {
                    return nullptr;
                }
                return finish(std::move(list));
            }
            if (tok.text == "{") {
                advance();
                auto dict = make_node(NodeKind::kDict, tok.position);
                while (!cur_.is_op("}")) {
                    NodePtr k = parse_ternary();
                    if (!k) {
                        return nullptr;
                    }
                    if (!cur_.is_op(":")) {
                        return fail("set literals and dict comprehensions are not supported (at " +
                                        std::to_string(cur_.position) + ")",
                                    cur_.position);
                    }
                    advance();
                    NodePtr v = parse_ternary();
                    if (!v) {
                        return nullptr;
                    }
                    dict->kids.push_back(std::move(k));
                    dict->kids.push_back(std::move(v));
                    if (!cur_.is_op(",")) {
                        break;
                    }
                    advance();
                }
                if (!expect_op("}")) {
                    return nullptr;
                }
                return finish(std::move(dict));
            }
            return unexpected();
        default:
            return unexpected();
    }
    // Names: constants, keywords, function calls, variables.
    const std::string& w = tok.text;
    if (w == "None" || w == "null" || w == "True" || w == "true" || w == "False" || w == "false") {
        advance();
        auto n = make_node(NodeKind::kConst, tok.position);
        if (w == "True" || w == "true") {
            n->value = true;
        } else if (w == "False" || w == "false") {
            n->value = false;
        }
        return n;
    }
    if (w == "lambda") {
        return fail(
            "'lambda' expressions are not supported (at " + std::to_string(tok.position) + ")",
            tok.position);
    }
    if (w == "await" || w == "yield") {
        return fail("'" + w + "' is not supported (at " + std::to_string(tok.position) + ")",
                    tok.position);
    }
    if (is_infix_word(w) || w == "for" || w == "while" || w == "def" || w == "class" ||
        w == "import" || w == "from" || w == "return") {
        return unexpected();
    }
    advance();
    if (cur_.is_op("(")) {
        Builtin fn{};
        std::size_t min_args = 0;
        std::size_t max_args = 0;
        if (!find_builtin(w, fn, min_args, max_args)) {
            return fail("unknown function '" + w + "' at " + std::to_string(tok.position),
                        tok.position);
        }
        auto call = make_node(NodeKind::kCall, tok.position);
        call->fn = fn;
        return parse_call_args(std::move(call), min_args, max_args, "function '" + w + "'");
    }
    auto var = make_node(NodeKind::kVar, tok.position);
    var->name = w;
    return var;
}

namespace {

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

Result<NodePtr, CompileError> parse_whole(std::string_view text, std::size_t start) {
    Parser p(text, start, false);
    NodePtr n = p.parse_expression_list();
    if (n && !p.failed() && p.cur().kind != TokenKind::kEnd) {
        p.unexpected();
    }
    if (p.failed()) {
        return p.error();
    }
    return n;
}

/// Text with `${...}` / `#{...}` parts. A lone part (blank around it) keeps its value type.
Result<NodePtr, CompileError> parse_template(std::string_view text, std::size_t begin,
                                             std::size_t end) {
    auto tmpl = make_node(NodeKind::kTemplate, begin);
    tmpl->rendering = Rendering::kJuel;
    std::string literal;
    std::size_t expressions = 0;
    std::size_t last_expression = 0;
    bool literal_text = false;
    auto flush = [&]() {
        if (!literal.empty()) {
            auto c = make_node(NodeKind::kConst, begin);
            c->value = literal;
            tmpl->kids.push_back(std::move(c));
            literal.clear();
        }
    };
    std::size_t i = begin;
    while (i < end) {
        const char c = text[i];
        const bool opens = (c == '$' || c == '#') && i + 1 < end && text[i + 1] == '{';
        if (c == '\\' && i + 2 < end && (text[i + 1] == '$' || text[i + 1] == '#') &&
            text[i + 2] == '{') {
            literal.append(text.substr(i + 1, 2));  // \${ is a literal ${
            literal_text = true;
            i += 3;
            continue;
        }
        if (!opens) {
            literal.push_back(c);
            literal_text = literal_text || !is_blank(c);
            ++i;
            continue;
        }
        flush();
        Parser p(text.substr(0, end), i + 2, false);
        NodePtr e = p.parse_expression();
        if (!e) {
            return p.error();
        }
        if (!p.cur().is_op("}")) {
            p.unexpected();
            if (p.cur().kind == TokenKind::kEnd) {
                return CompileError{
                    "missing '}' for '" + std::string(1, c) + "{' at " + std::to_string(i), i};
            }
            return p.error();
        }
        last_expression = tmpl->kids.size();
        tmpl->kids.push_back(std::move(e));
        ++expressions;
        i = p.cur().position + 1;
    }
    flush();
    if (expressions == 1 && !literal_text) {
        return std::move(tmpl->kids[last_expression]);
    }
    // A template of constants becomes one string.
    std::uint32_t depth = 0;
    bool all_const = true;
    for (const auto& k : tmpl->kids) {
        depth = std::max(depth, k->depth);
        all_const = all_const && k->kind == NodeKind::kConst;
    }
    tmpl->depth = depth + 1;
    if (all_const) {
        std::string s;
        for (const auto& k : tmpl->kids) {
            render(k->value, Rendering::kJuel, s);
        }
        auto c = make_node(NodeKind::kConst, begin);
        c->value = std::move(s);
        return c;
    }
    return tmpl;
}

bool has_template_marker(std::string_view text, std::size_t from) {
    const std::size_t d = text.find("${", from);
    const std::size_t h = text.find("#{", from);
    return d != std::string_view::npos || h != std::string_view::npos;
}

}  // namespace

Result<NodePtr, CompileError> compile_text(std::string_view text, TextMode mode) {
    std::size_t b = 0;
    std::size_t e = text.size();
    while (b < e && is_blank(text[b])) {
        ++b;
    }
    while (e > b && is_blank(text[e - 1])) {
        --e;
    }
    if (mode == TextMode::kTemplate) {
        if (!has_template_marker(text, 0)) {
            auto c = make_node(NodeKind::kConst, 0);
            c->value = std::string(text);
            return c;
        }
        return parse_template(text, 0, text.size());
    }
    if (b < e && text[b] == '=' && !(b + 1 < e && text[b + 1] == '=')) {
        ++b;  // FEEL-style leading '=' (Zeebe)
        while (b < e && is_blank(text[b])) {
            ++b;
        }
    }
    if (b == e) {
        return CompileError{"empty expression", b};
    }
    if (has_template_marker(text, b)) {
        return parse_template(text, b, e);
    }
    return parse_whole(text.substr(0, e), b);
}

}  // namespace pythmata::expr
