#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "map_sink.hpp"
#include "pythmata/script/script.hpp"

namespace pythmata::script {
namespace {

using expr::Value;
using testing::MapSink;

std::string run_error(std::string_view source, const ScriptLimits& limits = {}) {
    auto compiled = Script::compile("lua", source, limits);
    if (!compiled.ok()) {
        return "compile: " + compiled.error().message;
    }
    MapSink vars;
    auto ran = compiled->run(vars, {});
    return ran.ok() ? std::string("<no error>") : ran.error().message;
}

Value run_value(std::string_view source) {
    auto compiled = Script::compile("lua", source, {});
    EXPECT_TRUE(compiled.ok()) << compiled.error().message;
    MapSink vars;
    Value result;
    auto ran = compiled->run(vars, {}, &result);
    EXPECT_TRUE(ran.ok()) << ran.error().message;
    return result;
}

TEST(LuaSandbox, DangerousGlobalsAreAbsent) {
    for (const char* name :
         {"io", "os", "debug", "package", "require", "load", "loadstring", "loadfile", "dofile",
          "collectgarbage", "coroutine", "warn", "_G.io", "string.dump"}) {
        const std::string source = std::string("return ") + name + " == nil";
        EXPECT_EQ(run_value(source), Value(true)) << name;
    }
}

TEST(LuaSandbox, SafeLibrariesArePresent) {
    EXPECT_EQ(run_value("return string.upper('a') .. table.concat({1, 2}, ',') .. math.floor(2.5)"
                        " .. utf8.char(233) .. ('x'):rep(2)"),
              Value("A1,22éxx"));
    EXPECT_EQ(run_value("return select('#', pcall(error, 'e')) + tonumber('2')"), Value(4));
}

TEST(LuaSandbox, PrintIsAcceptedAndDiscarded) {
    EXPECT_EQ(run_error("print('hello', 1)"), "<no error>");
}

TEST(LuaSandbox, RefusesPrecompiledBytecode) {
    auto compiled = Script::compile("lua", std::string("\x1bLua\x54\x00", 6), {});
    ASSERT_FALSE(compiled.ok());
    EXPECT_NE(compiled.error().message.find("binary chunk"), std::string::npos)
        << compiled.error().message;
}

TEST(LuaSandbox, StringMetatableIsHidden) {
    EXPECT_EQ(run_value("return getmetatable('')"), Value(false));
}

TEST(LuaSandbox, LibraryTablesAreReadOnly) {
    const std::string message = run_error("string.upper = nil");
    EXPECT_NE(message.find("read-only library table 'string'"), std::string::npos) << message;
    EXPECT_NE(run_error("math.pi = 3").find("read-only"), std::string::npos);
}

TEST(LuaSandbox, EnvironmentMetatableIsLocked) {
    EXPECT_EQ(run_value("return getmetatable(_ENV)"), Value(false));
    EXPECT_NE(run_error("setmetatable(_ENV, nil)").find("protected metatable"), std::string::npos);
}

TEST(LuaSandbox, RefusesFinalizers) {
    const std::string message = run_error("local t = setmetatable({}, {__gc = function() end})");
    EXPECT_NE(message.find("__gc metamethods are not allowed"), std::string::npos) << message;
}

TEST(LuaSandbox, OrdinaryMetatablesWork) {
    EXPECT_EQ(run_value("local t = setmetatable({}, {__index = function(_, k) return k .. '!' end})"
                        " return t.hi"),
              Value("hi!"));
}

TEST(LuaSandbox, StopsAnInfiniteLoopAtTheInstructionLimit) {
    ScriptLimits limits;
    limits.max_instructions = 100'000;
    EXPECT_EQ(run_error("while true do end", limits), "script exceeded 100000 instructions");
}

TEST(LuaSandbox, StopsAnInfiniteLoopAtTheTimeout) {
    ScriptLimits limits;
    limits.max_instructions = 0;  // only the timeout applies
    limits.timeout = std::chrono::milliseconds(50);
    EXPECT_EQ(run_error("local x = 0 while true do x = x + 1 end", limits),
              "script timed out after 50 ms");
}

TEST(LuaSandbox, ScriptCannotSwallowTheLimitWithPcall) {
    ScriptLimits limits;
    limits.max_instructions = 100'000;
    EXPECT_EQ(run_error("while true do pcall(function() while true do end end) end", limits),
              "script exceeded 100000 instructions");
}

TEST(LuaSandbox, StopsAMemoryBomb) {
    ScriptLimits limits;
    limits.max_memory = 4u << 20;
    EXPECT_EQ(run_error("local t = {} for i = 1, 1e9 do t[i] = {i} end", limits),
              "script exceeded its memory limit of 4194304 bytes");
}

TEST(LuaSandbox, StopsAStringRepBomb) {
    EXPECT_EQ(run_error("local s = string.rep('x', 1 << 30)"),
              "script exceeded its memory limit of 33554432 bytes");
}

TEST(LuaSandbox, StopsAStringDoublingBomb) {
    EXPECT_EQ(run_error("local s = 'x' while true do s = s .. s end"),
              "script exceeded its memory limit of 33554432 bytes");
}

TEST(LuaSandbox, StopsDeepRecursion) {
    const std::string message = run_error("local function f(n) return 1 + f(n + 1) end f(1)");
    EXPECT_TRUE(message.find("stack overflow") != std::string::npos ||
                message.find("memory limit") != std::string::npos)
        << message;
}

TEST(LuaSandbox, SandboxIsReusableAfterAMemoryLimitHit) {
    ScriptLimits limits;
    limits.max_memory = 4u << 20;
    auto compiled = Script::compile(
        "lua", "if big then local s = string.rep('x', 8 << 20) end counter = (counter or 0) + 1",
        limits);
    ASSERT_TRUE(compiled.ok());
    MapSink vars(Value{{"big", true}});
    EXPECT_FALSE(compiled->run(vars, {}).ok());
    vars.vars["big"] = false;
    ASSERT_TRUE(compiled->run(vars, {}).ok());
    EXPECT_EQ(vars.at("counter"), Value(1));
}

TEST(LuaSandbox, TooSmallMemoryLimitFailsAtCompileTime) {
    ScriptLimits limits;
    limits.max_memory = 1024;
    auto compiled = Script::compile("lua", "x = 1", limits);
    ASSERT_FALSE(compiled.ok());
    EXPECT_NE(compiled.error().message.find("memory limit of 1024 bytes"), std::string::npos)
        << compiled.error().message;
}

TEST(LuaSandbox, GlobalsDoNotLeakBetweenRuns) {
    auto compiled = Script::compile("lua", R"(
        seen = leaked
        leaked = "from an earlier run"
        helper_seen = (local_helper == nil)
        rawset(_ENV, "raw", 1)
        raw_seen = raw
    )",
                                    {});
    ASSERT_TRUE(compiled.ok());
    MapSink first;
    ASSERT_TRUE(compiled->run(first, {}).ok());
    MapSink second;
    ASSERT_TRUE(compiled->run(second, {}).ok());
    EXPECT_FALSE(second.has("seen"));  // nil: nothing leaked
    EXPECT_EQ(second.at("helper_seen"), Value(true));
    EXPECT_FALSE(second.has("raw"));
}

TEST(LuaSandbox, VariablesDoNotLeakBetweenRuns) {
    auto compiled = Script::compile("lua", "out = secret", {});
    ASSERT_TRUE(compiled.ok());
    MapSink first(Value{{"secret", "alice"}});
    ASSERT_TRUE(compiled->run(first, {}).ok());
    MapSink second;
    ASSERT_TRUE(compiled->run(second, {}).ok());
    EXPECT_FALSE(second.has("out"));  // nil: the first run's variable is not visible
}

TEST(LuaSandbox, ManyRunsKeepMemoryBounded) {
    ScriptLimits limits;
    limits.max_memory = 1u << 20;
    auto compiled =
        Script::compile("lua", "t = {} for i = 1, 100 do t[i] = tostring(i) end", limits);
    ASSERT_TRUE(compiled.ok());
    for (int i = 0; i < 5'000; ++i) {
        MapSink vars;
        ASSERT_TRUE(compiled->run(vars, {}).ok()) << "run " << i;
    }
}

TEST(LuaSandbox, RunsConcurrentlyOnSeveralThreads) {
    auto compiled = Script::compile("lua", "n = n + 1", {});
    ASSERT_TRUE(compiled.ok());
    const Script script = compiled.value();
    bool ok[2] = {false, false};
    auto work = [&script](bool& done) {
        MapSink vars(Value{{"n", 0}});
        for (int i = 0; i < 1'000; ++i) {
            if (!script.run(vars, {}).ok()) {
                return;
            }
        }
        done = vars.at("n") == Value(1'000);
    };
    std::thread a(work, std::ref(ok[0]));
    std::thread b(work, std::ref(ok[1]));
    a.join();
    b.join();
    EXPECT_TRUE(ok[0]);
    EXPECT_TRUE(ok[1]);
}

TEST(LuaSandbox, GlobalTableAliasSeesVariablesAndAssignments) {
    auto compiled = Script::compile("lua", "_G.y = _G.x + 1", {});
    ASSERT_TRUE(compiled.ok());
    MapSink vars(Value{{"x", 1}});
    ASSERT_TRUE(compiled->run(vars, {}).ok());
    EXPECT_EQ(vars.at("y"), Value(2));
}

}  // namespace
}  // namespace pythmata::script
