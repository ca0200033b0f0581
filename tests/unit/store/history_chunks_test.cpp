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
    EXPECT_EQ(first[0], (json{{"element_id", "start"},
                              {"element_type", "scriptTask"},
                              {"name", ""},
                              {"event", "STARTED"},
                              {"at", 10}}));
    EXPECT_EQ(first[1]["element_id"], "task");
    EXPECT_EQ(first[1]["event"], "FAILED");
    EXPECT_EQ(first[2]["element_id"], "end");
    EXPECT_EQ(first[2]["event"], "TERMINATED");
    EXPECT_EQ(first[2]["at"], 13);
    EXPECT_EQ(json::parse(chunks[1].events)[0]["event"], "COMPLETED");
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
    EXPECT_EQ(parsed[0]["name"], name);
    EXPECT_EQ(parsed[0]["element_id"], "el\"1");
    EXPECT_EQ(parsed[0]["at"], -5);
}

}  // namespace
}  // namespace pythmata::store
