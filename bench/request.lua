-- wrk script: one kind of request, repeated. Settings from the environment:
--   WRK_METHOD  GET or POST (default POST)
--   WRK_PATH    request path (default /api/v1/processes/straight/instances)
--   WRK_BODY    request body for POST (default {"variables":{"amount":150}})
--   WRK_STATUS  the status a good reply has (default 201)
--   WRK_EXPECT  text a good reply's body must hold (default none, e.g. "COMPLETED")
-- Prints one RESULT line (key=value) that bench/run.sh parses. Latency figures are in ms.
-- "bad" counts replies with another status or without the expected text; socket errors are
-- split into connect/read/write/timeout as wrk reports them.
wrk.method = os.getenv("WRK_METHOD") or "POST"
wrk.path = os.getenv("WRK_PATH") or "/api/v1/processes/straight/instances"
if wrk.method == "POST" then
    wrk.body = os.getenv("WRK_BODY") or '{"variables":{"amount":150}}'
    wrk.headers["Content-Type"] = "application/json"
end

local want_status = tonumber(os.getenv("WRK_STATUS") or "201")
local want_text = os.getenv("WRK_EXPECT") or ""

local threads = {}
function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    good = 0
    bad = 0
    first_bad = ""
end

function response(status, headers, body)
    if status == want_status and (want_text == "" or string.find(body, want_text, 1, true)) then
        good = good + 1
    else
        bad = bad + 1
        if first_bad == "" then
            first_bad = tostring(status) .. ":" .. string.sub(body or "", 1, 120)
        end
    end
end

function done(summary, latency, requests)
    local good_total, bad_total, sample = 0, 0, ""
    for _, t in ipairs(threads) do
        good_total = good_total + t:get("good")
        bad_total = bad_total + t:get("bad")
        local fb = t:get("first_bad")
        if sample == "" and fb ~= nil and fb ~= "" then
            sample = fb
        end
    end
    local secs = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_s=%.2f rps=%.1f ops=%d ops_per_s=%.1f mean_ms=%.2f " ..
        "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f good=%d bad=%d " ..
        "connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
        summary.requests, secs, summary.requests / secs, good_total, good_total / secs,
        latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000, latency.max / 1000, good_total, bad_total,
        e.connect, e.read, e.write, e.timeout))
    if sample ~= "" then
        io.write("FIRST_BAD " .. sample:gsub("\n", " ") .. "\n")
    end
end
