-- wrk script of bench/compare.sh: each request GETs a path picked uniformly
-- at random from the file named by $COMPARE_PATHS (one path a line, relative
-- to the server's root, the same file load_gen reads with --paths_file).
-- Each wrk thread seeds its own PRNG. With $COMPARE_ONCE=SEED (and -t1),
-- every path is requested exactly once instead, in an order shuffled by
-- SEED, and the run ends when the last response is in (wrk's own -d is then
-- only a bound): load_gen --each_once's order for cold-cache cells, where a
-- repeated path would be served warm. When the run ends, done() prints one
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
  if once then
    math.randomseed(once)
    for i = #paths, 2, -1 do
      local j = math.random(i)
      paths[i], paths[j] = paths[j], paths[i]
    end
  end
end

function request()
  if once then
    -- wrk calls request() once before the first delay() to check the
    -- script; that call takes no path.
    if calls == 0 then
      return wrk.format("GET", paths[1])
    end
    sent = sent + 1
    return wrk.format("GET", paths[sent])
  end
  return wrk.format("GET", paths[math.random(#paths)])
end

once = tonumber(os.getenv("COMPARE_ONCE") or "")
if once then
  sent, calls = 0, 0
  local connections = nil

  -- Called before every request, the first of each connection included,
  -- so call k comes after k - connections responses. Past the last path a
  -- connection waits; the call that follows the last response stops the
  -- thread, and SIGINT to wrk's main thread (whose thread id is the process
  -- id) ends its sleep of -d.
  function delay()
    if connections == nil then
      connections = tonumber(os.getenv("COMPARE_CONNECTIONS") or "")
      if connections == nil then
        error("COMPARE_ONCE needs COMPARE_CONNECTIONS (wrk's -c with -t1)")
      end
    end
    calls = calls + 1
    if calls <= #paths then
      return 0
    end
    if calls - connections >= #paths then
      wrk.thread:stop()
      local ffi = require("ffi")
      ffi.cdef("int getpid(void); int tgkill(int tgid, int tid, int sig);")
      local pid = ffi.C.getpid()
      ffi.C.tgkill(pid, pid, 2)  -- SIGINT
    end
    return 3600 * 1000
  end
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
