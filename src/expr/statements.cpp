#include "pythmata/expr/statements.hpp"

#include <algorithm>
#include <array>
#include <vector>

#include "evaluator.hpp"
#include "node.hpp"
#include "parser.hpp"

namespace pythmata::expr {
namespace {

enum class StatementKind : std::uint8_t { kAssign, kAugAssign, kDelete, kExpression };

struct Statement {
    StatementKind kind = StatementKind::kExpression;
    std::uint32_t line = 1;
    Op op = Op::kAdd;              ///< kAugAssign operator
    std::vector<NodePtr> targets;  ///< kAssign (chained a = b = v), kDelete
    NodePtr value;                 ///< kAssign, kAugAssign, kExpression
};

struct Refusal {
    std::string_view keyword;
    std::string_view construct;
};

// Python statements the block refuses, with the words used in the message.
constexpr std::array kRefused = {
    Refusal{"if", "'if' statements"},
    Refusal{"elif", "'elif' clauses"},
    Refusal{"else", "'else' clauses"},
    Refusal{"for", "'for' loops"},
    Refusal{"while", "'while' loops"},
    Refusal{"break", "'break' statements"},
    Refusal{"continue", "'continue' statements"},
    Refusal{"def", "function definitions ('def')"},
    Refusal{"class", "class definitions"},
    Refusal{"import", "'import' statements"},
    Refusal{"from", "'from ... import' statements"},
    Refusal{"lambda", "'lambda' expressions"},
    Refusal{"return", "'return' statements"},
    Refusal{"with", "'with' statements"},
    Refusal{"try", "'try' statements"},
    Refusal{"except", "'except' clauses"},
    Refusal{"finally", "'finally' clauses"},
    Refusal{"raise", "'raise' statements"},
    Refusal{"assert", "'assert' statements"},
    Refusal{"yield", "'yield' expressions"},
    Refusal{"global", "'global' statements"},
    Refusal{"nonlocal", "'nonlocal' statements"},
    Refusal{"async", "'async' code"},
    Refusal{"await", "'await' expressions"},
};

struct AugOp {
    std::string_view spelling;
    Op op;
};

constexpr std::array kAugOps = {
    AugOp{"+=", Op::kAdd},  AugOp{"-=", Op::kSub},       AugOp{"*=", Op::kMul},
    AugOp{"/=", Op::kDiv},  AugOp{"//=", Op::kFloorDiv}, AugOp{"%=", Op::kMod},
    AugOp{"**=", Op::kPow},
};

std::uint32_t line_of(std::string_view text, std::size_t pos) {
    pos = std::min(pos, text.size());
    return static_cast<std::uint32_t>(std::count(text.begin(), text.begin() + pos, '\n') + 1);
}

CompileError at_line(std::string_view text, const CompileError& e) {
    return CompileError{"line " + std::to_string(line_of(text, e.position)) + ": " + e.message,
                        e.position};
}

bool ends_statement(const Token& t) {
    return t.kind == TokenKind::kEnd || t.kind == TokenKind::kNewline || t.is_op(";");
}

/// Checks that `n` can be assigned to or deleted; names the offending target otherwise.
bool check_target(Parser& p, const Node& n, bool allow_tuple) {
    switch (n.kind) {
        case NodeKind::kVar:
        case NodeKind::kAttr:
        case NodeKind::kIndex:
            return true;
        case NodeKind::kList:
            if (allow_tuple && n.tuple) {
                return std::all_of(n.kids.begin(), n.kids.end(),
                                   [&](const NodePtr& k) { return check_target(p, *k, false); });
            }
            break;
        case NodeKind::kSlice:
            p.fail("cannot assign to a slice", n.position);
            return false;
        default:
            break;
    }
    p.fail("cannot assign to " + describe(n), n.position);
    return false;
}

/// A statement that is just `target.append(x)` (or another mutating method).
const Node* mutation_of(const Statement& st) {
    if (st.kind == StatementKind::kExpression && st.value->kind == NodeKind::kMethod &&
        is_mutating(st.value->method)) {
        return st.value.get();
    }
    return nullptr;
}

/// Mutating methods may only form a whole statement, on an assignable receiver.
bool check_mutations(Parser& p, const Statement& st) {
    const Node* allowed = mutation_of(st);
    if (allowed != nullptr && !check_target(p, *allowed->kids[0], false)) {
        return false;
    }
    auto check = [&](const Node& n) {
        if (const Node* m = find_mutating_call(n, allowed)) {
            p.fail("'" + std::string(method_spelling(m->method)) +
                       "' changes its object and can only be used as a statement of its own",
                   m->position);
            return false;
        }
        return true;
    };
    for (const auto& t : st.targets) {
        if (!check(*t)) {
            return false;
        }
    }
    return !st.value || check(*st.value);
}

/// Runs statements against a sink with one shared step budget.
class Runner {
  public:
    Runner(VariableSink& vars, const EvalContext& ctx) : vars_(vars), ev_(vars, ctx) {}

    bool run(const Statement& st) {
        switch (st.kind) {
            case StatementKind::kExpression: {
                if (const Node* m = mutation_of(st)) {
                    return mutate(*m);
                }
                Operand ignored;
                return ev_.eval(*st.value, ignored);
            }
            case StatementKind::kAssign: {
                Operand rhs;
                if (!ev_.eval(*st.value, rhs)) {
                    return false;
                }
                Value v = rhs.release();
                for (std::size_t i = 0; i + 1 < st.targets.size(); ++i) {
                    if (!assign(*st.targets[i], Value(v))) {
                        return false;
                    }
                }
                return assign(*st.targets.back(), std::move(v));
            }
            case StatementKind::kAugAssign: {
                const Node& target = *st.targets.front();
                Operand current;
                Operand rhs;
                Operand result;
                if (!ev_.eval(target, current) || !ev_.eval(*st.value, rhs) ||
                    !ev_.arithmetic(st.op, current.get(), rhs.get(), result)) {
                    return false;
                }
                return assign(target, result.release());
            }
            case StatementKind::kDelete:
                for (const auto& t : st.targets) {
                    if (!erase(*t)) {
                        return false;
                    }
                }
                return true;
        }
        return ev_.fail("unknown statement");
    }

    std::string take_error() { return ev_.take_error(); }

  private:
    /// `receiver.method(args)` for the mutating list/object methods, in place.
    bool mutate(const Node& call) {
        // Arguments first, as copies: the receiver's pointer is taken last.
        std::vector<Value> args;
        for (std::size_t i = 1; i < call.kids.size(); ++i) {
            Operand a;
            if (!ev_.eval(*call.kids[i], a)) {
                return false;
            }
            args.push_back(a.release());
        }
        Value* self = resolve(*call.kids[0]);
        if (self == nullptr) {
            return false;
        }
        const std::string name(method_spelling(call.method));
        const std::string where = describe(*call.kids[0]);
        auto wrong_type = [&]() {
            return ev_.fail("'" + where + "' (" + type_name(*self) + ") has no method '" + name +
                            "'");
        };
        const std::size_t limit = ev_.context().max_string_size;
        switch (call.method) {
            case Method::kAppend:
                if (!self->is_array()) {
                    return wrong_type();
                }
                if (self->size() + 1 > limit) {
                    return ev_.fail("list exceeds the size limit (" + std::to_string(limit) + ")");
                }
                self->push_back(std::move(args[0]));
                return true;
            case Method::kExtend:
                if (!self->is_array()) {
                    return wrong_type();
                }
                if (!args[0].is_array()) {
                    return ev_.fail(std::string("extend() argument must be a list, not ") +
                                    type_name(args[0]));
                }
                if (self->size() + args[0].size() > limit) {
                    return ev_.fail("list exceeds the size limit (" + std::to_string(limit) + ")");
                }
                for (auto& e : args[0]) {
                    self->push_back(std::move(e));
                }
                return ev_.charge(args[0].size());
            case Method::kInsert: {
                if (!self->is_array()) {
                    return wrong_type();
                }
                if (!args[0].is_number_integer()) {
                    return ev_.fail("insert() index must be an integer");
                }
                const auto size = static_cast<std::int64_t>(self->size());
                std::int64_t i = args[0].get<std::int64_t>();
                i = i < 0 ? std::max<std::int64_t>(0, i + size) : std::min(i, size);
                self->insert(self->begin() + i, std::move(args[1]));
                return ev_.charge(self->size());
            }
            case Method::kPop:
                if (self->is_array()) {
                    if (self->empty()) {
                        return ev_.fail("pop from empty list '" + where + "'");
                    }
                    const auto size = static_cast<std::int64_t>(self->size());
                    std::int64_t i = size - 1;
                    if (!args.empty()) {
                        if (!args[0].is_number_integer()) {
                            return ev_.fail("pop() index must be an integer");
                        }
                        i = args[0].get<std::int64_t>();
                        i = i < 0 ? i + size : i;
                    }
                    if (i < 0 || i >= size) {
                        return ev_.fail("pop index out of range for list '" + where + "'");
                    }
                    self->erase(static_cast<std::size_t>(i));
                    return ev_.charge(self->size());
                }
                if (self->is_object()) {
                    if (args.empty() || !args[0].is_string()) {
                        return ev_.fail("pop() on an object needs a string key");
                    }
                    if (self->erase(args[0].get<std::string>()) == 0 && args.size() < 2) {
                        return ev_.fail("key '" + args[0].get<std::string>() + "' not found in '" +
                                        where + "'");
                    }
                    return true;
                }
                return wrong_type();
            case Method::kRemove: {
                if (!self->is_array()) {
                    return wrong_type();
                }
                const auto it = std::find(self->begin(), self->end(), args[0]);
                if (it == self->end()) {
                    return ev_.fail("remove(x): x not in list '" + where + "'");
                }
                self->erase(it);
                return ev_.charge(self->size());
            }
            case Method::kUpdate:
                if (!self->is_object()) {
                    return wrong_type();
                }
                if (!args[0].is_object()) {
                    return ev_.fail(std::string("update() argument must be an object, not ") +
                                    type_name(args[0]));
                }
                for (auto it = args[0].begin(); it != args[0].end(); ++it) {
                    (*self)[it.key()] = std::move(it.value());
                }
                return ev_.charge(args[0].size());
            case Method::kClear:
                if (!self->is_array() && !self->is_object()) {
                    return wrong_type();
                }
                self->clear();
                return true;
            default:
                return ev_.fail("'" + name + "' is not a mutating method");
        }
    }

    /// A mutable reference to the existing value `n` designates.
    Value* resolve(const Node& n) {
        switch (n.kind) {
            case NodeKind::kVar: {
                Value* v = vars_.find_mutable(n.name);
                if (v == nullptr) {
                    ev_.fail("undefined variable '" + n.name + "'");
                    return nullptr;
                }
                return walk(v, n, n.path.size());
            }
            case NodeKind::kAttr: {
                Value* parent = resolve(*n.kids[0]);
                if (parent == nullptr) {
                    return nullptr;
                }
                if (!parent->is_object()) {
                    ev_.fail("cannot read property '" + n.name + "' of " + type_name(*parent) +
                             " '" + describe(*n.kids[0]) + "'");
                    return nullptr;
                }
                const auto it = parent->find(n.name);
                if (it == parent->end()) {
                    ev_.fail("undefined property '" + describe(n) + "'");
                    return nullptr;
                }
                return &*it;
            }
            case NodeKind::kIndex: {
                Value key;
                if (!eval_key(n, key)) {
                    return nullptr;
                }
                Value* parent = resolve(*n.kids[0]);
                if (parent == nullptr) {
                    return nullptr;
                }
                std::size_t idx = 0;
                if (!locate(n, *parent, key, false, idx)) {
                    return nullptr;
                }
                return parent->is_array() ? &(*parent)[idx] : &(*parent)[key.get<std::string>()];
            }
            default:
                ev_.fail("cannot assign to " + describe(n));
                return nullptr;
        }
    }

    /// Follows the first `count` attributes of a kVar's path from `v`.
    Value* walk(Value* v, const Node& n, std::size_t count) {
        for (std::size_t i = 0; i < count; ++i) {
            std::string base = n.name;
            for (std::size_t k = 0; k < i; ++k) {
                base += "." + n.path[k];
            }
            if (!v->is_object()) {
                ev_.fail("cannot read property '" + n.path[i] + "' of " + type_name(*v) + " '" +
                         base + "'");
                return nullptr;
            }
            const auto it = v->find(n.path[i]);
            if (it == v->end()) {
                ev_.fail("undefined property '" + base + "." + n.path[i] + "'");
                return nullptr;
            }
            v = &*it;
        }
        return v;
    }

    bool eval_key(const Node& n, Value& key) {
        Operand k;
        if (!ev_.eval(*n.kids[1], k)) {
            return false;
        }
        key = k.release();
        return true;
    }

    /// Validates `key` against container `parent`; for lists sets `idx`. With `for_write`, a
    /// missing object key is fine (it will be created).
    bool locate(const Node& n, const Value& parent, const Value& key, bool for_write,
                std::size_t& idx) {
        if (parent.is_array()) {
            if (!key.is_number_integer()) {
                return ev_.fail(std::string("list indices must be integers, not ") +
                                type_name(key) + " ('" + describe(n) + "')");
            }
            std::int64_t i = key.get<std::int64_t>();
            const auto size = static_cast<std::int64_t>(parent.size());
            if (i < 0) {
                i += size;
            }
            if (i < 0 || i >= size) {
                return ev_.fail("index " + key.dump() + " out of range for list '" +
                                describe(*n.kids[0]) + "' of length " +
                                std::to_string(parent.size()));
            }
            idx = static_cast<std::size_t>(i);
            return true;
        }
        if (parent.is_object()) {
            if (!key.is_string()) {
                return ev_.fail(std::string("object keys must be strings, not ") + type_name(key) +
                                " ('" + describe(n) + "')");
            }
            if (!for_write && !parent.contains(key.get_ref<const std::string&>())) {
                return ev_.fail("key '" + key.get<std::string>() + "' not found in '" +
                                describe(*n.kids[0]) + "'");
            }
            return true;
        }
        return ev_.fail(std::string("cannot index ") + type_name(parent) + " '" +
                        describe(*n.kids[0]) + "'");
    }

    bool assign(const Node& target, Value v) {
        switch (target.kind) {
            case NodeKind::kVar: {
                if (target.path.empty()) {
                    vars_.set(target.name, std::move(v));
                    return true;
                }
                Value* root = vars_.find_mutable(target.name);
                if (root == nullptr) {
                    return ev_.fail("undefined variable '" + target.name + "'");
                }
                Value* parent = walk(root, target, target.path.size() - 1);
                if (parent == nullptr) {
                    return false;
                }
                if (!parent->is_object()) {
                    return ev_.fail("cannot set property '" + target.path.back() + "' of " +
                                    type_name(*parent));
                }
                (*parent)[target.path.back()] = std::move(v);
                return true;
            }
            case NodeKind::kAttr: {
                Value* parent = resolve(*target.kids[0]);
                if (parent == nullptr) {
                    return false;
                }
                if (!parent->is_object()) {
                    return ev_.fail("cannot set property '" + target.name + "' of " +
                                    type_name(*parent) + " '" + describe(*target.kids[0]) + "'");
                }
                (*parent)[target.name] = std::move(v);
                return true;
            }
            case NodeKind::kIndex: {
                Value key;
                if (!eval_key(target, key)) {
                    return false;
                }
                Value* parent = resolve(*target.kids[0]);
                std::size_t idx = 0;
                if (parent == nullptr || !locate(target, *parent, key, true, idx)) {
                    return false;
                }
                if (parent->is_array()) {
                    (*parent)[idx] = std::move(v);
                } else {
                    (*parent)[key.get<std::string>()] = std::move(v);
                }
                return true;
            }
            case NodeKind::kList: {
                if (!v.is_array()) {
                    return ev_.fail(std::string("cannot unpack ") + type_name(v));
                }
                if (v.size() != target.kids.size()) {
                    return ev_.fail("cannot unpack " + std::to_string(v.size()) + " values into " +
                                    std::to_string(target.kids.size()) + " targets");
                }
                for (std::size_t i = 0; i < target.kids.size(); ++i) {
                    if (!assign(*target.kids[i], std::move(v[i]))) {
                        return false;
                    }
                }
                return true;
            }
            default:
                return ev_.fail("cannot assign to " + describe(target));
        }
    }

    bool erase(const Node& target) {
        switch (target.kind) {
            case NodeKind::kVar: {
                if (target.path.empty()) {
                    if (vars_.find(target.name) == nullptr) {
                        return ev_.fail("undefined variable '" + target.name + "'");
                    }
                    vars_.erase(target.name);
                    return true;
                }
                Value* root = vars_.find_mutable(target.name);
                if (root == nullptr) {
                    return ev_.fail("undefined variable '" + target.name + "'");
                }
                Value* parent = walk(root, target, target.path.size() - 1);
                if (parent == nullptr) {
                    return false;
                }
                if (!parent->is_object() || parent->erase(target.path.back()) == 0) {
                    return ev_.fail("undefined property '" + describe(target) + "'");
                }
                return true;
            }
            case NodeKind::kAttr: {
                Value* parent = resolve(*target.kids[0]);
                if (parent == nullptr) {
                    return false;
                }
                if (!parent->is_object() || parent->erase(target.name) == 0) {
                    return ev_.fail("undefined property '" + describe(target) + "'");
                }
                return true;
            }
            case NodeKind::kIndex: {
                Value key;
                if (!eval_key(target, key)) {
                    return false;
                }
                Value* parent = resolve(*target.kids[0]);
                std::size_t idx = 0;
                if (parent == nullptr || !locate(target, *parent, key, false, idx)) {
                    return false;
                }
                if (parent->is_array()) {
                    parent->erase(idx);
                } else {
                    parent->erase(key.get<std::string>());
                }
                return true;
            }
            case NodeKind::kList:
                for (const auto& k : target.kids) {
                    if (!erase(*k)) {
                        return false;
                    }
                }
                return true;
            default:
                return ev_.fail("cannot delete " + describe(target));
        }
    }

    VariableSink& vars_;
    Evaluator ev_;
};

}  // namespace

struct StatementBlock::Program {
    std::vector<Statement> statements;
};

Result<StatementBlock, CompileError> StatementBlock::compile(std::string_view text) {
    auto program = std::make_shared<Program>();
    Parser p(text, 0, true);
    while (!p.failed()) {
        while (p.cur().kind == TokenKind::kNewline || p.cur().is_op(";")) {
            p.advance();
        }
        if (p.cur().kind == TokenKind::kEnd || p.failed()) {
            break;
        }
        Statement st;
        st.line = line_of(text, p.cur().position);
        if (p.cur().kind == TokenKind::kName) {
            const std::string& word = p.cur().text;
            const auto refusal = std::find_if(kRefused.begin(), kRefused.end(),
                                              [&](const Refusal& r) { return r.keyword == word; });
            if (refusal != kRefused.end()) {
                return CompileError{"line " + std::to_string(st.line) + ": " +
                                        std::string(refusal->construct) +
                                        " are not supported in python scripts; use "
                                        "scriptFormat=\"lua\"",
                                    p.cur().position};
            }
            if (word == "pass") {
                p.advance();
                if (!ends_statement(p.cur())) {
                    p.unexpected();
                }
                continue;
            }
            if (word == "del") {
                p.advance();
                NodePtr targets = p.parse_expression_list();
                if (!targets || !check_target(p, *targets, true)) {
                    break;
                }
                st.kind = StatementKind::kDelete;
                st.targets.push_back(std::move(targets));
                if (!ends_statement(p.cur())) {
                    p.unexpected();
                    break;
                }
                program->statements.push_back(std::move(st));
                continue;
            }
        }
        NodePtr first = p.parse_expression_list();
        if (!first) {
            break;
        }
        const auto aug = std::find_if(kAugOps.begin(), kAugOps.end(),
                                      [&](const AugOp& a) { return p.cur().is_op(a.spelling); });
        if (p.cur().is_op("=")) {
            st.kind = StatementKind::kAssign;
            st.targets.push_back(std::move(first));
            while (p.cur().is_op("=")) {
                p.advance();
                NodePtr rhs = p.parse_expression_list();
                if (!rhs) {
                    break;
                }
                if (p.cur().is_op("=")) {
                    st.targets.push_back(std::move(rhs));
                } else {
                    st.value = std::move(rhs);
                }
            }
            if (p.failed()) {
                break;
            }
            bool targets_ok = true;
            for (const auto& t : st.targets) {
                targets_ok = targets_ok && check_target(p, *t, true);
            }
            if (!targets_ok) {
                break;
            }
        } else if (aug != kAugOps.end()) {
            if (!check_target(p, *first, false)) {
                break;
            }
            p.advance();
            st.kind = StatementKind::kAugAssign;
            st.op = aug->op;
            st.targets.push_back(std::move(first));
            st.value = p.parse_expression_list();
            if (!st.value) {
                break;
            }
        } else {
            st.kind = StatementKind::kExpression;
            st.value = std::move(first);
        }
        if (!ends_statement(p.cur())) {
            p.unexpected();
            break;
        }
        if (!check_mutations(p, st)) {
            break;
        }
        program->statements.push_back(std::move(st));
    }
    if (p.failed()) {
        return at_line(text, p.error());
    }
    StatementBlock block;
    block.program_ = std::move(program);
    return block;
}

Result<void, EvalError> StatementBlock::execute(VariableSink& vars, const EvalContext& ctx) const {
    if (!program_) {
        return {};
    }
    Runner runner(vars, ctx);
    for (const auto& st : program_->statements) {
        if (!runner.run(st)) {
            return EvalError{"line " + std::to_string(st.line) + ": " + runner.take_error()};
        }
    }
    return {};
}

}  // namespace pythmata::expr
