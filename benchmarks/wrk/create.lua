-- POST /v2/conversations exactly TOTAL times, split across the wrk threads.
--
--   wrk --latency -t T -c C -d 300s -s create.lua -H "x-api-key: KEY" \
--       http://127.0.0.1:PORT -- TOTAL T
--
-- TOTAL and T (the same value as -t) come after "--".  The API key is passed
-- with -H so that it lands in wrk.headers.  See common.lua for how the
-- request count is enforced and how results are reported (WRK_JSON line).
--
-- The JSON body can be replaced with the environment variable
-- PALAVER_BENCH_CREATE_BODY (run.py --webhooks uses it to add a callback_url).
--
-- With PALAVER_BENCH_IDS_OUT=PREFIX each thread writes the conversation_id of
-- every 200 it got, one per line, to PREFIX.<tid> when it is done
-- (sustained.py: listing a million ids back through the API would take
-- longer than creating them).

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "common.lua")

local BODY = '{"replica_id":"r90bbd427f71","persona_id":"pcb7a34da5fe",'
          .. '"conversation_name":"bench"}'
local env_body = os.getenv("PALAVER_BENCH_CREATE_BODY")
if env_body and env_body ~= "" then BODY = env_body end

local ids_out = os.getenv("PALAVER_BENCH_IDS_OUT")
if ids_out == "" then ids_out = nil end
local ids = {}

local function save_ids()
   local f = assert(io.open(ids_out .. "." .. tid, "w"))
   f:write(table.concat(ids, "\n"))
   if #ids > 0 then f:write("\n") end
   f:close()
end

setup = common.setup
done = common.done
request = common.request
if ids_out then
   response = function(status, headers, body)
      if status == 200 then
         ids[#ids + 1] = body:match('"conversation_id":"([^"]+)"')
      end
      common.response(status, headers, body)
   end
else
   response = common.response
end

function init(args)
   local total = tonumber(args[1])
   local nthreads = tonumber(args[2])
   if not total or not nthreads then
      error("usage: wrk ... -s create.lua URL -- TOTAL THREADS")
   end
   wrk.method = "POST"
   wrk.path = "/v2/conversations"
   wrk.body = BODY
   wrk.headers["Content-Type"] = "application/json"
   local req = wrk.format()
   common.start_thread(common.share(total, nthreads, tid),
                       function(i) return req end,
                       ids_out and save_ids or nil)
end
