-- Shared machinery for the Palaver wrk scripts (wrk 4.x, LuaJIT).
--
-- wrk has no "run exactly N requests" mode, so the scripts implement it:
--
--   * setup(thread) (main Lua state) numbers the threads 0..T-1 and keeps
--     them so that done() can read their counters back with thread:get().
--   * each thread gets a fixed quota of requests.  request() hands out real
--     requests until the quota is used up and then returns "" (an empty
--     request: wrk writes nothing and the connection stays idle), so the
--     server never sees a request beyond the quota.
--   * response() counts responses per status; when the thread has received
--     its whole quota it records the end time, prints
--     "WRK_THREAD_DONE <tid>" on stderr and stops its event loop
--     (wrk.thread:stop()).
--   * wrk's main thread still sleeps for the whole -d duration regardless of
--     stopped threads, so the driver (benchmarks/run.py) watches stderr and
--     sends SIGINT to wrk once every thread reported done; wrk then prints
--     its usual report and calls done(), which prints one line
--     "WRK_JSON {...}" on stdout with the figures.
--
-- Throughput is measured here rather than taken from wrk, whose duration is
-- "wall time until the main thread woke up": per thread, from its first real
-- request() to its last response(), using CLOCK_MONOTONIC through the LuaJIT
-- FFI; the run's duration is max(end) - min(start) over the threads.
--
-- Quirk handled here: wrk calls request() once on thread 0's Lua state
-- *before* the thread starts, only to check that the request parses (and to
-- count pipelined requests).  That request is never sent, so thread 0 must
-- not count it against its quota nor consume an id for it.

local ffi = require("ffi")

pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } palaver_bench_timespec;
int clock_gettime(int clk_id, palaver_bench_timespec *tp);
]])

local CLOCK_MONOTONIC = 1
local ts = ffi.new("palaver_bench_timespec")

local M = {}

function M.now()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
   return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- Number of items (out of `total`) thread `tid` of `nthreads` is responsible
-- for when items are dealt round-robin: item k (0-based) goes to thread
-- k % nthreads.
function M.share(total, nthreads, tid)
   local q = math.floor(total / nthreads)
   if tid < total % nthreads then q = q + 1 end
   return q
end

local function quote(s)
   s = s:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
   end)
   return '"' .. s .. '"'
end

local function encode(v)
   local t = type(v)
   if t == "table" then
      local n = #v
      if n > 0 then
         local items = {}
         for i = 1, n do items[i] = encode(v[i]) end
         return "[" .. table.concat(items, ",") .. "]"
      end
      local parts = {}
      for k, x in pairs(v) do
         parts[#parts + 1] = quote(tostring(k)) .. ":" .. encode(x)
      end
      return "{" .. table.concat(parts, ",") .. "}"
   elseif t == "number" then
      if v ~= v or v == math.huge or v == -math.huge then return "null" end
      if v == math.floor(v) and math.abs(v) < 2^53 then
         return string.format("%d", v)
      end
      return string.format("%.9g", v)
   elseif t == "string" then
      return quote(v)
   elseif t == "boolean" then
      return tostring(v)
   end
   return "null"
end
M.encode = encode

------------------------------------------------------------------------------
-- Per-thread state and the request/response protocol.  A script calls
-- M.start_thread(quota, make_request) from init(); make_request(i) returns the
-- i-th (1-based) request string of this thread.

local st = {}

function M.start_thread(quota, make_request, on_finish)
   st.on_finish = on_finish  -- optional: called once, when the thread is done
   st.quota = quota
   st.make_request = make_request
   st.sent = 0
   st.received = 0
   st.statuses = {}
   st.done = false
   -- global tid was set by setup() through thread:set() before init() ran.
   st.verify_pending = (tid == 0)
   -- Exported for done() (read with thread:get, which reads globals).
   bench_quota = quota
   bench_sent = 0
   bench_received = 0
   bench_statuses = st.statuses
   bench_t_start = -1
   bench_t_end = -1
end

local function finish()
   if st.done then return end
   st.done = true
   bench_t_end = M.now()
   if bench_t_start < 0 then bench_t_start = bench_t_end end
   if st.on_finish then st.on_finish() end
   io.stderr:write(string.format("WRK_THREAD_DONE %d\n", tid))
   io.stderr:flush()
   wrk.thread:stop()
end

function M.request()
   if st.verify_pending then
      -- wrk's one-off syntax check on thread 0 (never sent): any valid
      -- request will do, and nothing is counted or consumed.
      st.verify_pending = false
      return st.make_request(1)
   end
   if st.sent >= st.quota then
      if st.quota == 0 then finish() end
      return ""
   end
   if st.sent == 0 then bench_t_start = M.now() end
   st.sent = st.sent + 1
   bench_sent = st.sent
   return st.make_request(st.sent)
end

-- Send nothing more: the thread finishes once the requests already sent are
-- answered (time-bounded scripts call this at their deadline, from request()).
function M.stop_sending()
   st.quota = st.sent
   bench_quota = st.sent
   if st.received >= st.quota then finish() end
end

function M.response(status, headers, body)
   st.received = st.received + 1
   bench_received = st.received
   st.statuses[status] = (st.statuses[status] or 0) + 1
   if st.received >= st.quota then finish() end
end

------------------------------------------------------------------------------
-- Main-state side: thread numbering and the JSON summary.

local threads = {}

function M.setup(thread)
   thread:set("tid", #threads)
   threads[#threads + 1] = thread
end

function M.done(summary, latency, requests)
   local per_thread = {}
   local statuses = {}
   local sent, received = 0, 0
   local t0, t1 = nil, nil
   for i, thread in ipairs(threads) do
      local s = thread:get("bench_t_start")
      local e = thread:get("bench_t_end")
      local th = {
         tid = i - 1,
         quota = thread:get("bench_quota"),
         sent = thread:get("bench_sent"),
         received = thread:get("bench_received"),
         t_start = s,
         t_end = e,
      }
      per_thread[#per_thread + 1] = th
      sent = sent + (th.sent or 0)
      received = received + (th.received or 0)
      for code, n in pairs(thread:get("bench_statuses") or {}) do
         local key = tostring(code)
         statuses[key] = (statuses[key] or 0) + n
      end
      if s and s >= 0 then
         if t0 == nil or s < t0 then t0 = s end
      end
      if e and e >= 0 then
         if t1 == nil or e > t1 then t1 = e end
      end
   end
   local elapsed = (t0 and t1) and (t1 - t0) or -1

   local out = {
      sent = sent,
      received = received,
      statuses = statuses,
      elapsed_s = elapsed,
      threads = per_thread,
      wrk = {
         requests = summary.requests,
         duration_us = summary.duration,
         bytes = summary.bytes,
         errors = summary.errors,
      },
      latency_us = {
         min = latency.min,
         mean = latency.mean,
         stdev = latency.stdev,
         max = latency.max,
         p50 = latency:percentile(50),
         p75 = latency:percentile(75),
         p90 = latency:percentile(90),
         p99 = latency:percentile(99),
         p999 = latency:percentile(99.9),
      },
   }
   io.write("WRK_JSON " .. encode(out) .. "\n")
   io.flush()
end

return M
