#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pythmata/expr/expression.hpp"

namespace pythmata::expr {

/// Deepest expression tree (and parser nesting) accepted; deeper input is a CompileError, so
/// evaluation recursion stays far from the stack limit.
inline constexpr std::uint32_t kMaxDepth = 200;
/// Most arguments a function or method call may take.
inline constexpr std::size_t kMaxArgs = 8;

enum class NodeKind : std::uint8_t {
    kConst,     ///< constant: value
    kVar,       ///< variable `name` followed by the pre-split attribute chain `path`
    kAttr,      ///< kids[0].name
    kIndex,     ///< kids[0][kids[1]]
    kSlice,     ///< kids[0][kids[1]:kids[2]]; absent bounds are null kids
    kUnary,     ///< op kids[0]
    kBinary,    ///< kids[0] op kids[1] (arithmetic, in, is, and/or)
    kCompare,   ///< kids[0] ops[0] kids[1] ops[1] kids[2] ... (chained comparison)
    kCond,      ///< kids[0] ? kids[1] : kids[2]
    kList,      ///< [kids...]
    kDict,      ///< {kids[0]: kids[1], ...}
    kCall,      ///< builtin function fn(kids...)
    kMethod,    ///< kids[0].method(kids[1...])
    kTemplate,  ///< concatenation of the string renderings of kids
};

enum class Op : std::uint8_t {
    // unary
    kNeg,
    kPos,
    kNot,
    kEmpty,
    // arithmetic
    kAdd,
    kSub,
    kMul,
    kDiv,
    kFloorDiv,
    kMod,
    kPow,
    // logic: JUEL && || yield booleans, Python and/or yield the deciding operand
    kAndBool,
    kOrBool,
    kAndPy,
    kOrPy,
    // comparison
    kEq,
    kNe,
    kLt,
    kLe,
    kGt,
    kGe,
    kIn,
    kNotIn,
    kIs,
    kIsNot,
};

enum class Builtin : std::uint8_t {
    kLen,
    kStr,
    kInt,
    kFloat,
    kBool,
    kAbs,
    kMin,
    kMax,
    kRound,
    kLower,
    kUpper,
    kNow,
    kDate,
    kSum,
    kSorted,
    kKeys,
    kValues,
    kAny,
    kAll,
    kList,
    kRange,
    kPrint,
};

enum class Method : std::uint8_t {
    kGet,
    kKeys,
    kValues,
    kItems,
    kLower,
    kUpper,
    kStrip,
    kStartsWith,
    kEndsWith,
    kSplit,
    kJoin,
    kReplace,
    kCount,
    kContains,
    kIsEmpty,
    kSize,
    kEquals,
    // Mutating list/object methods: statements only (`items.append(x)`), see StatementBlock.
    kAppend,
    kExtend,
    kInsert,
    kPop,
    kRemove,
    kUpdate,
    kClear,
};

/// True for methods that change their object; they are refused inside expressions.
[[nodiscard]] inline bool is_mutating(Method m) {
    return m >= Method::kAppend;
}

/// How a template renders null and booleans: JUEL `${}` gives "" and true/false, Python
/// f-strings give None and True/False.
enum class Rendering : std::uint8_t { kJuel, kPython };

/// One node of the immutable compiled tree. Children are owned; the tree is shared by copies
/// of an Expression and never mutated after compile, so concurrent evaluation is safe.
struct Expression::Node {
    NodeKind kind = NodeKind::kConst;
    Op op = Op::kAdd;
    Builtin fn = Builtin::kLen;
    Method method = Method::kGet;
    Rendering rendering = Rendering::kJuel;
    bool tuple = false;             ///< kList written as a tuple (a, b): allowed as unpack target
    std::uint32_t depth = 1;        ///< height of this subtree
    std::uint32_t position = 0;     ///< offset in the source text, for messages
    Value value;                    ///< kConst
    std::string name;               ///< kVar root, kAttr key
    std::vector<std::string> path;  ///< kVar: attribute chain after the root
    std::vector<Op> ops;            ///< kCompare operators
    std::vector<std::unique_ptr<Node>> kids;
};

using Node = Expression::Node;
using NodePtr = std::unique_ptr<Node>;

/// The first call of a mutating method in `n`'s subtree other than `allowed`, or nullptr.
[[nodiscard]] const Node* find_mutating_call(const Node& n, const Node* allowed);

/// The spelling of a method, for messages.
[[nodiscard]] std::string_view method_spelling(Method m);

/// A short source-like rendering of `n` for error messages (`order.total`, `items[0]`).
[[nodiscard]] std::string describe(const Node& n);

}  // namespace pythmata::expr
