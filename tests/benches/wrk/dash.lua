-- wrk script for Tessera's HTTP benchmarks (scripts/bench.sh).
--
--   TESSERA_WRK_MODE=MODE wrk -t2 -c16 -d10s --latency -s dash.lua http://HOST:PORT
--
-- MODE (an environment variable, because wrk's done() runs in a Lua state that never sees
-- init()'s arguments) is one of
--   healthz  GET /healthz (the baseline; the handler pings the database with `select 1`)
--   layout   GET the sales explorer's _dash-layout (app lookup and HTTP, no callback)
--   summary  POST the Dash renderer's body for the sales explorer's summary.children callback
--   chart    POST the Dash renderer's body for its revenue-chart.figure callback
-- The region rotates through all eight so the server cannot answer from one cached result.
-- At the end one line is printed for bench.sh to parse:
--   RESULT mode=<m> requests=<n> rps=<req/s> p50_us=<..> p99_us=<..> errors=<socket+status errors>

-- TESSERA_WRK_PREFIX serves another copy of the app (the Python sales explorer: scripts/bench-python.sh).
local prefix = os.getenv("TESSERA_WRK_PREFIX") or "/apps/demo/sales-explorer/"
local regions = { "North", "South", "East", "West", "Central", "Northeast", "Southwest", "Pacific" }
local mode = os.getenv("TESSERA_WRK_MODE") or "healthz"
local counter = 0
local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }

-- The bodies are exactly what dash-renderer 3.4.1 posts when the region dropdown changes.
local function summary_body(region)
  return '{"output":"summary.children","outputs":{"id":"summary","property":"children"},'
    .. '"inputs":[{"id":"region","property":"value","value":"' .. region .. '"}],'
    .. '"changedPropIds":["region.value"],"parsedChangedPropsIds":["region.value"]}'
end

local function chart_body(region)
  return '{"output":"revenue-chart.figure","outputs":{"id":"revenue-chart","property":"figure"},'
    .. '"inputs":[{"id":"region","property":"value","value":"' .. region .. '"},'
    .. '{"id":"year","property":"value","value":[2015,2024]}],'
    .. '"changedPropIds":["region.value"],"parsedChangedPropsIds":["region.value"]}'
end

-- Pre-format one request per region so the Lua side costs next to nothing per request.
local prepared = {}

function init(args)
  for i, region in ipairs(regions) do
    if mode == "summary" then
      prepared[i] = wrk.format("POST", prefix .. "_dash-update-component", headers, summary_body(region))
    elseif mode == "chart" then
      prepared[i] = wrk.format("POST", prefix .. "_dash-update-component", headers, chart_body(region))
    elseif mode == "healthz" then
      prepared[i] = wrk.format("GET", "/healthz")
    elseif mode == "layout" then
      prepared[i] = wrk.format("GET", prefix .. "_dash-layout")
    else
      error("unknown mode " .. mode .. " (expected healthz, layout, summary or chart)")
    end
  end
end

function request()
  counter = counter + 1
  return prepared[(counter % #prepared) + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout + e.status
  io.write(string.format(
    "RESULT mode=%s requests=%d rps=%.1f p50_us=%d p99_us=%d errors=%d\n",
    mode, summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), errors))
end
