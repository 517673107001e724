-- wrk script for the Faregate benchmark: POST a JSON body, optional rotating bearer keys,
-- and a done() that prints one machine-readable line:  BENCH_RESULT {json}
--
-- Environment:
--   BENCH_BODY_FILE  file holding the JSON request body (required)
--   BENCH_KEYS_FILE  file with one API key per line (optional; none = no Authorization header)
--   BENCH_PATH       request path (default /v1/chat/completions)
--
-- With 0 or 1 key the request is static (wrk's fast path); with more, each connection's
-- requests rotate through prebuilt requests, one per key.

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local body = read_file(assert(os.getenv("BENCH_BODY_FILE"), "BENCH_BODY_FILE not set"))
local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
local keys = {}
local keys_file = os.getenv("BENCH_KEYS_FILE")
if keys_file and keys_file ~= "" then
  for line in io.lines(keys_file) do
    if line ~= "" then keys[#keys + 1] = line end
  end
end

wrk.method = "POST"
wrk.path = path
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
if #keys == 1 then
  wrk.headers["Authorization"] = "Bearer " .. keys[1]
end

if #keys > 1 then
  local requests = {}
  local idx = 0
  local counter = 0

  function setup(thread)
    thread:set("thread_index", counter)
    counter = counter + 1
  end

  function init(args)
    for i, key in ipairs(keys) do
      requests[i] = wrk.format("POST", path, {
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. key,
      }, body)
    end
    -- threads start at different keys
    idx = ((thread_index or 0) * 7) % #requests
  end

  function request()
    idx = idx % #requests + 1
    return requests[idx]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_stdev_us":%.1f,"lat_min_us":%d,"lat_max_us":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.min, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
