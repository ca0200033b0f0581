#include "pythmata/expr/statements.hpp"

#include <gtest/gtest.h>

#include "test_vars.hpp"

namespace pythmata::expr {
namespace {

using testing::MapVars;

/// Runs `script` on `vars`; returns the error message or "" on success.
std::string run(std::string_view script, MapVars& vars, const EvalContext& ctx = {}) {
    auto block = StatementBlock::compile(script);
    if (!block.ok()) {
        return "compile: " + block.error().message;
    }
    auto r = block->execute(vars, ctx);
    return r.ok() ? "" : r.error().message;
}

std::string compile_error(std::string_view script) {
    auto block = StatementBlock::compile(script);
    EXPECT_FALSE(block.ok()) << script;
    return block.ok() ? "<compiled>" : block.error().message;
}

TEST(StatementBlock, AssignsAndCreatesTopLevelVariables) {
    MapVars vars;
    EXPECT_EQ(run("my_var = 'World'\nmy_other_var = 'Mike'", vars), "");
    EXPECT_EQ(*vars.find("my_var"), "World");
    EXPECT_EQ(*vars.find("my_other_var"), "Mike");
}

TEST(StatementBlock, AugmentedAssignmentUpdatesExistingVariables) {
    MapVars vars(Value{{"v", 1}, {"u", 10}, {"s", "a"}, {"xs", {1}}});
    EXPECT_EQ(run("v += 1\nu += v\nu -= 1; u *= 2\ns += 'b'\nxs += [2]", vars), "");
    EXPECT_EQ(*vars.find("v"), 2);
    EXPECT_EQ(*vars.find("u"), 22);
    EXPECT_EQ(*vars.find("s"), "ab");
    EXPECT_EQ(*vars.find("xs"), Value({1, 2}));
    EXPECT_EQ(run("u //= 5\nu **= 2\nu %= 7\nv /= 4", vars), "");
    EXPECT_EQ(*vars.find("u"), 2);
    EXPECT_EQ(*vars.find("v"), 0.5);
}

TEST(StatementBlock, AugmentedRepetitionOfEmptySequencesFinishesAtOnce) {
    MapVars vars(Value{{"s", ""}, {"xs", Value::array()}, {"t", "ab"}});
    EvalContext ctx;
    ctx.max_steps = 100;
    ctx.max_string_size = 1000;
    EXPECT_EQ(run("s *= 10**18\nxs *= 9223372036854775807", vars, ctx), "");
    EXPECT_EQ(*vars.find("s"), "");
    EXPECT_EQ(*vars.find("xs"), Value::array());
    EXPECT_NE(run("t *= 10**18", vars, ctx).find("size limit"), std::string::npos);
    EXPECT_EQ(*vars.find("t"), "ab");
}

TEST(StatementBlock, AugmentedAssignmentToUndefinedVariableFails) {
    MapVars vars;
    EXPECT_EQ(run("w += 1", vars), "line 1: undefined variable 'w'");
    EXPECT_EQ(vars.find("w"), nullptr);
}

TEST(StatementBlock, NestedTargets) {
    MapVars vars(Value{{"a", {{"b", {{"c", 0}}}}}, {"items", {1, 2}}, {"m", Value::object()}});
    EXPECT_EQ(run("a.b.c = 1\na.b.d = 'new'\nm['k'] = 2\nitems[0] += 1\nitems[-1] = 9", vars), "");
    EXPECT_EQ(*vars.find("a"), Value({{"b", {{"c", 1}, {"d", "new"}}}}));
    EXPECT_EQ(*vars.find("m"), Value({{"k", 2}}));
    EXPECT_EQ(*vars.find("items"), Value({2, 9}));
    EXPECT_EQ(run("m['k2'] = m['k'] * 10\nitems[0 + 1] = len(items)", vars), "");
    EXPECT_EQ(*vars.find("m"), Value({{"k", 2}, {"k2", 20}}));
    EXPECT_EQ(*vars.find("items"), Value({2, 2}));
    EXPECT_EQ(run("a['b'].c = 5\na.b['c'] += 1", vars), "");
    EXPECT_EQ(vars.find("a")->at("b").at("c"), 6);
}

TEST(StatementBlock, NestedTargetErrorsNameThePath) {
    MapVars vars(Value{{"a", {{"b", 1}}}, {"items", {1}}});
    EXPECT_EQ(run("x.y = 1", vars), "line 1: undefined variable 'x'");
    EXPECT_EQ(run("a.q.r = 1", vars), "line 1: undefined property 'a.q'");
    EXPECT_EQ(run("items[3] = 1", vars),
              "line 1: index 3 out of range for list 'items' of length 1");
    EXPECT_EQ(run("a.b.c = 1", vars), "line 1: cannot set property 'c' of int");
    EXPECT_EQ(run("a['zz'] += 1", vars), "line 1: key 'zz' not found in 'a'");
}

TEST(StatementBlock, ChainedAndTupleAssignment) {
    MapVars vars(Value{{"a", 1}, {"b", 2}});
    EXPECT_EQ(run("x = y = 0\na, b = b, a", vars), "");
    EXPECT_EQ(*vars.find("x"), 0);
    EXPECT_EQ(*vars.find("y"), 0);
    EXPECT_EQ(*vars.find("a"), 2);
    EXPECT_EQ(*vars.find("b"), 1);
    EXPECT_EQ(run("a, b = [1, 2, 3]", vars), "line 1: cannot unpack 3 values into 2 targets");
}

TEST(StatementBlock, DelRemovesVariablesAndKeys) {
    MapVars vars(Value{{"remove_this_var", 1}, {"m", {{"k", 1}, {"j", 2}}}, {"xs", {1, 2, 3}}});
    EXPECT_EQ(run("del(remove_this_var)\ndel m['k']\ndel xs[0], m.j", vars), "");
    EXPECT_EQ(vars.find("remove_this_var"), nullptr);
    EXPECT_EQ(*vars.find("m"), Value::object());
    EXPECT_EQ(*vars.find("xs"), Value({2, 3}));
    EXPECT_EQ(run("del nothing", vars), "line 1: undefined variable 'nothing'");
}

TEST(StatementBlock, PassCommentsBlankLinesAndIndentationAreIgnored) {
    MapVars vars;
    EXPECT_EQ(run("\n  # setup\n    a = 1  # one\n\n\tpass\n    b = [1,\n         2]\n", vars), "");
    EXPECT_EQ(*vars.find("a"), 1);
    EXPECT_EQ(*vars.find("b"), Value({1, 2}));
}

TEST(StatementBlock, BareExpressionsAreEvaluatedAndDiscarded) {
    MapVars vars(Value{{"pre_var", "x"}});
    EXPECT_EQ(run("print(pre_var)\nprint(f\"Value: {pre_var}\")", vars), "");
    EXPECT_EQ(run("print(my_var)", vars), "line 1: undefined variable 'my_var'");
}

TEST(StatementBlock, StopsAtFirstErrorAndKeepsEarlierEffects) {
    MapVars vars;
    EXPECT_EQ(run("a = 1\nb = 1 / 0\nc = 3", vars), "line 2: division by zero");
    EXPECT_EQ(*vars.find("a"), 1);
    EXPECT_EQ(vars.find("b"), nullptr);
    EXPECT_EQ(vars.find("c"), nullptr);
}

TEST(StatementBlock, ReadsSeeEarlierWrites) {
    MapVars vars;
    EXPECT_EQ(run("x = 2; y = x * 3; z = f'{x}-{y}'", vars), "");
    EXPECT_EQ(*vars.find("z"), "2-6");
}

TEST(StatementBlock, AssignmentCopiesValues) {
    MapVars vars(Value{{"a", {{"k", 1}}}});
    EXPECT_EQ(run("b = a\nb.k = 2", vars), "");
    EXPECT_EQ(vars.find("a")->at("k"), 1);
    EXPECT_EQ(vars.find("b")->at("k"), 2);
}

TEST(StatementBlock, RefusesControlFlowNamingConstructAndLine) {
    EXPECT_EQ(compile_error("x = 1\nfor i in items:\n    x += i"),
              "line 2: 'for' loops are not supported in python scripts; use scriptFormat=\"lua\"");
    EXPECT_EQ(compile_error("if x:\n  y = 1"),
              "line 1: 'if' statements are not supported in python scripts; use "
              "scriptFormat=\"lua\"");
    EXPECT_NE(compile_error("a = 1\n\nwhile True: pass").find("line 3: 'while' loops"),
              std::string::npos);
    EXPECT_NE(compile_error("def f():\n  return 1").find("line 1: function definitions"),
              std::string::npos);
    EXPECT_NE(compile_error("import os").find("'import' statements"), std::string::npos);
    EXPECT_NE(compile_error("from os import path").find("'from ... import'"), std::string::npos);
    EXPECT_NE(compile_error("class A: pass").find("class definitions"), std::string::npos);
    EXPECT_NE(compile_error("return 1").find("'return' statements"), std::string::npos);
    EXPECT_NE(compile_error("with open('f') as f: pass").find("'with' statements"),
              std::string::npos);
    EXPECT_NE(compile_error("try:\n  x = 1").find("'try' statements"), std::string::npos);
    EXPECT_NE(compile_error("f = lambda x: x").find("'lambda' expressions"), std::string::npos);
}

TEST(StatementBlock, RefusesInvalidTargetsAndSyntax) {
    EXPECT_EQ(compile_error("1 = x"), "line 1: cannot assign to 1");
    EXPECT_EQ(compile_error("a = 1\nlen(x) = 2"), "line 2: cannot assign to len(...)");
    EXPECT_EQ(compile_error("a, b += 1"), "line 1: cannot assign to expression");
    EXPECT_EQ(compile_error("xs[0:1] = []"), "line 1: cannot assign to a slice");
    EXPECT_EQ(compile_error("a = 1\nb = (2"), "line 2: expected ')' before end of expression");
    EXPECT_EQ(compile_error("x = 1 y = 2"), "line 1: unexpected 'y' at 6");
}

TEST(StatementBlock, MutatingMethodsChangeListsAndObjectsInPlace) {
    MapVars vars(Value{{"items", {1, 2}}, {"m", {{"a", 1}}}, {"o", {{"xs", Value::array()}}}});
    EXPECT_EQ(
        run("items.append(3)\nitems.extend([4, 5])\nitems.insert(0, 0)\nitems.remove(2)\n"
            "items.pop()\nitems.pop(0)\nm.update({'b': 2})\nm.pop('a')\no.xs.append(len(items))",
            vars),
        "");
    EXPECT_EQ(*vars.find("items"), Value({1, 3, 4}));
    EXPECT_EQ(*vars.find("m"), Value({{"b", 2}}));
    EXPECT_EQ(*vars.find("o"), Value({{"xs", {3}}}));
    EXPECT_EQ(run("m.clear()\nitems.append(items)", vars), "");
    EXPECT_EQ(*vars.find("m"), Value::object());
    EXPECT_EQ(vars.find("items")->size(), 4u);
}

TEST(StatementBlock, MutatingMethodErrors) {
    MapVars vars(Value{{"items", Value::array()}, {"n", 1}});
    EXPECT_EQ(run("items.pop()", vars), "line 1: pop from empty list 'items'");
    EXPECT_EQ(run("items.remove(7)", vars), "line 1: remove(x): x not in list 'items'");
    EXPECT_EQ(run("n.append(1)", vars), "line 1: 'n' (int) has no method 'append'");
    EXPECT_EQ(run("missing.append(1)", vars), "line 1: undefined variable 'missing'");
    EXPECT_NE(compile_error("x = items.append(1)").find("can only be used as a statement"),
              std::string::npos);
    EXPECT_NE(compile_error("[1].append(2)").find("cannot assign to"), std::string::npos);
}

TEST(StatementBlock, EvalErrorsCarryTheLine) {
    MapVars vars(Value{{"x", 1}});
    EXPECT_EQ(run("y = x\n\nz = x.q", vars), "line 3: cannot read property 'q' of int 'x'");
}

TEST(StatementBlock, StepLimitAppliesToTheWholeBlock) {
    MapVars vars(Value{{"v", 0}});
    EvalContext ctx;
    ctx.max_steps = 20;
    std::string script;
    for (int i = 0; i < 20; ++i) {
        script += "v += 1\n";
    }
    EXPECT_NE(run(script, vars, ctx).find("step limit exceeded"), std::string::npos);
}

TEST(StatementBlock, EmptyTextAndDefaultBlockDoNothing) {
    MapVars vars;
    EXPECT_EQ(run("", vars), "");
    EXPECT_EQ(run("# only a comment\n", vars), "");
    const StatementBlock block;
    EXPECT_TRUE(block.execute(vars, {}).ok());
}

TEST(StatementBlock, EraseDefaultsToNullForSinksThatCannotRemove) {
    class NoEraseVars : public VariableSink {
      public:
        const Value* find(std::string_view name) const override {
            return name == "x" ? &x_ : nullptr;
        }
        void set(std::string_view, Value value) override { x_ = std::move(value); }
        Value* find_mutable(std::string_view name) override { return name == "x" ? &x_ : nullptr; }
        Value x_ = 5;
    } vars;
    auto block = StatementBlock::compile("del x");
    ASSERT_TRUE(block.ok());
    ASSERT_TRUE(block->execute(vars, {}).ok());
    EXPECT_TRUE(vars.x_.is_null());
}

}  // namespace
}  // namespace pythmata::expr
