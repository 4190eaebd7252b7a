-- wrk script of bench/compare.sh: each request GETs a path picked uniformly
-- at random from the file named by $COMPARE_PATHS (one path a line, relative
-- to the server's root, the same file load_gen reads with --paths_file).
-- Each wrk thread seeds its own PRNG. When the run ends, done() prints one
-- line "WRKJSON {...}" with the totals and latency percentiles (µs), which
-- bench/compare.py parses; wrk's own --latency report is printed as well.

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  local name = os.getenv("COMPARE_PATHS")
  if name == nil then
    error("COMPARE_PATHS is not set")
  end
  paths = {}
  for line in io.lines(name) do
    if line ~= "" then
      paths[#paths + 1] = "/" .. line
    end
  end
  if #paths == 0 then
    error("no paths in " .. name)
  end
  math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max))
end
