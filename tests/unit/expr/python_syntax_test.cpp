#include <gtest/gtest.h>

#include "pythmata/expr/expression.hpp"
#include "test_vars.hpp"

namespace pythmata::expr {
namespace {

using testing::compile_error_of;
using testing::error_of;
using testing::value_of;

TEST(PythonExpression, BooleanKeywords) {
    const Value vars = {{"amount", 150}, {"done", false}};
    EXPECT_EQ(value_of("amount > 100 and not done", vars), true);
    EXPECT_EQ(value_of("amount < 100 or done", vars), false);
    EXPECT_EQ(value_of("True and False"), false);
}

TEST(PythonExpression, AndOrReturnTheDecidingOperand) {
    EXPECT_EQ(value_of("name or 'anonymous'", {{"name", ""}}), "anonymous");
    EXPECT_EQ(value_of("name or 'anonymous'", {{"name", "Ann"}}), "Ann");
    EXPECT_EQ(value_of("x and x[0]", {{"x", Value::array()}}), Value::array());
    EXPECT_EQ(value_of("x and x[0]", {{"x", {7}}}), 7);
}

TEST(PythonExpression, OrShortCircuitsPastUndefinedNames) {
    EXPECT_EQ(value_of("True or undefined_name"), true);
    EXPECT_EQ(value_of("False and undefined_name"), false);
}

TEST(PythonExpression, NotBindsLooserThanComparison) {
    EXPECT_EQ(value_of("not x == 1", {{"x", 1}}), false);
    EXPECT_EQ(value_of("not not x", {{"x", 1}}), true);
    EXPECT_EQ(value_of("not val", {{"val", false}}), true);
}

TEST(PythonExpression, MembershipInListsStringsAndObjects) {
    const Value vars = {{"tags", {"x", "y"}}, {"d", {{"k", 1}}}, {"s", "hello"}};
    EXPECT_EQ(value_of("'x' in tags", vars), true);
    EXPECT_EQ(value_of("'z' in tags", vars), false);
    EXPECT_EQ(value_of("'k' not in d", vars), false);
    EXPECT_EQ(value_of("x not in d", {{"x", "q"}, {"d", {{"k", 1}}}}), true);
    EXPECT_EQ(value_of("'ell' in s", vars), true);
    EXPECT_EQ(value_of("1 in (1, 2)"), true);
    EXPECT_NE(error_of("1 in s", vars).find("requires string"), std::string::npos);
    EXPECT_NE(error_of("1 in 2").find("not iterable"), std::string::npos);
}

TEST(PythonExpression, IsComparesIdentityOfNoneAndBooleans) {
    EXPECT_EQ(value_of("x is None", {{"x", nullptr}}), true);
    EXPECT_EQ(value_of("x is None", {{"x", 0}}), false);
    EXPECT_EQ(value_of("x is not None", {{"x", 0}}), true);
    EXPECT_EQ(value_of("x is True", {{"x", 1}}), false);
    EXPECT_EQ(value_of("x is True", {{"x", true}}), true);
}

TEST(PythonExpression, IsNoneOnUndefinedVariableIsStillAnError) {
    EXPECT_EQ(error_of("x is None"), "undefined variable 'x'");
}

TEST(PythonExpression, ConditionalExpression) {
    EXPECT_EQ(value_of("'big' if n > 10 else 'small'", {{"n", 11}}), "big");
    EXPECT_EQ(value_of("'big' if n > 10 else 'small'", {{"n", 1}}), "small");
    EXPECT_EQ(value_of("1 if a else 2 if b else 3", {{"a", false}, {"b", false}}), 3);
    EXPECT_NE(compile_error_of("1 if a").find("expected 'else'"), std::string::npos);
}

TEST(PythonExpression, ChainedComparison) {
    EXPECT_EQ(value_of("1 < x < 5", {{"x", 3}}), true);
    EXPECT_EQ(value_of("1 < x < 5", {{"x", 5}}), false);
    EXPECT_EQ(value_of("1 < x < 5", {{"x", 0}}), false);
    EXPECT_EQ(value_of("0 <= x <= y < 10", {{"x", 2}, {"y", 2}}), true);
    EXPECT_EQ(value_of("a == b == c", {{"a", 1}, {"b", 1}, {"c", 2}}), false);
}

TEST(PythonExpression, ChainedComparisonStopsAtFirstFalse) {
    // the third operand is never evaluated, so the undefined name does not matter
    EXPECT_EQ(value_of("1 > 2 > undefined_name"), false);
}

TEST(PythonExpression, LenOfCollections) {
    EXPECT_EQ(value_of("len(items) == 3", {{"items", {1, 2, 3}}}), true);
    EXPECT_EQ(value_of("len({'a': 1})"), 1);
}

TEST(PythonExpression, StringComparisonsFromSpiffModels) {
    EXPECT_EQ(value_of("work_done == 'Yes'", {{"work_done", "Yes"}}), true);
    EXPECT_EQ(value_of("value == \"\"", {{"value", ""}}), true);
    EXPECT_EQ(value_of("quantity < 0", {{"quantity", -1}}), true);
}

TEST(PythonExpression, FStringsRenderLikePython) {
    const Value vars = {{"value", 1.5}, {"quantity", 2}, {"ok", true}, {"n", nullptr}};
    EXPECT_EQ(value_of("f\"Value: {value} / Quantity {quantity}\"", vars),
              "Value: 1.5 / Quantity 2");
    EXPECT_EQ(value_of("f'{ok} {n} {{x}}'", vars), "True None {x}");
    EXPECT_EQ(value_of("f'{quantity * 2}\\n'", vars), "4\n");
    EXPECT_NE(compile_error_of("f'{value:.2f}'").find("format specs"), std::string::npos);
    EXPECT_NE(compile_error_of("f'{value'").find("expected '}'"), std::string::npos);
}

TEST(PythonExpression, CommentsAreIgnored) {
    EXPECT_EQ(value_of("1 + 2  # three"), 3);
}

TEST(PythonExpression, BareTupleIsAList) {
    EXPECT_EQ(value_of("1, 2"), Value({1, 2}));
}

}  // namespace
}  // namespace pythmata::expr
