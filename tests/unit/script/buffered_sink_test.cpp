#include "buffered_sink.hpp"

#include <gtest/gtest.h>

#include "map_sink.hpp"

namespace pythmata::script::detail {
namespace {

using expr::Value;
using testing::MapSink;

TEST(BufferedSink, ReadsSeeBufferedWritesBeforeCommit) {
    MapSink target(Value{{"a", 1}});
    BufferedSink sink(target);
    sink.set("a", 2);
    ASSERT_NE(sink.find("a"), nullptr);
    EXPECT_EQ(*sink.find("a"), Value(2));
    EXPECT_EQ(target.at("a"), Value(1));
}

TEST(BufferedSink, FindMutableCopiesOnWriteAndKeepsPointersStable) {
    MapSink target(Value{{"list", {1, 2}}, {"other", 0}});
    BufferedSink sink(target);
    Value* list = sink.find_mutable("list");
    ASSERT_NE(list, nullptr);
    for (int i = 0; i < 100; ++i) {
        sink.set("v" + std::to_string(i), i);
    }
    (*list)[0] = 10;
    EXPECT_EQ(target.at("list"), Value::parse("[1, 2]"));
    EXPECT_EQ(sink.find_mutable("missing"), nullptr);
    sink.commit();
    EXPECT_EQ(target.at("list"), Value::parse("[10, 2]"));
    EXPECT_EQ(target.at("v99"), Value(99));
}

TEST(BufferedSink, DroppedWithoutCommitChangesNothing) {
    MapSink target(Value{{"a", 1}});
    {
        BufferedSink sink(target);
        sink.set("a", 5);
        sink.set("b", 5);
    }
    EXPECT_EQ(target.at("a"), Value(1));
    EXPECT_FALSE(target.has("b"));
    EXPECT_EQ(target.writes, 0);
}

TEST(BufferedSink, WrittenReportsOnlyBufferedNames) {
    MapSink target(Value{{"result", 1}});
    BufferedSink sink(target);
    EXPECT_EQ(sink.written("result"), nullptr);
    sink.set("result", 3);
    ASSERT_NE(sink.written("result"), nullptr);
    EXPECT_EQ(*sink.written("result"), Value(3));
}

TEST(BufferedSink, ErasedVariablesReadAsUndefinedAndAreRemovedOnCommit) {
    MapSink target(Value{{"a", 1}, {"b", 2}});
    BufferedSink sink(target);
    sink.erase("a");
    EXPECT_EQ(sink.find("a"), nullptr);
    EXPECT_EQ(sink.find_mutable("a"), nullptr);
    EXPECT_EQ(sink.written("a"), nullptr);
    EXPECT_TRUE(target.has("a"));
    sink.set("b", 3);
    sink.erase("b");
    sink.set("b", 4);
    sink.commit();
    EXPECT_FALSE(target.has("a"));
    EXPECT_EQ(target.at("b"), Value(4));
}

}  // namespace
}  // namespace pythmata::script::detail
