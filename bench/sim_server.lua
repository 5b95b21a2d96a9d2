-- The Cloud API simulator as a process of its own, for bench/client.sh: listens on
-- 127.0.0.1:<arg 1 or a free port>, prints "PORT <n>" and serves until SIGTERM.
-- No rate limits (the benchmark measures the client, not Meta's limits); what it
-- records is forgotten every second, so memory does not grow with the run.
local simulator = require "whatsapp.simulator"
local loop = require "whatsapp.loop"

local token = "EAAG" .. ("Zb7QxT9kLmN2pR4sVw6yA8cE1gJ3hK5"):rep(6):sub(1, 186)
local sim = assert(simulator.start{
  port = tonumber(arg[1] or "0"), access_token = token, phone_number_id = "100000000000001",
  window = false, rate = false, pair_limit = false,
})
local function forget()
  sim:clear()
  loop.timer(1, forget, true)
end
forget()
io.stdout:write("PORT ", sim:port(), "\n")
io.stdout:flush()
loop.run()
