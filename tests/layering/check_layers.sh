#!/usr/bin/env bash
# Fails when a pure layer (bpmn, expr, script, engine, common) includes Asio, Beast, libpqxx,
# hiredis, prometheus-cpp or spdlog, directly or through a project header of an outer layer.
set -uo pipefail
root=${1:-.}
cd "$root" || exit 2
pure_layers=(common bpmn expr script engine)
outer_layers=(app config http store cache metrics)
forbidden='#\s*include\s*[<"](boost/(asio|beast)|asio|pqxx|libpq|hiredis|prometheus|spdlog)'
outer='#\s*include\s*[<"]pythmata/('"$(IFS='|'; echo "${outer_layers[*]}")"')/'
status=0
for layer in "${pure_layers[@]}"; do
    for dir in "include/pythmata/$layer" "src/$layer"; do
        [ -d "$dir" ] || continue
        if hits=$(grep -rnE "$forbidden|$outer" "$dir" --include='*.hpp' --include='*.cpp' --include='*.h'); then
            echo "layering violation in $dir:"
            echo "$hits"
            status=1
        fi
    done
done
checked=$(find "${pure_layers[@]/#/src/}" "${pure_layers[@]/#/include/pythmata/}" -name '*.[ch]pp' 2>/dev/null | wc -l)
echo "checked $checked files of the pure layers"
[ "$checked" -gt 0 ] || { echo "no pure-layer files found"; exit 1; }
exit $status
