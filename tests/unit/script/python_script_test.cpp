#include <gtest/gtest.h>

#include <string>

#include "map_sink.hpp"
#include "pythmata/script/script.hpp"

namespace pythmata::script {
namespace {

using expr::Value;
using testing::MapSink;

Script compile_python(std::string_view source) {
    auto compiled = Script::compile("python", source, {});
    if (!compiled.ok()) {
        ADD_FAILURE() << "compile failed: " << compiled.error().message;
        return Script::compile("python", "pass", {}).value();
    }
    return std::move(compiled).value();
}

TEST(PythonScript, EmptyAndPythonFormatsSelectPython) {
    for (const char* format : {"", "python", "Python3", "py"}) {
        auto compiled = Script::compile(format, "x = 1", {});
        ASSERT_TRUE(compiled.ok()) << format;
        EXPECT_EQ(compiled->language(), "python");
    }
}

TEST(PythonScript, AssignsAndIncrementsVariables) {
    MapSink vars(Value{{"counter", 1}});
    const Script script = compile_python("counter += 1\nreason = 'ok'");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("counter"), Value(2));
    EXPECT_EQ(vars.at("reason"), Value("ok"));
}

TEST(PythonScript, ResultIsTheAssignedResultVariable) {
    MapSink vars(Value{{"a", 2}, {"b", 3}});
    const Script script = compile_python("result = a * b");
    Value result;
    ASSERT_TRUE(script.run(vars, {}, &result).ok());
    EXPECT_EQ(result, Value(6));
    EXPECT_EQ(vars.at("result"), Value(6));
}

TEST(PythonScript, ResultIsNullWhenTheScriptDoesNotAssignIt) {
    MapSink vars(Value{{"result", 9}});
    const Script script = compile_python("x = 1");
    Value result = 5;
    ASSERT_TRUE(script.run(vars, {}, &result).ok());
    EXPECT_TRUE(result.is_null());
}

TEST(PythonScript, RefusesLoopsAtCompileTimeNamingTheLine) {
    auto compiled = Script::compile("python", "x = 1\nfor i in items:\n    x += i\n", {});
    ASSERT_FALSE(compiled.ok());
    EXPECT_NE(compiled.error().message.find("python script:"), std::string::npos);
    EXPECT_NE(compiled.error().message.find("2"), std::string::npos) << compiled.error().message;
}

TEST(PythonScript, FailingScriptWritesNothing) {
    MapSink vars(Value{{"a", 1}, {"items", {1, 2}}});
    const Script script = compile_python("a = 2\nitems[0] += 10\nb = undefined_name + 1");
    auto ran = script.run(vars, {});
    ASSERT_FALSE(ran.ok());
    EXPECT_NE(ran.error().message.find("undefined_name"), std::string::npos) << ran.error().message;
    EXPECT_EQ(vars.at("a"), Value(1));
    EXPECT_EQ(vars.at("items"), Value::parse("[1, 2]"));
    EXPECT_EQ(vars.writes, 0);
}

TEST(PythonScript, NestedAssignmentModifiesTheVariable) {
    MapSink vars(Value{{"order", {{"total", 1}}}});
    const Script script = compile_python("order.total = order.total + 4\norder['k'] = 'v'");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_EQ(vars.at("order"), Value::parse(R"({"total": 5, "k": "v"})"));
}

TEST(PythonScript, DelRemovesTheVariable) {
    MapSink vars(Value{{"tmp", 1}, {"keep", 2}});
    const Script script = compile_python("del tmp");
    ASSERT_TRUE(script.run(vars, {}).ok());
    EXPECT_FALSE(vars.has("tmp"));
    EXPECT_TRUE(vars.has("keep"));
}

}  // namespace
}  // namespace pythmata::script
