// Engine throughput: straight-through instances per second on one core, history on.
//   straight: start, 5 python-style script tasks `counter += 1` (StraightThroughLua: the same in
//             Lua, `counter = counter + 1`), an exclusive gateway on
//             `amount > 100`, one script task per branch, end.
//   parallel: start, AND split into 3 script tasks, join, end.
// Run: build/<dir>/bench/engine_bench  (items_per_second = instances/s).

#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "pythmata/bpmn/parser.hpp"
#include "pythmata/engine/engine.hpp"

namespace {

using namespace pythmata;

std::string document(const std::string& body) {
    return R"(<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="b">
<process id="p" isExecutable="true">)" +
           body + "</process></definitions>";
}

/// `lua`: the same process with Lua script tasks (`counter = counter + 1`).
std::string straight_body(bool lua = false) {
    std::string b =
        R"(<startEvent id="start"/><sequenceFlow id="f0" sourceRef="start" targetRef="s1"/>)";
    for (int i = 1; i <= 5; ++i) {
        auto id = "s" + std::to_string(i);
        auto next = i < 5 ? "s" + std::to_string(i + 1) : std::string("gw");
        b += "<scriptTask id=\"" + id + "\" scriptFormat=\"" + (lua ? "lua" : "python") +
             "\"><script>" + (lua ? "counter = counter + 1" : "counter += 1") +
             "</script></scriptTask>";
        b += "<sequenceFlow id=\"f" + id + "\" sourceRef=\"" + id + "\" targetRef=\"" + next +
             "\"/>";
    }
    b += R"(<exclusiveGateway id="gw" default="low"/>
<sequenceFlow id="high" sourceRef="gw" targetRef="big"><conditionExpression>amount > 100</conditionExpression></sequenceFlow>
<sequenceFlow id="low" sourceRef="gw" targetRef="small"/>
<scriptTask id="big" scriptFormat="FORMAT"><script>size = "big"</script></scriptTask>
<scriptTask id="small" scriptFormat="FORMAT"><script>size = "small"</script></scriptTask>
<sequenceFlow id="fb" sourceRef="big" targetRef="end"/>
<sequenceFlow id="fs" sourceRef="small" targetRef="end"/>
<endEvent id="end"/>)";
    for (auto pos = b.find("FORMAT"); pos != std::string::npos; pos = b.find("FORMAT")) {
        b.replace(pos, 6, lua ? "lua" : "python");
    }
    return b;
}

std::string parallel_body() {
    return R"(<startEvent id="start"/><sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
<parallelGateway id="fork"/>
<sequenceFlow id="a1" sourceRef="fork" targetRef="a"/><sequenceFlow id="b1" sourceRef="fork" targetRef="b"/>
<sequenceFlow id="c1" sourceRef="fork" targetRef="c"/>
<scriptTask id="a" scriptFormat="python"><script>x = 1</script></scriptTask>
<scriptTask id="b" scriptFormat="python"><script>y = 2</script></scriptTask>
<scriptTask id="c" scriptFormat="python"><script>z = 3</script></scriptTask>
<sequenceFlow id="a2" sourceRef="a" targetRef="join"/><sequenceFlow id="b2" sourceRef="b" targetRef="join"/>
<sequenceFlow id="c2" sourceRef="c" targetRef="join"/>
<parallelGateway id="join"/><sequenceFlow id="f9" sourceRef="join" targetRef="end"/>
<endEvent id="end"/>)";
}

std::shared_ptr<const engine::CompiledProcess> compiled(const std::string& body) {
    auto parsed = bpmn::parse(document(body));
    if (!parsed) {
        return nullptr;
    }
    auto cp = engine::compile(parsed.value().definitions, "p");
    return cp ? cp.value() : nullptr;
}

void run_instances(benchmark::State& state, const std::string& body, bool history) {
    auto cp = compiled(body);
    if (!cp) {
        state.SkipWithError("process does not compile");
        return;
    }
    engine::EngineLimits limits;
    limits.history = history;
    const nlohmann::json vars = {{"counter", 0}, {"amount", 150}};
    const auto now = from_epoch_ms(1'800'000'000'000);
    std::size_t tokens = 0;
    for (auto _ : state) {
        engine::InstanceState st;
        auto fx = engine::Engine::execute(*cp, st, engine::Start{vars, {}, 0}, now, limits);
        if (!fx || fx.value().status != engine::InstanceStatus::kCompleted) {
            state.SkipWithError("instance did not complete");
            return;
        }
        tokens += fx.value().tokens_processed;
        benchmark::DoNotOptimize(fx);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
    state.counters["tokens_per_instance"] =
        static_cast<double>(tokens) / static_cast<double>(state.iterations());
}

void BM_StraightThrough(benchmark::State& state) {
    run_instances(state, straight_body(), true);
}
void BM_StraightThroughNoHistory(benchmark::State& state) {
    run_instances(state, straight_body(), false);
}
void BM_StraightThroughLua(benchmark::State& state) {
    run_instances(state, straight_body(true), true);
}
void BM_ParallelSplitJoin(benchmark::State& state) {
    run_instances(state, parallel_body(), true);
}

void BM_SerializeRoundTrip(benchmark::State& state) {
    auto cp =
        compiled(R"(<startEvent id="start"/><sequenceFlow id="f0" sourceRef="start" targetRef="u"/>
<userTask id="u"/><sequenceFlow id="f1" sourceRef="u" targetRef="end"/><endEvent id="end"/>)");
    engine::InstanceState st;
    auto fx = engine::Engine::execute(*cp, st, engine::Start{{{"order", 12}, {"name", "x"}}, {}, 0},
                                      from_epoch_ms(0));
    for (auto _ : state) {
        auto bytes = st.serialize();
        auto back = engine::InstanceState::deserialize(bytes);
        benchmark::DoNotOptimize(back);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

BENCHMARK(BM_StraightThrough);
BENCHMARK(BM_StraightThroughNoHistory);
BENCHMARK(BM_StraightThroughLua);
BENCHMARK(BM_ParallelSplitJoin);
BENCHMARK(BM_SerializeRoundTrip);

}  // namespace

BENCHMARK_MAIN();
