-- whatsapp.validate: outbound message bodies against Meta's limits.
--
-- Every messages request fixture (spec/fixtures/requests, template management bodies
-- excepted) and every recorded POST to /messages must pass; then, rule by rule, a body
-- that breaks it must fail with code "validation" and the exact path, with limits
-- tested at the boundary (at the limit passes, one over fails) in multibyte text.
local cjson = require "cjson"
local helpers = require "helpers"
local validate = require "whatsapp.validate"
local errors = require "whatsapp.errors"

local rep = string.rep

local function fixture(name)
  return helpers.fixture("requests/" .. name .. ".json")
end

-- A message of type t with the given object, to a phone number.
local function msg(t, obj)
  return { messaging_product = "whatsapp", recipient_type = "individual", to = "15550002222", type = t, [t] = obj }
end

local function passes(m)
  local ok, err = validate.message(m)
  assert.is_nil(err and tostring(err))
  assert.is_true(ok)
end

-- The body fails with a validation error at `path`; returns the error.
local function fails(m, path, pattern)
  local ok, err = validate.message(m)
  assert.is_nil(ok)
  assert.is_true(errors.is(err))
  assert.equal("validation", err.code)
  assert.equal("param", err.category)
  assert.is_false(err.retry)
  assert.equal(path, err.path)
  if pattern then assert.matches(pattern, err.message, 1, true) end
  return err
end

-- n copies of s.
local function text(s, n) return rep(s, n) end

-- Interactive reply buttons with the given titles (ids b1, b2, ...).
local function buttons(...)
  local bs = {}
  for i, title in ipairs{ ... } do
    bs[i] = { type = "reply", reply = { id = "b" .. i, title = title } }
  end
  return { type = "button", body = { text = "Pick one" }, action = { buttons = bs } }
end

-- A list with sections of the given row counts.
local function list(...)
  local secs = {}
  local n = 0
  for i, rows in ipairs{ ... } do
    local r = {}
    for j = 1, rows do
      n = n + 1
      r[j] = { id = "row" .. n, title = "Row " .. n }
    end
    secs[i] = { title = "Section " .. i, rows = r }
  end
  return { type = "list", body = { text = "Choose" }, action = { button = "Options", sections = secs } }
end

local function template(components)
  return { name = "order_update", language = { code = "en_US" }, components = components }
end

describe("validate", function()
  describe("fixtures", function()
    for _, name in ipairs(helpers.list("requests")) do
      if not name:match("^template_create") and not name:match("^template_update") then
        it("accepts requests/" .. name, function()
          passes(helpers.fixture("requests/" .. name))
        end)
      end
    end

    for _, name in ipairs(helpers.list("exchanges")) do
      local ex = helpers.fixture("exchanges/" .. name)
      local req = ex.request
      if req.method == "POST" and req.url:match("/messages$") and req.json then
        it("accepts the body of exchanges/" .. name, function()
          passes(req.json)
        end)
      end
    end

    it("checks the recorded media upload", function()
      local form = helpers.fixture("exchanges/media_upload_multipart.json").request.multipart_form
      local file
      for _, part in ipairs(form) do if part.name == "file" then file = part end end
      assert.is_true(validate.media_upload(file.content_type, file.content_length))
      assert.equal("image", validate.media_kind(file.content_type))
    end)
  end)

  describe("utf8_len", function()
    it("counts code points", function()
      assert.equal(0, validate.utf8_len(""))
      assert.equal(5, validate.utf8_len("hello"))
      assert.equal(5, validate.utf8_len("héllo"))
      assert.equal(3, validate.utf8_len("a€b"))
      assert.equal(1, validate.utf8_len("👍"))
      assert.equal(2, validate.utf8_len("👍🏽"))
      assert.equal(5, validate.utf8_len("👨‍👩‍👧"))
      assert.equal(4097, validate.utf8_len(text("é", 4097)))
      assert.equal(6, validate.utf8_len("\0\127\194\128\239\191\191\244\143\191\191x"))
    end)

    it("returns nil and the position for invalid UTF-8", function()
      local cases = {
        { "\255", 1 }, { "ab\128", 3 },             -- stray continuation
        { "\192\175", 1 }, { "\193\191", 1 },       -- overlong 2-byte
        { "\224\128\175", 1 },                      -- overlong 3-byte
        { "\240\128\128\175", 1 },                  -- overlong 4-byte
        { "\237\160\128", 1 },                      -- surrogate U+D800
        { "\244\144\128\128", 1 },                  -- above U+10FFFF
        { "\245\128\128\128", 1 },
        { "x\195", 2 }, { "x\226\130", 2 }, { "\240\159\145", 1 }, -- truncated
        { "\195(", 1 },
        { "é\226\130(", 3 },
      }
      for _, c in ipairs(cases) do
        local n, pos = validate.utf8_len(c[1])
        assert.is_nil(n, c[1])
        assert.equal(c[2], pos)
      end
    end)

    it("raises on a non-string", function()
      assert.has_error(function() validate.utf8_len(42) end)
    end)

    -- The reference: a byte loop over RFC 3629's table of well-formed sequences.
    local function reference_len(s)
      local i, n, count = 1, #s, 0
      while i <= n do
        local c = s:byte(i)
        local need
        local lo, hi = 0x80, 0xBF
        if c < 0x80 then need = 0
        elseif c >= 0xC2 and c <= 0xDF then need = 1
        elseif c == 0xE0 then need, lo = 2, 0xA0
        elseif c == 0xED then need, hi = 2, 0x9F
        elseif c >= 0xE1 and c <= 0xEF then need = 2
        elseif c == 0xF0 then need, lo = 3, 0x90
        elseif c == 0xF4 then need, hi = 3, 0x8F
        elseif c >= 0xF1 and c <= 0xF3 then need = 3
        else return nil, i end
        for k = 1, need do
          local b = s:byte(i + k)
          if not b or b < (k == 1 and lo or 0x80) or b > (k == 1 and hi or 0xBF) then return nil, i end
        end
        i, count = i + need + 1, count + 1
      end
      return count
    end

    -- Strings made of ASCII runs and pieces of valid and invalid sequences.
    local function samples()
      local pieces = { "a", "Hello, world", "\0", "\127", "\194\128", "\223\191", "\224\160\128", "\237\159\191",
        "\238\128\128", "\240\144\128\128", "\244\143\191\191", "\128", "\191", "\192\128", "\193\191",
        "\224\159\191", "\237\160\128", "\240\143\191\191", "\244\144\128\128", "\245", "\255", "\226\130",
        "\240\159\145", "\248\136\128\128\128", "\252\132\128\128\128\128" }
      local out, seed = { "" }, 7
      for _, p in ipairs(pieces) do out[#out + 1] = p; out[#out + 1] = "abc" .. p .. "xyz" end
      for _ = 1, 3000 do
        local parts = {}
        for j = 1, (seed % 6) + 1 do
          seed = (seed * 1103515245 + 12345) % 2147483648
          parts[j] = pieces[math.floor(seed / 65536) % #pieces + 1]
        end
        out[#out + 1] = table.concat(parts)
      end
      return out
    end

    -- Lua 5.4's utf8.len answers for valid strings; the byte loop decides the rest (and is
    -- all there is under LuaJIT). Both must agree with the reference, so the module is
    -- also loaded once more without the utf8 library.
    it("agrees with a reference decoder, with and without the utf8 library", function()
      local saved_utf8, saved_module = rawget(_G, "utf8"), package.loaded["whatsapp.validate"]
      package.loaded["whatsapp.validate"] = nil
      rawset(_G, "utf8", nil)
      local ok, without = pcall(require, "whatsapp.validate")
      rawset(_G, "utf8", saved_utf8)
      package.loaded["whatsapp.validate"] = saved_module
      assert(ok, without)
      assert.are_not.equal(validate, without)
      for _, s in ipairs(samples()) do
        local n, pos = reference_len(s)
        local a, apos = validate.utf8_len(s)
        local b, bpos = without.utf8_len(s)
        assert.are.same({ n, pos }, { a, apos }, s)
        assert.are.same({ n, pos }, { b, bpos }, s)
      end
    end)
  end)

  describe("envelope", function()
    it("raises on a non-table body", function()
      assert.has_error(function() validate.message("hi") end)
    end)

    it("needs messaging_product whatsapp", function()
      local m = fixture("text_basic")
      m.messaging_product = nil
      fails(m, "messaging_product")
      m.messaging_product = "instagram"
      fails(m, "messaging_product", '"whatsapp"')
    end)

    it("needs a known type with its object", function()
      local m = fixture("text_basic")
      m.type = "telegram"
      fails(m, "type", "unknown message type")
      m.type = 7
      fails(m, "type")
      m = fixture("text_basic")
      m.type = "image"
      fails(m, "text", "unknown field")   -- the text object does not belong to an image
      m.text = nil
      fails(m, "image", "required")
    end)

    it("defaults a missing type to text, as Meta does", function()
      local m = fixture("text_basic")
      m.type = nil
      passes(m)
      m.text = nil
      fails(m, "type", "required")
    end)

    it("refuses unknown top-level keys", function()
      local m = fixture("text_basic")
      m.priority = "high"
      fails(m, "priority", "unknown field")
      m = fixture("text_basic")
      m.message_id = "wamid.x"
      fails(m, "message_id", "mark-as-read")
    end)

    it("checks recipient_type", function()
      local m = fixture("text_basic")
      m.recipient_type = "broadcast"
      fails(m, "recipient_type")
    end)

    it("needs to or recipient", function()
      local m = fixture("text_basic")
      m.to = nil
      fails(m, "to", "required")
      m.recipient = "US.1000000000000001"
      passes(m)
    end)

    it("checks context.message_id", function()
      local m = fixture("text_reply_with_context")
      m.context.message_id = ""
      fails(m, "context.message_id", "empty")
      m.context = { message_id = 5 }
      fails(m, "context.message_id", "string")
      m.context = "wamid.x"
      fails(m, "context", "object")
      m.context = {}
      fails(m, "context.message_id", "required")
    end)

    it("limits biz_opaque_callback_data to 512 characters", function()
      local m = fixture("text_with_biz_opaque_callback_data")
      m.biz_opaque_callback_data = text("ü", 512)
      passes(m)
      m.biz_opaque_callback_data = text("ü", 513)
      fails(m, "biz_opaque_callback_data", "513 characters, at most 512")
    end)

    it("reports invalid UTF-8 anywhere", function()
      local m = fixture("text_basic")
      m.text.body = "ok \237\160\128"
      fails(m, "text.body", "invalid UTF-8 at byte 4")
      m = fixture("contacts_full_card")
      m.contacts[1].addresses[2].city = "S\227o Paulo"
      fails(m, "contacts[1].addresses[2].city", "invalid UTF-8")
    end)

    it("keeps huge values out of messages", function()
      local m = fixture("text_basic")
      m.type = text("x", 10000)
      local err = fails(m, "type")
      assert.is_true(#err.message < 200)
      assert.is_nil(err.message:find("[\128-\255]"))
    end)

    it("gives a readable error object", function()
      local m = fixture("text_basic")
      m.text.body = ""
      local err = fails(m, "text.body")
      assert.equal("text.body: must not be empty", err.message)
      assert.matches("validation text.body: must not be empty", tostring(err), 1, true)
    end)
  end)

  describe("recipient", function()
    it("accepts phone numbers with an optional + and separators", function()
      for _, to in ipairs{ "15550002222", "+15550002222", "+1 (555) 000-2222", "12345", "123456789012345" } do
        assert.is_true(validate.recipient(to))
      end
    end)

    it("counts the digits with and without the +", function()
      for _, to in ipairs{ "+12345", "+123456789012345", "1 2 3 4 5", "+1-2-3-4-5-6-7-8-9-0-1-2-3-4-5" } do
        assert.is_true(validate.recipient(to), to)
      end
      for _, c in ipairs{ { "+1234", "4 digits" }, { "+1234567890123456", "16 digits" },
                          { "12345678901234567890", "20 digits" }, { "+", "0 digits" },
                          { "1 2 3 4", "4 digits" }, { "+1-2-3-4-5-6-7-8-9-0-1-2-3-4-5-6", "16 digits" } } do
        local ok, err = validate.recipient(c[1])
        assert.is_nil(ok, c[1])
        assert.equal("to: " .. c[2] .. ", a phone number has 5 to 15", err.message)
      end
    end)

    it("refuses what is not a phone number", function()
      for _, to in ipairs{ "1234", "1234567890123456", "++15550002222", "1555a002222", "", "1555.000.2222",
                           "1555\n0002222", "15550002222+", "+15550002222-+", "\0" .. "15550002222" } do
        local ok, err = validate.recipient(to)
        assert.is_nil(ok, to)
        assert.equal("validation", err.code)
        assert.equal("to", err.path)
      end
      local ok, err = validate.recipient(15550002222)
      assert.is_nil(ok)
      assert.matches("must be a string", err.message, 1, true)
    end)

    it("takes group ids with recipient_type group", function()
      assert.is_true(validate.recipient("GROUP_ID_PLACEHOLDER", "group"))
      assert.is_true(validate.recipient("Y2FwaV9ncm91cDoxNzA1NTU1MDEzOT+/=", "group"))
      local ok, err = validate.recipient("a group", "group")
      assert.is_nil(ok)
      assert.equal("to", err.path)
      assert.is_nil((validate.recipient("", "group")))
    end)

    it("recognises business-scoped user ids", function()
      assert.is_true(validate.recipient("US.1000000000000001"))
      assert.is_true(validate.recipient("US.ENT.1000000000000001"))
      local ok, err = validate.recipient("US.")
      assert.is_nil(ok)
      assert.equal("recipient", err.path)
    end)

    it("puts BSUIDs in recipient, phone numbers in to", function()
      local m = fixture("text_basic")
      m.to = "US.1000000000000001"
      fails(m, "to", "goes in recipient")
      m = fixture("text_to_bsuid_recipient")
      m.recipient = "15550002222"
      fails(m, "recipient")
      m = fixture("text_to_group")
      m.to = "15550002222 "
      fails(m, "to")
      m = fixture("text_basic")
      m.to = "12"
      fails(m, "to", "2 digits")
    end)
  end)

  describe("text", function()
    it("takes 1 to 4096 characters", function()
      local m = fixture("text_basic")
      m.text.body = text("é", 4096)
      passes(m)
      m.text.body = text("é", 4097)
      fails(m, "text.body", "text.body: 4097 characters, at most 4096")
      m.text.body = ""
      fails(m, "text.body")
      m.text.body = nil
      fails(m, "text.body", "required")
      m.text = "hola"
      fails(m, "text", "object")
    end)

    it("checks preview_url", function()
      local m = fixture("text_preview_url")
      m.text.preview_url = "yes"
      fails(m, "text.preview_url", "boolean")
    end)
  end)

  describe("text_quick", function()
    local message = require "whatsapp.message"
    local TOS = { "15550002222", "+15550002222", "12345", "+12345", "1234", "+1234", "123456789012345",
      "+123456789012345", "1234567890123456", "+1234567890123456", "1 555 000 2222", "+1 (555) 000-2222",
      "US.1000000000000001", "1555a002222", "15550002222 ", "+", "١٢٣٤٥٦" }
    local BODIES = { "hi", "x", "", "héllo 👍🏽", string.rep("a", 4096), string.rep("a", 4097),
      string.rep("é", 4096), string.rep("é", 4097), string.rep("👍", 4096), string.rep("👍", 4097),
      "bad \255 byte", "\237\160\128", "nul\0inside", "\226\130" }

    it("says yes only for what validate.message accepts, and for every digit-only number", function()
      local yes = 0
      for _, to in ipairs(TOS) do
        for _, body in ipairs(BODIES) do
          local quick = validate.text_quick(to, body)
          local full = validate.message(message.text(to, body)) == true
          if quick then
            yes = yes + 1
            assert.is_true(full, to .. " / " .. body:sub(1, 20))
          elseif to:find("^%+?[0-9]+$") then
            -- No "no verdict" for the form it covers: it agrees with the full check.
            assert.is_false(full, to .. " / " .. body:sub(1, 20))
          end
        end
      end
      assert.is_true(yes >= 30, yes)
    end)

    it("has no verdict on other recipient forms and other types", function()
      assert.is_false(validate.text_quick("1 555 000 2222", "hi"))
      assert.is_false(validate.text_quick("US.1000000000000001", "hi"))
      assert.is_false(validate.text_quick(15550002222, "hi"))
      assert.is_false(validate.text_quick("15550002222", 42))
      assert.is_false(validate.text_quick(nil, nil))
      assert.is_false(validate.text_quick("", "hi"))
      assert.is_true(validate.text_quick("15550002222", "hi"))
    end)
  end)

  describe("media", function()
    it("needs exactly one of id and link", function()
      local m = fixture("image_by_id_with_caption")
      m.image.link = "https://example.com/a.png"
      fails(m, "image", "not both")
      m.image.id, m.image.link = nil, nil
      fails(m, "image", "id or link required")
      m.image = "123"
      fails(m, "image", "object")
    end)

    it("takes http(s) links only", function()
      local m = fixture("image_by_link_with_caption")
      for _, bad in ipairs{ "ftp://example.com/a.png", "example.com/a.png", "https://", "https://exa mple.com/" } do
        m.image.link = bad
        fails(m, "image.link")
      end
      m.image.link = "HTTP://example.com/a.png"
      passes(m)
    end)

    it("limits captions to 1024 characters (image, video, document)", function()
      for _, name in ipairs{ "image_by_id_with_caption", "video_by_id_with_caption", "document_by_id_with_filename" } do
        local m = fixture(name)
        local obj = m[m.type]
        obj.caption = text("€", 1024)
        passes(m)
        obj.caption = text("€", 1025)
        fails(m, m.type .. ".caption", "1025 characters, at most 1024")
      end
    end)

    it("has no caption on audio and stickers", function()
      local m = fixture("audio_by_id")
      m.audio.caption = "hi"
      fails(m, "audio.caption")
      m = fixture("sticker_by_id")
      m.sticker.caption = "hi"
      fails(m, "sticker.caption")
    end)

    it("checks document filenames", function()
      local m = fixture("document_by_id_with_filename")
      m.document.filename = text("ñ", validate.limits.filename) .. ""
      passes(m)
      m.document.filename = text("ñ", validate.limits.filename + 1)
      fails(m, "document.filename", "at most " .. validate.limits.filename)
      m.document.filename = ""
      fails(m, "document.filename")
      m = fixture("image_by_id_with_caption")
      m.image.filename = "a.png"
      fails(m, "image.filename")
    end)

    it("takes voice only on audio, as a boolean", function()
      local m = fixture("audio_voice_note")
      m.audio.voice = "true"
      fails(m, "audio.voice", "boolean")
      m = fixture("video_by_id_with_caption")
      m.video.voice = true
      fails(m, "video.voice")
    end)

    it("needs a non-empty id", function()
      local m = fixture("sticker_by_id")
      m.sticker.id = ""
      fails(m, "sticker.id")
    end)
  end)

  describe("location", function()
    it("takes latitude -90..90 and longitude -180..180, numbers or numeric strings", function()
      local m = fixture("location_numeric_coords")
      m.location.latitude, m.location.longitude = 90, -180
      passes(m)
      m.location.latitude, m.location.longitude = "-90", "180.0"
      passes(m)
      m.location.latitude = 90.0001
      fails(m, "location.latitude", "outside -90..90")
      m.location.latitude = 0
      m.location.longitude = "-180.5"
      fails(m, "location.longitude", "outside -180..180")
      m.location.longitude = "0x10"
      fails(m, "location.longitude", "numeric")
      m.location.longitude = "north"
      fails(m, "location.longitude")
      m.location.longitude = 0 / 0
      fails(m, "location.longitude")
      m.location.longitude = nil
      fails(m, "location.longitude", "required")
    end)
  end)

  describe("contacts", function()
    it("needs at least one contact with name.formatted_name", function()
      local m = fixture("contacts_full_card")
      m.contacts[1].name.formatted_name = nil
      fails(m, "contacts[1].name.formatted_name", "required")
      m.contacts[1].name = nil
      fails(m, "contacts[1].name")
      m.contacts = {}
      fails(m, "contacts", "at least one")
      m.contacts = { name = { formatted_name = "x" } }
      fails(m, "contacts", "array")
    end)
  end)

  describe("reaction", function()
    local function reaction(emoji)
      local m = fixture("reaction")
      m.reaction.emoji = emoji
      return m
    end

    it("takes exactly one emoji", function()
      for _, e in ipairs{ "👍", "👍🏽", "👨‍👩‍👧", "🇵🇹", "1️⃣", "#⃣", "❤️", "🏳️‍🌈", "👩🏽‍💻", "🕐",
                          "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🧑🏻‍❤️‍💋‍🧑🏼", "©️", "☺", "🫠" } do
        passes(reaction(e))
      end
    end)

    it("refuses anything else", function()
      for _, e in ipairs{ "ab", "👍👍", "a", "1", "🇵", "🇵🇹🇵", "👍 ", " 👍", "👍\226\128\141", "\226\128\141👍",
                          "️", "🏽👍", "🏴󠁧󠁢", "é" } do
        local err = fails(reaction(e), "reaction.emoji")
        assert.matches("single emoji", err.message, 1, true)
      end
      fails(reaction(42), "reaction.emoji", "string")
      fails(reaction("\240\159\145"), "reaction.emoji", "invalid UTF-8")
    end)

    it("removes with an empty or absent emoji", function()
      passes(reaction(""))
      passes(reaction(nil))
    end)

    it("needs message_id and no context", function()
      local m = fixture("reaction")
      m.context = { message_id = "wamid.x" }
      fails(m, "context", "not allowed for reactions")
      m = fixture("reaction")
      m.reaction.message_id = nil
      fails(m, "reaction.message_id")
    end)
  end)

  describe("interactive", function()
    it("needs a known interactive type", function()
      local m = fixture("interactive_button_text_header")
      m.interactive.type = "buttons"
      fails(m, "interactive.type", "unknown interactive type")
      m.interactive.type = nil
      fails(m, "interactive.type", "required")
      m.interactive.type = "Button"
      passes(m)
    end)

    it("limits body to 1024, header and footer text to 60", function()
      local m = fixture("interactive_button_text_header")
      m.interactive.body.text = text("ç", 1024)
      m.interactive.header.text = text("ç", 60)
      m.interactive.footer.text = text("ç", 60)
      passes(m)
      m.interactive.body.text = text("ç", 1025)
      fails(m, "interactive.body.text", "1025 characters, at most 1024")
      m.interactive.body.text = "ok"
      m.interactive.header.text = text("ç", 61)
      fails(m, "interactive.header.text", "61 characters, at most 60")
      m.interactive.header.text = "ok"
      m.interactive.footer.text = text("ç", 61)
      fails(m, "interactive.footer.text", "61 characters, at most 60")
      m.interactive.footer = {}
      fails(m, "interactive.footer.text", "required")
    end)

    it("needs a body except for single products", function()
      for _, name in ipairs{ "interactive_button_text_header", "interactive_list", "interactive_cta_url",
                             "interactive_flow", "interactive_location_request", "interactive_product_list",
                             "interactive_catalog_message", "interactive_call_permission_request" } do
        local m = fixture(name)
        m.interactive.body = nil
        fails(m, "interactive.body", "required")
      end
      local m = fixture("interactive_product")
      m.interactive.body = nil
      passes(m)
    end)

    it("checks the header", function()
      local m = fixture("interactive_button_image_header")
      m.interactive.header.image = { link = "file:///etc/passwd" }
      fails(m, "interactive.header.image.link")
      m.interactive.header.image = nil
      fails(m, "interactive.header.image", "required")
      m.interactive.header.type = "audio"
      fails(m, "interactive.header.type")
      m = fixture("interactive_button_image_header")
      m.interactive.header.image.caption = "no"
      fails(m, "interactive.header.image.caption")
      m = fixture("interactive_product")
      m.interactive.header = { type = "text", text = "x" }
      fails(m, "interactive.header", "not allowed")
    end)

    it("needs an action", function()
      local m = fixture("interactive_button_text_header")
      m.interactive.action = nil
      fails(m, "interactive.action", "required")
    end)

    describe("reply buttons", function()
      it("takes 1 to 3 buttons", function()
        passes(msg("interactive", buttons("a")))
        passes(msg("interactive", buttons("a", "b", "c")))
        fails(msg("interactive", buttons("a", "b", "c", "d")), "interactive.action.buttons", "4 buttons")
        fails(msg("interactive", buttons()), "interactive.action.buttons", "0 buttons")
        local m = msg("interactive", buttons("a"))
        m.interactive.action.buttons = nil
        fails(m, "interactive.action.buttons", "required")
      end)

      it("limits titles to 20 characters", function()
        passes(msg("interactive", buttons("a", text("😀", 20))))
        local err = fails(msg("interactive", buttons("a", text("😀", 21))), "interactive.action.buttons[2].reply.title")
        assert.equal("interactive.action.buttons[2].reply.title: 21 characters, at most 20", err.message)
        fails(msg("interactive", buttons("a", text("x", 23))), "interactive.action.buttons[2].reply.title",
          "interactive.action.buttons[2].reply.title: 23 characters, at most 20")
        fails(msg("interactive", buttons("a", "")), "interactive.action.buttons[2].reply.title", "empty")
      end)

      it("needs unique titles and ids, ids up to 256", function()
        fails(msg("interactive", buttons("Yes", "No", "Yes")), "interactive.action.buttons[3].reply.title",
          "buttons[1]")
        local m = msg("interactive", buttons("Yes", "No"))
        m.interactive.action.buttons[2].reply.id = "b1"
        fails(m, "interactive.action.buttons[2].reply.id", "unique")
        m.interactive.action.buttons[2].reply.id = text("ß", 256)
        passes(m)
        m.interactive.action.buttons[2].reply.id = text("ß", 257)
        fails(m, "interactive.action.buttons[2].reply.id", "257 characters, at most 256")
        m.interactive.action.buttons[2].reply.id = nil
        fails(m, "interactive.action.buttons[2].reply.id", "required")
      end)

      it("needs type reply and a reply object", function()
        local m = msg("interactive", buttons("a", "b"))
        m.interactive.action.buttons[2].type = "url"
        fails(m, "interactive.action.buttons[2].type", '"reply"')
        m.interactive.action.buttons[2] = { type = "reply" }
        fails(m, "interactive.action.buttons[2].reply", "required")
      end)
    end)

    describe("lists", function()
      it("takes up to 10 rows in total over up to 10 sections", function()
        passes(msg("interactive", list(10)))
        passes(msg("interactive", list(3, 3, 4)))
        passes(msg("interactive", list(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)))
        fails(msg("interactive", list(11)), "interactive.action.sections[1].rows[11]", "at most 10 rows")
        fails(msg("interactive", list(5, 4, 2)), "interactive.action.sections[3].rows[2]", "item 11 in total")
        fails(msg("interactive", list(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)), "interactive.action.sections",
          "11 sections")
        fails(msg("interactive", list()), "interactive.action.sections", "0 sections")
        fails(msg("interactive", list(2, 0)), "interactive.action.sections[2].rows", "at least one")
      end)

      it("limits row title 24, description 72, id 200, ids unique", function()
        local m = msg("interactive", list(2, 3))
        local row = m.interactive.action.sections[2].rows[3]
        row.title, row.description, row.id = text("ō", 24), text("ō", 72), text("ō", 200)
        passes(m)
        row.title = text("ō", 25)
        fails(m, "interactive.action.sections[2].rows[3].title", "25 characters, at most 24")
        row.title = "ok"
        row.description = text("ō", 73)
        fails(m, "interactive.action.sections[2].rows[3].description", "73 characters, at most 72")
        row.description = nil
        row.id = text("ō", 201)
        fails(m, "interactive.action.sections[2].rows[3].id", "201 characters, at most 200")
        row.id = "row1"
        fails(m, "interactive.action.sections[2].rows[3].id", "sections[1].rows[1]")
        row.id = "row4"
        fails(m, "interactive.action.sections[2].rows[3].id", "sections[2].rows[2]")
        row.id = nil
        fails(m, "interactive.action.sections[2].rows[3].id", "required")
      end)

      it("needs section titles (at most 24) when there is more than one section", function()
        local m = msg("interactive", list(2))
        m.interactive.action.sections[1].title = nil
        passes(m)
        m = msg("interactive", list(2, 2))
        m.interactive.action.sections[2].title = nil
        fails(m, "interactive.action.sections[2].title", "required")
        m.interactive.action.sections[2].title = text("ü", 24)
        passes(m)
        m.interactive.action.sections[2].title = text("ü", 25)
        fails(m, "interactive.action.sections[2].title", "25 characters")
      end)

      it("limits the button label to 20 and takes only text headers", function()
        local m = fixture("interactive_list")
        m.interactive.action.button = text("ä", 20)
        passes(m)
        m.interactive.action.button = text("ä", 21)
        fails(m, "interactive.action.button", "21 characters, at most 20")
        m.interactive.action.button = nil
        fails(m, "interactive.action.button", "required")
        m = fixture("interactive_list")
        m.interactive.header = { type = "image", image = { id = "1" } }
        fails(m, "interactive.header.type", "text header")
      end)
    end)

    describe("cta_url", function()
      it("limits display_text to 20 and needs an http(s) url", function()
        local m = fixture("interactive_cta_url")
        local p = m.interactive.action.parameters
        p.display_text = text("Ж", 20)
        passes(m)
        p.display_text = text("Ж", 21)
        fails(m, "interactive.action.parameters.display_text", "21 characters, at most 20")
        p.display_text = "Go"
        p.url = "javascript:alert(1)"
        fails(m, "interactive.action.parameters.url", "http")
        p.url = nil
        fails(m, "interactive.action.parameters.url", "required")
        m.interactive.action.parameters = nil
        fails(m, "interactive.action.parameters", "required")
        m.interactive.action.name = "url"
        fails(m, "interactive.action.name", '"cta_url"')
      end)
    end)

    describe("flow", function()
      it("checks the flow parameters", function()
        local m = fixture("interactive_flow")
        local p = m.interactive.action.parameters
        p.flow_message_version = "2"
        fails(m, "interactive.action.parameters.flow_message_version")
        p.flow_message_version = "3"
        p.flow_name = "booking"
        fails(m, "interactive.action.parameters.flow_id", "exactly one")
        p.flow_id = nil
        passes(m)
        p.flow_cta = text("x", 31)
        fails(m, "interactive.action.parameters.flow_cta", "31 characters, at most 30")
        p.flow_cta = "Book!"
        p.flow_action = "jump"
        fails(m, "interactive.action.parameters.flow_action")
        p.flow_action = "data_exchange"
        p.mode = "live"
        fails(m, "interactive.action.parameters.mode")
        p.mode = "draft"
        p.flow_action_payload.data.product_name = "\255"
        fails(m, "interactive.action.parameters.flow_action_payload.data.product_name", "invalid UTF-8")
      end)
    end)

    describe("product lists", function()
      local function product_list(...)
        local m = fixture("interactive_product_list")
        local secs, n = {}, 0
        for i, count in ipairs{ ... } do
          local items = {}
          for j = 1, count do
            n = n + 1
            items[j] = { product_retailer_id = "SKU-" .. n }
          end
          secs[i] = { title = "S" .. i, product_items = items }
        end
        m.interactive.action.sections = secs
        return m
      end

      it("takes up to 30 products over up to 10 sections", function()
        passes(product_list(30))
        passes(product_list(10, 10, 10))
        fails(product_list(31), "interactive.action.sections[1].product_items[31]", "at most 30")
        fails(product_list(10, 10, 9, 2), "interactive.action.sections[4].product_items[2]", "item 31 in total")
        fails(product_list(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), "interactive.action.sections", "11 sections")
      end)

      it("needs a text header, a catalog id and product ids", function()
        local m = fixture("interactive_product_list")
        m.interactive.header = nil
        fails(m, "interactive.header", "required")
        m = fixture("interactive_product_list")
        m.interactive.action.catalog_id = nil
        fails(m, "interactive.action.catalog_id")
        m = fixture("interactive_product_list")
        m.interactive.action.sections[2].product_items[1].product_retailer_id = ""
        fails(m, "interactive.action.sections[2].product_items[1].product_retailer_id")
        m = fixture("interactive_product_list")
        m.interactive.action.sections[1].title = nil
        fails(m, "interactive.action.sections[1].title", "required")
      end)
    end)

    it("checks single products, catalog, location and call permission requests", function()
      local m = fixture("interactive_product")
      m.interactive.action.product_retailer_id = nil
      fails(m, "interactive.action.product_retailer_id")
      m = fixture("interactive_location_request")
      m.interactive.action.name = "location"
      fails(m, "interactive.action.name", '"send_location"')
      m = fixture("interactive_call_permission_request")
      m.interactive.action = {}
      fails(m, "interactive.action.name", "required")
      m = fixture("interactive_catalog_message")
      m.interactive.action.parameters.thumbnail_product_retailer_id = 7
      fails(m, "interactive.action.parameters.thumbnail_product_retailer_id")
    end)
  end)

  describe("template", function()
    it("needs a name and language.code", function()
      local m = fixture("template_named_body_params")
      m.template.name = ""
      fails(m, "template.name")
      m = fixture("template_named_body_params")
      m.template.language = nil
      fails(m, "template.language", "required")
      m.template.language = { policy = "deterministic" }
      fails(m, "template.language.code", "required")
      m.template.language = { code = "en", policy = "fallback" }
      fails(m, "template.language.policy")
    end)

    it("does not mix named and positional parameters in a component", function()
      local m = fixture("template_named_body_params")
      m.template.components[1].parameters[2].parameter_name = nil
      fails(m, "template.components[1].parameters[2]", "cannot mix")
      m = fixture("template_limited_time_offer_coupon_code")
      m.template.components[2].parameters[2].parameter_name = "code"
      fails(m, "template.components[2].parameters[2].parameter_name", "cannot mix")
    end)

    it("checks parameter names", function()
      local m = fixture("template_named_body_params")
      m.template.components[1].parameters[2].parameter_name = "customer_name"
      fails(m, "template.components[1].parameters[2].parameter_name", "same name")
      m.template.components[1].parameters[2].parameter_name = "Order Number"
      fails(m, "template.components[1].parameters[2].parameter_name", "lower-case")
    end)

    it("needs sub_type and an index 0..9 on buttons", function()
      local m = fixture("template_header_image_id_currency_datetime")
      local b = m.template.components[4]
      for _, ok in ipairs{ 0, 9, "0", "9" } do
        b.index = ok
        passes(m)
      end
      for _, bad in ipairs{ 10, -1, 1.5, "10", "a", "", true } do
        b.index = bad
        fails(m, "template.components[4].index", "0 to 9")
      end
      b.index = nil
      fails(m, "template.components[4].index", "required")
      b.index = 1
      b.sub_type = nil
      fails(m, "template.components[4].sub_type", "required")
    end)

    it("takes only parameter types valid for the component", function()
      local m = fixture("template_header_image_body_currency_datetime_quick_replies")
      m.template.components[2].parameters[1] = { type = "image", image = { id = "1" } }
      fails(m, "template.components[2].parameters[1].type", "not allowed in body")
      m = fixture("template_header_image_body_currency_datetime_quick_replies")
      m.template.components[3].parameters[1] = { type = "text", text = "x" }
      fails(m, "template.components[3].parameters[1].type", "quick_reply button")
      m = fixture("template_auth_otp_copy_code")
      m.template.components[2].parameters[1] = { type = "payload", payload = "x" }
      fails(m, "template.components[2].parameters[1].type", "url button")
      m = fixture("template_limited_time_offer_coupon_code")
      m.template.components[4].parameters[1] = { type = "text", text = "x" }
      fails(m, "template.components[4].parameters[1].type")
      m = fixture("template_header_video")
      m.template.components[1].parameters[1].type = "sticker"
      fails(m, "template.components[1].parameters[1].type")
      m = fixture("template_header_video")
      m.template.components[1].type = "footer"
      fails(m, "template.components[1].type", "unknown component type")
    end)

    it("limits a header text parameter to 60 characters", function()
      local m = fixture("template_header_video")
      m.template.components[1].parameters[1] = { type = "text", text = text("ê", 60) }
      passes(m)
      m.template.components[1].parameters[1].text = text("ê", 61)
      fails(m, "template.components[1].parameters[1].text", "61 characters, at most 60")
    end)

    it("refuses new-lines, tabs and 5 spaces in body parameters", function()
      local m = fixture("template_header_video")
      local p = m.template.components[2].parameters[1]
      p.text = "a    b"
      passes(m)
      for _, bad in ipairs{ "a\nb", "a\tb", "a     b" } do
        p.text = bad
        fails(m, "template.components[2].parameters[1].text", "new-line")
      end
      p.text = ""
      fails(m, "template.components[2].parameters[1].text", "empty")
    end)

    it("checks media, location, currency, date_time and coupon parameters", function()
      local m = fixture("template_header_document_url_button")
      m.template.components[1].parameters[1].document = { id = "1", link = "https://example.com/a.pdf" }
      fails(m, "template.components[1].parameters[1].document", "not both")
      m = fixture("template_header_location")
      m.template.components[1].parameters[1].location.longitude = 200
      fails(m, "template.components[1].parameters[1].location.longitude", "outside")
      m = fixture("template_header_image_id_currency_datetime")
      m.template.components[2].parameters[2].currency.code = "dollars"
      fails(m, "template.components[2].parameters[2].currency.code", "ISO 4217")
      m.template.components[2].parameters[2].currency.code = "USD"
      m.template.components[2].parameters[2].currency.amount_1000 = 1.5
      fails(m, "template.components[2].parameters[2].currency.amount_1000", "integer")
      m = fixture("template_header_image_id_currency_datetime")
      m.template.components[2].parameters[1].date_time.fallback_value = nil
      fails(m, "template.components[2].parameters[1].date_time.fallback_value", "required")
      m = fixture("template_limited_time_offer_coupon_code")
      m.template.components[4].parameters[1].coupon_code = text("C", 15)
      passes(m)
      m.template.components[4].parameters[1].coupon_code = text("C", 16)
      fails(m, "template.components[4].parameters[1].coupon_code", "16 characters, at most 15")
      m = fixture("template_limited_time_offer_coupon_code")
      m.template.components[3].parameters[1].limited_time_offer.expiration_time_ms = "soon"
      fails(m, "template.components[3].parameters[1].limited_time_offer.expiration_time_ms")
      m = fixture("template_flow_button_action")
      m.template.components[1].parameters[1].action = "go"
      fails(m, "template.components[1].parameters[1].action", "object")
    end)

    it("checks carousel cards", function()
      local card = function(i)
        return { card_index = i, components = {
          { type = "header", parameters = { { type = "image", image = { id = "1" } } } },
          { type = "button", sub_type = "quick_reply", index = 0,
            parameters = { { type = "payload", payload = "p" } } },
        } }
      end
      local m = msg("template", template{
        { type = "body", parameters = { { type = "text", text = "x" } } },
        { type = "carousel", cards = { card(0), card(1) } },
      })
      passes(m)
      m.template.components[2].cards[2].components[2].index = 12
      fails(m, "template.components[2].cards[2].components[2].index")
      m.template.components[2].cards[2].components[2].index = 1
      m.template.components[2].cards[2].components[1].parameters[1].image.link = "https://example.com/a.png"
      fails(m, "template.components[2].cards[2].components[1].parameters[1].image", "not both")
      m.template.components[2].cards = {}
      fails(m, "template.components[2].cards", "0 cards")
    end)

    it("needs components to be an array", function()
      local m = msg("template", template{ type = "body" })
      fails(m, "template.components", "array")
      m = msg("template", template(cjson.empty_array))
      passes(m)
      m = msg("template", template(setmetatable({}, cjson.array_mt)))
      passes(m)
    end)
  end)

  describe("mark as read", function()
    it("checks status, message_id and typing_indicator", function()
      local m = fixture("mark_as_read")
      m.status = "delivered"
      fails(m, "status", '"read"')
      m = fixture("mark_as_read")
      m.message_id = nil
      fails(m, "message_id", "required")
      m = fixture("mark_as_read_with_typing_indicator")
      m.typing_indicator.type = "audio"
      fails(m, "typing_indicator.type", '"text"')
      m = fixture("mark_as_read")
      m.to = "15550002222"
      fails(m, "to", "unknown field in a mark-as-read body")
      m = fixture("mark_as_read")
      m.messaging_product = nil
      fails(m, "messaging_product")
    end)
  end)

  describe("media uploads", function()
    local MB = 1024 * 1024

    it("knows the kinds of Meta's MIME types", function()
      assert.equal("image", validate.media_kind("image/jpeg"))
      assert.equal("image", validate.media_kind("IMAGE/PNG"))
      assert.equal("sticker", validate.media_kind("image/webp"))
      assert.equal("audio", validate.media_kind("audio/ogg; codecs=opus"))
      assert.equal("video", validate.media_kind("video/3gpp"))
      assert.equal("document", validate.media_kind("application/pdf"))
      assert.equal("document",
        validate.media_kind("application/vnd.openxmlformats-officedocument.wordprocessingml.document"))
      assert.is_nil(validate.media_kind("image/gif"))
      assert.is_nil(validate.media_kind(""))
    end)

    it("checks the size per kind, at the limit and one over", function()
      local cases = {
        { "image/png", 5 * MB }, { "audio/mpeg", 16 * MB }, { "video/mp4", 16 * MB },
        { "application/pdf", 100 * MB }, { "text/plain", 100 * MB }, { "image/webp", 100 * 1024 },
      }
      for _, c in ipairs(cases) do
        assert.is_true(validate.media_upload(c[1], c[2]))
        local ok, err = validate.media_upload(c[1], c[2] + 1)
        assert.is_nil(ok)
        assert.equal("validation", err.code)
        assert.equal("file", err.path)
        assert.matches("at most " .. c[2], err.message, 1, true)
      end
    end)

    it("allows 500 KB for animated stickers", function()
      assert.is_nil((validate.media_upload("image/webp", 500 * 1024)))
      assert.is_true(validate.media_upload("image/webp", 500 * 1024, { animated = true }))
      local ok, err = validate.media_upload("image/webp", 500 * 1024 + 1, { animated = true })
      assert.is_nil(ok)
      assert.matches("animated", err.message, 1, true)
    end)

    it("refuses unsupported types, empty files and the wrong kind", function()
      local ok, err = validate.media_upload("image/gif", 10)
      assert.is_nil(ok)
      assert.equal("type", err.path)
      ok, err = validate.media_upload("image/png", 0)
      assert.is_nil(ok)
      assert.equal("file", err.path)
      ok, err = validate.media_upload("image/png", 10, { kind = "document" })
      assert.is_nil(ok)
      assert.equal("type", err.path)
      assert.is_true(validate.media_upload("application/pdf", 10, { kind = "document" }))
    end)

    it("raises on wrong argument types", function()
      assert.has_error(function() validate.media_upload(nil, 10) end)
      assert.has_error(function() validate.media_upload("image/png", "10") end)
      assert.has_error(function() validate.media_kind(1) end)
    end)
  end)

  describe("limits", function()
    it("are exported for users and the simulator", function()
      local L = validate.limits
      assert.equal(4096, L.text_body)
      assert.equal(1024, L.caption)
      assert.equal(512, L.biz_opaque_callback_data)
      assert.equal(20, L.interactive.button_title)
      assert.equal(10, L.interactive.rows)
      assert.equal(30, L.interactive.product_items)
      assert.equal(60, L.template.header_text)
      assert.equal(5 * 1024 * 1024, L.media.image.size)
      assert.same({ "image/jpeg", "image/png" }, L.media.image.types)
    end)
  end)

  it("builds no garbage on the success path", function()
    local bodies = {}
    for _, name in ipairs(helpers.list("requests")) do
      if not name:match("^template_create") and not name:match("^template_update") then
        bodies[#bodies + 1] = helpers.fixture("requests/" .. name)
      end
    end
    for _, m in ipairs(bodies) do assert.is_true(validate.message(m)) end
    collectgarbage()
    collectgarbage("stop")
    local before = collectgarbage("count")
    for _ = 1, 1000 do
      for _, m in ipairs(bodies) do validate.message(m) end
    end
    local kb = collectgarbage("count") - before
    collectgarbage("restart")
    -- Building the paths alone would take several MB for these ~46000 checks; the
    -- margin covers LuaJIT's trace recording, which is counted in the same heap.
    assert.is_true(kb < 1024, kb .. " KB")
  end)

  it("calls JSON null null", function()
    local m = fixture("text_basic")
    m.text.body = cjson.null
    fails(m, "text.body", "must be a string, got null")
  end)

  it("leaves nothing behind between calls (path stack reset)", function()
    fails(msg("interactive", buttons(text("x", 21))), "interactive.action.buttons[1].reply.title")
    fails(msg("text", { body = "" }), "text.body")
    passes(fixture("interactive_list"))
  end)
end)
