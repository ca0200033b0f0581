#include <gtest/gtest.h>

#include "harness.hpp"

namespace pythmata::engine::test {
namespace {

TEST(InstanceState, SerializeRoundTripsEveryField) {
    InstanceState st;
    st.status = InstanceStatus::kRunning;
    st.variables = {{"a", 1}, {"b", {{"c", "d"}}}};
    st.tokens.push_back({7, 3, 2, TokenPhase::kWaiting, 1, 4, 5, 2, 0, 0});
    Scope s;
    s.id = 2;
    s.kind = ScopeKind::kMultiInstance;
    s.element = 3;
    s.parent = 1;
    s.token = 7;
    s.locals = {{"loopCounter", 1}};
    s.mi_total = 3;
    s.mi_items = {1, 2, 3};
    st.scopes.push_back(s);
    Wait w;
    w.id = 9;
    w.kind = WaitKind::kTimer;
    w.role = WaitRole::kBoundary;
    w.element = 4;
    w.token = 7;
    w.due_at = from_epoch_ms(123456);
    w.fired = 2;
    w.name = "n";
    w.correlation_key = "k";
    st.waits.push_back(w);
    st.incidents.push_back({4, 3, 7, "SCRIPT", "boom", true});
    st.compensations.push_back({1, 2, 1});
    st.next_token = 8;
    st.next_wait = 10;
    st.steps = 99;
    st.call_depth = 2;

    auto bytes = st.serialize();
    auto back = InstanceState::deserialize(bytes);
    ASSERT_TRUE(back.ok()) << back.error();
    const auto& b = back.value();
    EXPECT_EQ(b.variables, st.variables);
    ASSERT_EQ(b.tokens.size(), 1u);
    EXPECT_EQ(b.tokens[0].phase, TokenPhase::kWaiting);
    EXPECT_EQ(b.tokens[0].arrived_via, 4u);
    EXPECT_EQ(b.scopes[0].locals, s.locals);
    EXPECT_EQ(b.scopes[0].mi_items, s.mi_items);
    EXPECT_EQ(b.waits[0].due_at, w.due_at);
    EXPECT_EQ(b.waits[0].role, WaitRole::kBoundary);
    EXPECT_EQ(b.waits[0].correlation_key, "k");
    EXPECT_EQ(b.incidents[0].message, "boom");
    EXPECT_TRUE(b.incidents[0].reopen_job);
    EXPECT_EQ(b.compensations.size(), 1u);
    EXPECT_EQ(b.next_wait, 10u);
    EXPECT_EQ(b.steps, 99u);
    EXPECT_EQ(b.call_depth, 2u);
    EXPECT_EQ(b.serialize(), bytes);
    // Written element by element, the bytes are those of the whole root array encoded at once.
    const nlohmann::json root = nlohmann::json::from_msgpack(bytes);
    ASSERT_TRUE(root.is_array());
    ASSERT_EQ(root.size(), 15u);
    EXPECT_EQ(root.at(2), st.variables);
    const std::vector<std::uint8_t> whole = nlohmann::json::to_msgpack(root);
    EXPECT_EQ(std::string(whole.begin(), whole.end()), bytes);
}

TEST(InstanceState, DeserializeRejectsGarbage) {
    EXPECT_FALSE(InstanceState::deserialize("not msgpack").ok());
    EXPECT_FALSE(InstanceState::deserialize("").ok());
    std::vector<std::uint8_t> wrong = nlohmann::json::to_msgpack(nlohmann::json::array({1, 2}));
    EXPECT_FALSE(InstanceState::deserialize(std::string(wrong.begin(), wrong.end())).ok());
}

TEST(InstanceState, RunningInstanceWithIncidentReportsError) {
    InstanceState st;
    EXPECT_EQ(st.api_status(), "RUNNING");
    st.incidents.push_back({1, 0, 1, "SCRIPT", "x", false});
    EXPECT_EQ(st.api_status(), "ERROR");
}

}  // namespace
}  // namespace pythmata::engine::test
