#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pythmata/expr/expression.hpp"
#include "pythmata/expr/statements.hpp"
#include "test_vars.hpp"

namespace pythmata::expr {
namespace {

using testing::compile_error_of;
using testing::error_of;
using testing::MapVars;

TEST(Limits, DeepParenthesesAreACompileErrorNotAStackOverflow) {
    const std::string text = std::string(10'000, '(') + "1" + std::string(10'000, ')');
    EXPECT_NE(compile_error_of(text).find("nested too deeply"), std::string::npos);
}

TEST(Limits, DeepUnaryAndNotChainsAreCompileErrors) {
    EXPECT_NE(compile_error_of(std::string(10'000, '-') + "1").find("nested too deeply"),
              std::string::npos);
    std::string nots;
    for (int i = 0; i < 10'000; ++i) {
        nots += "not ";
    }
    EXPECT_NE(compile_error_of(nots + "x").find("nested too deeply"), std::string::npos);
    EXPECT_NE(compile_error_of(std::string(10'000, '[') + std::string(10'000, ']'))
                  .find("nested too deeply"),
              std::string::npos);
}

TEST(Limits, LongOperatorChainsAreBoundedByTreeDepth) {
    std::string chain = "x";
    for (int i = 0; i < 10'000; ++i) {
        chain += " + x";
    }
    EXPECT_NE(compile_error_of(chain).find("nested too deeply"), std::string::npos);
}

TEST(Limits, ModerateNestingCompilesAndEvaluates) {
    const std::string text = std::string(100, '(') + "x" + std::string(100, ')') + " + 1";
    auto e = Expression::compile(text);
    ASSERT_TRUE(e.ok()) << e.error().message;
    MapVars vars(Value{{"x", 1}});
    EXPECT_EQ(e->evaluate(vars, {}).value(), 2);
}

TEST(Limits, StepLimitStopsLargeEvaluations) {
    EvalContext ctx;
    ctx.max_steps = 50;
    std::string text = "x";
    for (int i = 0; i < 60; ++i) {
        text += " + x";  // depth 61 < limit, but > 50 node evaluations
    }
    EXPECT_NE(error_of(text, {{"x", 1}}, ctx).find("step limit exceeded"), std::string::npos);
    ctx.max_steps = 1000;
    auto ok = testing::eval_text(text, {{"x", 1}}, ctx);
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok.value(), 61);
}

TEST(Limits, StepLimitCountsWorkInsideFunctions) {
    EvalContext ctx;
    ctx.max_steps = 100;
    EXPECT_NE(error_of("sorted(range(n))", {{"n", 1000}}, ctx).find("step limit exceeded"),
              std::string::npos);
    EXPECT_NE(error_of("'x' in xs", {{"xs", Value(std::vector<int>(1000, 0))}}, ctx)
                  .find("step limit exceeded"),
              std::string::npos);
}

TEST(Limits, StringGrowthIsBounded) {
    EvalContext ctx;
    ctx.max_string_size = 1000;
    EXPECT_NE(error_of("s * 2000", {{"s", "a"}}, ctx).find("exceeds the size limit"),
              std::string::npos);
    EXPECT_NE(error_of("s + s", {{"s", std::string(600, 'a')}}, ctx).find("size limit"),
              std::string::npos);
    EXPECT_NE(error_of("xs * 2000", {{"xs", {1}}}, ctx).find("size limit"), std::string::npos);
    EXPECT_NE(error_of("'ab' * 9223372036854775807", {}, ctx).find("size limit"),
              std::string::npos);
    EXPECT_NE(error_of("range(5000)", {}, ctx).find("size limit"), std::string::npos);
    EXPECT_NE(error_of("'x${s}${s}'", {{"s", std::string(600, 'a')}}, ctx).find("size limit"),
              std::string::npos);
}

TEST(Limits, RepeatingAnEmptySequenceAnyNumberOfTimesIsEmptyAtOnce) {
    // These used to loop `count` times over the empty unit (hours for 10**18): the size limit
    // never stops an empty result. The step limit below would catch any per-repetition work.
    EvalContext ctx;
    ctx.max_steps = 100;
    const auto started = std::chrono::steady_clock::now();
    const std::pair<const char*, Value> cases[] = {
        {"'' * 10**18", ""},
        {"10**18 * ''", ""},
        {"[] * 36854775807", Value::array()},
        {"36854775807 * e", Value::array()},
        {"e * big", Value::array()},
        {"'' * big", ""},
        {"s * big", ""},
    };
    for (const auto& [text, expected] : cases) {
        auto r = testing::eval_text(
            text, {{"e", Value::array()}, {"big", 9223372036854775807LL}, {"s", ""}}, ctx);
        ASSERT_TRUE(r.ok()) << text << " -> " << r.error().message;
        EXPECT_EQ(r.value(), expected) << text;
    }
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

TEST(Limits, RepetitionCountsOfZeroOrLessGiveEmptySequences) {
    EXPECT_EQ(testing::value_of("'ab' * 0"), "");
    EXPECT_EQ(testing::value_of("'ab' * -5"), "");
    EXPECT_EQ(testing::value_of("[1, 2] * 0"), Value::array());
    EXPECT_EQ(testing::value_of("-9223372036854775807 * [1]"), Value::array());
}

TEST(Limits, NonEmptyRepetitionStillObeysTheSizeLimit) {
    // Variables, not literals: constant subtrees are folded at compile time under the parser's
    // own limits, so only run-time operands meet the context's max_string_size.
    EvalContext ctx;
    ctx.max_string_size = 1000;
    const Value vars{{"t", "ab"}, {"xs", {1, 2}}};
    auto ok = testing::eval_text("t * 500", vars, ctx);
    ASSERT_TRUE(ok.ok()) << ok.error().message;
    EXPECT_EQ(ok.value().get<std::string>().size(), 1000U);
    auto list = testing::eval_text("xs * 3", vars, ctx);
    ASSERT_TRUE(list.ok());
    EXPECT_EQ(list.value(), Value({1, 2, 1, 2, 1, 2}));
    EXPECT_NE(error_of("t * 501", vars, ctx).find("size limit"), std::string::npos);
    EXPECT_NE(error_of("xs * 10**18", vars, ctx).find("size limit"), std::string::npos);
    EXPECT_NE(error_of("'ab' * 10**18", {}, ctx).find("size limit"), std::string::npos);
}

TEST(Robustness, RandomTokenSoupNeverThrowsOrCrashes) {
    // Deterministic pseudo-random programs from the language's own pieces: every one either
    // compiles or not, and every compiled one evaluates to a value or an EvalError.
    const char* pieces[] = {
        "x",    "xs",      "m",      "s",     "n",       "1",     "0",    "-1",    "2.5",
        "'a'",  "\"\"",    "None",   "True",  "(",       ")",     "[",    "]",     "{",
        "}",    ":",       ",",      ".",     "+",       "-",     "*",    "/",     "//",
        "%",    "**",      "==",     "<",     ">=",      " and ", " or ", " not ", " in ",
        " is ", " if ",    " else ", "?",     "!",       "&&",    "||",   "len(",  "str(",
        "int(", "sorted(", "min(",   ".get(", ".split(", "${",    "f'{",  "'",     "empty ",
        "[0]",  "['k']",   "[1:]",   "=",     "+=",      "\n",    ";",    "del ",  "items.append(",
        "x.y",  "#"};
    const Value vars = {{"x", 3},         {"xs", {1, 2, 3}}, {"m", {{"k", "v"}}},
                        {"s", "text"},    {"n", nullptr},    {"items", Value::array()},
                        {"y", {{"z", 1}}}};
    std::uint64_t state = 42;
    auto next = [&state]() {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<std::size_t>(state >> 33);
    };
    int compiled = 0;
    for (int i = 0; i < 20'000; ++i) {
        std::string text;
        const std::size_t len = 1 + next() % 12;
        for (std::size_t k = 0; k < len; ++k) {
            text += pieces[next() % (sizeof(pieces) / sizeof(pieces[0]))];
        }
        auto e = Expression::compile(text);
        if (e.ok()) {
            ++compiled;
            MapVars v(vars);
            (void)e->evaluate(v, {});
        }
        auto b = StatementBlock::compile(text);
        if (b.ok()) {
            MapVars v(vars);
            (void)b->execute(v, {});
        }
    }
    EXPECT_GT(compiled, 100);
}

TEST(Limits, ConcurrentEvaluationOfOneExpressionIsSafe) {
    auto e = Expression::compile("${sum(xs) + n * 2 > 10 ? 'big' : 'small'}");
    ASSERT_TRUE(e.ok());
    const Expression shared = e.value();
    std::vector<std::thread> threads;
    std::vector<int> bad(4, 0);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&shared, &bad, t] {
            MapVars vars(Value{{"xs", {1, 2, 3}}, {"n", t * 2}});
            const char* expected = t * 4 + 6 > 10 ? "big" : "small";
            for (int i = 0; i < 2000; ++i) {
                auto r = shared.evaluate(vars, {});
                if (!r.ok() || r.value() != expected) {
                    ++bad[t];
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    for (int t = 0; t < 4; ++t) {
        EXPECT_EQ(bad[t], 0) << "thread " << t;
    }
}

}  // namespace
}  // namespace pythmata::expr
