#include "pythmata/expr/expression.hpp"

#include "evaluator.hpp"
#include "node.hpp"
#include "parser.hpp"

namespace pythmata::expr {
Result<Expression, CompileError> Expression::compile(std::string_view text) {
    auto root = compile_text(text, TextMode::kExpression);
    if (!root.ok()) {
        return std::move(root).error();
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
