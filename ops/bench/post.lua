-- wrk script of ops/bench/ingest: POST webhook bodies that are never duplicates, count answers by status.
--
--   wrk -s ops/bench/post.lua URL -- TOKEN RUN_ID TEMPLATE
--
-- TEMPLATE is the JSON body with @ID@ (replaced by RUN_ID, the thread and a counter: digits, as Zoho's ids
-- are, and unique per request) and @TS@
-- (the current UTC time, as Zoho writes it). At the end one line "BENCH_JSON {...}" gives the totals.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  token = args[1] or ""
  run_id = args[2] or "run"
  template = args[3] or '{"item": {"item_id": "@ID@"}}'
  counter = 0
  n202, n200, n4xx, n5xx, nother = 0, 0, 0, 0, 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-TDS-Webhook-Token"] = token
end

function request()
  counter = counter + 1
  local id = run_id .. string.format("%02d%010d", tid, counter)
  local ts = os.date("!%Y-%m-%dT%H:%M:%S+0000")
  local body = template:gsub("@ID@", id):gsub("@TS@", ts)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status == 202 then
    n202 = n202 + 1
  elseif status == 200 then
    n200 = n200 + 1
  elseif status >= 400 and status < 500 then
    n4xx = n4xx + 1
  elseif status >= 500 then
    n5xx = n5xx + 1
  else
    nother = nother + 1
  end
end

function done(summary, latency, requests)
  local t = {n202 = 0, n200 = 0, n4xx = 0, n5xx = 0, nother = 0, sent = 0}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do
      if k ~= "sent" then
        t[k] = t[k] + (thread:get(k) or 0)
      end
    end
    t.sent = t.sent + (thread:get("counter") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "n202": %d, "n200": %d, "n4xx": %d, "n5xx": %d, '
    .. '"nother": %d, "sent": %d, "err_connect": %d, "err_read": %d, "err_write": %d, "err_status": %d, '
    .. '"err_timeout": %d, "lat_p50_us": %d, "lat_p99_us": %d, "lat_max_us": %d}\n',
    summary.requests, summary.duration, t.n202, t.n200, t.n4xx, t.n5xx, t.nother, t.sent,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
