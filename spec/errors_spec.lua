-- The one error object: Graph error answers (every fixture of Meta's error
-- bodies), categories and retry advice.
local errors = require "whatsapp.errors"
local cjson = require "cjson"
local helpers = require "helpers"

local manifest = helpers.fixture("manifest.json")
local status_of = {}
for _, f in ipairs(manifest.files) do
  if f.kind == "errors" then status_of[f.file] = f.http_status end
end

describe("errors.from_graph", function()
  for _, name in ipairs(helpers.list("errors")) do
    it("keeps every field of " .. name, function()
      local raw = helpers.fixture_raw("errors/" .. name)
      local g = cjson.decode(raw).error
      local status = status_of["errors/" .. name] or 400
      local e = errors.from_graph(status, raw, nil)
      assert.is_true(errors.is(e))
      assert.are.equal(g.code, e.code)
      assert.are.equal(g.error_subcode, e.subcode)
      assert.are.equal(g.message, e.message)
      assert.are.equal(g.fbtrace_id, e.fbtrace_id)
      assert.are.equal(g.type, e.type)
      assert.are.equal(status, e.http_status)
      assert.are.equal(g.error_data and g.error_data.details or nil, e.details)
      if g.error_user_title then assert.are.equal(g.error_user_title, e.title) end
      assert.are.equal(g.error_user_msg, e.user_message)
      -- The file name starts with the code, and tostring names it.
      assert.are.equal(string.format("%d", g.code), name:match("^(%d+)"))
      assert.truthy(tostring(e):find(string.format("%d", g.code), 1, true))
      assert.is_not_nil(e.category, "every fixture code has a category")
      assert.is_boolean(e.retry)
    end)
  end

  it("takes the title from '(#code) title'", function()
    local e = errors.from_graph(400, helpers.fixture_raw("errors/130429_rate_limit_hit.json"))
    assert.are.equal("Rate limit hit", e.title)
    assert.are.equal("throttling", e.category)
    assert.is_true(e.retry)
  end)

  it("gives advice per code", function()
    local cases = {
      { 131047, "window", false }, { 130429, "throttling", true }, { 131056, "throttling", true },
      { 131048, "throttling", false }, { 131026, "recipient", false }, { 131049, "recipient", false },
      { 132000, "template", false }, { 132001, "template", false }, { 132005, "template", false },
      { 132012, "template", false }, { 132015, "template", false }, { 0, "auth", false },
      { 190, "auth", false }, { 100, "param", false }, { 131008, "param", false }, { 131009, "param", false },
      { 1, "server", true }, { 2, "server", true }, { 131000, "server", true }, { 131016, "server", true },
      { 368, "integrity", false }, { 4, "throttling", true }, { 80007, "throttling", true },
    }
    for _, c in ipairs(cases) do
      local body = cjson.encode{ error = { code = c[1], message = "(#" .. c[1] .. ") x" } }
      local e = errors.from_graph(400, body)
      assert.are.equal(c[2], e.category, "category of " .. c[1])
      assert.are.equal(c[3], e.retry, "retry of " .. c[1])
    end
  end)

  it("honours is_transient and Retry-After", function()
    local body = cjson.encode{ error = { code = 131037, message = "x", is_transient = true } }
    local e = errors.from_graph(400, body, { ["retry-after"] = "7" })
    assert.is_true(e.retry)
    assert.are.equal(7, e.retry_after)
    e = errors.from_graph(429, body, { ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" })
    assert.is_nil(e.retry_after)
  end)

  it("turns a body that is not Graph's into code 'http'", function()
    local e = errors.from_graph(502, "<html>Bad gateway</html>\r\n")
    assert.are.equal("http", e.code)
    assert.are.equal("server", e.category)
    assert.is_true(e.retry)
    assert.truthy(e.message:find("502", 1, true))
    assert.is_nil(e.message:find("\r", 1, true))
    e = errors.from_graph(404, "")
    assert.is_false(e.retry)
    e = errors.from_graph(429, nil)
    assert.are.equal("throttling", e.category)
    assert.is_true(e.retry)
    e = errors.from_graph(400, '{"error": "not an object"}')
    assert.are.equal("http", e.code)
  end)

  it("gives the webhook parser's error tables the same advice", function()
    local webhook = require "whatsapp.webhook"
    local hook = webhook.new{ app_secret = helpers.SECRET }
    local body = helpers.fixture_raw("webhooks/statuses_failed_131047_reengagement.json")
    local events = assert(hook:parse(body, helpers.signed(body)))
    local err = events[1].errors[1]
    assert.is_true(errors.is(err))
    assert.are.equal(131047, err.code)
    assert.are.equal("window", err.category)
    assert.is_false(err.retry)
  end)
end)
