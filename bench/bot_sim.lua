-- The Cloud API simulator as a process of its own, for bench/bot_load.sh.
--
--   luajit bench/bot_sim.lua STATS_FILE     -- prints "PORT <n>", serves until SIGTERM
--
-- No rate limits, no window, no status webhooks (the bot's replies are what is counted). The
-- simulator records every request; to stay flat over a million, this script folds the records
-- into counters and clears them every 0.2 s, and writes the counters to STATS_FILE:
--   accepted=<messages accepted> reads=<mark-as-read calls> refused=<answers other than 200>
local simulator = require "whatsapp.simulator"
local loop = require "whatsapp.loop"

local stats_file = assert(arg[1], "usage: bot_sim.lua STATS_FILE")
local token = "EAAG" .. ("Zb7QxT9kLmN2pR4sVw6yA8cE1gJ3hK5"):rep(6):sub(1, 186)
local sim = assert(simulator.start{
  port = 0, access_token = token, phone_number_id = "100000000000001",
  window = false, rate = false, pair_limit = false,
})

local accepted, reads, refused = 0, 0, 0
local function fold()
  accepted = accepted + #sim:messages()
  reads = reads + #sim:reads()
  for _, r in ipairs(sim:requests()) do
    if r.status and r.status ~= 200 then refused = refused + 1 end
  end
  sim:clear()
  local tmp = stats_file .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(("accepted=%d reads=%d refused=%d\n"):format(accepted, reads, refused))
  f:close()
  os.rename(tmp, stats_file)
end
local function tick()
  fold()
  loop.timer(0.2, tick, true)
end
tick()

io.stdout:write("PORT ", sim:port(), "\n")
io.stdout:flush()
loop.run{ signals = true }
