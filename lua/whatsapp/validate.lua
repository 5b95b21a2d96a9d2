--- Validation of outbound message bodies against Meta's limits, before any network call.
--
--     local validate = require "whatsapp.validate"
--     local ok, err = validate.message{
--       messaging_product = "whatsapp", to = "15550002222", type = "text",
--       text = { body = "hola" },
--     }
--     if not ok then print(err.path, err.message) end   -- e.g. "text.body", "text.body: 4097 characters, at most 4096"
--
-- The input is a message body exactly as it is POSTed to `/{Phone-Number-ID}/messages`
-- (a plain table, whoever built it). A failure is `nil, err` where `err` is an
-- `whatsapp.errors` object with `code = "validation"`, `category = "param"`,
-- `retry = false`, and `path`: the place of the fault in the body, dotted, with 1-based
-- indexes (`"interactive.action.sections[2].rows[4].title"`). The message repeats the
-- path and says what is wrong with the limit and the actual value length; values
-- themselves are only quoted short and sanitised.
--
-- Lengths are counted in Unicode code points (what Meta counts). Every string that is
-- checked must be valid UTF-8 (strict: no overlong forms, no surrogates, nothing above
-- U+10FFFF). Enumerations Meta accepts in any case (`interactive.type`, template
-- component and parameter types, header types) are compared case-insensitively; the
-- top-level `type` must be lower case because it names the body's own field.
--
-- Recipients: `to` is a phone number (digits with an optional leading `+`; spaces,
-- hyphens and parentheses are allowed as separators as Meta's phone number formats
-- allow them; 5 to 15 digits as E.164), or a group id when `recipient_type` is
-- `"group"`. Business-scoped user ids (`US.…`, `US.ENT.…`) go in `recipient`.
--
-- Checking allocates nothing on success (the path is kept on a small stack and turned
-- into a string only when a check fails).
-- @module whatsapp.validate
local errors = require "whatsapp.errors"

local type, pairs, ipairs, next, tonumber, tostring, error = type, pairs, ipairs, next, tonumber, tostring, error
local byte, find, format, lower, sub, gsub, match =
  string.byte, string.find, string.format, string.lower, string.sub, string.gsub, string.match
local concat = table.concat
local floor = math.floor

-- JSON null and the empty-array sentinel of lua-cjson, when it is there.
local null, empty_array
do
  local ok, cjson = pcall(require, "cjson")
  if ok then null, empty_array = cjson.null, cjson.empty_array end
end

local validate = {}

local MB = 1024 * 1024

--- The limits that are checked (read them; changing them is not supported).
-- Text lengths are in code points, sizes in bytes (`MB` = 1024 × 1024: Meta's "MB"
-- read generously, so nothing Meta takes is refused here).
-- @table limits
local limits = {
  text_body = 4096,                 -- text.body, 1 to 4096
  caption = 1024,                   -- image / video / document caption
  filename = 255,                   -- document filename (Meta documents none; a file-system bound)
  biz_opaque_callback_data = 512,
  phone_min_digits = 5,             -- `to` as a phone number, E.164
  phone_max_digits = 15,
  group_id = 256,                   -- bytes
  interactive = {
    body = 1024, header = 60, footer = 60,
    buttons = 3, button_id = 256, button_title = 20,       -- reply buttons
    list_button = 20, sections = 10, rows = 10,            -- rows: in total, over all sections
    row_id = 200, row_title = 24, row_description = 72, section_title = 24,
    cta_display_text = 20,
    flow_cta = 30,
    product_sections = 10, product_items = 30,             -- product_items: in total
  },
  template = {
    name = 512,
    header_text = 60,               -- a text parameter of the header component
    text_param = 32768,             -- any other text parameter
    coupon_code = 15,
    button_index = 9,               -- index 0..9
    cards = 10,                     -- carousel cards
  },
  media = {
    audio = { size = 16 * MB,
              types = { "audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg" } },
    document = { size = 100 * MB,
                 types = { "text/plain", "application/pdf",
                           "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
                           "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                           "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                           "application/vnd.openxmlformats-officedocument.presentationml.presentation" } },
    image = { size = 5 * MB, types = { "image/jpeg", "image/png" } },
    sticker = { size = 100 * 1024, animated_size = 500 * 1024, types = { "image/webp" } },
    video = { size = 16 * MB, types = { "video/mp4", "video/3gpp" } },
  },
}
validate.limits = limits
local IL, TL = limits.interactive, limits.template

local REQ, OPT = true, false

---------------------------------------------------------------------------
-- The path stack and the error maker
---------------------------------------------------------------------------

-- Keys (strings) and 1-based indexes (numbers) from the root to the value being
-- checked. Checks run to completion without yielding, so one stack serves all
-- callers; every public entry point resets it.
local stack, top = {}, 0

local function enter(k) top = top + 1; stack[top] = k end

local function path_of(key)
  local parts, n = {}, 0
  local last = top
  if key ~= nil then last = top + 1; stack[last] = key end
  for i = 1, last do
    local k = stack[i]
    if type(k) == "number" then
      n = n + 1; parts[n] = "[" .. format("%d", k) .. "]"
    else
      if n > 0 then n = n + 1; parts[n] = "." end
      n = n + 1; parts[n] = tostring(k)
    end
  end
  return concat(parts)
end

-- A short, printable rendering of a value for an error message.
local function show(v)
  if v == null then return "null" end
  if type(v) ~= "string" then
    if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
    return "a " .. type(v)
  end
  local s = v
  if #s > 40 then s = sub(s, 1, 40) .. "..." end
  s = gsub(s, "[^\32-\126]", "?")
  return '"' .. s .. '"'
end

-- Type name for messages, with JSON null called so.
local function kind(v)
  if v == null then return "null" end
  return type(v)
end

-- The error for the value at the current path (key == nil) or at its field `key`.
local function fail(key, fmt, ...)
  local p = path_of(key)
  local msg = format(fmt, ...)
  return errors.new{
    code = "validation", path = p, message = p ~= "" and (p .. ": " .. msg) or msg,
    category = "param", retry = false,
  }
end

-- Check t[key] with check(value, ...) under the path key; returns nil or the error.
local function field(t, key, check, ...)
  enter(key)
  local e = check(t[key], ...)
  top = top - 1
  return e
end

---------------------------------------------------------------------------
-- UTF-8
---------------------------------------------------------------------------

-- Lua 5.4's utf8.len, when it is strict the way ulen is (5.3's lets surrogates
-- through; LuaJIT has none): it only speeds up the answer for valid strings.
local strict_len
do
  local u = rawget(_G, "utf8")
  local len = type(u) == "table" and u.len
  if len and len("\237\160\128") == nil and len("\244\144\128\128") == nil and len("\192\128") == nil
      and len("\224\128\128") == nil and len("\248\136\128\128\128") == nil and len("a\0\226\130\172") == 3 then
    strict_len = len
  end
end

-- Code points in s, or nil and the byte position of the first invalid sequence.
-- ASCII runs are skipped with one anchored match (in C; an unanchored search for
-- the first byte above 127 restarts the matcher at every byte and costs 2.5 times
-- as much); multibyte sequences are checked strictly (RFC 3629).
local function ulen(s)
  if strict_len then
    local n = strict_len(s)
    if n then return n end
  end
  local n, count, i = #s, 0, 1
  while true do
    local j = match(s, "^[%z\1-\127]*()", i)
    if j > n then return count + n - i + 1 end
    count = count + (j - i)
    local c = byte(s, j)
    if c < 0xC2 or c > 0xF4 then
      return nil, j
    elseif c < 0xE0 then
      local c2 = byte(s, j + 1)
      if not c2 or c2 < 0x80 or c2 > 0xBF then return nil, j end
      i = j + 2
    elseif c < 0xF0 then
      local c2, c3 = byte(s, j + 1, j + 2)
      local lo, hi = 0x80, 0xBF
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
      if not c3 or c2 < lo or c2 > hi or c3 < 0x80 or c3 > 0xBF then return nil, j end
      i = j + 3
    else
      local c2, c3, c4 = byte(s, j + 1, j + 3)
      local lo, hi = 0x80, 0xBF
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
      if not c4 or c2 < lo or c2 > hi or c3 < 0x80 or c3 > 0xBF or c4 < 0x80 or c4 > 0xBF then
        return nil, j
      end
      i = j + 4
    end
    count = count + 1
  end
end

--- Number of code points in a string, or nil when it is not valid UTF-8.
-- Works without the `utf8` library (LuaJIT). Strict: overlong forms, surrogates
-- and values above U+10FFFF are invalid.
-- @tparam string s
-- @treturn integer|nil code points
-- @treturn[2] integer byte position of the first invalid sequence
function validate.utf8_len(s)
  if type(s) ~= "string" then error("validate.utf8_len: string expected, got " .. type(s), 2) end
  return ulen(s)
end

-- The code point at byte i of a string known to be valid UTF-8, and the next position.
local function decode(s, i)
  local c = byte(s, i)
  if c < 0x80 then return c, i + 1 end
  if c < 0xE0 then
    local c2 = byte(s, i + 1)
    return (c - 0xC0) * 64 + (c2 - 0x80), i + 2
  end
  if c < 0xF0 then
    local c2, c3 = byte(s, i + 1, i + 2)
    return ((c - 0xE0) * 64 + (c2 - 0x80)) * 64 + (c3 - 0x80), i + 3
  end
  local c2, c3, c4 = byte(s, i + 1, i + 3)
  return (((c - 0xF0) * 64 + (c2 - 0x80)) * 64 + (c3 - 0x80)) * 64 + (c4 - 0x80), i + 4
end

---------------------------------------------------------------------------
-- Emoji (reactions): one grapheme made of emoji
---------------------------------------------------------------------------

local ZWJ, VS16, KEYCAP, TAG_END = 0x200D, 0xFE0F, 0x20E3, 0xE007F

-- Emoji code points of the BMP outside the 2600..27BF blocks (Unicode emoji-data).
local BMP_EMOJI = {}
for _, r in ipairs{
  { 0xA9 }, { 0xAE }, { 0x203C }, { 0x2049 }, { 0x2122 }, { 0x2139 }, { 0x2194, 0x2199 }, { 0x21A9, 0x21AA },
  { 0x231A, 0x231B }, { 0x2328 }, { 0x23CF }, { 0x23E9, 0x23F3 }, { 0x23F8, 0x23FA }, { 0x24C2 },
  { 0x25AA, 0x25AB }, { 0x25B6 }, { 0x25C0 }, { 0x25FB, 0x25FE }, { 0x2934, 0x2935 }, { 0x2B05, 0x2B07 },
  { 0x2B1B, 0x2B1C }, { 0x2B50 }, { 0x2B55 }, { 0x3030 }, { 0x303D }, { 0x3297 }, { 0x3299 },
} do
  for cp = r[1], r[2] or r[1] do BMP_EMOJI[cp] = true end
end

local function is_ri(cp) return cp >= 0x1F1E6 and cp <= 0x1F1FF end

-- A pictographic emoji base: the supplementary emoji blocks (U+1F000..U+1FAFF, without
-- the regional indicators, which only come in pairs), Miscellaneous Symbols and
-- Dingbats, and the BMP emoji listed above.
local function is_pictographic(cp)
  if cp >= 0x1F000 then return cp <= 0x1FAFF and not is_ri(cp) end
  return (cp >= 0x2600 and cp <= 0x27BF) or BMP_EMOJI[cp] == true
end

-- One emoji element starting at byte i (n = #s): a flag (two regional indicators),
-- a keycap ([0-9#*] FE0F? 20E3), or a pictograph with an optional VS16, skin-tone
-- modifier or tag sequence (subdivision flags). Returns the next position or nil.
local function emoji_element(s, i, n)
  local cp, j = decode(s, i)
  if is_ri(cp) then
    if j > n then return nil end
    local cp2, k = decode(s, j)
    if is_ri(cp2) then return k end
    return nil
  end
  if cp == 0x23 or cp == 0x2A or (cp >= 0x30 and cp <= 0x39) then
    if j > n then return nil end
    local c2, k = decode(s, j)
    if c2 == VS16 then
      if k > n then return nil end
      c2, k = decode(s, k)
    end
    if c2 == KEYCAP then return k end
    return nil
  end
  if not is_pictographic(cp) then return nil end
  if j > n then return j end
  local c2, k = decode(s, j)
  if c2 == VS16 or (c2 >= 0x1F3FB and c2 <= 0x1F3FF) then
    return k
  elseif c2 >= 0xE0020 and c2 <= 0xE007E and cp == 0x1F3F4 then
    while true do
      if k > n then return nil end
      c2, k = decode(s, k)
      if c2 == TAG_END then return k end
      if c2 < 0xE0020 or c2 > 0xE007E then return nil end
    end
  end
  return j
end

-- True when s (valid UTF-8, non-empty) is exactly one emoji: elements joined by ZWJ.
local function single_emoji(s)
  local n = #s
  local i = emoji_element(s, 1, n)
  while i and i <= n do
    local cp, j = decode(s, i)
    if cp ~= ZWJ or j > n then return false end
    i = emoji_element(s, j, n)
  end
  return i ~= nil
end

---------------------------------------------------------------------------
-- Field checks. Each returns nil when fine or the error object.
---------------------------------------------------------------------------

-- Length of an array (a sequence, cjson.empty_array or an empty table), or nil.
local function array_len(v)
  if v == empty_array and v ~= nil then return 0 end
  if type(v) ~= "table" then return nil end
  local n = #v
  if n == 0 and next(v) ~= nil then return nil end
  return n
end

-- The string t[key]: required (and then non-empty) or optional, at most max code points.
local function check_text(t, key, required, max)
  local v = t[key]
  if v == nil then
    if required then return fail(key, "required") end
    return nil
  end
  if type(v) ~= "string" then return fail(key, "must be a string, got %s", kind(v)) end
  local n, bad = ulen(v)
  if not n then return fail(key, "invalid UTF-8 at byte %d", bad) end
  if required and n == 0 then return fail(key, "must not be empty") end
  if max and n > max then return fail(key, "%d characters, at most %d", n, max) end
  return nil
end

local function check_bool(t, key)
  local v = t[key]
  if v ~= nil and type(v) ~= "boolean" then return fail(key, "must be a boolean, got %s", kind(v)) end
  return nil
end

-- t[key] must be one of the given lower-case words (case-insensitive when ci).
local function check_word(t, key, required, ci, a, b, c)
  local v = t[key]
  if v == nil then
    if required then return fail(key, "required") end
    return nil
  end
  if type(v) == "string" then
    if v == a or v == b or v == c then return nil end
    if ci then
      local l = lower(v)
      if l == a or l == b or l == c then return nil end
    end
  end
  local want = '"' .. a .. '"'
  if b then want = want .. (c and ', "' or ' or "') .. b .. '"' end
  if c then want = want .. ' or "' .. c .. '"' end
  return fail(key, "must be %s, got %s", want, show(v))
end

-- An http(s) URL: scheme, a host, no white space or control characters.
local function check_url(t, key, required)
  local e = check_text(t, key, required)
  if e then return e end
  local v = t[key]
  if v == nil then return nil end
  if not find(v, "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]") then
    return fail(key, "must be an http:// or https:// URL, got %s", show(v))
  end
  if find(v, "[%s%c]") then return fail(key, "white space or control characters in a URL") end
  return nil
end

-- Every string (keys too) of a free-form value must be valid UTF-8.
local function check_tree(v, depth)
  local tv = type(v)
  if tv == "string" then
    local n, bad = ulen(v)
    if not n then return fail(nil, "invalid UTF-8 at byte %d", bad) end
  elseif tv == "table" then
    if depth > 32 then return fail(nil, "nested too deep") end
    for k in pairs(v) do
      if type(k) == "string" and not ulen(k) then return fail(nil, "invalid UTF-8 in a key") end
      local e = field(v, k, check_tree, depth + 1)
      if e then return e end
    end
  end
  return nil
end

local function check_object(v, what)
  if type(v) ~= "table" or array_len(v) and next(v) ~= nil then
    return fail(nil, "must be an object%s, got %s", what or "", kind(v))
  end
  return nil
end

-- For field(): the value is an object and its string field `key` is fine.
local function obj_text(o, key, required, max)
  return check_object(o) or check_text(o, key, required, max)
end

-- For field(): the value is an object and its field `key` is one of the words.
local function obj_word(o, key, required, a)
  return check_object(o) or check_word(o, key, required, false, a)
end

-- A latitude or longitude: a number or a numeric string within -lim..lim.
local function check_coord(t, key, lim)
  local v = t[key]
  if v == nil then return fail(key, "required") end
  local x
  if type(v) == "number" then
    x = v
  elseif type(v) == "string" and find(v, "^[-+]?%d*%.?%d*$") then
    x = tonumber(v)
  end
  if not x then return fail(key, "must be a number or a numeric string, got %s", show(v)) end
  if not (x >= -lim and x <= lim) then return fail(key, "%s is outside -%d..%d", show(v), lim, lim) end
  return nil
end

---------------------------------------------------------------------------
-- Recipients
---------------------------------------------------------------------------

local function check_phone(v, key)
  if type(v) ~= "string" then return fail(key, "must be a string, got %s", kind(v)) end
  -- The usual form, digits only (one find in C instead of a loop over the bytes).
  if #v <= limits.phone_max_digits + 1 and find(v, "^%+?[0-9]+$") then
    local digits = byte(v, 1) == 43 and #v - 1 or #v
    if digits >= limits.phone_min_digits and digits <= limits.phone_max_digits then return nil end
  end
  if sub(v, 1, 3) == "US." then
    return fail(key, "a business-scoped user id (US.…) goes in recipient, not in to")
  end
  local digits, i = 0, 1
  if byte(v, 1) == 43 then i = 2 end -- "+"
  for p = i, #v do
    local c = byte(v, p)
    if c >= 48 and c <= 57 then
      digits = digits + 1
    elseif c ~= 32 and c ~= 45 and c ~= 40 and c ~= 41 then -- space - ( )
      return fail(key, "not a phone number (digits, an optional leading +, spaces, hyphens, parentheses): %s",
        show(v))
    end
  end
  if digits < limits.phone_min_digits or digits > limits.phone_max_digits then
    return fail(key, "%d digits, a phone number has %d to %d", digits, limits.phone_min_digits,
      limits.phone_max_digits)
  end
  return nil
end

local function check_group(v, key)
  if type(v) ~= "string" then return fail(key, "must be a string, got %s", kind(v)) end
  if v == "" then return fail(key, "must not be empty") end
  if #v > limits.group_id then return fail(key, "%d bytes, at most %d for a group id", #v, limits.group_id) end
  if find(v, "[%s%c\128-\255]") then return fail(key, "not a group id: %s", show(v)) end
  return nil
end

local function check_bsuid(v, key)
  if type(v) ~= "string" then return fail(key, "must be a string, got %s", kind(v)) end
  if not (find(v, "^US%.[%w_-]+$") or find(v, "^US%.ENT%.[%w_-]+$")) then
    return fail(key, "not a business-scoped user id (US.… or US.ENT.…): %s", show(v))
  end
  return nil
end

--- Check a recipient.
-- With `recipient_type == "group"` a group id (non-empty, no white space); otherwise a
-- business-scoped user id when it starts with `US.` (`US.…`, `US.ENT.…`), else a phone
-- number: digits with an optional leading `+`, spaces, hyphens and parentheses allowed
-- as separators, 5 to 15 digits (E.164). The error path is `"to"` (or `"recipient"` for a BSUID).
-- @tparam string to
-- @tparam[opt="individual"] string recipient_type
-- @treturn boolean|nil true when valid
-- @treturn[2] table the validation error
function validate.recipient(to, recipient_type)
  top = 0
  local e
  if recipient_type == "group" then
    e = check_group(to, "to")
  elseif type(to) == "string" and sub(to, 1, 3) == "US." then
    e = check_bsuid(to, "recipient")
  else
    e = check_phone(to, "to")
  end
  if e then return nil, e end
  return true
end

---------------------------------------------------------------------------
-- Media objects
---------------------------------------------------------------------------

-- A media object (stack at it): exactly one of id / link; caption where allowed;
-- filename for documents; voice for audio.
local function check_media(m, mkind, caption_ok)
  local e = check_object(m, " with id or link")
  if e then return e end
  local id, link = m.id, m.link
  if id ~= nil and link ~= nil then return fail(nil, "give either id or link, not both") end
  if id == nil and link == nil then return fail(nil, "id or link required") end
  if id ~= nil then
    e = check_text(m, "id", REQ)
  else
    e = check_url(m, "link", REQ)
  end
  if e then return e end
  if m.caption ~= nil then
    if not caption_ok then return fail("caption", "not allowed for %s here", mkind) end
    e = check_text(m, "caption", OPT, limits.caption)
    if e then return e end
  end
  if m.filename ~= nil then
    if mkind ~= "document" then return fail("filename", "only documents have a filename") end
    e = check_text(m, "filename", REQ, limits.filename)
    if e then return e end
  end
  if m.voice ~= nil then
    if mkind ~= "audio" then return fail("voice", "only audio can be a voice note") end
    return check_bool(m, "voice")
  end
  return nil
end

---------------------------------------------------------------------------
-- Message types
---------------------------------------------------------------------------

local function check_text_message(t)
  return check_object(t) or check_text(t, "body", REQ, limits.text_body) or check_bool(t, "preview_url")
end

local function media_checker(mkind, caption_ok)
  return function(m) return check_media(m, mkind, caption_ok) end
end

local function check_location(l)
  return check_object(l) or check_coord(l, "latitude", 90) or check_coord(l, "longitude", 180)
    or check_text(l, "name", OPT) or check_text(l, "address", OPT)
end

local function check_contact(c)
  local e = check_object(c)
  if e then return e end
  local name = c.name
  if name == nil then return fail("name", "required") end
  return field(c, "name", obj_text, "formatted_name", REQ) or check_tree(c, 0)
end

local function check_contacts(cs)
  local n = array_len(cs)
  if not n then return fail(nil, "must be an array of contacts, got %s", kind(cs)) end
  if n == 0 then return fail(nil, "at least one contact required") end
  for i = 1, n do
    local e = field(cs, i, check_contact)
    if e then return e end
  end
  return nil
end

local function check_reaction(r)
  local e = check_object(r) or check_text(r, "message_id", REQ)
  if e then return e end
  local emoji = r.emoji
  if emoji == nil or emoji == "" then return nil end -- removal
  e = check_text(r, "emoji", OPT)
  if e then return e end
  if not single_emoji(emoji) then
    return fail("emoji", "must be a single emoji (or empty to remove the reaction), got %s", show(emoji))
  end
  return nil
end

---------------------------------------------------------------------------
-- Interactive
---------------------------------------------------------------------------

local function check_text_object(o, max)
  return check_object(o) or check_text(o, "text", REQ, max)
end

local function check_header(h, text_only, itype)
  local e = check_object(h) or check_text(h, "type", REQ)
  if e then return e end
  local ht = lower(h.type)
  if text_only and ht ~= "text" then
    return fail("type", "%s messages only take a text header, got %s", itype, show(h.type))
  end
  if ht == "text" then
    return check_text(h, "text", REQ, IL.header) or check_text(h, "sub_text", OPT, IL.header)
  elseif ht == "image" or ht == "video" or ht == "document" then
    if h[ht] == nil then return fail(ht, "required for a %s header", ht) end
    return field(h, ht, check_media, ht, false)
  end
  return fail("type", "must be \"text\", \"image\", \"video\" or \"document\", got %s", show(h.type))
end

local function check_reply_button(b, i, buttons)
  local e = check_object(b) or check_word(b, "type", REQ, true, "reply")
  if e then return e end
  local r = b.reply
  if r == nil then return fail("reply", "required") end
  enter("reply")
  e = check_object(r) or check_text(r, "id", REQ, IL.button_id) or check_text(r, "title", REQ, IL.button_title)
  if e then return e end
  for j = 1, i - 1 do
    local o = buttons[j].reply
    if o.id == r.id then return fail("id", "same id as buttons[%d]; button ids must be unique", j) end
    if o.title == r.title then return fail("title", "same title as buttons[%d]; button titles must be unique", j) end
  end
  top = top - 1
  return nil
end

local function check_button_action(a)
  local bs = a.buttons
  if bs == nil then return fail("buttons", "required") end
  local n = array_len(bs)
  if not n then return fail("buttons", "must be an array, got %s", kind(bs)) end
  if n < 1 or n > IL.buttons then return fail("buttons", "%d buttons, 1 to %d allowed", n, IL.buttons) end
  enter("buttons")
  for i = 1, n do
    local e = field(bs, i, check_reply_button, i, bs)
    if e then return e end
  end
  top = top - 1
  return nil
end

-- The sections of a list (rows) or a product list (product_items): 1..max_sections
-- sections, at least one item in each, at most max_items items in total, a title
-- (at most 24) required when there is more than one section.
local function check_sections(a, item_key, max_items, check_item)
  local secs = a.sections
  if secs == nil then return fail("sections", "required") end
  local ns = array_len(secs)
  if not ns then return fail("sections", "must be an array, got %s", kind(secs)) end
  local max_sections = item_key == "rows" and IL.sections or IL.product_sections
  if ns < 1 or ns > max_sections then
    return fail("sections", "%d sections, 1 to %d allowed", ns, max_sections)
  end
  enter("sections")
  local total = 0
  for i = 1, ns do
    local sec = secs[i]
    enter(i)
    local e = check_object(sec) or check_text(sec, "title", ns > 1, IL.section_title)
    if e then return e end
    local items = sec[item_key]
    if items == nil then return fail(item_key, "required") end
    local n = array_len(items)
    if not n then return fail(item_key, "must be an array, got %s", kind(items)) end
    if n == 0 then return fail(item_key, "at least one item in each section") end
    enter(item_key)
    for j = 1, n do
      total = total + 1
      if total > max_items then
        enter(j)
        return fail(nil, "item %d in total, at most %d %s over all sections", total, max_items, item_key)
      end
      e = field(items, j, check_item, secs, i, j)
      if e then return e end
    end
    top = top - 2
  end
  top = top - 1
  return nil
end

local function check_row(row, secs, si, ri)
  local e = check_object(row) or check_text(row, "id", REQ, IL.row_id) or check_text(row, "title", REQ, IL.row_title)
    or check_text(row, "description", OPT, IL.row_description)
  if e then return e end
  local id = row.id
  for pi = 1, si do
    local prev = secs[pi].rows
    for pj = 1, (pi == si and ri - 1 or #prev) do
      if prev[pj].id == id then
        return fail("id", "same id as sections[%d].rows[%d]; row ids must be unique", pi, pj)
      end
    end
  end
  return nil
end

local function check_list_action(a)
  return check_text(a, "button", REQ, IL.list_button) or check_sections(a, "rows", IL.rows, check_row)
end

local function check_product_item(p)
  return check_object(p) or check_text(p, "product_retailer_id", REQ)
end

local function check_product_list_action(a)
  return check_text(a, "catalog_id", REQ)
    or check_sections(a, "product_items", IL.product_items, check_product_item)
end

local function check_product_action(a)
  return check_text(a, "catalog_id", REQ) or check_text(a, "product_retailer_id", REQ)
end

local function check_cta_params(p)
  return check_object(p) or check_text(p, "display_text", REQ, IL.cta_display_text) or check_url(p, "url", REQ)
end

local function check_cta_url_action(a)
  local e = check_word(a, "name", REQ, false, "cta_url")
  if e then return e end
  if a.parameters == nil then return fail("parameters", "required") end
  return field(a, "parameters", check_cta_params)
end

local function check_flow_params(p)
  local e = check_object(p)
  if e then return e end
  local v = p.flow_message_version
  if v ~= "3" and v ~= 3 then return fail("flow_message_version", "must be \"3\", got %s", show(v)) end
  if (p.flow_id == nil) == (p.flow_name == nil) then
    return fail("flow_id", "give exactly one of flow_id and flow_name")
  end
  e = check_text(p, "flow_id", OPT) or check_text(p, "flow_name", OPT) or check_text(p, "flow_cta", REQ, IL.flow_cta)
    or check_text(p, "flow_token", OPT) or check_word(p, "mode", OPT, false, "draft", "published")
    or check_word(p, "flow_action", OPT, false, "navigate", "data_exchange")
  if e then return e end
  local payload = p.flow_action_payload
  if payload ~= nil then
    e = field(p, "flow_action_payload", obj_text, "screen", OPT) or field(p, "flow_action_payload", check_tree, 0)
  end
  return e
end

local function check_flow_action(a)
  local e = check_word(a, "name", REQ, false, "flow")
  if e then return e end
  if a.parameters == nil then return fail("parameters", "required") end
  return field(a, "parameters", check_flow_params)
end

-- Actions that are only a name (built once, at load).
local function named_action(name)
  return function(a) return check_word(a, "name", REQ, false, name) end
end

local function check_catalog_action(a)
  local e = check_word(a, "name", REQ, false, "catalog_message")
  if e or a.parameters == nil then return e end
  return field(a, "parameters", obj_text, "thumbnail_product_retailer_id", OPT)
end

local function no_check() return nil end

-- Interactive types: whether body is required, which headers are allowed
-- ("any", "text", false) and whether one is required, and the action check.
local INTERACTIVE = {
  button = { body = true, header = "any", action = check_button_action },
  list = { body = true, header = "text", action = check_list_action },
  cta_url = { body = true, header = "any", action = check_cta_url_action },
  flow = { body = true, header = "any", action = check_flow_action },
  location_request_message = { body = true, header = "any", action = named_action("send_location") },
  product = { body = false, header = false, action = check_product_action },
  product_list = { body = true, header = "text", header_required = true, action = check_product_list_action },
  catalog_message = { body = true, header = "any", action = check_catalog_action },
  call_permission_request = { body = true, header = "any", action = named_action("call_permission_request") },
  -- Known, checked for the common parts only.
  address_message = { body = true, header = "any", action = no_check },
  order_details = { body = true, header = "any", action = no_check },
  order_status = { body = true, header = "any", action = no_check },
  voice_call = { body = true, header = "any", action = no_check },
  carousel = { body = true, header = "any", action = no_check },
}
for name, rule in pairs(INTERACTIVE) do rule.name = name end

local function check_interactive(it)
  local e = check_object(it) or check_text(it, "type", REQ)
  if e then return e end
  local rule = INTERACTIVE[it.type] or INTERACTIVE[lower(it.type)]
  if not rule then return fail("type", "unknown interactive type %s", show(it.type)) end
  local t = rule.name
  if it.header ~= nil then
    if rule.header == false then return fail("header", "not allowed for %s messages", t) end
    e = field(it, "header", check_header, rule.header == "text", t)
    if e then return e end
  elseif rule.header_required then
    return fail("header", "required for %s messages", t)
  end
  if it.body ~= nil then
    e = field(it, "body", check_text_object, IL.body)
    if e then return e end
  elseif rule.body then
    return fail("body", "required for %s messages", t)
  end
  if it.footer ~= nil then
    e = field(it, "footer", check_text_object, IL.footer)
    if e then return e end
  end
  if it.action == nil then return fail("action", "required") end
  return field(it, "action", check_object) or field(it, "action", rule.action)
end

---------------------------------------------------------------------------
-- Template
---------------------------------------------------------------------------

local S = function(list)
  local set = {}
  for w in list:gmatch("%S+") do set[w] = true end
  return set
end

-- Parameter types each component takes; button parameters by sub_type.
local PARAMS = {
  header = S "text currency date_time image video document location product",
  body = S "text currency date_time",
  limited_time_offer = S "limited_time_offer",
}
local BUTTON_PARAMS = {
  quick_reply = S "payload",
  url = S "text",
  copy_code = S "coupon_code",
  flow = S "action",
  catalog = S "action",
  mpm = S "action",
}
local ANY_BUTTON_PARAM = S "payload text coupon_code action"

local COMPONENTS = S "header body button limited_time_offer carousel"

local function check_index(t, key, max)
  local v = t[key]
  if v == nil then return fail(key, "required") end
  local x
  if type(v) == "number" then
    x = v
  elseif type(v) == "string" and find(v, "^%d%d?$") then
    x = tonumber(v)
  end
  if not x or x ~= floor(x) or x < 0 or x > max then
    return fail(key, "must be 0 to %d, got %s", max, show(v))
  end
  return nil
end

local function check_currency(c)
  local e = check_object(c) or check_text(c, "fallback_value", REQ) or check_text(c, "code", REQ)
  if e then return e end
  if not find(c.code, "^%u%u%u$") then return fail("code", "must be an ISO 4217 code, got %s", show(c.code)) end
  local a = c.amount_1000
  if type(a) ~= "number" or a ~= floor(a) then
    return fail("amount_1000", "must be an integer (amount × 1000), got %s", show(a))
  end
  return nil
end

local function check_date_time(d)
  return check_object(d) or check_text(d, "fallback_value", REQ)
end

local function check_lto(l)
  local e = check_object(l)
  if e then return e end
  local x = l.expiration_time_ms
  if x ~= nil and (type(x) ~= "number" or x ~= floor(x)) then
    return fail("expiration_time_ms", "must be an integer, got %s", show(x))
  end
  return nil
end

local function check_param(p, ctype, allowed, where)
  local e = check_object(p) or check_text(p, "type", REQ)
  if e then return e end
  local pt = lower(p.type)
  if not allowed[pt] then
    return fail("type", "%s parameter not allowed in %s", show(p.type), where)
  end
  if p.parameter_name ~= nil then
    e = check_text(p, "parameter_name", REQ)
    if e then return e end
    if not find(p.parameter_name, "^[a-z0-9_]+$") then
      return fail("parameter_name", "lower-case letters, digits and underscores only, got %s", show(p.parameter_name))
    end
  end
  if pt == "text" then
    local plain = ctype == "header" or ctype == "body"
    e = check_text(p, "text", REQ, ctype == "header" and TL.header_text or TL.text_param)
    if e then return e end
    if plain and (find(p.text, "[\n\t]") or find(p.text, "     ", 1, true)) then
      return fail("text", "a parameter cannot have new-line or tab characters or more than 4 consecutive spaces")
    end
    return nil
  elseif pt == "image" or pt == "video" or pt == "document" then
    if p[pt] == nil then return fail(pt, "required") end
    return field(p, pt, check_media, pt, false)
  elseif pt == "location" then
    if p.location == nil then return fail("location", "required") end
    return field(p, "location", check_location)
  elseif pt == "currency" then
    if p.currency == nil then return fail("currency", "required") end
    return field(p, "currency", check_currency)
  elseif pt == "date_time" then
    if p.date_time == nil then return fail("date_time", "required") end
    return field(p, "date_time", check_date_time)
  elseif pt == "payload" then
    return check_text(p, "payload", REQ)
  elseif pt == "coupon_code" then
    return check_text(p, "coupon_code", REQ, TL.coupon_code)
  elseif pt == "limited_time_offer" then
    if p.limited_time_offer == nil then return fail("limited_time_offer", "required") end
    return field(p, "limited_time_offer", check_lto)
  elseif pt == "action" or pt == "product" then
    if p[pt] == nil then return fail(pt, "required") end
    return field(p, pt, check_object) or field(p, pt, check_tree, 0)
  end
  return nil
end

-- Parameters of one component: types valid for it, and named (parameter_name) or
-- positional, not both; parameter names unique.
local function check_params(ps, ctype, allowed, where)
  local n = array_len(ps)
  if not n then return fail(nil, "must be an array, got %s", kind(ps)) end
  local named
  for j = 1, n do
    local e = field(ps, j, check_param, ctype, allowed, where)
    if e then return e end
    local p = ps[j]
    local this = p.parameter_name ~= nil
    if j == 1 then
      named = this
    elseif this ~= named then
      enter(j)
      if this then
        return fail("parameter_name", "named parameter after positional ones; a component cannot mix them")
      end
      return fail(nil, "positional parameter (no parameter_name) after named ones; a component cannot mix them")
    end
    if this then
      for k = 1, j - 1 do
        if ps[k].parameter_name == p.parameter_name then
          enter(j)
          return fail("parameter_name", "same name as parameters[%d]", k)
        end
      end
    end
  end
  return nil
end

local check_component

local function check_card(card)
  local e = check_object(card)
  if e then return e end
  if card.card_index ~= nil then
    e = check_index(card, "card_index", TL.cards - 1)
    if e then return e end
  end
  local cs = card.components
  if cs == nil then return fail("components", "required") end
  local n = array_len(cs)
  if not n then return fail("components", "must be an array, got %s", kind(cs)) end
  enter("components")
  for i = 1, n do
    e = field(cs, i, check_component, true)
    if e then return e end
  end
  top = top - 1
  return nil
end

function check_component(c, in_card)
  local e = check_object(c) or check_text(c, "type", REQ)
  if e then return e end
  local ct = lower(c.type)
  if not COMPONENTS[ct] or in_card and (ct == "carousel" or ct == "limited_time_offer") then
    return fail("type", "unknown component type %s", show(c.type))
  end
  local allowed, where = PARAMS[ct], ct
  if ct == "button" then
    e = check_text(c, "sub_type", REQ) or check_index(c, "index", TL.button_index)
    if e then return e end
    local st = lower(c.sub_type)
    allowed = BUTTON_PARAMS[st] or ANY_BUTTON_PARAM
    where = st .. " button"
  elseif ct == "carousel" then
    local cards = c.cards
    if cards == nil then return fail("cards", "required") end
    local n = array_len(cards)
    if not n then return fail("cards", "must be an array, got %s", kind(cards)) end
    if n < 1 or n > TL.cards then return fail("cards", "%d cards, 1 to %d allowed", n, TL.cards) end
    enter("cards")
    for i = 1, n do
      e = field(cards, i, check_card)
      if e then return e end
    end
    top = top - 1
    if c.parameters == nil then return nil end
    return fail("parameters", "a carousel component has cards, not parameters")
  end
  if c.parameters == nil then return nil end
  return field(c, "parameters", check_params, ct, allowed, where)
end

local function check_language(l)
  return check_object(l) or check_text(l, "code", REQ) or check_word(l, "policy", OPT, false, "deterministic")
end

local function check_template(t)
  local e = check_object(t) or check_text(t, "name", REQ, TL.name)
  if e then return e end
  if t.language == nil then return fail("language", "required") end
  e = field(t, "language", check_language)
  if e then return e end
  local cs = t.components
  if cs == nil then return nil end
  local n = array_len(cs)
  if not n then return fail("components", "must be an array, got %s", kind(cs)) end
  enter("components")
  for i = 1, n do
    e = field(cs, i, check_component, false)
    if e then return e end
  end
  top = top - 1
  return nil
end

---------------------------------------------------------------------------
-- The envelope
---------------------------------------------------------------------------

local TYPES = {
  text = check_text_message,
  image = media_checker("image", true),
  video = media_checker("video", true),
  document = media_checker("document", true),
  audio = media_checker("audio", false),
  sticker = media_checker("sticker", false),
  location = check_location,
  contacts = check_contacts,
  interactive = check_interactive,
  template = check_template,
  reaction = check_reaction,
}

local ENVELOPE = S "messaging_product recipient_type to recipient type context biz_opaque_callback_data"
local READ_BODY = S "messaging_product recipient_type status message_id typing_indicator"

local function check_read(msg)
  for k in pairs(msg) do
    if not READ_BODY[k] then return fail(k, "unknown field in a mark-as-read body") end
  end
  local e = check_word(msg, "status", REQ, false, "read") or check_text(msg, "message_id", REQ)
    or check_word(msg, "recipient_type", OPT, false, "individual", "group")
  if e or msg.typing_indicator == nil then return e end
  return field(msg, "typing_indicator", obj_word, "type", REQ, "text")
end

local function check_message(msg)
  local mp = msg.messaging_product
  if mp == nil then return fail("messaging_product", "required (\"whatsapp\")") end
  if mp ~= "whatsapp" then return fail("messaging_product", "must be \"whatsapp\", got %s", show(mp)) end
  if msg.type == nil and msg.status ~= nil then return check_read(msg) end

  local t = msg.type
  if t == nil then
    if msg.text == nil then return fail("type", "required") end
    t = "text" -- Meta's default
  elseif type(t) ~= "string" then
    return fail("type", "must be a string, got %s", kind(t))
  elseif not TYPES[t] then
    return fail("type", "unknown message type %s", show(t))
  end
  for k in pairs(msg) do
    if not ENVELOPE[k] and k ~= t then
      if READ_BODY[k] then return fail(k, "only allowed in a mark-as-read body (status = \"read\")") end
      return fail(k, "unknown field")
    end
  end

  local e = check_word(msg, "recipient_type", OPT, false, "individual", "group")
  if e then return e end
  local to, bsuid = msg.to, msg.recipient
  if to == nil and bsuid == nil then
    return fail("to", "required (or recipient, for a business-scoped user id)")
  end
  if to ~= nil then
    if msg.recipient_type == "group" then e = check_group(to, "to") else e = check_phone(to, "to") end
    if e then return e end
  end
  if bsuid ~= nil then
    if msg.recipient_type == "group" then return fail("recipient", "a group is addressed with to") end
    e = check_bsuid(bsuid, "recipient")
    if e then return e end
  end

  local ctx = msg.context
  if ctx ~= nil then
    if t == "reaction" then return fail("context", "not allowed for reactions") end
    e = field(msg, "context", obj_text, "message_id", REQ)
    if e then return e end
  end
  e = check_text(msg, "biz_opaque_callback_data", OPT, limits.biz_opaque_callback_data)
  if e then return e end

  if msg[t] == nil then return fail(t, "required for type %s", t) end
  return field(msg, t, TYPES[t])
end

--- Check an outbound message body (or a mark-as-read / typing-indicator body).
-- @tparam table msg the body as it will be POSTed to `/{Phone-Number-ID}/messages`
-- @treturn boolean|nil true when the body is within Meta's rules
-- @treturn[2] table the validation error (`code = "validation"`, `path`, `message`)
function validate.message(msg)
  if type(msg) ~= "table" then error("validate.message: table expected, got " .. type(msg), 2) end
  top = 0
  local e = check_message(msg)
  if e then return nil, e end
  return true
end

--- A quick yes for the commonest body: whether the text message `message.text(to, body)`
-- builds, with no option or only `preview_url`, passes `validate.message`, decided without
-- the table. Says yes only for a phone number of digits (an optional leading `+`) and a
-- body of 1 to 4096 code points of valid UTF-8. `false` is no verdict: the recipient may
-- be in a form this does not look at (separators, a group, a BSUID) or something is wrong;
-- `validate.message` on the built table decides and names the fault.
-- @param to
-- @param body
-- @treturn boolean
function validate.text_quick(to, body)
  if type(to) ~= "string" or type(body) ~= "string" then return false end
  if not find(to, "^%+?[0-9]+$") then return false end
  local n = byte(to, 1) == 43 and #to - 1 or #to
  if n < limits.phone_min_digits or n > limits.phone_max_digits then return false end
  if body == "" then return false end
  n = ulen(body)
  return n ~= nil and n <= limits.text_body
end

---------------------------------------------------------------------------
-- Media uploads
---------------------------------------------------------------------------

local MIME_KIND = {}
for k, m in pairs(limits.media) do
  for _, mt in ipairs(m.types) do MIME_KIND[mt] = k end
end

-- "Image/JPEG; charset=x" -> "image/jpeg"
local function normalize_mime(mime)
  return lower(match(mime, "^%s*([^;%s]*)") or "")
end

--- The media kind a MIME type is sent as, or nil when Meta does not take it.
-- Parameters (`audio/ogg; codecs=opus`) and case are ignored. `image/webp` is a sticker.
-- @tparam string mime
-- @treturn string|nil "audio", "document", "image", "sticker" or "video"
function validate.media_kind(mime)
  if type(mime) ~= "string" then error("validate.media_kind: string expected, got " .. type(mime), 2) end
  return MIME_KIND[normalize_mime(mime)]
end

--- Check a file before uploading it (`POST /{Phone-Number-ID}/media`): a MIME type
-- Meta supports and a size within the limit of its kind (`validate.limits.media`).
-- Error paths are `"type"` (the MIME type form field) and `"file"` (the size).
-- @tparam string mime_type
-- @tparam number size in bytes
-- @tparam[opt] table opts `kind` (the kind the file must be, e.g. "document"),
--   `animated` (true for an animated sticker: 500 KB instead of 100 KB)
-- @treturn boolean|nil true when acceptable
-- @treturn[2] table the validation error
function validate.media_upload(mime_type, size, opts)
  if type(mime_type) ~= "string" then
    error("validate.media_upload: mime_type must be a string, got " .. type(mime_type), 2)
  end
  if type(size) ~= "number" then error("validate.media_upload: size must be a number, got " .. type(size), 2) end
  if opts ~= nil and type(opts) ~= "table" then error("validate.media_upload: opts must be a table", 2) end
  top = 0
  local mkind = MIME_KIND[normalize_mime(mime_type)]
  if not mkind then
    return nil, fail("type", "unsupported MIME type %s", show(mime_type))
  end
  local want = opts and opts.kind
  if want ~= nil and want ~= mkind then
    if not limits.media[want] then error("validate.media_upload: unknown kind " .. tostring(want), 2) end
    return nil, fail("type", "%s is %s media, not %s", show(mime_type), mkind, want)
  end
  local m = limits.media[mkind]
  local max = m.size
  if mkind == "sticker" and opts and opts.animated then max = m.animated_size end
  if size ~= size or size <= 0 then return nil, fail("file", "empty file") end
  if size > max then
    return nil, fail("file", "%.0f bytes, at most %.0f for %s%s", size, max,
      (opts and opts.animated and mkind == "sticker") and "an animated " or "", mkind)
  end
  return true
end

return validate
