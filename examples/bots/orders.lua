--- Order-notification bot: the shop writes first.
--
-- Your shop's backend calls these when an order changes:
--
--     orders.confirm(bot, order)        -- template order_confirmed (named parameters)
--     orders.ship(bot, order)           -- template order_shipped, then the details, in order
--     orders.notify(bot, phone, text)   -- free-form news (a template stands in outside 24 h)
--
-- where `order = { id = "A-1001", phone = "15550002222", customer = "Ana", total = 1700 (cents),
-- currency = "EUR", carrier = "DHL", tracking = "JD0146", eta = "Friday, May 3" }`.
--
-- What it shows:
--
-- * business-initiated templates, declared once in Meta's shape (`orders.templates`) and sent
--   with a table of named values, checked by the template registry before anything is sent;
-- * the 24-hour window: a free-form message to someone who has not written for a day is
--   replaced by the `order_news` template (the bot's `window.template`); the text is kept and
--   handed over as soon as they reply;
-- * opt-out: STOP stops every update (the bot refuses business-initiated sends), START resumes;
--   the "Stop updates" button of `order_shipped` does the same;
-- * `send_sequence`: shipping updates go out one at a time, each once the previous one was
--   delivered, so they never arrive out of order;
-- * a status handler that logs deliveries that failed.
local templates = require "whatsapp.templates"

local orders = {
  name = "orders",
  description = "Order updates: templates with named parameters, the 24-hour window, STOP/START, "
    .. "sequences, failed deliveries.",
}

--- The templates, in Meta's definition shape (create them on your WABA with
-- `client:create_template(def)`). `types` is for the local registry only.
orders.templates = {
  { name = "order_confirmed", language = "en_US", category = "UTILITY", parameter_format = "NAMED",
    components = {
      { type = "BODY", text = "Hi {{customer}}, thanks for your order {{order_id}} of {{total}}. "
        .. "We will let you know when it ships." },
      { type = "FOOTER", text = "Reply STOP to stop order updates" },
    },
    types = { total = "currency" } },
  { name = "order_shipped", language = "en_US", category = "UTILITY", parameter_format = "NAMED",
    components = {
      { type = "HEADER", format = "TEXT", text = "Order {{order_id}} is on its way" },
      { type = "BODY", text = "Hi {{customer}}, your parcel left with {{carrier}} and should arrive {{eta}}." },
      { type = "BUTTONS", buttons = {
        { type = "URL", text = "Track parcel", url = "https://example.com/track/{{1}}" },
        { type = "QUICK_REPLY", text = "Stop updates" },
      } },
    },
    types = { eta = "date_time" } },
  -- Sent instead of a free-form message when the customer's 24-hour window is closed.
  { name = "order_news", language = "en_US", category = "UTILITY",
    components = {
      { type = "BODY", text = "There is news about your order. Reply to this message to read it." },
    } },
}

--- Options for `whatsapp.bot`.
orders.bot_options = {
  window = { template = { name = "order_news", language = "en_US" } },
  opt_out = {
    confirm = "You will get no more order updates from us. Reply START to get them again.",
    resumed = "Order updates are back on. Reply STOP to stop them.",
  },
}

local STOP_PAYLOAD = "STOP_UPDATES"
local KEEP = 30 * 86400 -- seconds the store keeps what we remember about a customer

-- Store keys are per customer: the digits of the phone number.
local function digits(phone) return (tostring(phone):gsub("%D", "")) end
local function held_key(phone) return "orders:held:" .. digits(phone) end
local function list_key(phone) return "orders:list:" .. digits(phone) end

-- Remember an order's status for the `status` command.
local function remember(bot, order, status)
  local list = bot.store:get(list_key(order.phone)) or {}
  local found
  for _, o in ipairs(list) do
    if o.id == order.id then o.status, found = status, true end
  end
  if not found then list[#list + 1] = { id = order.id, status = status } end
  bot.store:set(list_key(order.phone), list, KEEP)
end

-- A free-form text that went out as the window template: keep it for when they reply.
local function hold_if_replaced(bot, phone, text, sent)
  if sent and sent.fallback then
    local held = bot.store:get(held_key(phone)) or {}
    held[#held + 1] = text
    bot.store:set(held_key(phone), held, KEEP)
  end
end

local function money(order)
  local amount = order.total / 100
  local symbol = ({ EUR = "€", USD = "$", GBP = "£" })[order.currency or "EUR"]
  local text = string.format("%.2f", amount)
  return symbol and symbol .. text or text .. " " .. tostring(order.currency)
end

--- Tell a customer their order was received (template `order_confirmed`).
-- @param bot the bot
-- @tparam table order
-- @return the send result, or nil and an error object (`opted_out`, a validation error...)
function orders.confirm(bot, order)
  local sent, err = bot:send_template(order.phone, "order_confirmed", {
    customer = order.customer,
    order_id = order.id,
    total = { code = order.currency or "EUR", amount_1000 = order.total * 10, fallback = money(order) },
  })
  if sent then remember(bot, order, "confirmed") end
  return sent, err
end

--- Tell a customer their order shipped: the `order_shipped` template, then the details,
-- the second only once the first was delivered (`send_sequence`).
-- @param bot the bot
-- @tparam table order
-- @return the list of send results, or nil, an error object and the results so far
function orders.ship(bot, order)
  local reg = bot:client().templates
  local shipped, err = reg:build(order.phone, "order_shipped", {
    order_id = order.id, customer = order.customer, carrier = order.carrier, eta = order.eta,
    buttons = { order.tracking, STOP_PAYLOAD }, -- the URL suffix, the quick reply's payload
  })
  if not shipped then return nil, err, {} end
  local details = "Tracking number " .. order.tracking .. " (" .. order.carrier .. "). "
    .. "If nobody is home, the parcel waits at the nearest pick-up point."
  local results, serr, so_far = bot:send_sequence(order.phone, { shipped, details })
  so_far = results or so_far or {}
  hold_if_replaced(bot, order.phone, details, so_far[2])
  if so_far[1] then remember(bot, order, "shipped") end
  return results, serr, so_far
end

--- Send a customer free-form news. Outside their 24-hour window the bot sends the
-- `order_news` template instead; the text is delivered when they reply.
-- @param bot the bot
-- @tparam string phone
-- @tparam string text
-- @return the send result (`fallback = true` when the template went instead), or nil, err
function orders.notify(bot, phone, text)
  local sent, err = bot:send(phone, text)
  hold_if_replaced(bot, phone, text, sent)
  return sent, err
end

--- Register the bot's handlers.
-- @param bot a `whatsapp.bot` made with `orders.bot_options`
-- @tparam[opt] table opts `on_failed`: `function(info)` called for every failed delivery
--   (`info = { id, to, template, code, title }`), besides the log line
function orders.setup(bot, opts)
  opts = opts or {}

  -- Declare the templates in the client's registry (once), so sends are checked locally.
  local client = bot:client()
  if client then
    client.templates = client.templates or templates.new()
    for _, def in ipairs(orders.templates) do
      if not client.templates:get(def.name, def.language) then client.templates:declare(def) end
    end
  end

  -- Whatever the customer writes, first hand over the news we kept for them.
  bot:use(function(ctx, next)
    if ctx.kind == "message" and ctx.from then
      local held = bot.store:get(held_key(ctx.from))
      if held then
        bot.store:delete(held_key(ctx.from))
        for _, text in ipairs(held) do ctx:reply(text) end
      end
    end
    return next()
  end)

  -- The "Stop updates" button of order_shipped: same as sending STOP.
  bot:payload(STOP_PAYLOAD, function(ctx)
    bot:set_opted_out(ctx.from, true)
    ctx:reply(orders.bot_options.opt_out.confirm)
  end)

  local function status(ctx)
    local list = bot.store:get(list_key(ctx.from))
    if not list or #list == 0 then return ctx:reply("We have no orders for this number.") end
    local lines = {}
    for _, o in ipairs(list) do lines[#lines + 1] = o.id .. ": " .. o.status end
    ctx:reply(table.concat(lines, "\n"))
  end
  bot:command("status", status)
  bot:text("status", status)

  -- Deliveries that failed (the number is not on WhatsApp, the user blocked us...).
  bot:failed(function(ctx)
    local e, sent = ctx.error or {}, ctx.sent or {}
    local info = { id = ctx.id, to = ctx.from, template = sent.template, code = e.code, title = e.title }
    bot:log{ level = "warn", msg = "order update not delivered", id = info.id, user = info.to,
      template = info.template, code = info.code, error = info.title }
    if opts.on_failed then opts.on_failed(info) end
  end)

  bot:fallback(function(ctx)
    ctx:reply("I send updates about your orders. Send *status* to see them, STOP to stop the updates.")
  end)
end

return orders
