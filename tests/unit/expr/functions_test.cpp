#include <gtest/gtest.h>

#include "pythmata/common/time.hpp"
#include "pythmata/expr/expression.hpp"
#include "test_vars.hpp"

namespace pythmata::expr {
namespace {

using testing::error_of;
using testing::eval_text;
using testing::value_of;

TEST(Functions, Conversions) {
    EXPECT_EQ(value_of("str(12)"), "12");
    EXPECT_EQ(value_of("str(None) + str(True)"), "NoneTrue");
    EXPECT_EQ(value_of("int('42') + int(3.9) + int(-3.9)"), 42);
    EXPECT_EQ(value_of("int(' -7 ')"), -7);
    EXPECT_EQ(value_of("float('2.5') + float(1)"), 3.5);
    EXPECT_EQ(value_of("bool('') or bool([0])"), true);
    EXPECT_EQ(error_of("int('abc')"), "invalid literal for int(): 'abc'");
    EXPECT_EQ(error_of("float('x1')"), "could not convert string to float: 'x1'");
    EXPECT_EQ(error_of("int(x)", {{"x", 1e300}}), "cannot convert float 1e+300 to int");
}

TEST(Functions, AbsMinMax) {
    EXPECT_EQ(value_of("abs(-3) + abs(2.5)"), 5.5);
    EXPECT_EQ(value_of("min(3, 1, 2)"), 1);
    EXPECT_EQ(value_of("max([3, 7.5, 2])"), 7.5);
    EXPECT_EQ(value_of("max('a', 'c', 'b')"), "c");
    EXPECT_EQ(value_of("min(xs)", {{"xs", {{4}, {2, 1}}}}), Value({2, 1}));
    EXPECT_EQ(error_of("max([])"), "max() arg is an empty list");
    EXPECT_EQ(error_of("min(1, 'a')"), "cannot compare string and int");
}

TEST(Functions, RoundUsesBankersRounding) {
    EXPECT_EQ(value_of("round(2.5)"), 2);
    EXPECT_EQ(value_of("round(3.5)"), 4);
    EXPECT_EQ(value_of("round(-2.5)"), -2);
    EXPECT_TRUE(value_of("round(2.7)").is_number_integer());
    EXPECT_DOUBLE_EQ(value_of("round(3.14159, 2)").get<double>(), 3.14);
    EXPECT_EQ(value_of("round(7)"), 7);
}

TEST(Functions, LowerUpper) {
    EXPECT_EQ(value_of("lower('AbC') + upper('x')"), "abcX");
    EXPECT_EQ(value_of("s.lower() == 'yes'", {{"s", "YES"}}), true);
    EXPECT_EQ(value_of("s.toUpperCase()", {{"s", "a"}}), "A");
}

TEST(Functions, NowReadsTheContextClock) {
    EvalContext ctx;
    ctx.now = from_epoch_ms(1'700'000'000'000);
    auto r = eval_text("now() - 1000", {}, ctx);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value(), 1'699'999'999'000);
}

TEST(Functions, DateParsesRfc3339ToEpochMillis) {
    EXPECT_EQ(value_of("date('1970-01-01T00:00:01Z')"), 1000);
    EXPECT_EQ(value_of("date('2026-11-28T15:04:05.123Z')"),
              to_epoch_ms(*parse_rfc3339("2026-11-28T15:04:05.123Z")));
    EXPECT_EQ(value_of("date(d) < date('2030-01-01')", {{"d", "2026-01-01T10:00:00+02:00"}}), true);
    EXPECT_EQ(error_of("date('yesterday')"), "invalid date 'yesterday' (expected RFC 3339)");
}

TEST(Functions, SumSortedKeysValues) {
    EXPECT_EQ(value_of("sum([1, 2, 3])"), 6);
    EXPECT_EQ(value_of("sum([1, 2.5])"), 3.5);
    EXPECT_EQ(value_of("sum([[1], [2]], [])"), Value({1, 2}));
    EXPECT_EQ(value_of("sorted([3, 1, 2])"), Value({1, 2, 3}));
    EXPECT_EQ(value_of("sorted(['b', 'a'])"), Value({"a", "b"}));
    EXPECT_EQ(error_of("sorted([1, 'a'])"), "cannot compare string and int");
    const Value vars = {{"m", {{"b", 2}, {"a", 1}}}};
    EXPECT_EQ(value_of("keys(m)", vars), Value({"a", "b"}));
    EXPECT_EQ(value_of("values(m)", vars), Value({1, 2}));
    EXPECT_EQ(value_of("m.keys()", vars), Value({"a", "b"}));
    EXPECT_EQ(value_of("m.items()", vars),
              Value::array({Value::array({"a", 1}), Value::array({"b", 2})}));
    EXPECT_EQ(error_of("sum(['a'])"), "unsupported operand types for +: 'int' and 'string'");
}

TEST(Functions, AnyAllListRange) {
    EXPECT_EQ(value_of("any([0, '', 3])"), true);
    EXPECT_EQ(value_of("all([1, []])"), false);
    EXPECT_EQ(value_of("all([])"), true);
    EXPECT_EQ(value_of("list('ab')"), Value({"a", "b"}));
    EXPECT_EQ(value_of("range(3)"), Value({0, 1, 2}));
    EXPECT_EQ(value_of("range(5, 0, -2)"), Value({5, 3, 1}));
    EXPECT_EQ(error_of("range(1, 2, 0)"), "range() step must not be zero");
}

TEST(Functions, PrintIsANoOpReturningNone) {
    EXPECT_EQ(value_of("print('x', 1)"), Value());
    EXPECT_EQ(error_of("print(undefined_name)"), "undefined variable 'undefined_name'");
}

TEST(Methods, GetReturnsDefaultForMissingKeys) {
    const Value vars = {{"m", {{"a", 1}}}, {"xs", {10, 20}}};
    EXPECT_EQ(value_of("m.get('a')", vars), 1);
    EXPECT_EQ(value_of("m.get('b')", vars), Value());
    EXPECT_EQ(value_of("m.get('b', 5)", vars), 5);
    EXPECT_EQ(value_of("xs.get(5, 'none')", vars), "none");
    EXPECT_EQ(value_of("{'k': 'v'}.get('k')"), "v");
    EXPECT_EQ(error_of("n.get('a')", {{"n", 1}}), "'n' (int) has no method 'get'");
}

TEST(Methods, StringMethods) {
    const Value vars = {{"s", "  a,b,,c  "}};
    EXPECT_EQ(value_of("s.strip()", vars), "a,b,,c");
    EXPECT_EQ(value_of("s.strip().split(',')", vars), Value({"a", "b", "", "c"}));
    EXPECT_EQ(value_of("'a b  c'.split()"), Value({"a", "b", "c"}));
    EXPECT_EQ(value_of("'-'.join(['x', 'y'])"), "x-y");
    EXPECT_EQ(value_of("'aXbX'.replace('X', '--')"), "a--b--");
    EXPECT_EQ(value_of("'banana'.count('an')"), 2);
    EXPECT_EQ(value_of("'invoice.pdf'.endswith('.pdf') and 'inv'.startsWith('in')"), true);
    EXPECT_EQ(error_of("'-'.join([1])"), "join() expects strings, item 0 is int");
}

TEST(Methods, JavaStyleCollectionMethods) {
    const Value vars = {{"xs", {1, 2}}, {"e", Value::array()}};
    EXPECT_EQ(value_of("${xs.contains(2)}", vars), true);
    EXPECT_EQ(value_of("${xs.size() == 2 && e.isEmpty()}", vars), true);
    EXPECT_EQ(value_of("${'abc'.length()}", vars), 3);
    EXPECT_EQ(value_of("${'a'.equals('a')}", vars), true);
    EXPECT_EQ(value_of("xs.count(1)", vars), 1);
}

}  // namespace
}  // namespace pythmata::expr
