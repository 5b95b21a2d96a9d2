-- Generates the two webhook bodies used by the webhook-ingest benchmark:
--
--   bench/bodies/single.json   ~1.5 KB: one inbound text message (CTWA ad referral, contacts)
--   bench/bodies/batch.json    ~20 KB: 25 inbound messages of mixed types + 25 statuses
--
-- The output is compact JSON shaped like what Meta sends: no whitespace, "/" escaped as "\/",
-- every non-ASCII character as a \uXXXX escape (surrogate pairs above U+FFFF). Keys keep the
-- order written here, and everything is derived from fixed data, so the files are byte-for-byte
-- reproducible. The shapes follow spec/fixtures/webhooks/*.json.
--
-- Usage (from the repository root):  lua5.4 bench/make_bodies.lua [outdir]
-- (outdir defaults to bench/bodies). Needs no module beyond the standard library.

local outdir = arg and arg[1] or "bench/bodies"

------------------------------------------------------------------------------------------------
-- A small JSON writer with ordered objects.
------------------------------------------------------------------------------------------------

local OBJ = {}   -- metatable marking ordered objects

-- O("k1", v1, "k2", v2, ...): an object whose keys keep this order; nil values are skipped.
local function O(...)
  local n = select("#", ...)
  local o = setmetatable({ keys = {}, vals = {} }, OBJ)
  for i = 1, n, 2 do
    local k, v = select(i, ...)
    if v ~= nil then
      o.keys[#o.keys + 1] = k
      o.vals[#o.vals + 1] = v
    end
  end
  return o
end

local function utf8_codepoints(s)
  local cps, i, n = {}, 1, #s
  while i <= n do
    local c = s:byte(i)
    local cp, len
    if c < 0x80 then cp, len = c, 1
    elseif c >= 0xF0 then cp, len = c & 0x07, 4
    elseif c >= 0xE0 then cp, len = c & 0x0F, 3
    else cp, len = c & 0x1F, 2 end
    for j = i + 1, i + len - 1 do
      cp = (cp << 6) | (s:byte(j) & 0x3F)
    end
    cps[#cps + 1] = cp
    i = i + len
  end
  return cps
end

local SHORT = { [8] = "\\b", [9] = "\\t", [10] = "\\n", [12] = "\\f", [13] = "\\r",
                [34] = '\\"', [47] = "\\/", [92] = "\\\\" }

local function encode_string(s, out)
  out[#out + 1] = '"'
  for _, cp in ipairs(utf8_codepoints(s)) do
    if SHORT[cp] then
      out[#out + 1] = SHORT[cp]
    elseif cp < 0x20 or (cp >= 0x7F and cp < 0x10000) then
      out[#out + 1] = string.format("\\u%04x", cp)
    elseif cp >= 0x10000 then
      local v = cp - 0x10000
      out[#out + 1] = string.format("\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
    else
      out[#out + 1] = string.char(cp)
    end
  end
  out[#out + 1] = '"'
end

local function encode(v, out)
  local t = type(v)
  if t == "string" then
    encode_string(v, out)
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif math.type(v) == "integer" then
    out[#out + 1] = string.format("%d", v)
  elseif t == "number" then
    out[#out + 1] = string.format("%.10g", v)
  elseif getmetatable(v) == OBJ then
    out[#out + 1] = "{"
    for i, k in ipairs(v.keys) do
      if i > 1 then out[#out + 1] = "," end
      encode_string(k, out)
      out[#out + 1] = ":"
      encode(v.vals[i], out)
    end
    out[#out + 1] = "}"
  elseif t == "table" then
    out[#out + 1] = "["
    for i, x in ipairs(v) do
      if i > 1 then out[#out + 1] = "," end
      encode(x, out)
    end
    out[#out + 1] = "]"
  else
    error("cannot encode " .. t)
  end
end

local function to_json(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

------------------------------------------------------------------------------------------------
-- Deterministic data helpers.
------------------------------------------------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local chunk = {}
    for k = 3, 0, -1 do
      local idx = (n >> (6 * k)) & 63
      chunk[#chunk + 1] = B64:sub(idx + 1, idx + 1)
    end
    if not b then chunk[3], chunk[4] = "=", "="
    elseif not c then chunk[4] = "=" end
    out[#out + 1] = table.concat(chunk)
  end
  return table.concat(out)
end

-- Linear congruential generator: the same sequence on every run.
local seed = 20250611
local function rand(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return (seed >> 15) % n   -- the high bits: the low ones of an LCG have short periods
end

local function hex_id(len)
  local digits = "0123456789ABCDEF"
  local t = {}
  for i = 1, len do
    local d = rand(16)
    t[i] = digits:sub(d + 1, d + 1)
  end
  return table.concat(t)
end

-- A wamid the way WhatsApp builds them: base64 of a small binary record holding the
-- customer's number and a hex message id (inbound ids carry 20 hex digits, outbound 16/18).
local function wamid(phone, inbound)
  local tail
  if inbound then
    tail = "\x15\x02\x00\x12\x18\x14" .. hex_id(20)
  else
    tail = "\x15\x02\x00\x11\x18\x12" .. hex_id(18)
  end
  return "wamid." .. base64("\x1c\x18\x0b" .. phone .. tail .. "\x00")
end

local function sha256ish()
  local t = {}
  for i = 1, 32 do t[i] = string.char(rand(256)) end
  return base64(table.concat(t))
end

local function media_url(media_id)
  return "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=" .. tostring(media_id) ..
         "&ext=1750280000&hash=ATtq" .. hex_id(12)
end

local WABA_ID = "104996122399160"
local PHONE_NUMBER_ID = "106540352242922"
local DISPLAY_NUMBER = "15550783881"

local function metadata()
  return O("display_phone_number", DISPLAY_NUMBER, "phone_number_id", PHONE_NUMBER_ID)
end

local function envelope(entry_id, changes)
  return O("object", "whatsapp_business_account",
           "entry", { O("id", entry_id, "changes", changes) })
end

local function write(name, doc)
  local s = to_json(doc)
  local path = outdir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
  io.write(string.format("%-28s %6d bytes\n", path, #s))
end

------------------------------------------------------------------------------------------------
-- single.json: one inbound text message that came from a click-to-WhatsApp ad.
------------------------------------------------------------------------------------------------

do
  local from = "5215512345678"
  local text = "Hola! Vi su anuncio en Instagram sobre las macetas de cerámica pintadas a mano 🌵 " ..
    "y me interesan mucho. ¿Tienen disponible el juego de tres piezas en color terracota? " ..
    "Necesitaría también saber el precio del envío a Guadalajara " ..
    "y cuánto tarda en llegar, porque es un regalo para el cumpleaños de mi mamá el próximo " ..
    "sábado. Si no llega a tiempo, ¿puedo pasar a recogerlo a su tienda? Gracias 🙏"
  local msg = O(
    "from", from,
    "id", wamid(from, true),
    "timestamp", "1750275992",
    "text", O("body", text),
    "referral", O(
      "source_url", "https://fb.me/3cr4Wqqkv",
      "source_id", "120226305854810726",
      "source_type", "ad",
      "body", "Macetas de cerámica pintadas a mano 🌵 Envío a todo México. ¡Escríbenos!",
      "headline", "Chatea con nosotros",
      "media_type", "image",
      "image_url", "https://scontent.xx.fbcdn.net/v/t45.1600-4/471123467_120213877512345_" ..
                   "4423198765432109876_n.png?_nc_cat=100",
      "ctwa_clid", "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO",
      "welcome_message", O("text", "¡Hola! Cuéntanos en qué te podemos ayudar.")),
    "type", "text")
  local value = O(
    "messaging_product", "whatsapp",
    "metadata", metadata(),
    "contacts", { O("profile", O("name", "María José Hernández"),
                    "wa_id", from,
                    "user_id", "MX.1234567890123456") },
    "messages", { msg })
  write("single.json", envelope(WABA_ID, { O("value", value, "field", "messages") }))
end

------------------------------------------------------------------------------------------------
-- batch.json: 25 inbound messages (one change) and 25 statuses (a second change).
------------------------------------------------------------------------------------------------

do
  local names = {
    "María José García", "Jürgen Weiß", "Zoë Dubois", "Łukasz Wiśniewski", "Nguyễn Ngọc Anh",
    "陈伟", "Сергей Иванов", "محمد العلي", "Ayşe Yılmaz", "Priya Sharma", "João Conceição",
    "Søren Kierkegård", "田中 美咲", "Olúwasẹ́gun Adé", "Chloé Martin", "Κώστας Παπαδόπουλος",
    "Fatima Zahra 🌸", "Lars Øverby", "Ana Lúcia", "김민준", "Dvořák Tomáš", "Ingrid Sjöberg",
    "Rafael Núñez", "Aarav Patel ✨", "Émilie Côté",
  }
  local texts = {
    "Hi! Is the blue hoodie from your last post still available in size M? And do you ship to Ireland?",
    "Buenas tardes, quisiera cambiar la dirección de entrega de mi pedido #48213 a Av. Reforma 222, " ..
      "interior 5, colonia Juárez. ¿Todavía es posible o ya salió del almacén?",
    "Thanks, the package arrived today 😊 everything looks great! I will leave a review on your page.",
    "Können Sie mir bitte die Rechnung für Bestellung 10432 noch einmal schicken? " ..
      "Die erste E-Mail ist leider im Spam-Ordner gelandet und wurde automatisch gelöscht.",
    "What time do you close on Sundays? I would like to come by with my sister to try on the boots.",
    "Je n'ai pas reçu le code de confirmation, pouvez-vous le renvoyer ?",
    "ok 👍 perfect, see you tomorrow then",
    "Can I pay on delivery, or do I need to pay online first? I don't have a credit card, " ..
      "but I can do a bank transfer or pay cash to the courier if that works for you.",
  }
  local captions = {
    "Here is the damaged box 📦 the corner was crushed and one of the cups inside is broken",
    "Receipt from the store in Lyon, I paid 49,90 € but the app shows a different amount",
    "Which color is this? I would like the same one but in a larger size if you have it",
  }
  local buttons = { { "confirm-order", "Confirm order" }, { "talk-to-agent", "Talk to an agent" },
                    { "cancel-order", "Cancel" } }
  local rows = {
    { "priority_express", "Priority Mail Express", "Next Day to 2 Days" },
    { "standard_ground", "Standard Ground", "3 to 5 business days" },
    { "store_pickup", "Pick up in store", "Ready in 2 hours, free" },
  }
  local places = {
    { 19.4326077, -99.133208, "Zócalo", "Plaza de la Constitución S/N, Centro, 06000 CDMX" },
    { 52.5162746, 13.3777041, "Brandenburger Tor", "Pariser Platz, 10117 Berlin" },
  }
  local emojis = { "👍", "❤️", "😂" }

  local kinds = {
    "text", "image", "button_reply", "text", "list_reply", "reaction", "text", "location",
    "button_reply", "text", "document", "list_reply", "text", "image", "reaction", "audio",
    "text", "button_reply", "location", "list_reply", "text", "sticker", "reaction", "image",
    "text",
  }
  assert(#kinds == 25)

  local contacts, messages = {}, {}
  local outbound = {}   -- earlier business messages the customers reply/react to
  local ts = 1750280000
  local n_text, n_img, n_btn, n_row, n_loc, n_rx = 0, 0, 0, 0, 0, 0
  for i, kind in ipairs(kinds) do
    local from = string.format("%d%09d", 44 + (i % 5) * 10, 700000000 + i * 7919)
    local bsuid = string.format("US.%016d", 1000000000000000 + i * 104729)
    contacts[i] = O("profile", O("name", names[i]), "wa_id", from, "user_id", bsuid)
    outbound[i] = wamid(from, false)
    ts = ts + 3 + rand(40)
    local id = wamid(from, true)
    local m
    if kind == "text" then
      n_text = n_text + 1
      local context
      if n_text % 3 == 2 then context = O("from", DISPLAY_NUMBER, "id", outbound[i]) end
      m = O("context", context, "from", from, "id", id, "timestamp", tostring(ts),
            "text", O("body", texts[n_text]), "type", "text")
    elseif kind == "image" then
      n_img = n_img + 1
      m = O("from", from, "id", id, "timestamp", tostring(ts), "type", "image",
            "image", O("caption", captions[n_img], "mime_type", "image/jpeg",
                       "sha256", sha256ish(), "id", tostring(1003383421387256 + i * 31),
                       "url", media_url(1003383421387256 + i * 31)))
    elseif kind == "button_reply" then
      n_btn = n_btn + 1
      local b = buttons[n_btn]
      m = O("context", O("from", DISPLAY_NUMBER, "id", outbound[i]),
            "from", from, "id", id, "timestamp", tostring(ts), "type", "interactive",
            "interactive", O("type", "button_reply", "button_reply", O("id", b[1], "title", b[2])))
    elseif kind == "list_reply" then
      n_row = n_row + 1
      local r = rows[n_row]
      m = O("context", O("from", DISPLAY_NUMBER, "id", outbound[i]),
            "from", from, "id", id, "timestamp", tostring(ts), "type", "interactive",
            "interactive", O("type", "list_reply",
                             "list_reply", O("id", r[1], "title", r[2], "description", r[3])))
    elseif kind == "location" then
      n_loc = n_loc + 1
      local p = places[n_loc]
      m = O("from", from, "id", id, "timestamp", tostring(ts),
            "location", O("latitude", p[1], "longitude", p[2], "name", p[3], "address", p[4]),
            "type", "location")
    elseif kind == "reaction" then
      n_rx = n_rx + 1
      m = O("from", from, "id", id, "timestamp", tostring(ts), "type", "reaction",
            "reaction", O("message_id", outbound[i], "emoji", emojis[n_rx]))
    elseif kind == "document" then
      m = O("context", O("forwarded", true), "from", from, "id", id, "timestamp", tostring(ts),
            "type", "document",
            "document", O("caption", "Contrato firmado", "filename", "contrato_2025-06.pdf",
                          "mime_type", "application/pdf", "sha256", sha256ish(),
                          "id", tostring(1234567890987654 + i),
                          "url", media_url(1234567890987654 + i)))
    elseif kind == "audio" then
      m = O("from", from, "id", id, "timestamp", tostring(ts), "type", "audio",
            "audio", O("mime_type", "audio/ogg; codecs=opus", "sha256", sha256ish(),
                       "id", tostring(2233445566778899 + i), "voice", true,
                       "url", media_url(2233445566778899 + i)))
    elseif kind == "sticker" then
      m = O("from", from, "id", id, "timestamp", tostring(ts), "type", "sticker",
            "sticker", O("mime_type", "image/webp", "sha256", sha256ish(),
                         "id", tostring(3344556677889900 + i), "animated", false,
                         "url", media_url(3344556677889900 + i)))
    end
    messages[i] = m
  end

  -- 25 statuses for messages the business sent: each message goes sent -> delivered -> read,
  -- spread over 9 conversations (CBP-era payloads: conversation + pricing on every status).
  local statuses = {}
  local seq = { "sent", "delivered", "read" }
  local categories = { "service", "utility", "marketing" }
  local sts = 1750279000
  for i = 1, 25 do
    local k = (i - 1) // 3 + 1            -- which outbound message
    local state = seq[(i - 1) % 3 + 1]
    local recipient = string.format("%d%09d", 44 + (k % 5) * 10, 700000000 + k * 7919)
    local category = categories[k % 3 + 1]
    local conv_id = hex_id(32):lower()
    sts = sts + 1 + rand(20)
    local conversation
    if state == "sent" then
      conversation = O("id", conv_id, "expiration_timestamp", tostring(1750366800 + k * 60),
                       "origin", O("type", category))
    else
      conversation = O("id", conv_id, "origin", O("type", category))
    end
    statuses[i] = O(
      "id", outbound[k],
      "status", state,
      "timestamp", tostring(sts),
      "recipient_id", recipient,
      "conversation", conversation,
      "pricing", O("billable", category ~= "service", "pricing_model", "CBP",
                   "category", category))
  end

  local messages_value = O(
    "messaging_product", "whatsapp",
    "metadata", metadata(),
    "contacts", contacts,
    "messages", messages)
  local statuses_value = O(
    "messaging_product", "whatsapp",
    "metadata", metadata(),
    "statuses", statuses)
  write("batch.json", envelope(WABA_ID, {
    O("value", messages_value, "field", "messages"),
    O("value", statuses_value, "field", "messages"),
  }))
end
