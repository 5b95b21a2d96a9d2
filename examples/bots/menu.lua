--- Menu bot: a small pizzeria on WhatsApp, with reply buttons, a list, and a conversation
-- written as straight-line Lua with `ctx:ask`.
--
--     user: hi                       bot: [Menu] [Order status] [Help]
--     user: (taps Menu)              bot: a list of pizzas and drinks
--     user: (chooses Margherita)     bot: How many Margherita would you like?
--     user: 2                        bot: What name should we put on the order?
--     user: Ana                      bot: 2 × Margherita, €17.00 for Ana  [Confirm] [Cancel]
--     user: (taps Confirm)           bot: Thanks Ana! Order A-1001 is confirmed.
--
-- Each answer arrives in a webhook of its own, and the handler simply waits for it with
-- `ctx:ask` (other users are served meanwhile). The user's name and orders live in
-- `ctx.session`, kept in the bot's store between messages.
local message = require "whatsapp.message"

local menu = {
  name = "menu",
  description = "A pizzeria: reply buttons, a list, a conversation with ask, and the session.",
  templates = {},
  bot_options = { ask_timeout = 600 }, -- wait up to 10 minutes for each answer
}

-- The menu, by section. Prices are in cents.
local ITEMS = {
  { id = "margherita", section = "Pizza", title = "Margherita", description = "Tomato, mozzarella, basil",
    price = 850 },
  { id = "funghi", section = "Pizza", title = "Funghi", description = "Mushrooms, mozzarella", price = 950 },
  { id = "diavola", section = "Pizza", title = "Diavola", description = "Spicy salami, chili", price = 1000 },
  { id = "lemonade", section = "Drinks", title = "Lemonade", description = "Homemade", price = 300 },
  { id = "espresso", section = "Drinks", title = "Espresso", price = 200 },
}
menu.items = ITEMS

local BY_ID = {}
for _, item in ipairs(ITEMS) do BY_ID[item.id] = item end

local MAX_QUANTITY = 20
local HOME_BUTTONS = {
  { id = "menu", title = "Menu" },
  { id = "status", title = "Order status" },
  { id = "help", title = "Help" },
}
local GREETINGS = { hi = true, hello = true, hey = true, menu = true }

local function euros(cents)
  return string.format("€%d.%02d", math.floor(cents / 100), cents % 100)
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- The home screen: three reply buttons.
local function home(ctx)
  local name = ctx.session.name
  ctx:reply_buttons("Hi " .. (name or "there") .. "! What would you like to do?", HOME_BUTTONS,
    { header = "Pizza Lua", footer = "Reply STOP to unsubscribe" })
end

-- The menu as a list message: one section per kind of item.
local function show_menu(ctx)
  local sections, by_title = {}, {}
  for _, item in ipairs(ITEMS) do
    local section = by_title[item.section]
    if not section then
      section = { title = item.section, rows = {} }
      by_title[item.section] = section
      sections[#sections + 1] = section
    end
    section.rows[#section.rows + 1] = { id = "item:" .. item.id, title = item.title,
      description = (item.description and item.description .. ", " or "") .. euros(item.price) }
  end
  ctx:reply_list("What would you like?", "See the menu", sections)
end

-- Ask for a quantity until we get a sensible one (three tries). Returns the number, or nil
-- when the user went away or kept answering something else.
local function ask_quantity(ctx, item)
  local prompt = "How many " .. item.title .. " would you like?"
  for _ = 1, 3 do
    local answer = ctx:ask(prompt)
    if not answer then return nil end
    local n = tonumber(answer.text and trim(answer.text))
    if n and n == math.floor(n) and n >= 1 and n <= MAX_QUANTITY then return math.floor(n) end
    prompt = "Please send a number from 1 to " .. MAX_QUANTITY .. "."
  end
  ctx:reply("Let's start over: send *hi* when you are ready.")
  return nil
end

-- Choosing an item starts a conversation: quantity, name (once), then a confirmation.
local function order(ctx)
  local item = BY_ID[ctx.event.reply.id:match("^item:(.*)$")]
  if not item then return ctx:reply("Sorry, that item is no longer on the menu.") end

  local quantity = ask_quantity(ctx, item)
  if not quantity then return end

  local name = ctx.session.name
  if not name then
    local answer = ctx:ask("What name should we put on the order?")
    if not answer then return end
    name = trim(answer.text or "")
    if name == "" then name = answer.contact and answer.contact.name or "friend" end
    ctx.session.name = name -- remembered for the next order
  end

  local total = quantity * item.price
  local summary = string.format("%d × %s, %s for %s.\nShall we start baking?", quantity, item.title,
    euros(total), name)
  local answer, err = ctx:ask(message.buttons(ctx.from, summary,
    { { id = "confirm", title = "Confirm" }, { id = "cancel", title = "Cancel" } }, { header = "Your order" }))
  if not answer then
    if err and err.code == "timeout" then ctx:reply("No answer, so the order was cancelled.") end
    return
  end
  local yes = (answer.reply and answer.reply.id == "confirm")
    or (answer.text and trim(answer.text):lower() == "yes")
  if not yes then return ctx:reply("No problem, the order is cancelled.") end

  local orders = ctx.session.orders or {}
  local number = "A-" .. (1001 + #orders)
  orders[#orders + 1] = { number = number, item = item.id, quantity = quantity, total = total,
    status = "being prepared" }
  ctx.session.orders = orders
  ctx:reply("Thanks " .. name .. "! Order " .. number .. " is confirmed: " .. quantity .. " × " .. item.title
    .. ", " .. euros(total) .. ". We will message you when it is on its way.")
end

-- The last orders, newest first.
local function status(ctx)
  local orders = ctx.session.orders
  if not orders or #orders == 0 then
    return ctx:reply("You have no orders yet. Tap Menu to order.")
  end
  local lines = {}
  for i = #orders, math.max(1, #orders - 2), -1 do
    local o = orders[i]
    lines[#lines + 1] = string.format("%s: %d × %s, %s (%s)", o.number, o.quantity, BY_ID[o.item].title,
      euros(o.total), o.status)
  end
  ctx:reply(table.concat(lines, "\n"))
end

local HELP = "Tap *Menu* to order, *Order status* to see your orders. Send *hi* for the buttons again, "
  .. "*STOP* to unsubscribe."

--- Register the menu bot's handlers.
-- @param bot a `whatsapp.bot`
function menu.setup(bot)
  -- Blue ticks: every message the user sends is marked read before it is handled.
  bot:use(function(ctx, next)
    if ctx.kind == "message" and ctx.id then ctx:mark_read() end
    return next()
  end)
  bot:command("start", home)
  bot:text(function(text) return GREETINGS[trim(text):lower()] end, home)
  bot:button("menu", show_menu)
  bot:button("status", status)
  bot:button("help", function(ctx) ctx:reply(HELP) end)
  bot:list(function(id) return id:find("^item:") ~= nil end, order)
  bot:fallback(function(ctx) ctx:reply("Send *hi* to see what I can do.") end)
end

return menu
