#!/usr/bin/env bash
# Builds the libFuzzer targets in build/fuzz (clang-14, ASan + UBSan, coverage in every layer)
# and runs each for SECONDS (default 60). Inputs that crashed before (tests/fuzz/regressions/
# <target>/) are replayed first. New crashers (crash-*, leak-*, timeout-*, oom-*) are saved in
# tests/fuzz/regressions/<target>/ -- commit them with the fix -- and the script exits non-zero.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]      e.g. tests/fuzz/run.sh 300 fuzz_expression
#   make fuzz SECONDS=120
#
# Environment: FUZZ_JOBS (ninja parallelism, default 2), FUZZ_BUILD_DIR (default build/fuzz).
set -uo pipefail

seconds=${1:-60}
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build/fuzz}
jobs=${FUZZ_JOBS:-2}
all_targets=(fuzz_bpmn_parser fuzz_timer_spec fuzz_expression fuzz_statements fuzz_lua_script
             fuzz_json_request)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

for tool in clang-14 clang++-14 cmake ninja; do
    if ! command -v "$tool" >/dev/null; then
        echo "fuzz: $tool not found (Debian packages clang-14, cmake, ninja-build)" >&2
        exit 2
    fi
done

sanitizers="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
sanitizers+=" -fno-omit-frame-pointer"
echo "== configuring $build"
if ! cmake -S "$root" -B "$build" -G Ninja \
        -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
        -DCMAKE_C_FLAGS="$sanitizers" -DCMAKE_CXX_FLAGS="$sanitizers" \
        -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
        -DPYTHMATA_BUILD_FUZZ=ON -DPYTHMATA_BUILD_TESTS=OFF -DPYTHMATA_BUILD_BENCH=OFF \
        >"$build.configure.log" 2>&1; then
    cat "$build.configure.log" >&2
    echo "fuzz: configure failed" >&2
    exit 2
fi

# The target list is read once into a variable: piping ninja into `grep -q` under pipefail
# fails at random (grep exits at the first match and ninja dies of SIGPIPE).
known=$(ninja -C "$build" -t targets all 2>/dev/null)
available=()
for target in "${targets[@]}"; do
    if grep -q "^$target:" <<<"$known"; then
        available+=("$target")
    else
        echo "fuzz: $target is not available (its layer is not in the build yet), skipped" >&2
    fi
done
[ ${#available[@]} -gt 0 ] || { echo "fuzz: nothing to run" >&2; exit 2; }

echo "== building ${available[*]}"
if ! ninja -C "$build" -j "$jobs" "${available[@]}"; then
    echo "fuzz: build failed" >&2
    exit 2
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
summary=()
for target in "${available[@]}"; do
    binary="$build/tests/fuzz/$target"
    regressions="$here/regressions/$target"
    seeds="$here/corpus/$target"
    work="$build/corpus/$target"
    mkdir -p "$regressions" "$work" "$seeds"

    mapfile -t old < <(find "$regressions" -maxdepth 1 -type f ! -name '.gitkeep' | sort)
    if [ ${#old[@]} -gt 0 ]; then
        echo "== $target: replaying ${#old[@]} saved regression(s)"
        if ! "$binary" -timeout=10 -rss_limit_mb=2048 "${old[@]}" >"$build/$target.replay.log" 2>&1; then
            tail -n 40 "$build/$target.replay.log"
            echo "fuzz: $target still fails on a saved regression (log: $build/$target.replay.log)"
            summary+=("$target: REGRESSION STILL FAILS")
            status=1
            continue
        fi
    fi

    dict=()
    [ -f "$here/dict/$target.dict" ] && dict=("-dict=$here/dict/$target.dict")
    echo "== $target: fuzzing for ${seconds}s"
    before=$(find "$regressions" -maxdepth 1 -type f ! -name '.gitkeep' | wc -l)
    "$binary" "$work" "$seeds" "${dict[@]}" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -report_slow_units=100000 -print_final_stats=1 \
        -artifact_prefix="$regressions/" >"$build/$target.log" 2>&1
    rc=$?
    after=$(find "$regressions" -maxdepth 1 -type f ! -name '.gitkeep' | wc -l)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/$target.log" | grep -o '[0-9]*$')
    if [ $rc -ne 0 ] || [ "$after" -gt "$before" ]; then
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written|==[0-9]+==' "$build/$target.log" | head -n 20
        echo "fuzz: $target FAILED (exit $rc); crasher saved in $regressions (log: $build/$target.log)"
        summary+=("$target: FAILED, ${execs:-?} runs")
        status=1
    else
        summary+=("$target: ok, ${execs:-?} runs in ${seconds}s")
    fi
done

echo "== summary"
printf '  %s\n' "${summary[@]}"
exit $status
