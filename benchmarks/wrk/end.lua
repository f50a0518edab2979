-- POST /v2/conversations/<id>/end once for every id in IDFILE (one id per
-- line), the ids dealt round-robin to the wrk threads so that each id is
-- ended by exactly one thread, exactly once.
--
--   wrk --latency -t T -c C -d 300s -s end.lua -H "x-api-key: KEY" \
--       http://127.0.0.1:PORT -- IDFILE T
--
-- IDFILE and T (the same value as -t) come after "--".  Per-status counts
-- are reported in the WRK_JSON line printed by done() (see common.lua); any
-- status other than 200 means the benchmark or the server is wrong.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "common.lua")

-- Optional pacing (webhooks mode, --end-rate): each connection waits this many
-- milliseconds between its requests, so the load is a steady rate rather than
-- as fast as the server answers.
local pace = tonumber(os.getenv("PALAVER_BENCH_DELAY_MS") or "")
if pace and pace > 0 then
   function delay() return pace end
end

setup = common.setup
done = common.done
request = common.request
response = common.response

function init(args)
   local path = args[1]
   local nthreads = tonumber(args[2])
   if not path or not nthreads then
      error("usage: wrk ... -s end.lua URL -- IDFILE THREADS")
   end
   local f = assert(io.open(path, "r"))
   local mine = {}
   local k = 0
   for line in f:lines() do
      local id = line:match("^%s*(%S+)%s*$")
      if id then
         if k % nthreads == tid then mine[#mine + 1] = id end
         k = k + 1
      end
   end
   f:close()

   -- Pre-build the requests so the client spends as little CPU as possible
   -- while measuring.  An empty body still gets "Content-Length: 0".
   local reqs = {}
   for i, id in ipairs(mine) do
      reqs[i] = wrk.format("POST", "/v2/conversations/" .. id .. "/end",
                           nil, "")
   end
   local fallback = wrk.format("GET", "/health", nil, nil)
   common.start_thread(#reqs, function(i) return reqs[i] or fallback end)
end
