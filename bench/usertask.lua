-- wrk script: user task pairs. Each connection sends whatever step is pending in its thread:
--   1. POST /api/v1/processes/usertask/instances            -> 201, the instance is RUNNING and
--      its "opened_tasks" name the open task
--   2. POST /api/v1/tasks/TASK/complete                     -> 200, the instance COMPLETED
-- WRK_PAIR=lookup adds the step a client that ignores "opened_tasks" takes between the two:
--   GET /api/v1/tasks?instance_id=ID -> 200, the open task's id (three requests per pair).
-- wrk does not say which request a reply answers, so the reply is recognised by its body. A
-- thread keeps a queue of follow-up steps; a connection with nothing pending starts a new
-- instance. One pair = one instance started AND its task completed; ops_per_s is pairs/s, rps
-- counts every request.
-- WRK_FLAVOR=peer drives ../shared/peers/bpmn-engine/server.js instead: its start reply is
-- "ACTIVE" with the instance id and POST /api/v1/instances/ID/complete completes it (2 requests).
local flavor = os.getenv("WRK_FLAVOR") or "pythmata"
local lookup = os.getenv("WRK_PAIR") == "lookup"
local start_path = os.getenv("WRK_PATH") or "/api/v1/processes/usertask/instances"
local json_headers = { ["Content-Type"] = "application/json" }
local start_body = '{"variables":{"amount":150}}'
local complete_body = '{"variables":{"approved":true}}'

local threads = {}
function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    good = 0 -- completed pairs
    bad = 0
    started = 0
    first_bad = ""
    pending = {}
    head, tail = 1, 0
end

local function push(req)
    tail = tail + 1
    pending[tail] = req
end

function request()
    if head <= tail then
        local req = pending[head]
        pending[head] = nil
        head = head + 1
        return req
    end
    return wrk.format("POST", start_path, json_headers, start_body)
end

local function fail(status, body)
    bad = bad + 1
    if first_bad == "" then
        first_bad = tostring(status) .. ":" .. string.sub(body or "", 1, 120)
    end
end

function response(status, headers, body)
    if flavor == "peer" then
        if status == 201 and string.find(body, '"ACTIVE"', 1, true) then
            local id = string.match(body, '"id":"([0-9a-f%-]+)"')
            started = started + 1
            push(wrk.format("POST", "/api/v1/instances/" .. id .. "/complete", json_headers,
                            complete_body))
        elseif status == 200 and string.find(body, '"COMPLETED"', 1, true) then
            good = good + 1
        else
            fail(status, body)
        end
        return
    end
    if status == 201 and string.find(body, '"process_key"', 1, true) then
        started = started + 1
        local task = not lookup and
            string.match(body, '"opened_tasks":%[{"element_id":"[^"]*","id":"([0-9a-f%-]+)"')
        if task then
            push(wrk.format("POST", "/api/v1/tasks/" .. task .. "/complete", json_headers,
                            complete_body))
        else
            local id = string.match(body, '"id":"([0-9a-f%-]+)"')
            push(wrk.format("GET", "/api/v1/tasks?instance_id=" .. id))
        end
    elseif status == 200 and string.find(body, '"items"', 1, true) then
        local id = string.match(body, '"id":"([0-9a-f%-]+)"')
        if id then
            push(wrk.format("POST", "/api/v1/tasks/" .. id .. "/complete", json_headers,
                            complete_body))
        else
            fail(status, body)
        end
    elseif status == 200 and string.find(body, '"COMPLETED"', 1, true) then
        good = good + 1
    else
        fail(status, body)
    end
end

function done(summary, latency, requests)
    local good_total, bad_total, started_total, sample = 0, 0, 0, ""
    for _, t in ipairs(threads) do
        good_total = good_total + t:get("good")
        bad_total = bad_total + t:get("bad")
        started_total = started_total + t:get("started")
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
        "connect_err=%d read_err=%d write_err=%d timeouts=%d started=%d\n",
        summary.requests, secs, summary.requests / secs, good_total, good_total / secs,
        latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000, latency.max / 1000, good_total, bad_total,
        e.connect, e.read, e.write, e.timeout, started_total))
    if sample ~= "" then
        io.write("FIRST_BAD " .. sample:gsub("\n", " ") .. "\n")
    end
end
