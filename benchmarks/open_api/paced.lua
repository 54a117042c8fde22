-- wrk script for bench_open_api.py: GET one path, each request with the next API key
-- of a file (round robin), after a random pause with the given mean (exponential, so
-- arrivals are roughly Poisson): the offered load stays below saturation and latency
-- measures the work per request, not the queue.
--   wrk ... -s paced.lua http://127.0.0.1:PORT/path -- keys.txt MEAN_DELAY_MS
-- A key file "-" sends no Authorization header; a mean of 0 sends back to back.
-- done() prints one JSON line (latencies in microseconds).

local keys = {}
local mean_delay = 0
local next_key = 0
local made = 0

function setup(thread)
  made = made + 1
  thread:set("seed", made)
end

function init(args)
  if args[1] and args[1] ~= "-" then
    for line in io.lines(args[1]) do
      if #line > 0 then keys[#keys + 1] = line end
    end
  end
  mean_delay = tonumber(args[2] or "0") or 0
  math.randomseed(os.time() * 31 + (seed or 0))
  next_key = math.random(math.max(1, #keys))
end

function request()
  if #keys == 0 then
    return wrk.format("GET")
  end
  next_key = next_key % #keys + 1
  return wrk.format("GET", nil, { Authorization = "Bearer " .. keys[next_key] })
end

function delay()
  if mean_delay <= 0 then return 0 end
  return math.floor(-math.log(1 - math.random()) * mean_delay)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
