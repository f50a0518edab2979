-- POST /v2/conversations/<id>/end for a fixed time, logging every request's
-- latency (the sustained mode of the benchmark, sustained.py).
--
--   wrk -t C -c C -d 120s -s end_for.lua -H "x-api-key: KEY" \
--       http://127.0.0.1:PORT -- IDPREFIX START_AT DURATION LOGPREFIX CYCLE [THREADS]
--
-- Run with as many threads as connections (-t C -c C): a wrk thread with one
-- connection has at most one request in flight, so the time its request()
-- returned and the time its next response() runs belong to the same request,
-- and every request's latency can be logged (wrk's own histogram is per run,
-- not per time window).
--
--   * thread <tid> ends the ids of IDPREFIX.<tid> (one per line), each once,
--     in order; with CYCLE=1 it starts over when it reaches the end (for the
--     baselines, which store nothing, so any id will do);
--   * START_AT and DURATION are seconds on CLOCK_MONOTONIC (Python's
--     time.monotonic() on Linux): every thread holds its first request until
--     START_AT, so that the threads, whose init() wrk runs one after the
--     other, all start together, and sends nothing after START_AT + DURATION;
--   * with THREADS (the -t given), START_AT is only the earliest start: the
--     last thread to be initialised (tid THREADS-1) writes LOGPREFIX.go, the
--     moment they all start (START_AT, or 0.2 s after its own init if that is
--     later), and every thread waits for that file. Reading a connection's
--     ids takes wrk's main thread a few µs per id, and with a million ids a
--     fixed START_AT passed while the last threads were still reading them:
--     the first seconds ran with fewer connections, beside wrk's own init;
--   * when a thread is done it writes LOGPREFIX.<tid>: one line per answered
--     request, "<sent> <latency> <status>" with <sent> in microseconds after
--     the shared start and <latency> in microseconds;
--   * a thread that runs out of ids (CYCLE=0) stops early: the driver sees it
--     in the log and declares the run invalid.
--
-- The WRK_JSON summary of common.lua still counts sent / received / statuses.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "common.lua")
local ffi = require("ffi")

pcall(ffi.cdef, [[
int usleep(unsigned int usec);
]])

local reqs = {}
local start_at, stop_at, log_prefix, cycle, threads, go_path, duration
local sent_at = {}   -- per answered request: microseconds after the shared start
local latency = {}   -- per answered request: microseconds
local status_of = {}
local t_request = nil
local started = false
local verify_pending = false

local function write_log()
   local f = assert(io.open(log_prefix .. "." .. tid, "w"))
   local lines = {}
   for i = 1, #latency do
      lines[i] = string.format("%d %d %d", sent_at[i], latency[i], status_of[i])
   end
   f:write(table.concat(lines, "\n"))
   if #lines > 0 then f:write("\n") end
   f:close()
end

setup = common.setup
done = common.done

function init(args)
   local prefix = args[1]
   start_at = tonumber(args[2])
   duration = tonumber(args[3])
   log_prefix = args[4]
   cycle = args[5] == "1"
   if not (prefix and start_at and duration and log_prefix) then
      error("usage: wrk ... -s end_for.lua URL -- IDPREFIX START_AT DURATION LOGPREFIX CYCLE [THREADS]")
   end
   threads = tonumber(args[6])
   go_path = log_prefix .. ".go"
   stop_at = start_at + duration
   verify_pending = (tid == 0)
   local f = assert(io.open(prefix .. "." .. tid, "r"))
   for line in f:lines() do
      local id = line:match("^%s*(%S+)%s*$")
      if id then
         reqs[#reqs + 1] = wrk.format("POST", "/v2/conversations/" .. id .. "/end", nil, "")
      end
   end
   f:close()
   if threads and tid == threads - 1 then
      local go = assert(io.open(go_path .. ".tmp", "w"))
      go:write(string.format("%.6f\n", math.max(start_at, common.now() + 0.2)))
      go:close()
      assert(os.rename(go_path .. ".tmp", go_path))  -- whole or absent for the readers
   end
   local n = #reqs
   common.start_thread(cycle and math.huge or n, function(i)
      return reqs[(i - 1) % n + 1]
   end, write_log)
end

-- The shared start from LOGPREFIX.go, once the last thread has written it.
local function wait_for_go()
   while true do
      local f = io.open(go_path, "r")
      if f then
         local at = tonumber(f:read("*l"))
         f:close()
         if at then return at end
      end
      ffi.C.usleep(2000)
   end
end

function request()
   if verify_pending then
      -- wrk's one-off syntax check on thread 0, in wrk's main thread before
      -- the other threads are set up: answered at once, nothing counted.
      verify_pending = false
      return common.request()
   end
   if not started and threads then
      start_at = wait_for_go()
      stop_at = start_at + duration
   end
   local now = common.now()
   if not started then
      if now < start_at then
         ffi.C.usleep(math.floor((start_at - now) * 1e6))
         now = common.now()
      end
      started = true
   end
   if now >= stop_at then
      common.stop_sending()
      return ""
   end
   local req = common.request()
   t_request = common.now()
   return req
end

function response(status, headers, body)
   local now = common.now()
   if t_request then
      local i = #latency + 1
      sent_at[i] = math.floor((t_request - start_at) * 1e6 + 0.5)
      latency[i] = math.floor((now - t_request) * 1e6 + 0.5)
      status_of[i] = status
      t_request = nil
   end
   common.response(status, headers, body)
end
