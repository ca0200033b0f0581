-- wrk script for bench/plans/review.sh: starts instances of the process PROC, each with its own
-- order_id and business key, a timer due far ahead (`due`) and an amount.
local proc = os.getenv("PROC")
local headers = { ["Content-Type"] = "application/json" }
local threads = 0
local n = 0

function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end

function request()
    n = n + 1
    local body = string.format('{"variables":{"order_id":"o-%d-%d","amount":%d,' ..
        '"due":"2099-01-01T00:00:00Z"},"business_key":"bk-%d-%d"}', tid, n, n % 1000, tid, n)
    return wrk.format("POST", "/api/v1/processes/" .. proc .. "/instances", headers, body)
end
