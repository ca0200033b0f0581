#include "pythmata/expr/expression.hpp"

#include <gtest/gtest.h>

#include "test_vars.hpp"

namespace pythmata::expr {
namespace {

using testing::compile_error_of;
using testing::error_of;
using testing::eval_text;
using testing::MapVars;
using testing::value_of;

TEST(JuelExpression, ComparesVariableInWrapper) {
    EXPECT_EQ(value_of("${input == 1}", {{"input", 1}}), true);
    EXPECT_EQ(value_of("${input == 1}", {{"input", 2}}), false);
    EXPECT_EQ(value_of("#{input == 3 || input == 1}", {{"input", 1}}), true);
}

TEST(JuelExpression, CombinesConditionsWithAndOrNot) {
    const Value vars = {{"input", 3}, {"approved", false}};
    EXPECT_EQ(value_of("${input > 2 && input < 5}", vars), true);
    EXPECT_EQ(value_of("${input > 2 && input < 3}", vars), false);
    EXPECT_EQ(value_of("${!approved}", vars), true);
    EXPECT_EQ(value_of("${input gt 2 and not approved}", vars), true);
}

TEST(JuelExpression, LogicalOperatorsYieldBooleans) {
    EXPECT_EQ(value_of("${'a' || 'b'}"), true);
    EXPECT_EQ(value_of("${0 && 'b'}"), false);
}

TEST(JuelExpression, EmptyOperatorTestsNullAndEmptyContainers) {
    const Value vars = {{"list", Value::array()}, {"full", {1}}, {"s", ""}, {"n", nullptr}};
    EXPECT_EQ(value_of("${empty list}", vars), true);
    EXPECT_EQ(value_of("${empty full}", vars), false);
    EXPECT_EQ(value_of("${empty s}", vars), true);
    EXPECT_EQ(value_of("${empty n}", vars), true);
    EXPECT_EQ(value_of("${not empty full}", vars), true);
}

TEST(JuelExpression, EmptyIsAnOrdinaryNameWhenNotFollowedByAnOperand) {
    EXPECT_EQ(value_of("empty + 1", {{"empty", 1}}), 2);
}

TEST(JuelExpression, KeywordOperatorsCompare) {
    const Value vars = {{"x", "a"}, {"n", 4}};
    EXPECT_EQ(value_of("${x eq 'a'}", vars), true);
    EXPECT_EQ(value_of("${x ne 'a'}", vars), false);
    EXPECT_EQ(value_of("${n lt 5 && n le 4 && n ge 4 && !(n gt 4)}", vars), true);
    EXPECT_EQ(value_of("${n div 2}", vars), 2.0);
    EXPECT_EQ(value_of("${n mod 3}", vars), 1);
}

TEST(JuelExpression, TernarySelectsBranch) {
    EXPECT_EQ(value_of("${a ? 'x' : 'y'}", {{"a", true}}), "x");
    EXPECT_EQ(value_of("${a ? 'x' : 'y'}", {{"a", false}}), "y");
    EXPECT_EQ(value_of("${a > 1 ? b ? 1 : 2 : 3}", {{"a", 2}, {"b", false}}), 2);
}

TEST(JuelExpression, TernaryEvaluatesOnlyTheChosenBranch) {
    EXPECT_EQ(value_of("${true ? 1 : undefined_thing}"), 1);
}

TEST(JuelExpression, WholeWrapperKeepsValueType) {
    EXPECT_EQ(value_of("${nrOfLoops}", {{"nrOfLoops", 5}}), 5);
    EXPECT_EQ(value_of("  ${5-2}  "), 3);
    EXPECT_EQ(value_of("${items}", {{"items", {1, 2}}}), Value({1, 2}));
}

TEST(JuelExpression, LeadingEqualsSignIsDropped) {
    EXPECT_EQ(value_of("= amount > 10", {{"amount", 11}}), true);
    EXPECT_EQ(value_of("=amount", {{"amount", 11}}), 11);
}

TEST(Template, MixedTextYieldsString) {
    EXPECT_EQ(value_of("Hello ${name}!", {{"name", "Ann"}}), "Hello Ann!");
    EXPECT_EQ(value_of("kermit_${loopCounter}", {{"loopCounter", 3}}), "kermit_3");
    EXPECT_EQ(value_of("${a}-${b}", {{"a", 1}, {"b", 2.5}}), "1-2.5");
}

TEST(Template, RendersNullAsEmptyAndBooleansLowercase) {
    EXPECT_EQ(value_of("[${n}] ${t}", {{"n", nullptr}, {"t", true}}), "[] true");
}

TEST(Template, BracesInsideStringsDoNotCloseThePart) {
    EXPECT_EQ(value_of("x=${'}' + s}", {{"s", "{"}}), "x=}{");
    EXPECT_EQ(value_of("m=${ {'k': 1}['k'] }"), "m=1");
}

TEST(Template, EscapedMarkerIsLiteral) {
    EXPECT_EQ(value_of("cost \\${x} ${1+1}"), "cost ${x} 2");
}

TEST(Template, UnclosedPartIsCompileError) {
    EXPECT_NE(compile_error_of("Hello ${name").find("missing '}'"), std::string::npos);
}

TEST(Template, CompileTemplateTreatsPlainTextAsLiteral) {
    auto t = Expression::compile_template("My Task");
    ASSERT_TRUE(t.ok());
    ASSERT_NE(t->constant_value(), nullptr);
    EXPECT_EQ(*t->constant_value(), "My Task");
    auto u = Expression::compile_template("My Task ${loopCounter}");
    ASSERT_TRUE(u.ok());
    MapVars vars(Value{{"loopCounter", 2}});
    auto r = u->evaluate(vars, {});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value(), "My Task 2");
    auto v = Expression::compile_template("${loopCounter}");
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->evaluate(vars, {}).value(), 2);
}

TEST(Numbers, IntArithmeticStaysInt) {
    EXPECT_EQ(value_of("2 + 3 * 4"), 14);
    EXPECT_TRUE(value_of("2 + 3 * 4").is_number_integer());
    EXPECT_EQ(value_of("(2 + 3) * 4"), 20);
    EXPECT_EQ(value_of("10 - 2 - 3"), 5);
    EXPECT_EQ(value_of("2 ** 10"), 1024);
    EXPECT_EQ(value_of("2 ** 3 ** 2"), 512);
    EXPECT_EQ(value_of("-2 ** 2"), -4);
}

TEST(Numbers, TrueDivisionGivesFloatAndFloorDivisionFloors) {
    EXPECT_EQ(value_of("7 / 2"), 3.5);
    EXPECT_TRUE(value_of("4 / 2").is_number_float());
    EXPECT_EQ(value_of("7 // 2"), 3);
    EXPECT_EQ(value_of("-7 // 2"), -4);
    EXPECT_EQ(value_of("7.5 // 2"), 3.0);
    EXPECT_EQ(value_of("-7 % 3"), 2);
    EXPECT_EQ(value_of("7 % -3"), -2);
    EXPECT_EQ(value_of("-7.5 % 2"), 0.5);
}

TEST(Numbers, MixedIntAndFloatCompareByValue) {
    EXPECT_EQ(value_of("1 == 1.0"), true);
    EXPECT_EQ(value_of("2 > 1.5"), true);
    EXPECT_EQ(value_of("x < 2.5", {{"x", 2}}), true);
    EXPECT_EQ(value_of("1 + 0.5"), 1.5);
}

TEST(Numbers, UnsignedJsonIntegersBehaveAsInts) {
    const Value vars = Value::parse(R"({"n": 5})");  // parses as number_unsigned
    EXPECT_EQ(value_of("n - 7", vars), -2);
    EXPECT_EQ(value_of("n == 5", vars), true);
    EXPECT_EQ(value_of("[1, 2, 3, 4, 5, 6][n]", vars), 6);
}

TEST(Numbers, OverflowIsAnEvalError) {
    const Value vars = {{"big", std::numeric_limits<std::int64_t>::max()}};
    EXPECT_NE(error_of("big + 1", vars).find("overflow"), std::string::npos);
    EXPECT_NE(error_of("big * 2", vars).find("overflow"), std::string::npos);
    EXPECT_NE(error_of("-big - 2", vars).find("overflow"), std::string::npos);
    EXPECT_NE(error_of("2 ** 64").find("overflow"), std::string::npos);
}

TEST(Numbers, DivisionByZeroIsAnEvalError) {
    EXPECT_EQ(error_of("1 / 0"), "division by zero");
    EXPECT_EQ(error_of("x // 0", {{"x", 1}}), "division by zero");
    EXPECT_EQ(error_of("x % 0.0", {{"x", 1}}), "division by zero");
    EXPECT_EQ(error_of("0 ** -1"), "division by zero");
}

TEST(Numbers, LiteralsInOtherBasesAndExponents) {
    EXPECT_EQ(value_of("0x1F + 0b11 + 0o10 + 1_000"), 31 + 3 + 8 + 1000);
    EXPECT_EQ(value_of("1e3"), 1000.0);
    EXPECT_EQ(value_of(".5 + 1."), 1.5);
    EXPECT_NE(compile_error_of("99999999999999999999").find("too large"), std::string::npos);
}

TEST(Operators, PlusConcatenatesStringsAndLists) {
    EXPECT_EQ(value_of("'a' + 'b'"), "ab");
    EXPECT_EQ(value_of("[1] + [2, 3]"), Value({1, 2, 3}));
    EXPECT_EQ(value_of("'ab' * 3"), "ababab");
    EXPECT_EQ(value_of("[0] * 2"), Value({0, 0}));
    EXPECT_NE(error_of("'a' + 1").find("unsupported operand types for +: 'string' and 'int'"),
              std::string::npos);
}

TEST(Operators, EqualityAcrossTypesIsFalse) {
    EXPECT_EQ(value_of("'1' == 1"), false);
    EXPECT_EQ(value_of("true == 1"), false);
    EXPECT_EQ(value_of("null == null"), true);
    EXPECT_EQ(value_of("None == None"), true);
    EXPECT_EQ(value_of("x != None", {{"x", 0}}), true);
    EXPECT_EQ(value_of("[1, {'a': 2}] == [1.0, {'a': 2}]"), true);
}

TEST(Operators, OrderingIncompatibleTypesIsAnEvalError) {
    EXPECT_EQ(error_of("'a' < 1"), "cannot compare string and int");
    EXPECT_EQ(error_of("x > 1", {{"x", nullptr}}), "cannot compare null and int");
    EXPECT_EQ(value_of("'abc' < 'abd'"), true);
    EXPECT_EQ(value_of("[1, 2] < [1, 3]"), true);
}

TEST(Access, DottedAndIndexedAccessReadNestedValues) {
    const Value vars = {{"order", {{"total", 120}, {"items", {{{"sku", "A"}}, {{"sku", "B"}}}}}},
                        {"m", {{"k", "v"}}}};
    EXPECT_EQ(value_of("order.total", vars), 120);
    EXPECT_EQ(value_of("order.items[1].sku", vars), "B");
    EXPECT_EQ(value_of("order['items'][-1]['sku']", vars), "B");
    EXPECT_EQ(value_of("m['k']", vars), "v");
    EXPECT_EQ(value_of("${order.total > 100}", vars), true);
}

TEST(Access, UndefinedVariableIsAnEvalError) {
    EXPECT_EQ(error_of("x + 1"), "undefined variable 'x'");
    EXPECT_EQ(error_of("${amount > 100}"), "undefined variable 'amount'");
}

TEST(Access, MissingPropertyNamesThePath) {
    const Value vars = {{"order", {{"customer", {{"name", "Ann"}}}}}};
    EXPECT_EQ(error_of("order.customer.email", vars), "undefined property 'order.customer.email'");
    EXPECT_EQ(error_of("order.customer.name.first", vars),
              "cannot read property 'first' of string 'order.customer.name'");
    EXPECT_EQ(error_of("order['x']", vars), "key 'x' not found in 'order'");
}

TEST(Access, IndexOutOfRangeIsAnEvalError) {
    EXPECT_EQ(error_of("items[3]", {{"items", {1, 2, 3}}}),
              "index 3 out of range for list 'items' of length 3");
    EXPECT_NE(error_of("items[-4]", {{"items", {1, 2, 3}}}).find("out of range"),
              std::string::npos);
    EXPECT_NE(error_of("items['a']", {{"items", {1}}}).find("list indices must be integers"),
              std::string::npos);
}

TEST(Access, StringsIndexAndSliceByCodePoint) {
    const Value vars = {{"s", "h\xc3\xa9llo"}};
    EXPECT_EQ(value_of("s[1]", vars), "\xc3\xa9");
    EXPECT_EQ(value_of("s[1:3]", vars), "\xc3\xa9l");
    EXPECT_EQ(value_of("s[-2:]", vars), "lo");
    EXPECT_EQ(value_of("len(s)", vars), 5);
    EXPECT_EQ(value_of("[1, 2, 3, 4][1:-1]"), Value({2, 3}));
    EXPECT_EQ(value_of("[1, 2, 3][:]"), Value({1, 2, 3}));
}

TEST(Literals, ListsDictsTuplesAndStrings) {
    EXPECT_EQ(value_of("{'a': [1, 2], \"b\": None}"), Value({{"a", {1, 2}}, {"b", nullptr}}));
    EXPECT_EQ(value_of("(1, 2)"), Value({1, 2}));
    EXPECT_EQ(value_of("()"), Value::array());
    EXPECT_EQ(value_of("'it\\'s' + \"\\n\" + '\\u00e9'"), "it's\n\xc3\xa9");
    EXPECT_EQ(value_of("r'a\\n'"), "a\\n");
    EXPECT_EQ(value_of("'a' 'b'"), "ab");
    EXPECT_EQ(value_of("\"PT0.03S\""), "PT0.03S");
}

TEST(Compile, ErrorsCarryPosition) {
    auto e = Expression::compile("(a + b))");
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().message, "unexpected ')' at 7");
    EXPECT_EQ(e.error().position, 7u);
}

TEST(Compile, EmptyAndBlankTextAreErrors) {
    EXPECT_EQ(compile_error_of(""), "empty expression");
    EXPECT_EQ(compile_error_of("   \n"), "empty expression");
    EXPECT_EQ(compile_error_of("${}").find("unexpected"), 0u);
}

TEST(Compile, UnknownFunctionsAndMethodsAreRefused) {
    EXPECT_EQ(compile_error_of("foo(1)"), "unknown function 'foo' at 0");
    EXPECT_EQ(compile_error_of("${environment.services.isAbove(10, amount)}"),
              "unknown method 'isAbove' at 23");
    EXPECT_NE(compile_error_of("len(1, 2)").find("takes 1 argument(s), 2 given"),
              std::string::npos);
}

TEST(Compile, RefusesUnsupportedSyntax) {
    EXPECT_NE(compile_error_of("a & b").find("unsupported operator '&'"), std::string::npos);
    EXPECT_NE(compile_error_of("[x for x in xs]").find("list comprehensions"), std::string::npos);
    EXPECT_NE(compile_error_of("lambda x: x").find("'lambda'"), std::string::npos);
    EXPECT_NE(compile_error_of("'abc").find("unterminated string"), std::string::npos);
    EXPECT_NE(compile_error_of("sorted(xs, reverse=True)").find("keyword arguments"),
              std::string::npos);
}

TEST(Compile, MutatingMethodsAreRefusedInExpressions) {
    EXPECT_EQ(compile_error_of("items.append(1)"),
              "'append' changes its object; use it as a python script statement (at 6)");
    EXPECT_NE(compile_error_of("${len(m.pop('k'))}").find("'pop' changes its object"),
              std::string::npos);
}

TEST(Compile, ConstantSubtreesAreFolded) {
    auto e = Expression::compile("${5-2}");
    ASSERT_TRUE(e.ok());
    ASSERT_NE(e->constant_value(), nullptr);
    EXPECT_EQ(*e->constant_value(), 3);
    auto f = Expression::compile("x + 2 * 3");
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->constant_value(), nullptr);
    auto g = Expression::compile("[1, 'a', {'k': [2]}]");
    ASSERT_TRUE(g.ok());
    ASSERT_NE(g->constant_value(), nullptr);
}

TEST(Compile, FailingConstantSubtreesStayForRunTime) {
    auto e = Expression::compile("1 / 0");
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->constant_value(), nullptr);
    MapVars vars;
    auto r = e->evaluate(vars, {});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "division by zero");
}

TEST(Compile, NowIsNotFolded) {
    auto e = Expression::compile("now()");
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->constant_value(), nullptr);
    MapVars vars;
    EvalContext ctx;
    ctx.now = from_epoch_ms(1234);
    EXPECT_EQ(e->evaluate(vars, ctx).value(), 1234);
    ctx.now = from_epoch_ms(99);
    EXPECT_EQ(e->evaluate(vars, ctx).value(), 99);
}

TEST(Expression, CopiesShareCompiledFormAndKeepText) {
    auto e = Expression::compile("${x * 2}");
    ASSERT_TRUE(e.ok());
    const Expression copy = e.value();
    EXPECT_EQ(copy.text(), "${x * 2}");
    MapVars vars(Value{{"x", 21}});
    EXPECT_EQ(copy.evaluate(vars, {}).value(), 42);
}

TEST(Expression, DefaultConstructedFailsToEvaluate) {
    const Expression e;
    MapVars vars;
    auto r = e.evaluate(vars, {});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "expression not compiled");
    EXPECT_EQ(e.text(), "");
}

TEST(Expression, EvaluateBoolUsesTruthiness) {
    auto e = Expression::compile("items");
    ASSERT_TRUE(e.ok());
    MapVars full(Value{{"items", {1}}});
    MapVars none(Value{{"items", Value::array()}});
    EXPECT_TRUE(e->evaluate_bool(full, {}).value());
    EXPECT_FALSE(e->evaluate_bool(none, {}).value());
}

TEST(Truthy, FollowsPython) {
    EXPECT_FALSE(truthy(Value()));
    EXPECT_FALSE(truthy(Value(false)));
    EXPECT_FALSE(truthy(Value(0)));
    EXPECT_FALSE(truthy(Value(0.0)));
    EXPECT_FALSE(truthy(Value("")));
    EXPECT_FALSE(truthy(Value::array()));
    EXPECT_FALSE(truthy(Value::object()));
    EXPECT_TRUE(truthy(Value(-1)));
    EXPECT_TRUE(truthy(Value("0")));
    EXPECT_TRUE(truthy(Value({0})));
}

TEST(DisplayString, MatchesPythonStr) {
    EXPECT_EQ(to_display_string(Value()), "None");
    EXPECT_EQ(to_display_string(Value(true)), "True");
    EXPECT_EQ(to_display_string(Value(2.0)), "2.0");
    EXPECT_EQ(to_display_string(Value(0.1)), "0.1");
    EXPECT_EQ(to_display_string(Value("s")), "s");
    EXPECT_EQ(to_display_string(Value({1, "a"})), "[1,\"a\"]");
}

}  // namespace
}  // namespace pythmata::expr
