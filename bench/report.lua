-- wrk script: optional method/body from the environment, per-status counts, and one JSON
-- line at the end (requests, latency percentiles) for bench/load.py to parse.
local method = os.getenv("WRK_METHOD")
local body = os.getenv("WRK_BODY")
local count_status = os.getenv("WRK_COUNT_STATUS")
if method then wrk.method = method end
if body then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

if count_status then
  -- Defined only when asked: wrk parses every response body once `response` exists.
  function response(status, headers, body)
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
  end
end

function done(summary, latency, requests)
  local parts = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses") or {}
    for key, n in pairs(counts) do
      parts[key] = (parts[key] or 0) + n
    end
  end
  local status_json = {}
  for key, n in pairs(parts) do
    table.insert(status_json, string.format('"%s":%d', key, n))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p95_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"mean_us":%.1f,"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean, table.concat(status_json, ",")))
end
