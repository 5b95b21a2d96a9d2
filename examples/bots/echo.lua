--- Echo bot: the smallest useful bot.
--
-- * a text comes back as it was sent;
-- * a photo, video, voice note, document or sticker gets an emoji reaction;
-- * every message is marked as read (the two blue ticks);
-- * anything else (a location, a contact card...) gets a short note saying what it cannot echo.
--
-- `examples/run.lua` runs it against the local simulator; to host it yourself:
--
--     local whatsapp = require "whatsapp"
--     local echo = dofile "examples/bots/echo.lua"
--     local bot = whatsapp.bot{
--       client = whatsapp.client{ phone_number_id = "...", access_token = os.getenv "WA_TOKEN" },
--       webhook = whatsapp.webhook.new{ app_secret = os.getenv "WA_APP_SECRET", verify_token = "..." },
--     }
--     echo.setup(bot)
--     bot:listen{ port = 8080 }
--     whatsapp.loop.run()
local echo = {
  name = "echo",
  description = "Echoes texts, reacts to media, marks messages read, and says what it cannot echo.",
  templates = {},
  bot_options = {},
}

-- Which emoji answers which kind of media.
local REACTIONS = { image = "😍", video = "🎬", audio = "🎧", document = "📄", sticker = "😄" }

-- How the note names a message it cannot echo.
local NAMES = {
  location = "a location", contacts = "a contact card", order = "an order", button_reply = "a button",
  list_reply = "a list choice", button = "a button", flow_reply = "a form", unsupported = "this kind of message",
}

--- Register the echo bot's handlers.
-- @param bot a `whatsapp.bot`
-- @tparam[opt] table opts `mark_read` (default true): mark every message as read
function echo.setup(bot, opts)
  opts = opts or {}

  -- Middleware runs around every event: mark messages read before any handler answers.
  if opts.mark_read ~= false then
    bot:use(function(ctx, next)
      if ctx.kind == "message" and ctx.id then ctx:mark_read() end
      return next()
    end)
  end

  -- Texts: send the same text back.
  bot:text(function(ctx)
    ctx:reply(ctx.text)
  end)

  -- Media: react to the message with an emoji.
  bot:on("media", function(ctx)
    ctx:react(REACTIONS[ctx.type] or "👍")
  end)

  -- A user's reaction to one of our messages needs no answer.
  bot:on("reaction", function() end)

  -- Everything else.
  bot:fallback(function(ctx)
    local what = NAMES[ctx.type] or ("a " .. tostring(ctx.type) .. " message")
    ctx:reply("I can only echo text (and react to media), so I cannot echo " .. what .. ".")
  end)
end

return echo
