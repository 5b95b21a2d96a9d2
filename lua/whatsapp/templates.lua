--- A local registry of message templates: declare a template once, in the
-- same shape as Meta's template definitions, then send it with a table of
-- values. The count, names and types of the parameters are checked against
-- the declaration before anything is sent, and the declaration can be checked
-- against the approved definition on the WABA.
--
--     local templates = require "whatsapp.templates"
--     local reg = templates.new()
--     reg:declare{
--       name = "order_update", language = "en_US", category = "UTILITY",
--       components = {
--         { type = "HEADER", format = "TEXT", text = "Order {{order_id}}" },
--         { type = "BODY", text = "Hi {{name}}, your order ships on {{date}}. Total {{total}}." },
--         { type = "BUTTONS", buttons = {
--           { type = "URL", text = "Track", url = "https://example.com/track/{{1}}" } } },
--       },
--       types = { date = "date_time", total = "currency" },   -- default "text"
--     }
--     local client = whatsapp.client{ ..., templates = reg }
--     client:send_template("15550002222", "order_update", {
--       order_id = "A-17", name = "Ana", date = "May 3",
--       total = { code = "EUR", amount_1000 = 12500, fallback = "€12.50" },
--       buttons = { "A-17" },
--     })
--
-- Placeholders are `{{name}}` (named parameters) or `{{1}}`, `{{2}}` ...
-- (positional; values are then given as a list, or by the number as a key).
-- A header with format IMAGE, VIDEO, DOCUMENT or LOCATION takes `values.header`
-- (a media id, a link, or a location table). Buttons with a variable (URL
-- buttons with `{{1}}`, COPY_CODE, OTP) take `values.buttons[i]` for the i-th
-- button; quick replies take an optional payload the same way.
-- @module whatsapp.templates
local errors = require "whatsapp.errors"
local message = require "whatsapp.message"

local templates = {}

local setmetatable, type, tostring, pairs, ipairs, tonumber, pcall = setmetatable, type, tostring, pairs, ipairs,
  tonumber, pcall
local upper, format, gmatch = string.upper, string.format, string.gmatch

local function verr(path, msg)
  return nil, errors.new{ code = "validation", path = path, message = path .. ": " .. msg,
    category = "template", retry = false }
end

-- The placeholders of a text, in order of first appearance: a list of names
-- (strings for named, numbers for positional) and the format.
local function placeholders(text)
  local list, seen, kind = {}, {}, nil
  if type(text) ~= "string" then return list, nil end
  for raw in gmatch(text, "{{%s*([%w_]+)%s*}}") do
    local n = tonumber(raw)
    local key = n or raw
    local k = n and "positional" or "named"
    if kind and kind ~= k then return nil, "mixes named and positional placeholders" end
    kind = k
    if not seen[key] then
      seen[key] = true
      list[#list + 1] = key
    end
  end
  if kind == "positional" then
    table.sort(list)
    for i, n in ipairs(list) do
      if n ~= i then
        return nil, format("positional placeholders must be {{1}}..{{n}} without gaps (missing {{%d}})", i)
      end
    end
  end
  return list, kind
end
templates.placeholders = placeholders

local Registry = {}
Registry.__index = Registry
Registry.__name = "whatsapp.templates.Registry"

--- A new, empty registry.
-- @return the registry
function templates.new()
  return setmetatable({ by_key = {}, by_name = {} }, Registry)
end

local VALUE_TYPES = { text = true, currency = true, date_time = true }
local MEDIA_FORMATS = { IMAGE = "image", VIDEO = "video", DOCUMENT = "document", LOCATION = "location" }

-- Compile a definition into what sending needs.
local function compile(def)
  local t = {
    name = def.name, language = def.language, category = def.category, definition = def,
    header = nil, body = {}, buttons = {}, kind = nil, types = def.types or {},
  }
  local kind
  local function note(list, k, path)
    if not list then error("templates: " .. path .. " " .. k, 4) end
    if k then
      if kind and kind ~= k then error("templates: " .. path .. " mixes named and positional parameters", 4) end
      kind = k
    end
    return list
  end
  for i, comp in ipairs(def.components or {}) do
    local ctype = upper(tostring(comp.type))
    local path = format("components[%d]", i)
    if ctype == "HEADER" then
      local fmt = upper(tostring(comp.format or "TEXT"))
      if fmt == "TEXT" then
        local list, k = placeholders(comp.text)
        t.header = { format = "TEXT", params = note(list, k, path) }
      elseif MEDIA_FORMATS[fmt] then
        t.header = { format = fmt }
      else
        error("templates: " .. path .. " has an unknown header format " .. fmt, 3)
      end
    elseif ctype == "BODY" then
      local list, k = placeholders(comp.text)
      t.body = note(list, k, path)
    elseif ctype == "BUTTONS" then
      for j, b in ipairs(comp.buttons or {}) do
        local btype = upper(tostring(b.type))
        local entry = { type = btype, index = j - 1 }
        if btype == "URL" then
          local list = placeholders(b.url)
          entry.variable = list and #list > 0
          entry.sub_type = "url"
        elseif btype == "COPY_CODE" then
          entry.variable, entry.sub_type, entry.param = true, "copy_code", "coupon_code"
        elseif btype == "OTP" then
          entry.variable, entry.sub_type = true, "url"
        elseif btype == "QUICK_REPLY" then
          entry.sub_type, entry.param = "quick_reply", "payload"
        elseif btype == "FLOW" then
          entry.sub_type, entry.param = "flow", "action"
        end
        t.buttons[#t.buttons + 1] = entry
      end
    end
  end
  for name, vt in pairs(t.types) do
    if not VALUE_TYPES[vt] then
      error("templates: type of " .. tostring(name) .. " must be text, currency or date_time", 3)
    end
  end
  t.kind = kind or (def.parameter_format and def.parameter_format:lower()) or "positional"
  return t
end

--- Declare a template (Meta's definition shape: `name`, `language`,
-- `category`, `components`; plus an optional `types` map of parameter name or
-- number to "text" | "currency" | "date_time"). Raises on a malformed
-- declaration. Returns the registry.
-- @tparam table def
-- @return the registry
function Registry:declare(def)
  if type(def) ~= "table" or type(def.name) ~= "string" or type(def.language) ~= "string" then
    error("templates:declare: a table with name and language expected", 2)
  end
  local t = compile(def)
  self.by_key[def.name .. "\0" .. def.language] = t
  self.by_name[def.name] = self.by_name[def.name] or t
  return self
end

--- The compiled declaration of `name` (in `language`, or the first declared).
-- @tparam string name
-- @tparam[opt] string language
-- @return table or nil
function Registry:get(name, language)
  if language then return self.by_key[name .. "\0" .. language] end
  return self.by_name[name]
end

--- The declared definition, for `client:create_template`.
-- @tparam string name
-- @tparam[opt] string language
-- @return table or nil
function Registry:definition(name, language)
  local t = self:get(name, language)
  if not t then return nil end
  local d = {}
  for k, v in pairs(t.definition) do if k ~= "types" then d[k] = v end end
  return d
end

local function value_param(value, vtype, pname, path)
  local p
  local tv = type(value)
  if vtype == "currency" then
    if tv ~= "table" or type(value.code) ~= "string" or type(value.amount_1000) ~= "number" then
      return verr(path, "a currency value { code =, amount_1000 =, fallback = } expected")
    end
    p = message.param.currency(value.code, value.amount_1000, value.fallback or value.fallback_value)
  elseif vtype == "date_time" then
    local fb = tv == "table" and (value.fallback or value.fallback_value) or value
    if type(fb) ~= "string" then return verr(path, "a date_time value (a string) expected") end
    p = message.param.date_time(fb)
  else
    if tv == "number" then value = tostring(value)
    elseif tv ~= "string" then return verr(path, "a text value expected, got " .. tv) end
    if value == "" then return verr(path, "a text value must not be empty") end
    p = message.param.text(value)
  end
  if pname then p.parameter_name = pname end
  return p
end

local function params_for(list, kind, values, types, path)
  local out = {}
  for i, key in ipairs(list) do
    local v = values[key]
    local ppath = format("%s.%s", path, tostring(key))
    if v == nil then return verr(ppath, "no value for {{" .. tostring(key) .. "}}") end
    local p, e = value_param(v, types[key] or "text", kind == "named" and key or nil, ppath)
    if not p then return nil, e end
    out[i] = p
  end
  return out
end

--- Build the message for a declared template with `values`. Every placeholder
-- needs a value of its declared type; values for names the template does not
-- have are refused (a typo would otherwise go unnoticed).
-- @tparam string to
-- @tparam string name
-- @tparam table values
-- @tparam[opt] table opts `language`, and message options (`reply_to`, ...)
-- @return message table, or nil and a validation error
function Registry:build(to, name, values, opts)
  opts = opts or {}
  local t = self:get(name, opts.language)
  if not t then
    return nil, errors.new{ code = "validation", path = "template.name", category = "template", retry = false,
      message = "template " .. tostring(name) .. " is not declared" }
  end
  if type(values) ~= "table" then error("templates:build: values table expected", 2) end
  local known = { header = true, buttons = true }
  for _, key in ipairs(t.body) do known[key] = true end
  if t.header and t.header.params then for _, key in ipairs(t.header.params) do known[key] = true end end
  for k in pairs(values) do
    if not known[k] then return verr("template." .. tostring(k), "the template has no parameter of that name") end
  end
  local components = {}
  local h = t.header
  if h then
    if h.format == "TEXT" then
      if #h.params > 0 then
        local ps, e = params_for(h.params, t.kind, values, t.types, "template.header")
        if not ps then return nil, e end
        components[#components + 1] = { type = "header", parameters = ps }
      end
    else
      local v = values.header
      if v == nil then return verr("template.header", "a " .. h.format:lower() .. " header value expected") end
      local kindname = MEDIA_FORMATS[h.format]
      local p
      if kindname == "location" then
        if type(v) ~= "table" then return verr("template.header", "a location table expected") end
        p = message.param.location(v)
      else
        p = message.param[kindname](v)
      end
      components[#components + 1] = { type = "header", parameters = { p } }
    end
  end
  if #t.body > 0 then
    local ps, e = params_for(t.body, t.kind, values, t.types, "template.body")
    if not ps then return nil, e end
    components[#components + 1] = { type = "body", parameters = ps }
  end
  local bvalues = values.buttons or {}
  if type(bvalues) ~= "table" then return verr("template.buttons", "a list of button values expected") end
  for i, b in ipairs(t.buttons) do
    local v = bvalues[i]
    local path = format("template.buttons[%d]", i)
    if b.variable and v == nil then return verr(path, "this " .. b.type .. " button needs a value") end
    if v ~= nil and b.sub_type then
      local p
      if b.param == "payload" then p = message.param.payload(tostring(v))
      elseif b.param == "coupon_code" then p = message.param.coupon_code(tostring(v))
      elseif b.param == "action" then
        if type(v) ~= "table" then return verr(path, "a flow action table expected") end
        p = message.param.action(v)
      else
        if type(v) ~= "string" and type(v) ~= "number" then return verr(path, "a text value expected") end
        p = message.param.text(tostring(v))
      end
      components[#components + 1] = { type = "button", sub_type = b.sub_type, index = tostring(b.index),
        parameters = { p } }
    end
  end
  local mopts = {}
  for k, v in pairs(opts) do if k ~= "language" then mopts[k] = v end end
  return message.template(to, t.name, t.language, components, mopts)
end

-- The placeholders of a remote definition, per component kind.
local function shape(def)
  local out = { header = {}, body = {}, buttons = 0 }
  for _, comp in ipairs(def.components or {}) do
    local ctype = upper(tostring(comp.type))
    if ctype == "HEADER" then
      out.header = placeholders(comp.text) or {}
      out.header_format = upper(tostring(comp.format or "TEXT"))
    elseif ctype == "BODY" then
      out.body = placeholders(comp.text) or {}
    elseif ctype == "BUTTONS" then
      out.buttons = #(comp.buttons or {})
    end
  end
  return out
end

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

--- Check a declaration against the definition on the WABA: the template must
-- exist in that language, be APPROVED, and have the same placeholders.
-- @param client a `whatsapp.client` with `waba_id`
-- @tparam string name
-- @tparam[opt] string language
-- @return true, or nil and an error object (code "template_mismatch", or the
--   Graph error of the lookup)
function Registry:verify(client, name, language)
  local t = self:get(name, language)
  if not t then error("templates:verify: " .. tostring(name) .. " is not declared", 2) end
  local list, err = client:templates_list{ name = t.name }
  if not list then return nil, err end
  local remote
  for _, d in ipairs(list) do
    if d.name == t.name and d.language == t.language then remote = d end
  end
  local function mismatch(msg)
    return nil, errors.new{ code = "template_mismatch", category = "template", retry = false,
      message = format("template %s (%s): %s", t.name, t.language, msg) }
  end
  if not remote then return mismatch("not found on the WABA") end
  if remote.status and upper(remote.status) ~= "APPROVED" then
    return mismatch("status is " .. tostring(remote.status))
  end
  local mine, theirs = shape(t.definition), shape(remote)
  if not same_list(mine.body, theirs.body) then return mismatch("body parameters differ") end
  if not same_list(mine.header, theirs.header) or (mine.header_format or "TEXT") ~= (theirs.header_format or "TEXT")
  then
    return mismatch("header differs")
  end
  if mine.buttons ~= theirs.buttons then return mismatch("buttons differ") end
  return true
end

--- Declare templates from the WABA's approved definitions (all of them, or
-- those named in `names`).
-- @param client
-- @tparam[opt] table names list of names
-- @return the number declared, or nil and an error object
function Registry:load(client, names)
  local want
  if names then want = {} for _, n in ipairs(names) do want[n] = true end end
  local list, err = client:templates_list{ status = "APPROVED" }
  if not list then return nil, err end
  local n = 0
  for _, d in ipairs(list) do
    if (not want or want[d.name]) and type(d.name) == "string" and type(d.language) == "string" then
      local ok = pcall(self.declare, self, d)
      if ok then n = n + 1 end
    end
  end
  return n
end

return templates
