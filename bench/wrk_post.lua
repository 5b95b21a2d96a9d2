-- wrk script (run by bench/http.sh): POST one body with fixed headers, and print one
-- machine-readable summary line when done.
--
--   wrk -t1 -c64 -d5s --latency -s bench/wrk_post.lua URL -- BODY_FILE ["Name: value" ...]
--
-- or, without script arguments, from the environment: WRK_BODY_FILE (the body), and
-- WRK_HEADER_1, WRK_HEADER_2, ... ("Name: value"). A webhook post passes its
-- "X-Hub-Signature-256: sha256=<hex>" header this way. Content-Type defaults to
-- application/json.
--
-- done() prints:
--   WRK requests=N duration_s=S rps=R p50_ms=.. p90_ms=.. p99_ms=.. max_ms=..
--       err_connect=N err_read=N err_write=N err_status=N err_timeout=N bytes=N
-- (err_status counts answers with status >= 400, as wrk does.)
-- luacheck: globals wrk init request done
local req

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function add_header(line)
  local name, value = line:match("^%s*([^:]+):%s*(.-)%s*$")
  assert(name, "bad header (want 'Name: value'): " .. line)
  wrk.headers[name] = value
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local body_file = args[1] or os.getenv("WRK_BODY_FILE")
  assert(body_file, "wrk_post.lua: a body file (script argument or WRK_BODY_FILE) is required")
  wrk.body = read_file(body_file)
  if #args > 1 then
    for i = 2, #args do add_header(args[i]) end
  else
    local i = 1
    while os.getenv("WRK_HEADER_" .. i) do
      add_header(os.getenv("WRK_HEADER_" .. i))
      i = i + 1
    end
  end
  req = wrk.format()
end

function request()
  return req
end

function done(summary, latency, _)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "WRK requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
      .. "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d bytes=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout, summary.bytes))
end
