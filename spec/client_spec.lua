-- whatsapp.client against the project's Cloud API simulator (in the same process, on the
-- same loop): every call shape, validation before the network, Meta's errors, retries,
-- pacing, media, templates and the registry, profile and phone numbers.
local cjson = require "cjson"
local whatsapp = require "whatsapp"
local loop = require "whatsapp.loop"
local errors = require "whatsapp.errors"
local message = require "whatsapp.message"
local simulator = require "whatsapp.simulator"
local templates = require "whatsapp.templates"
local helpers = require "helpers"

local TOKEN = "EAAG-sim-token-that-must-never-leak-0123456789"
local SECRET = "sim-app-secret"
local PNID, WABA = "100000000000001", "100000000000002"
local USER = "15550002222"

local ORDER_TEMPLATE = {
  name = "order_update", language = "en_US", category = "UTILITY", status = "APPROVED",
  components = {
    { type = "HEADER", format = "TEXT", text = "Order {{order_id}}" },
    { type = "BODY", text = "Hi {{name}}, your order ships on {{date}}. Total {{total}}." },
    { type = "BUTTONS", buttons = { { type = "URL", text = "Track", url = "https://example.com/t/{{1}}" } } },
  },
}
local HELLO_TEMPLATE = {
  name = "hello_world", language = "en_US", category = "UTILITY", status = "APPROVED",
  components = { { type = "BODY", text = "Hello {{1}}, welcome to {{2}}." } },
}

local function start(opts)
  local o = {
    access_token = TOKEN, phone_number_id = PNID, waba_id = WABA, window = false,
    templates = { ORDER_TEMPLATE, HELLO_TEMPLATE },
  }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(simulator.start(o))
end

local function client_for(sim, opts)
  local o = {
    phone_number_id = PNID, waba_id = WABA, access_token = TOKEN, base_url = sim.url,
    retry = { base = 0.01, cap = 0.05 }, rate = false,
  }
  for k, v in pairs(opts or {}) do o[k] = v end
  return whatsapp.client(o)
end

local function no_secret(err)
  assert.is_nil(tostring(err):find("EAAG", 1, true), "the token leaked into an error")
  assert.is_nil(tostring(err):find(SECRET, 1, true), "the app secret leaked into an error")
end

describe("whatsapp.client", function()
  local sim, client
  before_each(function()
    sim = start()
    client = client_for(sim)
  end)
  after_each(function() sim:close() end)

  describe("sending", function()
    it("sends a text and returns the wamid and the wa_id", function()
      local sent, err = client:send_text(USER, "hello")
      assert.is_nil(err)
      assert.truthy(sent.id:match("^wamid%."))
      assert.are.equal(USER, sent.wa_id)
      local reqs = sim:requests()
      assert.are.equal(1, #reqs)
      assert.are.equal("POST", reqs[1].method)
      assert.are.equal("/v23.0/" .. PNID .. "/messages", reqs[1].path)
      assert.are.same(message.text(USER, "hello"), reqs[1].json)
      assert.are.equal("Bearer " .. TOKEN, reqs[1].headers.authorization)
      assert.truthy(reqs[1].headers["content-type"]:find("application/json", 1, true))
    end)

    it("sends every builder's message kind through a convenience call", function()
      local calls = {
        function() return client:send_image(USER, "https://example.com/a.jpg", { caption = "c" }) end,
        function() return client:send_audio(USER, "1234567890", { voice = true }) end,
        function() return client:send_video(USER, { id = "1234" }) end,
        function() return client:send_document(USER, "https://example.com/a.pdf", { filename = "a.pdf" }) end,
        function() return client:send_sticker(USER, "5678") end,
        function() return client:send_location(USER, { latitude = 38.7, longitude = -9.1, name = "Lisboa" }) end,
        function()
          return client:send_contacts(USER, { { name = { formatted_name = "Ana", first_name = "Ana" },
            phones = { { phone = "+15550003333", type = "CELL" } } } })
        end,
        function()
          return client:send_buttons(USER, "Pick", { { id = "a", title = "A" }, { id = "b", title = "B" } })
        end,
        function()
          return client:send_list(USER, "Menu", "Open", { { title = "S", rows = { { id = "r1", title = "Row" } } } })
        end,
        function() return client:send_cta_url(USER, "See", "Open", "https://example.com") end,
        function() return client:send_location_request(USER, "Where are you?") end,
        function() return client:send_reaction(USER, "wamid.ABC", "👍") end,
        function() return client:send_template(USER, "hello_world", "en_US", { body = { "Ana", "Shop" } }) end,
      }
      for i, call in ipairs(calls) do
        local sent, err = call()
        assert.is_nil(err, "call " .. i .. ": " .. tostring(err))
        assert.truthy(sent.id, "call " .. i)
      end
      assert.are.equal(#calls, #sim:messages())
    end)

    it("replies to an event, quoting it, and reacts and marks it read", function()
      local event = { kind = "message", type = "text", from = USER, id = "wamid.INBOUND1", text = "hi" }
      assert.truthy(client:reply(event, "hello back"))
      assert.truthy(client:reply(event, message.buttons(USER, "Choose", { { id = "y", title = "Yes" } })))
      assert.truthy(client:react(event, "❤️"))
      local read = assert(client:mark_read(event))
      assert.is_true(read.success)
      assert.is_true(assert(client:typing("wamid.INBOUND1")).success)
      local reqs = sim:requests()
      assert.are.equal("wamid.INBOUND1", reqs[1].json.context.message_id)
      assert.are.equal(USER, reqs[2].json.to)
      assert.are.equal("wamid.INBOUND1", reqs[2].json.context.message_id)
      assert.are.equal("wamid.INBOUND1", reqs[3].json.reaction.message_id)
      assert.is_nil(reqs[3].json.context)
      assert.are.same({ messaging_product = "whatsapp", status = "read", message_id = "wamid.INBOUND1" },
        reqs[4].json)
      assert.are.same({ type = "text" }, reqs[5].json.typing_indicator)
    end)

    it("adds appsecret_proof to every call when an app secret is set", function()
      sim:close()
      sim = start{ app_secret = SECRET }
      local crypto = require "whatsapp.crypto"
      local good = client_for(sim, { app_secret = SECRET })
      assert.truthy(good:send_text(USER, "proved"))
      assert.are.equal(crypto.appsecret_proof(TOKEN, SECRET), sim:requests()[1].query.appsecret_proof)
      local bad = client_for(sim, { app_secret = "another-secret" })
      local _, err = bad:send_text(USER, "x")
      assert.are.equal(100, err.code)
      no_secret(err)
    end)

    it("runs many sends concurrently from tasks, each resumed with its own answer", function()
      -- More than the simulator's 80/s at once: the client's default pacing spreads them.
      local c = client_for(sim, { rate = {} })
      local tasks, got = {}, {}
      for i = 1, 100 do
        tasks[i] = loop.spawn(function()
          local sent = assert(c:send_text("1555000" .. (4000 + i), "n" .. i))
          got[i] = sent.wa_id
        end)
      end
      loop.wait_all(tasks)
      for i = 1, 100 do assert.are.equal("1555000" .. (4000 + i), got[i]) end
    end)
  end)

  describe("send_text's quick way", function()
    local validate = require "whatsapp.validate"

    -- Sends with send_text and with send(message.text(...)) the general way, and returns both
    -- results and how often each way ran validate.message.
    local function both(c, to, body, opts)
      local full = spy.on(validate, "message")
      local quick_sent, quick_err = c:send_text(to, body, opts)
      local quick_checks = #full.calls
      -- A table with a metatable always takes the general way (validate.message, message.encode).
      local general_sent, general_err = c:send(setmetatable(message.text(to, body, opts), {}))
      local general_checks = #full.calls - quick_checks
      validate.message:revert()
      return { sent = quick_sent, err = quick_err, checks = quick_checks },
        { sent = general_sent, err = general_err, checks = general_checks }
    end

    local function same_result(a, b)
      assert.is_string(a.id)
      assert.is_string(b.id)
      assert.are_not.equal(a.id, b.id)
      -- Everything but the wamid itself.
      local function without_id(r)
        local copy = {}
        for k, v in pairs(r) do copy[k] = v end
        copy.id = nil
        copy.response = nil
        return copy
      end
      assert.are.same(without_id(a), without_id(b))
      assert.are.same(a.response.contacts, b.response.contacts)
      assert.are.equal(a.id, a.response.messages[1].id)
      assert.are.equal(b.id, b.response.messages[1].id)
    end

    it("sends the body send(message.text(...)) sends, skipping the message table", function()
      local cases = {
        { USER, "hello" }, { "+" .. USER, "héllo 👍🏽" }, { USER, "a/b \"quoted\" \n", { preview_url = true } },
        { USER, string.rep("é", 4096), { preview_url = false } }, { "12345", "x", {} },
      }
      for i, case in ipairs(cases) do
        local quick, general = both(client, case[1], case[2], case[3])
        assert.is_nil(quick.err)
        assert.is_nil(general.err)
        assert.are.equal(0, quick.checks, "case " .. i .. " took the general way")
        assert.are.equal(1, general.checks)
        local reqs = sim:requests()
        local a, b = reqs[#reqs - 1], reqs[#reqs]
        assert.are.same(message.text(case[1], case[2], case[3]), a.json)
        assert.are.same(b.json, a.json)
        assert.are.equal(#b.body, #a.body)
        assert.are.same(b.headers, a.headers)
        assert.are.equal(b.path, a.path)
        same_result(quick.sent, general.sent)
      end
    end)

    it("returns the same validation errors, without a request", function()
      local cases = {
        { USER, "" }, { USER, string.rep("a", 4097) }, { USER, string.rep("é", 4097) }, { USER, "bad \255" },
        { "1234", "x" }, { "1234567890123456", "x" }, { "+1234", "x" }, { "1555a002222", "x" },
        { "US.", "x" }, { "1555.000.2222", "x" },
      }
      for _, case in ipairs(cases) do
        local quick, general = both(client, case[1], case[2])
        assert.is_nil(quick.sent)
        assert.is_nil(general.sent)
        assert.are.equal("validation", quick.err.code)
        assert.are.equal(general.err.path, quick.err.path)
        assert.are.equal(general.err.message, quick.err.message)
        assert.are.equal(tostring(general.err), tostring(quick.err))
      end
      assert.are.equal(0, #sim:requests())
    end)

    it("raises what message.text raises", function()
      for _, case in ipairs{ { 15550002222, "x" }, { USER, 42 }, { USER, "x", { preview_url = "yes" } },
                             { USER, "x", { bogus = true } }, { USER, "x", "opts" }, { "", "x" } } do
        local ok1, e1 = pcall(client.send_text, client, case[1], case[2], case[3])
        local ok2, e2 = pcall(message.text, case[1], case[2], case[3])
        assert.is_false(ok1)
        assert.is_false(ok2)
        assert.are.equal(tostring(e2):gsub("^[^:]*:%d+: ", ""), (tostring(e1):gsub("^[^:]*:%d+: ", "")))
        assert.matches("client.lua:%d+: whatsapp.message.text: ", tostring(e1))
      end
    end)

    it("takes the general way for other options and recipients, and when send is replaced", function()
      local others = {
        { USER, "quoted", { reply_to = "wamid.IN" } }, { USER, "tracked", { biz_opaque_callback_data = "t" } },
        { "+1 (555) 000-2222", "separators" }, { "US.1000000000000001", "bsuid" },
        { USER, "proxy", setmetatable({}, { __index = { preview_url = true } }) },
      }
      -- send_text builds the message; send then takes its own quick way for a plain text table
      -- (the proxy's options make one), the general way for the rest.
      local checks = { 1, 1, 1, 1, 0 }
      for i, case in ipairs(others) do
        local quick, general = both(client, case[1], case[2], case[3])
        assert.is_nil(quick.err, tostring(quick.err))
        assert.are.equal(checks[i], quick.checks, "case " .. i)
        assert.are.equal(1, general.checks)
        local reqs = sim:requests()
        assert.are.same(message.text(case[1], case[2], case[3]), reqs[#reqs - 1].json)
        assert.are.same(reqs[#reqs].json, reqs[#reqs - 1].json)
        same_result(quick.sent, general.sent)
      end
      -- A proxy's preview_url is read through __index, as message.text reads it.
      assert.is_true(sim:requests()[9].json.text.preview_url)
      local seen = {}
      local c = client_for(sim)
      local send = c.send
      c.send = function(self, msg, o)
        seen[#seen + 1] = msg
        return send(self, msg, o)
      end
      assert.truthy(c:send_text(USER, "watched"))
      assert.are.same({ message.text(USER, "watched") }, seen)
    end)

    it("takes it in send() too for a text table as message.text builds it, and only then", function()
      local full = spy.on(validate, "message")
      local plain = { message.text(USER, "table"), message.text(USER, "table", { preview_url = true }),
        message.text("+" .. USER, "é", { preview_url = false }) }
      for _, m in ipairs(plain) do assert.truthy(client:send(m)) end
      assert.are.equal(0, #full.calls)
      local function with(m, k, v) m[k] = v; return m end
      local others = {
        with(message.text(USER, "x"), "recipient_type", nil),
        message.text("GROUP_ID", "x", { recipient_type = "group" }),
        message.text(USER, "x", { reply_to = "wamid.IN" }),
        message.text(USER, "x", { biz_opaque_callback_data = "t" }),
        message.text("1 555 000 2222", "x"),
        message.text("US.1000000000000001", "x"),
        with(message.text(USER, "x"), "messaging_product", nil),
        with(message.text(USER, "x"), "type", nil),
        with(message.text(USER, "x"), "extra", 1),
        { messaging_product = "whatsapp", recipient_type = "individual", to = USER, type = "text",
          text = { body = "x", extra = 1 } },
        { messaging_product = "whatsapp", recipient_type = "individual", to = USER, type = "text",
          text = { body = "x", preview_url = "yes" } },
        { messaging_product = "whatsapp", recipient_type = "individual", to = USER, type = "text",
          text = setmetatable({}, { __index = { body = "proxy" } }) },
        setmetatable({ text = { body = "x" } }, { __index = { messaging_product = "whatsapp",
          recipient_type = "individual", to = USER, type = "text" } }),
        with(message.text(USER, "x"), "to", "1234"),
        with(message.text(USER, "x"), "text", { body = "" }),
      }
      for i, m in ipairs(others) do
        local before = #full.calls
        local sent, err = client:send(m)
        assert.are.equal(before + 1, #full.calls, "case " .. i .. " took the quick way")
        local ok, verr = validate.message(m)
        if ok then
          -- Posted (the simulator, like Meta, refuses a text with an unknown field).
          assert.is_true(sent ~= nil or (err.code ~= "validation" and err.http_status == 400), "case " .. i)
        else
          assert.is_nil(sent)
          assert.are.equal(tostring(verr), tostring(err))
        end
      end
      validate.message:revert()
      local reqs = sim:requests()
      for i, m in ipairs(plain) do assert.are.same(m, reqs[i].json) end
      -- Every request the simulator got is what message.encode writes for its table.
      local n = #plain
      for _, m in ipairs(others) do
        if validate.message(m) then
          n = n + 1
          assert.are.same(cjson.decode(message.encode(m)), reqs[n].json)
        end
      end
      assert.are.equal(n, #reqs)
    end)

    it("sends without validation too, when the client does not validate", function()
      local c = client_for(sim, { validate = false })
      local quick, general = both(c, USER, "plain")
      assert.are.equal(0, quick.checks + general.checks)
      same_result(quick.sent, general.sent)
      local reqs = sim:requests()
      assert.are.same(reqs[2].json, reqs[1].json)
    end)
  end)

  describe("validation before the network", function()
    it("refuses a text over 4096 characters without calling Meta", function()
      local _, err = client:send_text(USER, string.rep("é", 4097))
      assert.are.equal("validation", err.code)
      assert.are.equal("text.body", err.path)
      assert.are.equal(0, #sim:requests())
    end)

    it("names the exact place of a list row that is too long", function()
      local rows = { { id = "a", title = "ok" }, { id = "b", title = "ok" }, { id = "c", title = "ok" },
        { id = "d", title = string.rep("x", 25) } }
      local _, err = client:send_list(USER, "Menu", "Open", {
        { title = "One", rows = { { id = "z", title = "z" } } }, { title = "Two", rows = rows } })
      assert.are.equal("validation", err.code)
      assert.are.equal("interactive.action.sections[2].rows[4].title", err.path)
      assert.are.equal(0, #sim:requests())
    end)

    it("refuses an upload of a type Meta does not take", function()
      local _, err = client:upload{ data = "GIF89a", mime_type = "image/gif" }
      assert.are.equal("validation", err.code)
      assert.are.equal(0, #sim:requests())
    end)

    it("can be turned off, and then Meta's own check answers", function()
      local c = client_for(sim, { validate = false })
      local _, err = c:send_text(USER, string.rep("a", 5000))
      assert.is_true(errors.is(err))
      assert.are.equal("number", type(err.code))
      assert.are.equal(1, #sim:requests())
    end)
  end)

  describe("Meta's errors", function()
    it("190 for a wrong token, with no secret in the error", function()
      local c = client_for(sim, { access_token = "EAAG-wrong" })
      local _, err = c:send_text(USER, "x")
      assert.are.equal(190, err.code)
      assert.are.equal(401, err.http_status)
      assert.are.equal("auth", err.category)
      assert.is_false(err.retry)
      assert.are.equal(1, err.attempts)
      no_secret(err)
      no_secret(c)
    end)

    it("131047 outside the 24-hour window; a template still goes", function()
      sim:close()
      sim = start{ window = true }
      client = client_for(sim)
      local _, err = client:send_text(USER, "hello?")
      assert.are.equal(131047, err.code)
      assert.are.equal("window", err.category)
      assert.truthy(client:send_template(USER, "hello_world", "en_US", { body = { "Ana", "Shop" } }))
      sim:user_wrote(USER)
      assert.truthy(client:send_text(USER, "now it works"))
    end)

    it("132001 for a template the WABA does not have, 132000 for a wrong parameter count", function()
      local _, err = client:send_template(USER, "no_such_template", "en_US")
      assert.are.equal(132001, err.code)
      assert.are.equal("template", err.category)
      _, err = client:send_template(USER, "hello_world", "en_US", { body = { "only one" } })
      assert.are.equal(132000, err.code)
    end)
  end)

  describe("retries", function()
    it("retries 130429 and 5xx until the message goes through", function()
      sim:fault{ code = 130429, times = 2 }
      assert.truthy(client:send_text(USER, "after throttling"))
      sim:fault{ status = 503, times = 1 }
      assert.truthy(client:send_text(USER, "after a 503"))
      assert.are.equal(5, #sim:requests())
      assert.are.equal(2, #sim:messages())
    end)

    it("waits at least Retry-After before trying again", function()
      sim:fault{ status = 429, retry_after = 1, times = 1 }
      local t0 = loop.now()
      assert.truthy(client:send_text(USER, "patience"))
      assert.is_true(loop.now() - t0 >= 1, "retried before Retry-After")
    end)

    it("stops at the attempt limit and returns the last error", function()
      local c = client_for(sim, { retry = { attempts = 2, base = 0.001, cap = 0.002 } })
      sim:fault{ code = 130429, times = 10 }
      local _, err = c:send_text(USER, "x")
      assert.are.equal(130429, err.code)
      assert.are.equal(3, err.attempts)
      assert.are.equal(3, #sim:requests())
    end)

    it("never repeats a send after a dropped connection unless allowed", function()
      sim:fault{ drop = true, times = 1 }
      local _, err = client:send_text(USER, "maybe delivered")
      assert.are.equal("transport", err.category)
      assert.are.equal(1, #sim:requests())
      sim:fault{ drop = true, times = 1 }
      local c = client_for(sim, { retry = { base = 0.01, ambiguous = true } })
      assert.truthy(c:send_text(USER, "again"))
    end)

    it("repeats an idempotent read after a dropped connection", function()
      local id = assert(client:upload{ data = "\137PNG\r\n\26\n....", mime_type = "image/png" })
      sim:fault{ drop = true, times = 1, match = id }
      local info, err = client:media(id)
      assert.is_nil(err)
      assert.are.equal(id, info.id)
    end)
  end)

  describe("pacing", function()
    it("keeps under the number's rate limit on its own", function()
      sim:close()
      sim = start{ rate = 20 }
      local c = client_for(sim, { rate = { per_second = 15, burst = 5 }, retry = false })
      local tasks, failed, last = {}, 0, nil
      for i = 1, 30 do
        tasks[i] = loop.spawn(function()
          local ok, err = c:send_text("1555000" .. (5000 + i), "paced")
          if not ok then failed = failed + 1; last = err end
        end)
      end
      loop.wait_all(tasks)
      assert.are.equal(0, failed, tostring(last))
    end)

    it("without pacing the same burst is throttled by 130429", function()
      sim:close()
      sim = start{ rate = 20 }
      local c = client_for(sim, { rate = false, retry = false })
      local tasks, throttled = {}, 0
      for i = 1, 60 do
        tasks[i] = loop.spawn(function()
          local _, err = c:send_text("1555000" .. (5000 + i), "burst")
          if err and err.code == 130429 then throttled = throttled + 1 end
        end)
      end
      loop.wait_all(tasks)
      assert.is_true(throttled > 0)
    end)

    it("spaces messages to one recipient under the pair rate limit", function()
      sim:close()
      sim = start{ pair_limit = { burst = 2, per = 0.2 } }
      local paced = client_for(sim, { rate = { per_second = 1000, pair = { burst = 2, interval = 0.25 } },
        retry = false })
      for i = 1, 5 do assert.truthy(paced:send_text(USER, "paced " .. i)) end
      local unpaced = client_for(sim, { rate = false, retry = false })
      local hit
      for i = 1, 5 do
        local _, err = unpaced:send_text("15550006666", "fast " .. i)
        if err then hit = err end
      end
      assert.are.equal(131056, hit and hit.code)
    end)
  end)

  describe("media", function()
    it("uploads a string, reads its metadata, downloads it verified, deletes it", function()
      local data = "\137PNG\r\n\26\n" .. string.rep("pixels", 1000)
      local id = assert(client:upload{ data = data, mime_type = "image/png", filename = "p.png" })
      local info = assert(client:media(id))
      assert.are.equal("image/png", info.mime_type)
      assert.are.equal(#data, info.file_size)
      assert.are.equal(64, #info.sha256)
      local path = os.tmpname()
      local got = assert(client:download(id, path))
      assert.are.equal(#data, got.size)
      assert.are.equal(info.sha256, got.sha256)
      assert.are.equal(data, helpers.read(path))
      os.remove(path)
      assert.is_true(assert(client:delete_media(id)))
      local _, err = client:media(id)
      assert.are.equal(100, err.code)
    end)

    it("uploads from a file", function()
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write("%PDF-1.4 a small document")
      f:close()
      local id = assert(client:upload{ file = path, mime_type = "application/pdf" })
      assert.are.equal("application/pdf", assert(client:media(id)).mime_type)
      os.remove(path)
      local _, err = client:upload{ file = path .. ".missing", mime_type = "application/pdf" }
      assert.are.equal("io", err.code)
    end)
  end)

  describe("templates on the WABA", function()
    it("creates, lists across pages, gets and deletes", function()
      for i = 1, 7 do
        local made = assert(client:create_template{
          name = "promo_" .. i, language = "en_US", category = "MARKETING",
          components = { { type = "BODY", text = "Offer " .. i } },
        })
        assert.truthy(made.id)
      end
      local all = assert(client:templates_list{ limit = 2 })
      local names = {}
      for _, t in ipairs(all) do names[t.name] = true end
      for i = 1, 7 do assert.is_true(names["promo_" .. i], "promo_" .. i) end
      assert.is_true(names.hello_world)
      local one = assert(client:template(all[1].id))
      assert.are.equal(all[1].name, one.name)
      assert.is_true(assert(client:delete_template("promo_3")))
      local _, err = client:delete_template("promo_3")
      assert.are.equal(100, err.code)
      assert.are.equal(2593002, err.subcode)
    end)
  end)

  describe("the template registry", function()
    local reg
    before_each(function()
      reg = templates.new()
      reg:declare(ORDER_TEMPLATE)
      reg:declare(HELLO_TEMPLATE)
      client = client_for(sim, { templates = reg })
    end)

    it("sends a declared template from a table of values", function()
      local sent, err = client:send_template(USER, "order_update", {
        order_id = "A-17", name = "Ana", date = "May 3", total = "12.50 EUR", buttons = { "A-17" },
      })
      assert.is_nil(err)
      assert.truthy(sent.id)
      local body = sim:requests()[1].json
      assert.are.equal("order_update", body.template.name)
      assert.truthy(client:send_template(USER, "hello_world", { "Ana", "Shop" }))
    end)

    it("refuses missing, unknown and mistyped values before the network", function()
      local _, err = client:send_template(USER, "order_update", { order_id = "A", name = "Ana", buttons = { "x" } })
      assert.are.equal("validation", err.code)
      assert.are.equal("template.body.date", err.path)
      _, err = client:send_template(USER, "order_update", {
        order_id = "A", name = "Ana", date = "d", total = "t", buttons = { "x" }, nmae = "typo" })
      assert.are.equal("template.nmae", err.path)
      _, err = client:send_template(USER, "order_update", {
        order_id = "A", name = "Ana", date = "d", total = "t" })
      assert.are.equal("template.buttons[1]", err.path)
      reg:declare{ name = "typed", language = "en_US",
        components = { { type = "BODY", text = "Pay {{amount}}" } }, types = { amount = "currency" } }
      _, err = client:send_template(USER, "typed", { amount = "ten" })
      assert.are.equal("template.body.amount", err.path)
      assert.are.equal(0, #sim:requests())
    end)

    it("checks a declaration against the approved definition on the WABA", function()
      assert.is_true(assert(reg:verify(client, "order_update")))
      reg:declare{ name = "hello_world", language = "en_US",
        components = { { type = "BODY", text = "Hello {{1}}." } } }
      local _, err = reg:verify(client, "hello_world", "en_US")
      assert.are.equal("template_mismatch", err.code)
      reg:declare{ name = "ghost", language = "en_US", components = { { type = "BODY", text = "Boo" } } }
      _, err = reg:verify(client, "ghost")
      assert.are.equal("template_mismatch", err.code)
    end)

    it("loads the approved definitions from the WABA", function()
      local fresh = templates.new()
      assert.is_true(assert(fresh:load(client)) >= 2)
      assert.truthy(fresh:get("order_update", "en_US"))
    end)
  end)

  describe("account", function()
    it("reads and updates the business profile", function()
      assert.is_true(assert(client:update_business_profile{ about = "We sell tea", email = "tea@example.com" }))
      local profile = assert(client:business_profile())
      assert.are.equal("We sell tea", profile.about)
      assert.are.equal("tea@example.com", profile.email)
    end)

    it("lists phone numbers and reads one", function()
      local list = assert(client:phone_numbers())
      assert.are.equal(PNID, list[1].id)
      local one = assert(client:phone_number())
      assert.are.equal(PNID, one.id)
    end)
  end)

  describe("programmer errors raise", function()
    it("refuses a client without a token, and calls without their ids", function()
      assert.has_error(function() whatsapp.client{ phone_number_id = PNID } end)
      assert.has_error(function() whatsapp.client{ access_token = TOKEN, retry = 3, http = 5 } end)
      local c = whatsapp.client{ access_token = TOKEN, base_url = sim.url }
      assert.has_error(function() c:send_text(USER, "x") end)
      assert.has_error(function() c:templates_list() end)
      assert.has_error(function() client:send("not a table") end)
    end)
  end)
end)
