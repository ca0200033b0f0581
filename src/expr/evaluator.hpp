#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include "node.hpp"

namespace pythmata::expr {

/// An intermediate result: either borrowed (a pointer into the VariableSource or into the
/// compiled tree, no copy) or owned. Copies happen only when a caller needs a Value out.
class Operand {
  public:
    [[nodiscard]] const Value& get() const noexcept { return borrowed_ ? *borrowed_ : owned_; }
    [[nodiscard]] bool owned() const noexcept { return borrowed_ == nullptr; }
    void borrow(const Value& v) noexcept { borrowed_ = &v; }
    /// The owned slot, for writing a fresh result.
    [[nodiscard]] Value& own() noexcept {
        borrowed_ = nullptr;
        return owned_;
    }
    void set(Value v) noexcept {
        owned_ = std::move(v);
        borrowed_ = nullptr;
    }
    /// Moves the value out when owned, copies it when borrowed.
    [[nodiscard]] Value release() { return borrowed_ ? Value(*borrowed_) : std::move(owned_); }
    /// The owned value to move parts out of; only valid when owned().
    [[nodiscard]] Value& owned_value() noexcept { return owned_; }
    void swap(Operand& other) noexcept {
        std::swap(borrowed_, other.borrowed_);
        owned_.swap(other.owned_);
    }

  private:
    const Value* borrowed_ = nullptr;
    Value owned_;
};

/// Walks a compiled tree. One Evaluator per evaluate()/execute() call; not thread-safe, cheap to
/// construct. Failures are reported as `false` with error() set (no exceptions).
class Evaluator {
  public:
    Evaluator(const VariableSource& vars, const EvalContext& ctx) : vars_(vars), ctx_(ctx) {}

    /// Evaluates `n` into `out`; false on error.
    [[nodiscard]] bool eval(const Node& n, Operand& out);

    /// Applies a binary arithmetic operator (augmented assignment uses it too).
    [[nodiscard]] bool arithmetic(Op op, const Value& a, const Value& b, Operand& out);

    /// Records `message` as the error and returns false.
    bool fail(std::string message);

    [[nodiscard]] const std::string& error() const { return error_; }
    [[nodiscard]] std::string take_error() { return std::move(error_); }

    /// Counts `n` units of work against ctx.max_steps.
    [[nodiscard]] bool charge(std::size_t n);

    [[nodiscard]] const EvalContext& context() const { return ctx_; }

  private:
    bool eval_var(const Node& n, Operand& out);
    bool eval_attr(const Node& n, Operand& out);
    bool eval_index(const Node& n, Operand& out);
    bool eval_slice(const Node& n, Operand& out);
    bool eval_unary(const Node& n, Operand& out);
    bool eval_binary(const Node& n, Operand& out);
    bool eval_compare(const Node& n, Operand& out);
    bool eval_list(const Node& n, Operand& out);
    bool eval_dict(const Node& n, Operand& out);
    bool eval_call(const Node& n, Operand& out);
    bool eval_method(const Node& n, Operand& out);
    bool eval_template(const Node& n, Operand& out);
    bool compare_op(Op op, const Value& a, const Value& b, bool& result);
    bool three_way(const Value& a, const Value& b, int& result);
    bool check_size(std::size_t size, const char* what);

    const VariableSource& vars_;
    const EvalContext& ctx_;
    std::size_t steps_ = 0;
    std::string error_;
};

/// The name of a value's type in messages: null, bool, int, float, string, list, object.
[[nodiscard]] const char* type_name(const Value& v);

/// Appends the rendering of `v` (see Rendering) to `out`.
void render(const Value& v, Rendering rendering, std::string& out);

/// Looks up a builtin function or method by name; false when unknown. Arity bounds are set.
[[nodiscard]] bool find_builtin(std::string_view name, Builtin& fn, std::size_t& min_args,
                                std::size_t& max_args);
[[nodiscard]] bool find_method(std::string_view name, Method& m, std::size_t& min_args,
                               std::size_t& max_args);

}  // namespace pythmata::expr
