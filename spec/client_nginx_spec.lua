-- The client's transport-level behaviour against an independent server: Debian's nginx
-- playing a Graph send endpoint (spec/peer.lua) that throttles, fails with a plain 503,
-- refuses with 131047 or drops the connection for chosen recipients.
local whatsapp = require "whatsapp"
local loop = require "whatsapp.loop"
local errors = require "whatsapp.errors"
local peer = require "peer"

if not peer.available("whatsapp.client against nginx #peer") then return end

describe("whatsapp.client against nginx #peer", function()
  local p
  setup(function() p = peer.start() end)
  teardown(function() if p then p:stop() end end)

  local function client(opts)
    local o = {
      phone_number_id = "100000000000001", access_token = "nginx-token",
      base_url = "http://127.0.0.1:" .. p.port,
      retry = { base = 0.01, cap = 0.05 },
    }
    for k, v in pairs(opts or {}) do o[k] = v end
    return whatsapp.client(o)
  end

  it("sends a text and returns the wamid and wa_id (blocking, from a plain script)", function()
    local sent, err = client():send_text("15550002222", "hello")
    assert.is_nil(err)
    assert.truthy(sent.id:match("^wamid%.NGINX%d+$"))
    assert.are.equal("15550002222", sent.wa_id)
    assert.are.equal("15550002222", sent.input)
  end)

  it("sends 200 messages from 64 tasks at once, every id distinct", function()
    local c = client()
    local ids, tasks, failures = {}, {}, 0
    for i = 1, 200 do
      tasks[#tasks + 1] = loop.spawn(function()
        local sent = c:send_text("1555000" .. (3000 + i % 64), "message " .. i)
        if sent then ids[sent.id] = true else failures = failures + 1 end
      end)
    end
    loop.wait_all(tasks)
    local n = 0
    for _ in pairs(ids) do n = n + 1 end
    assert.are.equal(0, failures)
    assert.are.equal(200, n)
  end)

  it("retries 130429 until it goes through", function()
    local sent, err = client():send_text("15550009001", "throttled twice")
    assert.is_nil(err)
    assert.truthy(sent.id)
  end)

  it("gives up on 130429 without retries, with Meta's error object", function()
    local c = client{ retry = false }
    local _, err = c:send_text("15550009005", "x")
    assert.are.equal(130429, err.code)
    assert.are.equal("throttling", err.category)
    assert.are.equal(400, err.http_status)
    assert.are.equal(0, err.retry_after)
    assert.are.equal(1, err.attempts)
  end)

  it("stops retrying when the attempts are used up", function()
    local c = client{ retry = { attempts = 3, base = 0.001, cap = 0.002 } }
    local _, err = c:send_text("15550009005", "x")
    assert.are.equal(130429, err.code)
    assert.are.equal(4, err.attempts)
  end)

  it("retries a plain 503 (Meta did not take the message)", function()
    local sent, err = client():send_text("15550009002", "after a 503")
    assert.is_nil(err)
    assert.truthy(sent.id)
  end)

  it("does not retry a send after a dropped connection (ambiguous) unless told to", function()
    -- A session of its own: on a reused keep-alive connection libcurl itself sends a
    -- request again once when the server closed without answering (it cannot tell that
    -- from a connection the server had timed out), which would hide the drop here.
    local session = require("whatsapp.http").session()
    local _, err = client{ http = session }:send_text("15550009004", "dropped")
    session:close()
    assert.is_true(errors.is(err))
    assert.are.equal("transport", err.category)
    assert.are.equal(1, err.attempts)
    -- The same recipient succeeds now (nginx drops only the first), and a client that
    -- opts in to ambiguous retries would have gone through on its own.
    local sent = client{ retry = { base = 0.01, ambiguous = true } }:send_text("15550009004", "again")
    assert.truthy(sent and sent.id)
  end)

  it("returns 131047 at once: retrying cannot help", function()
    local _, err = client():send_text("15550009003", "outside the window")
    assert.are.equal(131047, err.code)
    assert.are.equal("window", err.category)
    assert.is_false(err.retry)
    assert.are.equal(1, err.attempts)
  end)

  it("answers 190 for a wrong token, and the token is in no error text", function()
    local c = client{ access_token = "EAAG-wrong-token-must-not-leak" }
    local _, err = c:send_text("15550002222", "x")
    assert.are.equal(190, err.code)
    assert.are.equal("auth", err.category)
    assert.is_nil(tostring(err):find("EAAG", 1, true))
    assert.is_nil(tostring(c):find("EAAG", 1, true))
  end)

  it("connection refused is retried within the budget, then reported", function()
    local c = whatsapp.client{
      phone_number_id = "1", access_token = "t", base_url = "http://127.0.0.1:" .. peer.free_port(),
      retry = { attempts = 2, base = 0.01, cap = 0.02 },
    }
    local _, err = c:send_text("15550002222", "x")
    assert.are.equal("connect", err.code)
    assert.are.equal(3, err.attempts)
  end)
end)
