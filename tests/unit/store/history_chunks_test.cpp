// history_chunks (src/store/runtime_rows.hpp): how a write's history entries become stored rows.

#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "runtime_rows.hpp"

namespace pythmata::store {
namespace {

using nlohmann::json;

app::HistoryRow entry(std::string instance_id, std::string element, app::HistoryEventKind event,
                      std::int64_t at_ms, std::string name = "") {
    return {std::move(instance_id), std::move(element), "scriptTask", std::move(name), event,
            from_epoch_ms(at_ms)};
}

TEST(HistoryChunks, OneChunkPerInstanceWithItsEntriesInOrder) {
    app::InstanceWrite write;
    write.instance.id = "i-1";
    write.history = {entry("", "start", app::HistoryEventKind::kStarted, 10),
                     entry("i-2", "other", app::HistoryEventKind::kCompleted, 11),
                     entry("i-1", "task", app::HistoryEventKind::kFailed, 12),
                     entry("", "end", app::HistoryEventKind::kTerminated, 13)};
    const auto chunks = history_chunks(write);
    ASSERT_EQ(chunks.size(), 2u);
    EXPECT_EQ(chunks[0].instance_id, "i-1") << "an empty instance_id is the write's instance";
    EXPECT_EQ(chunks[0].entries, 3);
    EXPECT_EQ(chunks[1].instance_id, "i-2");
    EXPECT_EQ(chunks[1].entries, 1);

    const json first = json::parse(chunks[0].events);
    ASSERT_TRUE(first.is_array());
    ASSERT_EQ(first.size(), 3u);
    // Each entry is [element_id, element_type, name, event, at (epoch ms)].
    EXPECT_EQ(first[0], json::parse(R"(["start", "scriptTask", "", "STARTED", 10])"));
    EXPECT_EQ(first[1], json::parse(R"(["task", "scriptTask", "", "FAILED", 12])"));
    EXPECT_EQ(first[2], json::parse(R"(["end", "scriptTask", "", "TERMINATED", 13])"));
    EXPECT_EQ(chunks[0].events,
              R"([["start","scriptTask","","STARTED",10],["task","scriptTask","","FAILED",12],)"
              R"(["end","scriptTask","","TERMINATED",13]])")
        << "no spaces";
    EXPECT_EQ(json::parse(chunks[1].events)[0][3], "COMPLETED");
}

TEST(HistoryChunks, NoEntriesNoChunk) {
    app::InstanceWrite write;
    write.instance.id = "i-1";
    EXPECT_TRUE(history_chunks(write).empty());
}

TEST(HistoryChunks, TextsAreEscapedAsJsonStrings) {
    app::InstanceWrite write;
    write.instance.id = "i-1";
    const std::string name =
        std::string("q\"b\\s/t\tn\nc") + '\x01' + '\x1f' + " Gr\xc3\xbc\xc3\x9f" + "e";
    write.history = {entry("", "el\"1", app::HistoryEventKind::kStarted, -5, name)};
    const auto chunks = history_chunks(write);
    ASSERT_EQ(chunks.size(), 1u);
    EXPECT_EQ(chunks[0].events.find('\n'), std::string::npos) << "control characters escaped";
    const json parsed = json::parse(chunks[0].events);
    EXPECT_EQ(parsed[0][2], name);
    EXPECT_EQ(parsed[0][0], "el\"1");
    EXPECT_EQ(parsed[0][4], -5);
}

}  // namespace
}  // namespace pythmata::store
