-- POST pre-generated bodies, cycling through a file of bodies (one per line) so that
-- consecutive requests carry different events.
--
--   BENCH_BODIES=bodies.ndjson BENCH_AUTH="Basic ..." wrk -s post_bodies.lua --latency URL
--
-- Every response is counted by status; for 2xx answers the collector's "accepted" count
-- and its list of rejected indexes are summed. done() prints one line, "BENCH_JSON {...}",
-- that the benchmark script parses (latencies in microseconds).

local bodies_file = os.getenv("BENCH_BODIES")
local authorization = os.getenv("BENCH_AUTH")
local prepared = {}
local position = 0
local threads = {}

-- Globals of each thread's state: read back with thread:get() in done().
bench_statuses = {}
bench_accepted = 0
bench_rejected = 0

function setup(thread)
   table.insert(threads, thread)
   thread:set("bench_thread_id", #threads)
end

function init(args)
   if not bodies_file then
      error("set BENCH_BODIES to a file of request bodies, one per line")
   end
   local headers = { ["Content-Type"] = "application/json" }
   if authorization and #authorization > 0 then
      headers["Authorization"] = authorization
   end
   for line in io.lines(bodies_file) do
      if #line > 0 then
         prepared[#prepared + 1] = wrk.format("POST", nil, headers, line)
      end
   end
   if #prepared == 0 then
      error("no bodies in " .. bodies_file)
   end
   -- Threads start at different places so they do not send the same bodies in step.
   position = ((bench_thread_id or 1) - 1) * 7919 % #prepared
end

function request()
   position = position % #prepared + 1
   return prepared[position]
end

function response(status, headers, body)
   bench_statuses[status] = (bench_statuses[status] or 0) + 1
   if status >= 200 and status < 300 and body then
      local accepted = body:match('"accepted":(%d+)')
      if accepted then
         bench_accepted = bench_accepted + tonumber(accepted)
         local _, rejected = body:gsub('"index":', "")
         bench_rejected = bench_rejected + rejected
      end
   end
end

function done(summary, latency, requests)
   local statuses, accepted, rejected = {}, 0, 0
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("bench_statuses")) do
         statuses[status] = (statuses[status] or 0) + count
      end
      accepted = accepted + thread:get("bench_accepted")
      rejected = rejected + thread:get("bench_rejected")
   end
   local mix = {}
   for status, count in pairs(statuses) do
      mix[#mix + 1] = string.format('"%d":%d', status, count)
   end
   local e = summary.errors
   print(string.format(
      'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
      '"statuses":{%s},"accepted":%d,"rejected":%d}',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9),
      table.concat(mix, ","), accepted, rejected))
end
