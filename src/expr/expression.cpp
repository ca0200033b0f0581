#include "pythmata/expr/expression.hpp"

#include <optional>

#include "evaluator.hpp"
#include "node.hpp"
#include "parser.hpp"

namespace pythmata::expr {
namespace {

/// Expressions are side-effect free: `items.append(x)` belongs in a script statement.
std::optional<CompileError> refuse_mutation(const Node& root) {
    if (const Node* m = find_mutating_call(root, nullptr)) {
        return CompileError{"'" + std::string(method_spelling(m->method)) +
                                "' changes its object; use it as a python script statement (at " +
                                std::to_string(m->position) + ")",
                            m->position};
    }
    return std::nullopt;
}

}  // namespace
Result<Expression, CompileError> Expression::compile(std::string_view text) {
    auto root = compile_text(text, TextMode::kExpression);
    if (!root.ok()) {
        return std::move(root).error();
    }
    if (auto err = refuse_mutation(*root.value())) {
        return std::move(*err);
    }
    Expression e;
    e.root_ = std::shared_ptr<const Node>(std::move(root).value());
    e.text_ = std::make_shared<const std::string>(text);
    return e;
}

Result<Expression, CompileError> Expression::compile_template(std::string_view text) {
    auto root = compile_text(text, TextMode::kTemplate);
    if (!root.ok()) {
        return std::move(root).error();
    }
    if (auto err = refuse_mutation(*root.value())) {
        return std::move(*err);
    }
    Expression e;
    e.root_ = std::shared_ptr<const Node>(std::move(root).value());
    e.text_ = std::make_shared<const std::string>(text);
    return e;
}

Result<Value, EvalError> Expression::evaluate(const VariableSource& vars,
                                              const EvalContext& ctx) const {
    if (!root_) {
        return EvalError{"expression not compiled"};
    }
    Evaluator ev(vars, ctx);
    Operand out;
    if (!ev.eval(*root_, out)) {
        return EvalError{ev.take_error()};
    }
    return out.release();
}

Result<bool, EvalError> Expression::evaluate_bool(const VariableSource& vars,
                                                  const EvalContext& ctx) const {
    if (!root_) {
        return EvalError{"expression not compiled"};
    }
    Evaluator ev(vars, ctx);
    Operand out;
    if (!ev.eval(*root_, out)) {
        return EvalError{ev.take_error()};
    }
    return truthy(out.get());
}

const Value* Expression::constant_value() const {
    if (root_ && root_->kind == NodeKind::kConst) {
        return &root_->value;
    }
    return nullptr;
}

const std::string& Expression::text() const {
    static const std::string kEmpty;
    return text_ ? *text_ : kEmpty;
}

}  // namespace pythmata::expr
