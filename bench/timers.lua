-- wrk script for bench/timers.sh: each thread starts TIMER_COUNT / threads instances of
-- `timerbench` with variable due = TIMER_DUE, then only sends GET /health until wrk stops.
local total = tonumber(os.getenv("TIMER_COUNT") or "100000")
local due = os.getenv("TIMER_DUE")
local nthreads = tonumber(os.getenv("TIMER_THREADS") or "2")
local body = '{"variables":{"due":"' .. due .. '"}}'
local headers = { ["Content-Type"] = "application/json" }
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    sent = 0
    started = 0
    bad = 0
end

function request()
    if sent < total / nthreads then
        sent = sent + 1
        return wrk.format("POST", "/api/v1/processes/timerbench/instances", headers, body)
    end
    return wrk.format("GET", "/health")
end

function response(status, headers, body)
    if status == 201 then
        started = started + 1
    elseif status ~= 200 then
        bad = bad + 1
    end
end

function done(summary, latency, requests)
    local s, b = 0, 0
    for _, t in ipairs(threads) do
        s = s + t:get("started")
        b = b + t:get("bad")
    end
    io.write(string.format("RESULT started=%d bad=%d\n", s, b))
end
