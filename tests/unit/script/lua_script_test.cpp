#include <gtest/gtest.h>

#include <string>

#include "map_sink.hpp"
#include "pythmata/script/script.hpp"

namespace pythmata::script {
namespace {

using expr::Value;
using testing::MapSink;

Script compile_lua(std::string_view source, const ScriptLimits& limits = {}) {
    auto compiled = Script::compile("lua", source, limits);
    if (!compiled.ok()) {
        ADD_FAILURE() << "compile failed: " << compiled.error().message;
        return Script::compile("lua", "", limits).value();
    }
    return std::move(compiled).value();
}

std::string run_error(const Script& script, MapSink& vars) {
    auto ran = script.run(vars, expr::EvalContext{});
    return ran.ok() ? std::string("<no error>") : ran.error().message;
}

TEST(LuaScript, IncrementsAnIntegerVariable) {
    MapSink vars(Value{{"counter", 41}});
    const Script script = compile_lua("counter = counter + 1");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("counter"), Value(42));
    EXPECT_TRUE(vars.at("counter").is_number_integer());
}

TEST(LuaScript, AcceptsFormatNamesCaseInsensitively) {
    for (const char* format : {"lua", "Lua", "LUA", "lua5.4", " lua "}) {
        auto compiled = Script::compile(format, "x = 1", {});
        ASSERT_TRUE(compiled.ok()) << format;
        EXPECT_EQ(compiled->language(), "lua");
    }
}

TEST(LuaScript, RefusesUnknownFormatsAtCompileTime) {
    auto compiled = Script::compile("javascript", "x = 1", {});
    ASSERT_FALSE(compiled.ok());
    EXPECT_NE(compiled.error().message.find("unsupported scriptFormat 'javascript'"),
              std::string::npos);
}

TEST(LuaScript, ConvertsEveryJsonTypeIn) {
    MapSink vars(Value{{"i", 7},
                       {"f", 2.5},
                       {"s", "héllo"},
                       {"b", true},
                       {"n", nullptr},
                       {"a", {1, 2, 3}},
                       {"o", {{"k", "v"}}}});
    const Script script = compile_lua(R"(
        ok = math.type(i) == "integer" and math.type(f) == "float" and s == "héllo"
             and b == true and n == nil and #a == 3 and a[3] == 3 and o.k == "v"
    )");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("ok"), Value(true));
}

TEST(LuaScript, ConvertsEveryLuaTypeOut) {
    MapSink vars;
    const Script script = compile_lua(R"(
        i = 3; f = 0.5; s = "text"; b = false; arr = {1, "two", {3}}; obj = {name = "x", n = 1}
        mixed = {1, 2, key = "v"}; sparse = {[1] = "a", [3] = "c"}; empty = {}
        cleared = nil
    )");
    vars.vars["cleared"] = 1;
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("i"), Value(3));
    EXPECT_TRUE(vars.at("f").is_number_float());
    EXPECT_EQ(vars.at("s"), Value("text"));
    EXPECT_EQ(vars.at("b"), Value(false));
    EXPECT_EQ(vars.at("arr"), Value::parse(R"([1, "two", [3]])"));
    EXPECT_EQ(vars.at("obj"), Value::parse(R"({"name": "x", "n": 1})"));
    EXPECT_EQ(vars.at("mixed"), Value::parse(R"({"1": 1, "2": 2, "key": "v"})"));
    EXPECT_EQ(vars.at("sparse"), Value::parse(R"({"1": "a", "3": "c"})"));
    EXPECT_EQ(vars.at("empty"), Value::array());
    EXPECT_FALSE(vars.has("cleared"));
}

TEST(LuaScript, WritesBackNestedTablesModifiedInPlace) {
    MapSink vars(Value{{"order", {{"total", 10}, {"lines", {{{"qty", 1}}, {{"qty", 2}}}}}}});
    const Script script = compile_lua(R"(
        order.total = order.total * 2
        order.lines[2].qty = 5
        table.insert(order.lines, {qty = 9})
    )");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("order"),
              Value::parse(R"({"total": 20, "lines": [{"qty": 1}, {"qty": 5}, {"qty": 9}]})"));
}

TEST(LuaScript, WritesBackATableModifiedThroughALocalAlias) {
    MapSink vars(Value{{"cfg", {{"a", 1}}}});
    const Script script = compile_lua("local c = cfg; c.b = 2");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("cfg"), Value::parse(R"({"a": 1, "b": 2})"));
}

TEST(LuaScript, DoesNotWriteVariablesItOnlyReads) {
    MapSink vars(Value{
        {"order", {{"total", 10}, {"tags", {"a", nullptr}}, {"meta", Value::object()}}}, {"x", 1}});
    const Script script = compile_lua("local t = order.total + x + #order.tags; y = t");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.writes, 1);  // only y
    EXPECT_EQ(vars.at("y"), Value(13));
}

TEST(LuaScript, KeepsEmptyObjectsAndNullsInsideTablesWhenRewriting) {
    MapSink vars(Value{{"doc", {{"meta", Value::object()}, {"list", {1, nullptr, 3}}}}});
    const Script script = compile_lua("doc.added = true; doc.list[2] = doc.list[2] == null");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("doc"), Value::parse(R"({"meta": {}, "list": [1, true, 3], "added": true})"));
}

TEST(LuaScript, StoresNullSentinelAsJsonNull) {
    MapSink vars;
    const Script script = compile_lua("v = {a = null, b = {null}}");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("v"), Value::parse(R"({"a": null, "b": [null]})"));
}

TEST(LuaScript, ReturnsTheResultValue) {
    MapSink vars(Value{{"amount", 120}});
    const Script script = compile_lua("return {approved = amount > 100, amount = amount}");
    Value result;
    ASSERT_TRUE(script.run(vars, {}, &result).ok());
    EXPECT_EQ(result, Value::parse(R"({"approved": true, "amount": 120})"));
}

TEST(LuaScript, ResultIsNullWithoutReturn) {
    MapSink vars;
    const Script script = compile_lua("x = 1");
    Value result = 5;
    ASSERT_TRUE(script.run(vars, {}, &result).ok());
    EXPECT_TRUE(result.is_null());
}

TEST(LuaScript, UndefinedVariablesReadAsNil) {
    MapSink vars;
    const Script script = compile_lua("missing_was_nil = (missing == nil)");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("missing_was_nil"), Value(true));
}

TEST(LuaScript, AssignedValuesShadowVariablesWithinTheRun) {
    MapSink vars(Value{{"x", 1}});
    const Script script = compile_lua("x = 5; y = x; x = nil; z = (x == nil)");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("y"), Value(5));
    EXPECT_FALSE(vars.has("x"));  // assigning nil removes the variable
    EXPECT_EQ(vars.at("z"), Value(true));
}

TEST(LuaScript, ReadsEachVariableFromTheEngineOnce) {
    MapSink vars(Value{{"n", 0}, {"step", 2}});
    const Script script = compile_lua("for i = 1, 100 do n = n + step end");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("n"), Value(200));
    EXPECT_EQ(vars.reads, 2);  // n and step, each once
}

TEST(LuaScript, BuiltinsShadowVariablesOfTheSameName) {
    MapSink vars(Value{{"type", "premium"}});
    const Script script = compile_lua("kind = type(1)");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("kind"), Value("number"));
}

TEST(LuaScript, RefusesStoringAFunctionNamingTheVariable) {
    MapSink vars(Value{{"x", 1}});
    const Script script = compile_lua("x = 2; function helper() return 1 end");
    const std::string message = run_error(script, vars);
    EXPECT_NE(message.find("variable 'helper' holds a function"), std::string::npos) << message;
    EXPECT_EQ(vars.at("x"), Value(1));  // nothing written
}

TEST(LuaScript, RefusesNestedFunctionsNamingThePath) {
    MapSink vars;
    const Script script = compile_lua("cfg = {items = {1, {cb = print}}}");
    const std::string message = run_error(script, vars);
    EXPECT_NE(message.find("variable 'cfg.items[2].cb' holds a function"), std::string::npos)
        << message;
}

TEST(LuaScript, LocalHelperFunctionsAreFine) {
    MapSink vars;
    const Script script = compile_lua("local function sq(v) return v * v end; r = sq(7)");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("r"), Value(49));
}

TEST(LuaScript, RefusesNanAndInfinity) {
    MapSink vars;
    EXPECT_NE(run_error(compile_lua("x = 0/0"), vars).find("variable 'x' holds the non-finite"),
              std::string::npos);
    EXPECT_NE(run_error(compile_lua("x = {1/0}"), vars).find("variable 'x[1]' holds the non-fin"),
              std::string::npos);
    Value result;
    auto ran = compile_lua("return {-math.huge}").run(vars, {}, &result);
    ASSERT_FALSE(ran.ok());
    EXPECT_NE(
        ran.error().message.find("the return value at '[1]' holds the non-finite number -inf"),
        std::string::npos)
        << ran.error().message;
}

TEST(LuaScript, RefusesInvalidUtf8Strings) {
    MapSink vars;
    EXPECT_NE(run_error(compile_lua("x = '\\xff\\xfe'"), vars).find("not valid UTF-8"),
              std::string::npos);
}

TEST(LuaScript, RefusesTablesWithUnstorableKeys) {
    MapSink vars;
    EXPECT_NE(run_error(compile_lua("x = {[true] = 1}"), vars).find("has a key of type boolean"),
              std::string::npos);
    EXPECT_NE(run_error(compile_lua("x = {[1.5] = 1}"), vars).find("has a key of type number"),
              std::string::npos);
}

TEST(LuaScript, RefusesCyclicTables) {
    MapSink vars;
    const std::string message = run_error(compile_lua("x = {}; x.self = x"), vars);
    EXPECT_NE(message.find("nested deeper than 100 levels"), std::string::npos) << message;
}

TEST(LuaScript, CompileErrorsNameTheLine) {
    auto compiled = Script::compile("lua", "x = 1\ny = = 2\n", {});
    ASSERT_FALSE(compiled.ok());
    EXPECT_NE(compiled.error().message.find("lua syntax error: line 2:"), std::string::npos)
        << compiled.error().message;
}

TEST(LuaScript, RuntimeErrorsCarryTheLuaMessageAndLine) {
    MapSink vars;
    const std::string message =
        run_error(compile_lua("local a = 1\nlocal b = nothing.field"), vars);
    EXPECT_NE(message.find("line 2:"), std::string::npos) << message;
    EXPECT_NE(message.find("attempt to index a nil value"), std::string::npos) << message;
}

TEST(LuaScript, ErrorCallsKeepTheirMessage) {
    MapSink vars;
    EXPECT_EQ(run_error(compile_lua("error('insufficient funds', 0)"), vars), "insufficient funds");
    EXPECT_EQ(run_error(compile_lua("error({code = 1})"), vars),
              "script raised an error object of type table");
}

TEST(LuaScript, FailingRunWritesNothing) {
    MapSink vars(Value{{"a", 1}, {"t", {{"k", 1}}}});
    const Script script = compile_lua("a = 2; t.k = 2; error('boom')");
    EXPECT_FALSE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("a"), Value(1));
    EXPECT_EQ(vars.at("t"), Value::parse(R"({"k": 1})"));
    EXPECT_EQ(vars.writes, 0);
}

TEST(LuaScript, LargeUnsignedIntegersBecomeFloats) {
    MapSink vars(Value{{"big", std::uint64_t{18'000'000'000'000'000'000ULL}}});
    const Script script = compile_lua("kind = math.type(big)");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("kind"), Value("float"));
}

TEST(LuaScript, CopiesShareTheCompiledScript) {
    MapSink vars(Value{{"n", 1}});
    const Script script = compile_lua("n = n * 3");
    const Script copy = script;  // NOLINT(performance-unnecessary-copy-initialization)
    ASSERT_TRUE(copy.run(vars, {}).ok());
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("n"), Value(9));
}

}  // namespace
}  // namespace pythmata::script
