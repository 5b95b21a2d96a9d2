-- whatsapp.simulator: the local Cloud API, driven with raw whatsapp.http requests (no client) from loop
-- tasks and from plain (blocking) code: every endpoint, every error code it answers, faults, paging,
-- media round trips, recording, garbage bodies and the signed webhooks it sends a bot.
local cjson = require "cjson"
local loop = require "whatsapp.loop"
local http = require "whatsapp.http"
local server = require "whatsapp.server"
local webhook = require "whatsapp.webhook"
local crypto = require "whatsapp.crypto"
local simulator = require "whatsapp.simulator"
local helpers = require "helpers"
local run = require "peer.run"

local TOKEN = "TEST_TOKEN_abc123"
local PNID, WABA = "100000000000001", "100000000000002"
local USER = "15550002222"

-- One request; returns the response (asserted) and its decoded JSON body (or nil).
local function call(sim, method, path, body, o)
  o = o or {}
  local headers = { ["Content-Type"] = not o.multipart and "application/json" or nil }
  if o.token ~= false then headers.Authorization = "Bearer " .. (o.token or TOKEN) end
  for k, v in pairs(o.headers or {}) do headers[k] = v end
  if type(body) == "table" then body = cjson.encode(body) end
  local url = path:find("^http") and path or (sim.url .. path)
  local res, err = http.request{ method = method, url = url, body = body, headers = headers,
                                 multipart = o.multipart, timeout = o.timeout or 20 }
  assert(res, tostring(err))
  local ok, decoded = pcall(cjson.decode, res.body)
  return res, ok and decoded or nil
end

local function send(sim, body, o)
  return call(sim, "POST", "/v23.0/" .. PNID .. "/messages", body, o)
end

local function text(to, s)
  return { messaging_product = "whatsapp", recipient_type = "individual", to = to or USER, type = "text",
           text = { body = s or "hello" } }
end

-- Meta's error shape, with the code and HTTP status expected.
local function assert_error(res, body, status, code, subcode)
  assert.equal(status, res.status)
  assert.is_table(body, "error body is not JSON: " .. tostring(res.body))
  local e = body.error
  assert.is_table(e)
  assert.equal(code, e.code)
  assert.is_string(e.message)
  assert.is_string(e.type)
  assert.is_string(e.fbtrace_id)
  if subcode then assert.equal(subcode, e.error_subcode) end
  assert.matches("^application/json", res.headers["content-type"])
  assert.is_string(res.headers["x-business-use-case-usage"])
  if e.message:find("^%(#") then assert.equal("(#" .. code .. ")", e.message:match("^(%(#%d+%))")) end
  return e
end

-- Everything a spec starts is closed when it ends, passed or failed (an open
-- listener would keep the loop turning).
local live = {}

local function start(o)
  o = o or {}
  o.access_token = o.access_token or TOKEN
  local sim = assert(simulator.start(o))
  live[#live + 1] = sim
  return sim
end

local function task(fn)
  return run.task(function()
    local ok, err = xpcall(fn, debug.traceback)
    for i = #live, 1, -1 do live[i]:close(); live[i] = nil end
    if not ok then error(err, 0) end
  end)
end

describe("whatsapp.simulator", function()
  it("checks its options", function()
    assert.has_error(function() simulator.start() end)
    assert.has_error(function() simulator.start{} end)
    assert.has_error(function() simulator.start{ access_token = "" } end)
    assert.has_error(function() simulator.start{ access_token = "x", rate = -1 } end)
    assert.has_error(function() simulator.start{ access_token = "x", pair_limit = { burst = 0, per = 1 } } end)
    assert.has_error(function() simulator.start{ access_token = "x", webhook = { url = "http://x" } } end)
    assert.has_error(function() simulator.start{ access_token = "x", templates = { { name = 1 } } } end)
  end)

  it("sha256 matches the known vectors", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", simulator.sha256(""))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", simulator.sha256("abc"))
    assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      simulator.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
  end)

  describe("messages", function()
    it("accepts a text message: Meta's response shape, unique wamids, recorded", task(function()
      local sim = start()
      sim:user_wrote("+1 (555) 000-2222")
      local res, body = send(sim, text("+1 555 000 2222", "hola"))
      assert.equal(200, res.status)
      assert.matches("^application/json", res.headers["content-type"])
      local usage = cjson.decode(res.headers["x-business-use-case-usage"])
      assert.equal("whatsapp", usage[WABA][1].type)
      assert.equal("whatsapp", body.messaging_product)
      assert.same({ { input = "+1 555 000 2222", wa_id = USER } }, body.contacts)
      local id = body.messages[1].id
      assert.matches("^wamid%.[%w+/=]+$", id)
      assert.is_nil(body.messages[1].message_status)
      local _, b2 = send(sim, text(USER, "again"))
      assert.not_equal(id, b2.messages[1].id)
      local msgs = sim:messages()
      assert.equal(2, #msgs)
      assert.equal(id, msgs[1].id)
      assert.equal(USER, msgs[1].to)
      assert.equal("text", msgs[1].type)
      assert.equal("hola", msgs[1].body.text.body)
      sim:close()
    end))

    it("accepts every message body of the fixtures", task(function()
      -- templates made to fit the fixtures' sends: a body with as many placeholders as
      -- parameters (named where they are), a text or media header
      local templates, sends = {}, {}
      for _, name in ipairs(helpers.list("requests")) do
        local body = helpers.fixture("requests/" .. name)
        if body.messaging_product then
          sends[#sends + 1] = name
          local t = body.template
          if t then
            local comps = {}
            for _, c in ipairs(t.components or {}) do
              local kind = c.type:upper()
              if kind == "BODY" or kind == "HEADER" then
                local ph = {}
                for i, p in ipairs(c.parameters or {}) do
                  ph[i] = "{{" .. (p.parameter_name or i) .. "}}"
                end
                local first = (c.parameters or {})[1]
                if kind == "HEADER" and first and first.type ~= "text" then
                  comps[#comps + 1] = { type = "HEADER", format = first.type:upper() }
                else
                  comps[#comps + 1] = { type = kind, text = "x " .. table.concat(ph, " ") }
                end
              end
            end
            templates[#templates + 1] = { name = t.name, language = t.language.code, components = comps }
          end
        end
      end
      local sim = start{ window = false, rate = false, pair_limit = false, templates = templates }
      assert.is_true(#sends >= 45)
      for _, name in ipairs(sends) do
        local res, body = send(sim, helpers.fixture_raw("requests/" .. name))
        assert.equal(200, res.status, name .. ": " .. res.body)
        if name:find("^mark_as_read") then
          assert.same({ success = true }, body)
        else
          assert.matches("^wamid%.", body.messages[1].id, name)
        end
      end
      assert.equal(2, #sim:reads())
      assert.is_true(sim:reads()[2].typing_indicator)
      -- the template fixtures that create or edit are not message bodies
      local res, body = send(sim, helpers.fixture_raw("requests/template_create_named.json"))
      assert_error(res, body, 400, 100)
    end))

    it("answers 100 for a body that is not JSON, an empty body, or a JSON array", task(function()
      local sim = start()
      for _, raw in ipairs{ "not json", "", "[1,2]", "{\"a\":", "\"str\"", "12" } do
        local res, body = send(sim, raw)
        assert_error(res, body, 400, 100)
      end
      sim:close()
    end))

    it("checks messaging_product, to, type and unknown fields", task(function()
      local sim = start{ window = false }
      local b = text(); b.messaging_product = nil
      local res, body = send(sim, b)
      assert.matches("messaging_product is required", assert_error(res, body, 400, 100).message)
      b = text(); b.messaging_product = "sms"
      res, body = send(sim, b)
      assert_error(res, body, 400, 100)
      b = text(); b.to = nil
      res, body = send(sim, b)
      assert.matches("to is required", assert_error(res, body, 400, 100).message)
      b = text(); b.type = "hologram"
      res, body = send(sim, b)
      assert_error(res, body, 400, 131009)
      b = text(); b.text = nil
      res, body = send(sim, b)
      assert_error(res, body, 400, 131008)
      b = text(); b.surprise = 1
      res, body = send(sim, b)
      assert.matches("surprise", assert_error(res, body, 400, 100).error_data.details)
      b = text(); b.text.colour = "red"
      res, body = send(sim, b)
      assert_error(res, body, 400, 100)
      b = text(); b.image = { link = "https://example.com/a.png" }
      res, body = send(sim, b)
      assert_error(res, body, 400, 100)
      -- type defaults to text, as Meta does
      b = text(); b.type = nil
      res = send(sim, b)
      assert.equal(200, res.status)
      assert.equal(1, #sim:messages())
      sim:close()
    end))

    it("checks the text body: present, a string, at most 4096 characters", task(function()
      local sim = start{ window = false }
      local res, body = send(sim, text(USER, ""))
      assert_error(res, body, 400, 131008)
      local b = text(); b.text.body = 42
      res, body = send(sim, b)
      assert_error(res, body, 400, 131009)
      res, body = send(sim, text(USER, string.rep("é", 4097)))
      assert.matches("4096", assert_error(res, body, 400, 100).message)
      res = send(sim, text(USER, string.rep("é", 4096)))
      assert.equal(200, res.status)
      sim:close()
    end))

    it("checks media, location, interactive, reaction and context objects", task(function()
      local sim = start{ window = false, rate = false, pair_limit = false }
      local function bad(type_, obj, code, extra)
        local b = { messaging_product = "whatsapp", to = USER, type = type_, [type_] = obj }
        for k, v in pairs(extra or {}) do b[k] = v end
        local res, body = send(sim, b)
        assert_error(res, body, 400, code)
      end
      bad("image", {}, 131008)
      bad("image", { id = "1", link = "https://example.com/x.png" }, 131009)
      bad("image", { link = "ftp://example.com/x.png" }, 131009)
      bad("audio", { id = "1", caption = "no captions on audio" }, 100)
      bad("location", { latitude = 91, longitude = 0 }, 131009)
      bad("location", { longitude = 0 }, 131008)
      bad("interactive", { type = "button", body = { text = "b" }, action = { buttons = {} } }, 131009)
      bad("interactive", { type = "button", body = { text = "b" }, action = { buttons = {
        { type = "reply", reply = { id = "1", title = string.rep("x", 21) } } } } }, 131009)
      bad("interactive", { type = "nope", body = { text = "b" }, action = {} }, 131009)
      bad("interactive", { type = "list", action = { button = "b", sections = {} } }, 131008)
      bad("reaction", { message_id = "wamid.x" }, 131008)
      bad("contacts", {}, 131009)
      bad("text", { body = "x" }, 131009, { context = "wamid.x" })
      bad("text", { body = "x" }, 131009, { biz_opaque_callback_data = string.rep("x", 513) })
      bad("text", { body = "x" }, 131009, { recipient_type = "crowd" })
      sim:close()
    end))

    it("mark as read: success, a bad id and an outgoing id are 100", task(function()
      local sim = start{ window = false }
      local res, body = send(sim, { messaging_product = "whatsapp", status = "read", message_id = "nope" })
      assert.matches("check the message ID", assert_error(res, body, 400, 100).error_data.details)
      local _, sent = send(sim, text())
      local out = sent.messages[1].id
      res, body = send(sim, { messaging_product = "whatsapp", status = "read", message_id = out })
      assert.matches("is outgoing", assert_error(res, body, 400, 100).error_data.details)
      res, body = send(sim, { messaging_product = "whatsapp", status = "read", message_id = "wamid.ABC=" })
      assert.equal(200, res.status)
      assert.same({ success = true }, body)
      res, body = send(sim, { messaging_product = "whatsapp", status = "read", message_id = "wamid.ABC=",
                              typing_indicator = { type = "voice" } })
      assert_error(res, body, 400, 131009)
      sim:close()
    end))

    it("the 24-hour window: 131047 until the user writes, templates always pass, it closes after 24 h",
      task(function()
      local clock = 1000
      local sim = start{ now = function() return clock end }
      local res, body = send(sim, text())
      local e = assert_error(res, body, 400, 131047)
      assert.equal("(#131047) Re-engagement message", e.message)
      res = send(sim, { messaging_product = "whatsapp", to = USER, type = "template",
                        template = { name = "hello_world", language = { code = "en_US" } } })
      assert.equal(200, res.status)
      sim:user_wrote(USER)
      assert.equal(200, (send(sim, text())).status)
      clock = clock + 86401
      res, body = send(sim, text())
      assert_error(res, body, 400, 131047)
      sim:user_wrote(USER, clock - 10)
      assert.equal(200, (send(sim, text())).status)
      sim:close()
    end))

    it("throughput: 130429 beyond `rate` messages per second, then refills", task(function()
      local clock = 50
      local sim = start{ rate = 3, pair_limit = false, window = false, now = function() return clock end }
      for i = 1, 3 do assert.equal(200, (send(sim, text("1555000" .. (1000 + i)))).status) end
      local res, body = send(sim, text("15550009999"))
      local e = assert_error(res, body, 400, 130429, 2494055)
      assert.equal("(#130429) Rate limit hit", e.message)
      assert.equal(3, #sim:messages())
      clock = clock + 1
      assert.equal(200, (send(sim, text("15550009999"))).status)
      sim:close()
    end))

    it("pair rate: 131056 beyond the burst to one user, others still pass", task(function()
      local clock = 0
      local sim = start{ pair_limit = { burst = 2, per = 6 }, window = false, now = function() return clock end }
      assert.equal(200, (send(sim, text())).status)
      assert.equal(200, (send(sim, text())).status)
      local res, body = send(sim, text())
      assert.matches("pair rate limit", assert_error(res, body, 400, 131056).message)
      assert.equal(200, (send(sim, text("15550003333"))).status)
      clock = 6
      assert.equal(200, (send(sim, text())).status)
      res, body = send(sim, text())
      assert_error(res, body, 400, 131056)
      sim:close()
    end))

    it("templates: accepted with message_status, 132001 unknown, 132000 parameter count, named", task(function()
      local sim = start{ templates = {
        { name = "order_update", language = "en_US", category = "UTILITY", status = "APPROVED",
          components = { { type = "HEADER", format = "TEXT", text = "Order {{1}}" },
                         { type = "BODY", text = "Hi {{1}}, order {{2}} ships {{2}} today" } } },
        { name = "named", language = "en", components = { { type = "BODY", text = "Hi {{first_name}}" } } },
        { name = "waiting", language = "en", status = "PENDING", components = {} },
        { name = "paused", language = "en", status = "PAUSED", components = {} },
      } }
      local function tpl(name, lang, components)
        return { messaging_product = "whatsapp", to = USER, type = "template",
                 template = { name = name, language = { code = lang }, components = components } }
      end
      local function p(...)
        local out = {}
        for i, v in ipairs{ ... } do out[i] = { type = "text", text = v } end
        return out
      end
      local res, body = send(sim, tpl("order_update", "en_US", {
        { type = "header", parameters = p("A1") }, { type = "body", parameters = p("Ann", "A1") } }))
      assert.equal(200, res.status, res.body)
      assert.equal("accepted", body.messages[1].message_status)
      res, body = send(sim, tpl("order_update", "pt_BR", {}))
      local e = assert_error(res, body, 400, 132001)
      assert.equal("(#132001) Template name does not exist in the translation", e.message)
      res, body = send(sim, tpl("nope", "en_US"))
      assert_error(res, body, 400, 132001)
      res, body = send(sim, tpl("waiting", "en"))
      assert_error(res, body, 400, 132001)
      res, body = send(sim, tpl("paused", "en"))
      assert_error(res, body, 400, 132015)
      res, body = send(sim, tpl("order_update", "en_US", {
        { type = "header", parameters = p("A1") }, { type = "body", parameters = p("Ann") } }))
      assert.matches("body", assert_error(res, body, 400, 132000).error_data.details)
      res, body = send(sim, tpl("order_update", "en_US", { { type = "body", parameters = p("Ann", "A1") } }))
      assert.matches("header", assert_error(res, body, 400, 132000).error_data.details)
      res = send(sim, tpl("named", "en", { { type = "body", parameters = {
        { type = "text", text = "Ann", parameter_name = "first_name" } } } }))
      assert.equal(200, res.status)
      res, body = send(sim, tpl("named", "en", { { type = "body", parameters = {
        { type = "text", text = "Ann", parameter_name = "last_name" } } } }))
      assert_error(res, body, 400, 132000)
      res, body = send(sim, { messaging_product = "whatsapp", to = USER, type = "template",
                              template = { name = "named" } })
      assert_error(res, body, 400, 131008)
      sim:close()
    end))

    it("an unknown phone number id is 100 with subcode 33, as in the recorded exchange", task(function()
      local sim = start()
      local want = helpers.fixture("exchanges/send_text_error_unknown_object.json").response
      local res, body = call(sim, "POST", "/v19.0/123123/messages", text())
      local e = assert_error(res, body, want.status, 100, 33)
      assert.equal(want.json.error.message, e.message)
      assert.equal("GraphMethodException", e.type)
      res, body = call(sim, "GET", "/v23.0/999/whatever")
      assert.matches("^Unsupported get request", assert_error(res, body, 400, 100, 33).message)
      res, body = call(sim, "GET", "/v23.0/" .. PNID .. "/nonsense")
      assert.matches("nonexisting field", assert_error(res, body, 400, 100).message)
      res, body = call(sim, "GET", "/")
      assert_error(res, body, 400, 100)
      sim:close()
    end))
  end)

  describe("authentication", function()
    it("a wrong or missing token is 401 code 190; the token is never echoed", task(function()
      local sim = start()
      local res, body = send(sim, text(), { token = "WRONG_TOKEN_XYZ" })
      local e = assert_error(res, body, 401, 190)
      assert.equal("OAuthException", e.type)
      assert.matches("Invalid OAuth access token", e.message)
      assert.not_matches("WRONG_TOKEN_XYZ", res.body)
      res, body = send(sim, text(), { token = false })
      assert_error(res, body, 401, 190)
      -- access_token in the query string works as on the Graph API
      sim:user_wrote(USER)
      res = send(sim, text(), { token = false })
      assert.equal(401, res.status)
      res = call(sim, "POST", "/v23.0/" .. PNID .. "/messages?access_token=" .. TOKEN, text(), { token = false })
      assert.equal(200, res.status)
      sim:expire_token()
      res, body = send(sim, text())
      assert_error(res, body, 401, 190, 463)
      sim:set_access_token("NEW_TOKEN")
      assert.equal(401, (send(sim, text())).status)
      assert.equal(200, (send(sim, text(), { token = "NEW_TOKEN" })).status)
      for _, r in ipairs(sim:requests()) do
        if r.status ~= 200 then assert.not_matches(TOKEN, r.body) end
      end
      sim:close()
    end))

    it("appsecret_proof: required and checked when an app secret is set", task(function()
      local secret = "APP_SECRET_42"
      local sim = start{ app_secret = secret, window = false }
      local res, body = send(sim, text())
      local e = assert_error(res, body, 400, 100)
      assert.matches("appsecret_proof", e.message)
      res, body = call(sim, "POST", "/v23.0/" .. PNID .. "/messages?appsecret_proof=" .. string.rep("0", 64), text())
      e = assert_error(res, body, 400, 100)
      assert.equal("Invalid appsecret_proof provided in the API argument", e.message)
      assert.not_matches(secret, res.body)
      local proof = crypto.appsecret_proof(TOKEN, secret)
      res = call(sim, "POST", "/v23.0/" .. PNID .. "/messages?appsecret_proof=" .. proof, text())
      assert.equal(200, res.status)
      sim:close()
    end))
  end)

  describe("media", function()
    it("upload (multipart), info, download with the token, delete", task(function()
      local sim = start()
      local bytes = {}
      for i = 0, 5000 do bytes[#bytes + 1] = string.char(i % 256) end
      local png = "\137PNG\r\n\26\n" .. table.concat(bytes) .. "\r\n--not-a-boundary\r\n"
      local res, body = call(sim, "POST", "/v23.0/" .. PNID .. "/media", nil, { multipart = {
        { name = "messaging_product", data = "whatsapp" },
        { name = "file", data = png, filename = "photo.png", type = "image/png" },
        { name = "type", data = "image/png" },
      } })
      assert.equal(200, res.status, res.body)
      local id = body.id
      assert.matches("^%d+$", id)
      res, body = call(sim, "GET", "/v23.0/" .. id)
      assert.equal(200, res.status)
      assert.equal("whatsapp", body.messaging_product)
      assert.equal("image/png", body.mime_type)
      assert.equal(#png, body.file_size)
      assert.equal(id, body.id)
      assert.equal(simulator.sha256(png), body.sha256)
      assert.equal(sim.url .. "/media/", body.url:sub(1, #sim.url + 7))
      local dl = call(sim, "GET", body.url)
      assert.equal(200, dl.status)
      assert.equal("image/png", dl.headers["content-type"])
      assert.equal(png, dl.body)
      -- the digest the client computes while streaming to a file agrees
      local path = os.tmpname()
      local file_res = assert(http.request{ url = body.url, download = path,
                                            headers = { Authorization = "Bearer " .. TOKEN } })
      assert.equal(body.sha256, file_res.sha256)
      os.remove(path)
      local no_token = call(sim, "GET", body.url, nil, { token = false })
      assert.equal(401, no_token.status)
      res, body = call(sim, "DELETE", "/v23.0/" .. id)
      assert.equal(200, res.status)
      assert.same({ success = true }, body)
      res, body = call(sim, "GET", "/v23.0/" .. id)
      assert_error(res, body, 400, 100, 33)
      res, body = call(sim, "DELETE", "/v23.0/" .. id)
      assert_error(res, body, 400, 100, 33)
      assert.equal(404, (call(sim, "GET", sim.url .. "/media/" .. id .. "?hash=x")).status)
      sim:close()
    end))

    it("a boundary given in quotes, an unversioned path; the URL expires after 5 minutes", task(function()
      local clock = 0
      local sim = start{ now = function() return clock end }
      local b = "----weird boundary;x"
      local raw = table.concat({
        "--" .. b, 'Content-Disposition: form-data; name="messaging_product"', "", "whatsapp",
        "--" .. b, 'Content-Disposition: form-data; name="type"', "", "application/pdf",
        "--" .. b, 'Content-Disposition: form-data; name="file"; filename="a.pdf"', "Content-Type: application/pdf",
        "", "%PDF-1.4 body", "--" .. b .. "--", "" }, "\r\n")
      local res, body = call(sim, "POST", "/" .. PNID .. "/media", raw,
        { headers = { ["Content-Type"] = 'multipart/form-data; boundary="' .. b .. '"' } })
      assert.equal(200, res.status, res.body)
      local _, info = call(sim, "GET", "/" .. body.id)
      assert.equal("%PDF-1.4 body", (call(sim, "GET", info.url)).body)
      assert.equal(13, sim:media()[body.id].file_size)
      clock = 301
      assert.equal(404, (call(sim, "GET", info.url)).status)
      _, info = call(sim, "GET", "/" .. body.id)
      assert.equal(200, (call(sim, "GET", info.url)).status)
      sim:close()
    end))

    it("upload errors: 131053 for a type or size Meta refuses, 100 for missing fields", task(function()
      local sim = start{ media_limits = { image = 10 } }
      local function up(parts)
        return call(sim, "POST", "/v23.0/" .. PNID .. "/media", nil, { multipart = parts })
      end
      local mp = { name = "messaging_product", data = "whatsapp" }
      local res, body = up{ mp, { name = "file", data = "GIF89a", filename = "a.gif", type = "image/gif" },
                            { name = "type", data = "image/gif" } }
      assert_error(res, body, 400, 131053)
      res, body = up{ mp, { name = "file", data = string.rep("x", 11), filename = "a.png", type = "image/png" },
                      { name = "type", data = "image/png" } }
      assert.matches("limit", assert_error(res, body, 400, 131053).error_data.details)
      res, body = up{ mp, { name = "type", data = "image/png" } }
      assert.matches("file is required", assert_error(res, body, 400, 100).message)
      res, body = up{ mp, { name = "file", data = "x", filename = "a.png", type = "image/png" } }
      assert.matches("type is required", assert_error(res, body, 400, 100).message)
      res, body = up{ { name = "file", data = "x", filename = "a.png", type = "image/png" },
                      { name = "type", data = "image/png" } }
      assert.matches("messaging_product is required", assert_error(res, body, 400, 100).message)
      res, body = call(sim, "POST", "/v23.0/" .. PNID .. "/media", "{}")
      assert_error(res, body, 400, 100)
      res, body = call(sim, "POST", "/v23.0/" .. PNID .. "/media", "--x\r\ngarbage",
        { headers = { ["Content-Type"] = "multipart/form-data; boundary=x" } })
      assert_error(res, body, 400, 100)
      assert.is_nil(next(sim:media()))
      sim:close()
    end))
  end)

  describe("templates", function()
    it("lists across several pages with cursors and next URLs, filters by name and status", task(function()
      local list = {}
      for i = 1, 7 do
        list[i] = { name = string.format("tpl_%02d", i), language = "en_US", category = "UTILITY",
                    status = i % 2 == 0 and "PENDING" or "APPROVED", components = {} }
      end
      local sim = start{ templates = list }
      local names, url, pages = {}, "/v23.0/" .. WABA .. "/message_templates?limit=3", 0
      while url do
        local res, body = call(sim, "GET", url)
        assert.equal(200, res.status, res.body)
        local usage = cjson.decode(res.headers["x-business-use-case-usage"])
        assert.equal("whatsapp_business_management", usage[WABA][1].type)
        pages = pages + 1
        for _, t in ipairs(body.data) do names[#names + 1] = t.name end
        assert.is_string(body.paging.cursors.before)
        assert.is_string(body.paging.cursors.after)
        url = body.paging.next
        if url then assert.equal(sim.url, url:sub(1, #sim.url)) end
        if pages > 1 then assert.is_string(body.paging.previous) end
      end
      assert.equal(3, pages)
      assert.same({ "tpl_01", "tpl_02", "tpl_03", "tpl_04", "tpl_05", "tpl_06", "tpl_07" }, names)
      -- back one page with `before`
      local _, p2 = call(sim, "GET", "/v23.0/" .. WABA .. "/message_templates?limit=3")
      local _, p3 = call(sim, "GET", p2.paging.next)
      local _, back = call(sim, "GET", p3.paging.previous)
      assert.equal("tpl_01", back.data[1].name)
      local _, pending = call(sim, "GET", "/v23.0/" .. WABA .. "/message_templates?status=PENDING&fields=name,status")
      assert.equal(3, #pending.data)
      assert.is_nil(pending.paging.next)
      assert.is_nil(pending.data[1].components)
      assert.is_string(pending.data[1].id)
      local _, one = call(sim, "GET", "/v23.0/" .. WABA .. "/message_templates?name=tpl_05")
      assert.equal(1, #one.data)
      local res, none = call(sim, "GET", "/v23.0/" .. WABA .. "/message_templates?name=zzz")
      assert.equal(200, res.status)
      assert.equal('{"data":[]}', res.body)
      assert.same({}, none.data)
      res, none = call(sim, "GET", "/v23.0/" .. WABA .. "/message_templates?after=bogus")
      assert_error(res, none, 400, 100)
      sim:close()
    end))

    it("create (PENDING), duplicate refused, get by id, edit, approve, send, delete", task(function()
      local sim = start()
      local create = helpers.fixture("requests/template_create_named.json")
      local res, body = call(sim, "POST", "/v23.0/" .. WABA .. "/message_templates", create)
      assert.equal(200, res.status, res.body)
      assert.equal("PENDING", body.status)
      assert.equal("MARKETING", body.category)
      local id = body.id
      res, body = call(sim, "POST", "/v23.0/" .. WABA .. "/message_templates", create)
      assert.equal("Content in This Language Already Exists", assert_error(res, body, 400, 100, 2388024)
        .error_user_title)
      res, body = call(sim, "GET", "/v23.0/" .. id)
      assert.equal(200, res.status)
      assert.equal("seasonal_promotion", body.name)
      assert.equal("NAMED", body.parameter_format)
      res, body = call(sim, "POST", "/v23.0/" .. id, helpers.fixture("requests/template_update_components.json"))
      assert.equal(200, res.status, res.body)
      assert.same({ success = true }, body)
      local _, got = call(sim, "GET", "/v23.0/" .. id .. "?fields=components")
      assert.equal("BODY", got.components[1].type)
      assert.equal(id, got.id)
      assert.is_nil(got.name)
      res, body = call(sim, "POST", "/v23.0/" .. id, { colour = "red" })
      assert_error(res, body, 400, 100)
      assert.is_true(sim:set_template_status("seasonal_promotion", "APPROVED"))
      res = send(sim, { messaging_product = "whatsapp", to = USER, type = "template",
        template = { name = "seasonal_promotion", language = { code = "en" }, components = {
          { type = "body", parameters = { { type = "text", text = "a" }, { type = "text", text = "b" } } } } } })
      assert.equal(200, res.status, res.body)
      res, body = call(sim, "DELETE", "/v23.0/" .. WABA .. "/message_templates?name=seasonal_promotion&hsm_id=" .. id)
      assert.equal(200, res.status)
      assert.same({ success = true }, body)
      local want = helpers.fixture("exchanges/template_delete_not_found.json").response.json.error
      res, body = call(sim, "DELETE", "/v23.0/" .. WABA .. "/message_templates?name=fake%20name")
      local e = assert_error(res, body, 400, 100, 2593002)
      assert.equal(want.message, e.message)
      assert.equal(want.error_user_title, e.error_user_title)
      assert.equal(want.error_user_msg, e.error_user_msg)
      res, body = call(sim, "DELETE", "/v23.0/" .. WABA .. "/message_templates")
      assert_error(res, body, 400, 100)
      res, body = call(sim, "GET", "/v23.0/" .. id)
      assert_error(res, body, 400, 100, 33)
      sim:close()
    end))

    it("create checks: required fields, category, name format; auto_approve", task(function()
      local sim = start{ auto_approve = true }
      local path = "/v23.0/" .. WABA .. "/message_templates"
      local res, body = call(sim, "POST", path, { name = "x", language = "en", components = {} })
      assert.matches("category is required", assert_error(res, body, 400, 100).message)
      res, body = call(sim, "POST", path, { name = "x", language = "en", category = "SPAM", components = {} })
      assert_error(res, body, 400, 100)
      res, body = call(sim, "POST", path, { name = "Bad Name", language = "en", category = "UTILITY", components = {} })
      assert_error(res, body, 400, 100)
      res, body = call(sim, "POST", path, { name = "ok_one", language = "en", category = "utility",
        components = { { type = "BODY", text = "Hi {{1}}" } } })
      assert.equal(200, res.status, res.body)
      assert.equal("APPROVED", body.status)
      assert.equal("UTILITY", body.category)
      sim:close()
    end))
  end)

  describe("business profile and phone numbers", function()
    it("get, update and get again; phone numbers list and the number itself", task(function()
      local sim = start{ verified_name = "Lucky Shrub" }
      local path = "/v23.0/" .. PNID .. "/whatsapp_business_profile"
      local res, body = call(sim, "GET", path .. "?fields=about,websites")
      assert.equal(200, res.status)
      assert.equal("whatsapp", body.data[1].messaging_product)
      assert.equal("", body.data[1].about)
      assert.matches('"websites":%[%]', res.body)
      assert.is_nil(body.data[1].vertical)
      res, body = call(sim, "POST", path, { messaging_product = "whatsapp", about = "Plants",
        websites = { "https://example.com" }, vertical = "RETAIL" })
      assert.equal(200, res.status, res.body)
      assert.same({ success = true }, body)
      local _, got = call(sim, "GET", path)
      assert.equal("Plants", got.data[1].about)
      assert.same({ "https://example.com" }, got.data[1].websites)
      assert.equal("RETAIL", got.data[1].vertical)
      res, body = call(sim, "POST", path, { messaging_product = "whatsapp", about = string.rep("x", 140) })
      assert_error(res, body, 400, 131009)
      res, body = call(sim, "POST", path, { about = "x" })
      assert_error(res, body, 400, 100)
      res, body = call(sim, "POST", path, { messaging_product = "whatsapp", vertical = "DRAGONS" })
      assert_error(res, body, 400, 100)
      res, body = call(sim, "GET", "/v23.0/" .. WABA .. "/phone_numbers")
      assert.equal(200, res.status)
      assert.equal(PNID, body.data[1].id)
      assert.equal("15550001111", body.data[1].display_phone_number)
      assert.equal("Lucky Shrub", body.data[1].verified_name)
      assert.equal("GREEN", body.data[1].quality_rating)
      assert.is_table(body.paging.cursors)
      res, body = call(sim, "GET", "/v23.0/" .. PNID .. "?fields=verified_name")
      assert.equal(200, res.status)
      assert.same({ id = PNID, verified_name = "Lucky Shrub" }, body)
      sim:close()
    end))
  end)

  describe("faults", function()
    it("an error code, a status with Retry-After, times, match and method", task(function()
      local sim = start{ window = false }
      sim:fault{ code = 130429, retry_after = 2 }
      local res, body = send(sim, text())
      assert_error(res, body, 400, 130429, 2494055)
      assert.equal("2", res.headers["retry-after"])
      assert.equal(200, (send(sim, text())).status)
      sim:fault{ status = 500, times = 2 }
      res, body = send(sim, text())
      local e = assert_error(res, body, 500, 1)
      assert.is_true(e.is_transient)
      assert.equal(500, (send(sim, text())).status)
      assert.equal(200, (send(sim, text())).status)
      sim:fault{ status = 429, retry_after = 1 }
      res, body = send(sim, text())
      assert_error(res, body, 429, 130429)
      assert.equal("1", res.headers["retry-after"])
      sim:fault{ code = 131000, match = "/media$" }
      sim:fault{ status = 503, method = "GET" }
      assert.equal(200, (send(sim, text())).status)
      res, body = call(sim, "POST", "/v23.0/" .. PNID .. "/media", "{}")
      assert_error(res, body, 500, 131000)
      res, body = call(sim, "GET", "/v23.0/" .. WABA .. "/phone_numbers")
      assert_error(res, body, 503, 2)
      sim:fault{ status = 502, body = "<html>Bad Gateway</html>" }
      res = send(sim, text())
      assert.equal(502, res.status)
      assert.equal("<html>Bad Gateway</html>", res.body)
      sim:fault{ code = 131047, times = math.huge }
      for _ = 1, 3 do assert.equal(400, (send(sim, text())).status) end
      sim:clear()
      assert.equal(200, (send(sim, text())).status)
      sim:close()
    end))

    it("delay: the answer comes after the delay, other requests are served meanwhile", task(function()
      local sim = start{ window = false }
      sim:fault{ delay = 0.3, match = "messages" }
      local order = {}
      local slow = loop.spawn(function()
        local res = send(sim, text())
        order[#order + 1] = "slow:" .. res.status
      end)
      local res = call(sim, "GET", "/v23.0/" .. WABA .. "/phone_numbers")
      order[#order + 1] = "fast:" .. res.status
      slow:wait()
      assert.same({ "fast:200", "slow:200" }, order)
      assert.equal(1, #sim:messages())
      sim:fault{ delay = 0.05, code = 131016 }
      local r2, b2 = send(sim, text())
      assert_error(r2, b2, 500, 131016)
      sim:close()
    end))

    it("drop: the client gets a transport error, the request is recorded as dropped", task(function()
      local sim = start{ window = false }
      sim:fault{ drop = true }
      local res, err = http.request{ method = "POST", url = sim.url .. "/v23.0/" .. PNID .. "/messages",
        body = cjson.encode(text()), headers = { Authorization = "Bearer " .. TOKEN }, timeout = 10 }
      assert.is_nil(res)
      assert.equal("transport", err.category)
      assert.is_true(sim:requests()[1].dropped)
      assert.equal(0, #sim:messages())
      assert.equal(200, (send(sim, text())).status)
      sim:close()
    end))

    it("checks its argument", function()
      local sim = start()
      assert.has_error(function() sim:fault() end)
      assert.has_error(function() sim:fault{ delay = -1 } end)
      assert.has_error(function() sim:fault{ status = 42 } end)
      sim:close()
    end)
  end)

  describe("recording", function()
    it("records method, path, query, headers, raw body, decoded JSON and the status answered", task(function()
      local sim = start{ window = false }
      send(sim, text(USER, "one"))
      call(sim, "GET", "/v23.0/" .. WABA .. "/message_templates?limit=2&name=hello")
      send(sim, "garbage")
      local reqs = sim:requests()
      assert.equal(3, #reqs)
      assert.equal("POST", reqs[1].method)
      assert.equal("/v23.0/" .. PNID .. "/messages", reqs[1].path)
      assert.equal("application/json", reqs[1].headers["content-type"])
      assert.equal("one", reqs[1].json.text.body)
      assert.equal(cjson.decode(reqs[1].body).to, USER)
      assert.equal(200, reqs[1].status)
      assert.equal("GET", reqs[2].method)
      assert.same({ limit = "2", name = "hello" }, reqs[2].query)
      assert.equal("garbage", reqs[3].body)
      assert.is_nil(reqs[3].json)
      assert.equal(400, reqs[3].status)
      sim:clear()
      assert.equal(0, #sim:requests())
      assert.equal(0, #sim:messages())
      sim:close()
    end))
  end)

  describe("garbage", function()
    it("survives hostile bodies with Meta-shaped 4xx errors, never a 500", task(function()
      local sim = start{ window = false, rate = false, pair_limit = false }
      local bodies = {
        '{"messaging_product":"whatsapp","to":1e400,"type":"text","text":{"body":"x"}}',
        '{"messaging_product":"whatsapp","to":-5,"type":"text","text":{"body":"x"}}',
        '{"messaging_product":"whatsapp","to":{"a":1},"type":"text","text":{"body":"x"}}',
        '{"messaging_product":"whatsapp","to":"","type":"text","text":{"body":"x"}}',
        '{"messaging_product":"whatsapp","to":"15550002222","type":{},"text":{"body":"x"}}',
        '{"messaging_product":"whatsapp","to":"15550002222","type":"text","text":"x"}',
        '{"messaging_product":"whatsapp","to":"15550002222","type":"text","text":[1,2]}',
        '{"messaging_product":"whatsapp","to":"15550002222","type":"image","image":{"id":12345678901234567890}}',
        '{"messaging_product":"whatsapp","to":"15550002222","type":"location","location":{"latitude":"nan",'
          .. '"longitude":1}}',
        '{"messaging_product":"whatsapp","to":"15550002222","type":"template","template":{"name":"hello_world",'
          .. '"language":{"code":"en_US"},"components":[{"type":"body","parameters":[null,3]}]}}',
        '{"messaging_product":"whatsapp","to":"15550002222","type":"template","template":{"name":[],'
          .. '"language":"en"}}',
        '{"messaging_product":"whatsapp","to":"15550002222","type":"interactive","interactive":{"type":"list",'
          .. '"body":{"text":"b"},"action":{"button":"x","sections":[{"rows":[{"id":1}]}]}}}',
        '{"messaging_product":"whatsapp","to":"15550002222","type":"contacts","contacts":[{"name":"x"}]}',
        '{"messaging_product":"whatsapp","status":"read","message_id":12}',
        '{"messaging_product":null}',
        '{"messaging_product":"whatsapp","to":"15550002222","type":"text","text":{"body":"x"},"context":[]}',
        string.rep("[", 5000) .. string.rep("]", 5000),
        '{"a":NaN}', '{"a":0x10}', "\0\1\2\255", '{"messaging_product":"whatsapp","to":"\255\254"}',
      }
      for _, raw in ipairs(bodies) do
        local res, body = send(sim, raw)
        assert.is_true(res.status >= 400 and res.status < 500, raw:sub(1, 80) .. " -> " .. res.status)
        assert.is_table(body and body.error, raw:sub(1, 80))
        assert.is_number(body.error.code)
      end
      -- the same for template management and the profile
      for _, path in ipairs{ "/v23.0/" .. WABA .. "/message_templates",
                             "/v23.0/" .. PNID .. "/whatsapp_business_profile" } do
        for _, raw in ipairs{ "[]", "x", '{"name":{"a":1},"language":5,"category":[]}', '{"websites":"x"}' } do
          local res, body = call(sim, "POST", path, raw)
          assert.is_true(res.status == 400, path .. " " .. raw .. " -> " .. res.status)
          assert.is_number(body.error.code)
        end
      end
      local res = call(sim, "GET", "/v23.0/" .. WABA .. "/message_templates?limit=-3")
      assert.equal(400, res.status)
      res = call(sim, "GET", "/v23.0/" .. WABA .. "/message_templates?limit=1e999")
      assert.equal(400, res.status)
      assert.equal(0, #sim:messages())
      assert.same({}, run.reported)
      sim:close()
    end))
  end)

  describe("webhooks to a bot", function()
    -- A bot: a listener that verifies and parses what the simulator sends.
    local function bot(secret)
      local hook = webhook.new{ app_secret = secret }
      local got = { events = {}, bad = 0 }
      got.srv = assert(server.listen{ port = 0, handler = function(req)
        local events, err = hook:parse(req.body, req.headers)
        if not events then
          got.bad = got.bad + 1
          return err.status, nil, err.message
        end
        for _, ev in ipairs(events) do got.events[#got.events + 1] = ev end
        return 200, nil, "ok"
      end })
      got.url = "http://127.0.0.1:" .. got.srv:port() .. "/webhook"
      live[#live + 1] = got.srv
      return got
    end

    it("sent and delivered statuses for accepted messages, read on demand, all signed", task(function()
      local b = bot("HOOK_SECRET")
      local sim = start{ webhook = { url = b.url, app_secret = "HOOK_SECRET" } }
      sim:user_wrote(USER)
      local _, body = send(sim, text())
      local id = body.messages[1].id
      assert.is_true(run.wait_for(function() return #b.events >= 2 end, 10))
      assert.equal("status", b.events[1].kind)
      assert.equal("sent", b.events[1].type)
      assert.equal(id, b.events[1].id)
      assert.equal(USER, b.events[1].recipient_id)
      assert.equal(PNID, b.events[1].phone_number_id)
      assert.equal("delivered", b.events[2].type)
      assert.equal("service", b.events[2].pricing.category)
      local res = assert(sim:read(id))
      assert.equal(200, res.status)
      assert.equal("read", b.events[3].type)
      assert.equal(0, b.bad)
      local nothing, err = sim:read("wamid.unknown")
      assert.is_nil(nothing)
      assert.equal("not_found", err.code)
      assert.equal(3, #sim:deliveries())
      sim:close()
      b.srv:close()
    end))

    it("send_user_message: a signed inbound message that opens the window", task(function()
      local b = bot("HOOK_SECRET")
      local sim = start{ webhook = { url = b.url, app_secret = "HOOK_SECRET" } }
      assert.equal(400, (send(sim, text("15550003333"))).status)
      local wamid = assert(sim:send_user_message{ from = "15550003333", text = "hi there", name = "Ann" })
      assert.matches("^wamid%.", wamid)
      local ev = b.events[1]
      assert.equal("message", ev.kind)
      assert.equal("text", ev.type)
      assert.equal("hi there", ev.text)
      assert.equal("15550003333", ev.from)
      assert.equal("Ann", ev.contact.name)
      assert.equal(wamid, ev.id)
      -- the window is open now, and the inbound id can be marked as read
      assert.equal(200, (send(sim, text("15550003333"))).status)
      local res = send(sim, { messaging_product = "whatsapp", status = "read", message_id = wamid })
      assert.equal(200, res.status)
      assert(sim:send_user_message{ from = "15550003333", type = "interactive", interactive = {
        type = "button_reply", button_reply = { id = "yes", title = "Yes" } } })
      local inbound = {}
      for _, e in ipairs(b.events) do
        if e.kind == "message" then inbound[#inbound + 1] = e end
      end
      assert.equal(2, #inbound)
      assert.equal("button_reply", inbound[2].type)
      assert.equal("yes", inbound[2].reply.id)
      -- a bot with another secret refuses: the error says so
      local other = bot("OTHER")
      local sim2 = start{ webhook = { url = other.url, app_secret = "HOOK_SECRET" } }
      local none, err = sim2:send_user_message{ text = "x" }
      assert.is_nil(none)
      assert.equal("webhook", err.code)
      assert.equal(401, err.status)
      sim2:close()
      other.srv:close()
      sim:close()
      b.srv:close()
    end))

    it("needs a webhook configured", function()
      local sim = start()
      assert.has_error(function() sim:send_user_message{ text = "x" } end)
      assert.has_error(function() sim:read("wamid.x") end)
      sim:close()
    end)
  end)

  describe("from a plain script (blocking calls)", function()
    it("serves while the caller blocks, and closes", function()
      local sim = start{ window = false }
      local res, body = send(sim, text())
      assert.equal(200, res.status)
      assert.matches("^wamid%.", body.messages[1].id)
      local r2, b2 = call(sim, "GET", "/v23.0/" .. WABA .. "/message_templates")
      assert.equal(200, r2.status)
      assert.equal("hello_world", b2.data[1].name)
      assert.equal(2, #sim:requests())
      assert.is_true(sim:port() > 0)
      sim:close()
      sim:close()
      local gone = http.request{ url = sim.url .. "/v23.0/" .. WABA, timeout = 5 }
      assert.is_nil(gone)
    end)
  end)
end)
