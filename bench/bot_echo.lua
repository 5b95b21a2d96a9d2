-- The echo bot (examples/bots/echo.lua) as a standalone process, for bench/bot_load.sh.
--
--   lua5.4 bench/bot_echo.lua SIM_URL     -- prints "PORT <n>", serves until SIGTERM
--
-- Its client points at the simulator (SIM_URL) with pacing and retries off: the benchmark
-- measures the bot, not Meta's limits. Environment: BENCH_SECRET (the app secret the driver
-- signs with), BENCH_DEDUPE (seconds a message id is remembered, default 86400; the long run
-- uses a few seconds so that entries expire; sent-message records are kept as long),
-- BENCH_MARK_READ (1: the echo bot also marks every message read, a second API call).
local whatsapp = require "whatsapp"
local loop = require "whatsapp.loop"
local http = require "whatsapp.http"

local sim_url = assert(arg[1], "usage: bot_echo.lua SIM_URL")
local secret = os.getenv("BENCH_SECRET") or "bench-app-secret"
local dedupe = tonumber(os.getenv("BENCH_DEDUPE") or "") or 86400
local token = "EAAG" .. ("Zb7QxT9kLmN2pR4sVw6yA8cE1gJ3hK5"):rep(6):sub(1, 186)

local bot = whatsapp.bot{
  client = whatsapp.client{
    phone_number_id = "100000000000001", access_token = token, base_url = sim_url,
    rate = false, retry = false, http = http.session{ max_host_connections = 64 },
  },
  webhook = whatsapp.webhook.new{ app_secret = secret, verify_token = "bench" },
  dedupe = dedupe,
  track_ttl = math.min(dedupe, 3 * 86400),
  window = false, -- every sender has just written; the check is the store lookup we skip here
  log = false,
}
local echo = dofile("examples/bots/echo.lua")
echo.setup(bot, { mark_read = os.getenv("BENCH_MARK_READ") == "1" })

local srv = assert(bot:listen{ port = 0, health = "/health" })
io.stdout:write("PORT ", srv:port(), "\n")
io.stdout:flush()
loop.run()
