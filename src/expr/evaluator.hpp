#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <utility>

#include "node.hpp"

namespace pythmata::expr {

/// An intermediate result: either borrowed (a pointer into the VariableSource or into the
/// compiled tree, no copy) or owned. Copies happen only when a caller needs a Value out. The
/// owned Value is constructed lazily, so borrowed operands cost no JSON construction or
/// destruction on the hot path.
class Operand {
  public:
    Operand() noexcept {}  // NOLINT: storage_ is constructed on demand
    ~Operand() { reset_storage(); }
    Operand(const Operand&) = delete;
    Operand& operator=(const Operand&) = delete;

    [[nodiscard]] const Value& get() const noexcept {
        if (borrowed_ != nullptr) {
            return *borrowed_;
        }
        return constructed_ ? storage_.value : null_value();
    }
    [[nodiscard]] bool owned() const noexcept { return borrowed_ == nullptr; }
    void borrow(const Value& v) noexcept { borrowed_ = &v; }
    /// The owned slot, for writing a fresh result.
    [[nodiscard]] Value& own() noexcept {
        borrowed_ = nullptr;
        if (!constructed_) {
            new (&storage_.value) Value();
            constructed_ = true;
        }
        return storage_.value;
    }
    void set(Value v) noexcept { own() = std::move(v); }
    /// Scalar results written in place when the owned slot already holds that type (no JSON
    /// temporary, no destruction).
    void set_bool(bool b) noexcept {
        borrowed_ = nullptr;
        if (!constructed_) {
            new (&storage_.value) Value(b);
            constructed_ = true;
        } else if (auto* p = storage_.value.get_ptr<Value::boolean_t*>()) {
            *p = b;
        } else {
            storage_.value = b;
        }
    }
    void set_int(std::int64_t i) noexcept {
        borrowed_ = nullptr;
        if (!constructed_) {
            new (&storage_.value) Value(i);
            constructed_ = true;
        } else if (auto* p = storage_.value.get_ptr<Value::number_integer_t*>()) {
            *p = i;
        } else {
            storage_.value = i;
        }
    }
    void set_double(double d) noexcept {
        borrowed_ = nullptr;
        if (!constructed_) {
            new (&storage_.value) Value(d);
            constructed_ = true;
        } else if (auto* p = storage_.value.get_ptr<Value::number_float_t*>()) {
            *p = d;
        } else {
            storage_.value = d;
        }
    }
    /// Moves the value out when owned, copies it when borrowed.
    [[nodiscard]] Value release() {
        if (borrowed_ != nullptr) {
            return *borrowed_;
        }
        return constructed_ ? std::move(storage_.value) : Value();
    }
    /// The owned value to move parts out of; only valid when owned().
    [[nodiscard]] Value& owned_value() noexcept { return own(); }
    void swap(Operand& other) noexcept {
        const Value* mine = borrowed_;
        borrowed_ = other.borrowed_;
        other.borrowed_ = mine;
        if (constructed_ && other.constructed_) {
            storage_.value.swap(other.storage_.value);
        } else if (constructed_) {
            new (&other.storage_.value) Value(std::move(storage_.value));
            other.constructed_ = true;
            reset_storage();
        } else if (other.constructed_) {
            new (&storage_.value) Value(std::move(other.storage_.value));
            constructed_ = true;
            other.reset_storage();
        }
    }

  private:
    union Storage {
        Storage() noexcept {}
        ~Storage() {}
        Value value;
    };

    static const Value& null_value() noexcept {
        static const Value kNull;
        return kNull;
    }
    void reset_storage() noexcept {
        if (constructed_) {
            // A scalar JSON value owns no memory; skipping its (no-op) destructor is allowed
            // and saves an out-of-line call per intermediate result.
            if (storage_.value.is_structured() || storage_.value.is_string() ||
                storage_.value.is_binary()) {
                storage_.value.~Value();
            }
            constructed_ = false;
        }
    }

    const Value* borrowed_ = nullptr;
    bool constructed_ = false;
    Storage storage_;
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
