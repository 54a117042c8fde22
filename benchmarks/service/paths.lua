-- wrk script: every request GETs a random path from a file, one path per line.
--   wrk ... -s paths.lua http://127.0.0.1:PORT -- /tmp/paths.txt
-- done() prints one JSON line (latencies in microseconds) for bench_service.py.

local paths = {}
local made = 0

function setup(thread)
  -- Each wrk thread has its own Lua state: give each its own random seed.
  made = made + 1
  thread:set("seed", made)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  math.randomseed(os.time() * 31 + (seed or 0))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
