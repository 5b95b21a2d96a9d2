--- A small JSON-Schema validator for the specs (OpenAPI 3 schema objects).
--
--     local schema = require "schema"
--     local v = schema.new(openapi_doc, { nulls = { cjson.null, lyaml.null } })
--     local ok, errs = v:validate(body, "#/components/schemas/Message")
--     if not ok then print(schema.format(errs)) end
--
-- Keywords: type (or a list of types), properties, required, additionalProperties (false or
-- a schema), enum, const, oneOf, anyOf, allOf, not, $ref ("#/..." in the same document),
-- items, minItems/maxItems, minLength/maxLength (in code points), pattern (a regular
-- expression translated to a Lua pattern: anchors, classes, escapes \d \w \s, quantifiers
-- * + ?; anything else raises), minimum/maximum, nullable. Annotations (description,
-- example, format, default, discriminator, ...) are not checked. Any other keyword raises,
-- so that a schema is never accepted by a keyword this file does not understand.
--
-- `allOf` is merged into one object schema before checking (Meta's message schemas are
-- `allOf` of a base object and a branch with `additionalProperties: false`, which plain
-- JSON-Schema rules would make unsatisfiable): properties and required are united, and
-- `additionalProperties: false` of a branch then allows the properties of every branch.
--
-- An error is `{ path = "/template/language/policy", keyword = "required", message = "..." }`;
-- paths are JSON pointers into the instance (array indices from 0). When a `oneOf` with a
-- `discriminator` mapping fails, the errors of the branch the discriminator names are
-- reported; otherwise one `oneOf` error sums up the branches.
local schema = {}

local type, pairs, ipairs, next, tostring, error = type, pairs, ipairs, next, tostring, error
local setmetatable = setmetatable
local format, gsub, sub, find = string.format, string.gsub, string.sub, string.find
local concat, sort = table.concat, table.sort
local floor = math.floor

local ANNOTATIONS = {
  description = true, example = true, examples = true, format = true, default = true,
  discriminator = true, title = true, deprecated = true, readOnly = true, writeOnly = true,
  externalDocs = true, xml = true, nullable = true, ["$comment"] = true,
}

local Validator = {}
Validator.__index = Validator

--- A validator for the schemas of one document.
-- @tparam table root the whole document ($refs are resolved in it)
-- @tparam[opt] table opts `nulls`: values that stand for JSON null (e.g. cjson.null,
--   lyaml.null); `is_array(t)`: tells an array table from an object table
-- @treturn table the validator
function schema.new(root, opts)
  opts = opts or {}
  local nulls = {}
  for _, n in ipairs(opts.nulls or {}) do nulls[n] = true end
  return setmetatable({ root = root, nulls = nulls, is_array_fn = opts.is_array, merged = {} }, Validator)
end

--- Resolve a "#/a/b" reference in the document.
function Validator:resolve(ref)
  if type(ref) ~= "string" or sub(ref, 1, 2) ~= "#/" then error("schema: unsupported $ref " .. tostring(ref)) end
  local node = self.root
  for part in ref:sub(3):gmatch("[^/]+") do
    part = gsub(gsub(part, "~1", "/"), "~0", "~")
    if type(node) ~= "table" then node = nil break end
    node = node[part]
  end
  if node == nil then error("schema: unresolved $ref " .. ref) end
  return node
end

-------------------------------------------------------------------------------------------
-- Instance types
-------------------------------------------------------------------------------------------
local function is_sequence(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

function Validator:kind(v)
  if self.nulls[v] then return "null" end
  local t = type(v)
  if t == "table" then
    if self.is_array_fn then return self.is_array_fn(v) and "array" or "object" end
    if next(v) == nil then return "empty" end -- `{}` or `[]`: both
    return is_sequence(v) and "array" or "object"
  end
  if t == "number" then return (v == floor(v) and v == v) and "integer" or "number" end
  return t -- string, boolean (anything else is not JSON)
end

local function type_ok(kind, want)
  if want == kind then return true end
  if want == "number" and kind == "integer" then return true end
  if kind == "empty" and (want == "array" or want == "object") then return true end
  return false
end

local function kind_name(kind)
  if kind == "empty" then return "empty table" end
  return kind
end

-------------------------------------------------------------------------------------------
-- Patterns: an ECMA regular expression translated to a Lua pattern (a small subset)
-------------------------------------------------------------------------------------------
local ESCAPES = { d = "%d", w = "[%w_]", s = "%s", D = "%D", S = "%S", W = "[^%w_]" }
local MAGIC = "^$()%.[]*+-?"

local function lua_char(c)
  if find(MAGIC, c, 1, true) then return "%" .. c end
  return c
end

local translated = {}

local function translate(re)
  if translated[re] then return translated[re] end
  local out, i, n = {}, 1, #re
  local function unsupported(what)
    error(format("schema: unsupported regular expression %q (%s)", re, what))
  end
  while i <= n do
    local c = sub(re, i, i)
    if c == "^" and i == 1 then
      out[#out + 1] = "^"
    elseif c == "$" and i == n then
      out[#out + 1] = "$"
    elseif c == "\\" then
      local e = sub(re, i + 1, i + 1)
      out[#out + 1] = ESCAPES[e] or lua_char(e)
      i = i + 1
    elseif c == "[" then
      local j, class = i + 1, { "[" }
      if sub(re, j, j) == "^" then class[2] = "^" j = j + 1 end
      while j <= n and sub(re, j, j) ~= "]" do
        local d = sub(re, j, j)
        if d == "\\" then
          local e = sub(re, j + 1, j + 1)
          local esc = ESCAPES[e]
          if esc and sub(esc, 1, 1) == "[" then unsupported("\\" .. e .. " inside a class") end
          class[#class + 1] = esc or lua_char(e)
          j = j + 2
        elseif sub(re, j + 1, j + 1) == "-" and sub(re, j + 2, j + 2) ~= "]" and j + 2 <= n then
          class[#class + 1] = lua_char(d) .. "-" .. lua_char(sub(re, j + 2, j + 2))
          j = j + 3
        else
          class[#class + 1] = lua_char(d)
          j = j + 1
        end
      end
      if j > n then unsupported("unclosed class") end
      class[#class + 1] = "]"
      out[#out + 1] = concat(class)
      i = j
    elseif c == "." then
      out[#out + 1] = "."
    elseif c == "*" or c == "+" or c == "?" then
      if #out == 0 then unsupported("quantifier without an atom") end
      if c == "*" then out[#out] = out[#out] .. "*"
      elseif c == "+" then out[#out] = out[#out] .. "+"
      else out[#out] = out[#out] .. "?" end
    elseif c == "(" or c == ")" or c == "|" or c == "{" or c == "}" then
      unsupported("'" .. c .. "'")
    else
      out[#out + 1] = lua_char(c)
    end
    i = i + 1
  end
  local p = concat(out)
  translated[re] = p
  return p
end
schema.translate = translate

-------------------------------------------------------------------------------------------
-- allOf merging
-------------------------------------------------------------------------------------------
local MERGED_KEYS = { type = true, properties = true, required = true, additionalProperties = true,
                      allOf = true, ["$ref"] = true }

-- One schema with every allOf (and $ref at the top) folded in. Keywords other than those
-- merged stay as constraints of their own (`also`), checked without additionalProperties.
function Validator:merge(s)
  if self.merged[s] then return self.merged[s] end
  local out = { properties = {}, required = {}, also = {} }
  local closed = false
  local function add(part)
    if part["$ref"] then
      add(self:resolve(part["$ref"]))
    end
    if part.allOf then
      for _, b in ipairs(part.allOf) do add(b) end
    end
    if part.type then
      if out.type and out.type ~= part.type then out.conflict = part.type end
      out.type = part.type
    end
    for name, ps in pairs(part.properties or {}) do
      if out.properties[name] and out.properties[name] ~= ps then
        out.properties[name] = { allOf = { out.properties[name], ps } }
      else
        out.properties[name] = ps
      end
    end
    for _, r in ipairs(part.required or {}) do out.required[#out.required + 1] = r end
    if part.additionalProperties == false then
      closed = true
    elseif type(part.additionalProperties) == "table" then
      out.additional = part.additionalProperties
    end
    local rest
    for k, v in pairs(part) do
      if not MERGED_KEYS[k] and not ANNOTATIONS[k] then
        rest = rest or {}
        rest[k] = v
      end
    end
    if rest then out.also[#out.also + 1] = rest end
    if part.nullable then out.nullable = true end
    if part.discriminator then out.discriminator = part.discriminator end
  end
  add(s)
  out.closed = closed
  self.merged[s] = out
  return out
end

-------------------------------------------------------------------------------------------
-- Validation
-------------------------------------------------------------------------------------------
local function pointer(path, key)
  key = gsub(gsub(tostring(key), "~", "~0"), "/", "~1")
  return path .. "/" .. key
end

local function utf8_len(s)
  local _, n = gsub(s, "[^\128-\191]", "")
  return n
end

function Validator:equal(a, b)
  if self.nulls[a] and self.nulls[b] then return true end
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not self:equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local check -- forward

-- The keywords that are not merged (enum, oneOf, items, ...), on one schema part.
local function check_part(self, part, v, path, errs, kind)
  for k, want in pairs(part) do
    if k == "enum" then
      local found = false
      for _, e in ipairs(want) do
        if self:equal(v, e) then found = true break end
      end
      if not found then
        local names = {}
        for i, e in ipairs(want) do names[i] = tostring(e) end
        errs[#errs + 1] = { path = path, keyword = "enum",
                            message = format("%s is not one of [%s]", tostring(v), concat(names, ", ")) }
      end
    elseif k == "const" then
      if not self:equal(v, want) then
        errs[#errs + 1] = { path = path, keyword = "const", message = "must be " .. tostring(want) }
      end
    elseif k == "oneOf" or k == "anyOf" then
      local passed, branch_errs = 0, {}
      for i, b in ipairs(want) do
        local e = {}
        check(self, b, v, path, e)
        branch_errs[i] = e
        if #e == 0 then passed = passed + 1 end
      end
      if k == "anyOf" and passed == 0 or k == "oneOf" and passed ~= 1 then
        local disc = part.discriminator
        local chosen
        if passed == 0 and disc and disc.mapping and kind == "object" and type(v[disc.propertyName]) == "string" then
          local ref = disc.mapping[v[disc.propertyName]]
          for i, b in ipairs(want) do
            if ref and b["$ref"] == ref then chosen = i end
          end
        end
        if chosen then
          for _, e in ipairs(branch_errs[chosen]) do errs[#errs + 1] = e end
        elseif passed == 0 then
          local sums = {}
          for i, e in ipairs(branch_errs) do
            local first = e[1]
            sums[i] = format("#%d: %s %s", i, first.path == "" and "/" or first.path, first.message)
          end
          errs[#errs + 1] = { path = path, keyword = k,
                              message = "matches no branch of " .. k .. " (" .. concat(sums, "; ") .. ")" }
        else
          errs[#errs + 1] = { path = path, keyword = k,
                              message = format("matches %d branches of oneOf, not exactly one", passed) }
        end
      end
    elseif k == "not" then
      local e = {}
      check(self, want, v, path, e)
      if #e == 0 then errs[#errs + 1] = { path = path, keyword = "not", message = "must not match" } end
    elseif k == "items" then
      if kind == "array" then
        for i = 1, #v do check(self, want, v[i], pointer(path, i - 1), errs) end
      end
    elseif k == "minItems" or k == "maxItems" then
      if kind == "array" or kind == "empty" then
        local n = #v
        if k == "minItems" and n < want or k == "maxItems" and n > want then
          errs[#errs + 1] = { path = path, keyword = k, message = format("%d items, %s %d", n, k, want) }
        end
      end
    elseif k == "minLength" or k == "maxLength" then
      if kind == "string" then
        local n = utf8_len(v)
        if k == "minLength" and n < want or k == "maxLength" and n > want then
          errs[#errs + 1] = { path = path, keyword = k, message = format("length %d, %s %d", n, k, want) }
        end
      end
    elseif k == "pattern" then
      if kind == "string" and not find(v, translate(want)) then
        errs[#errs + 1] = { path = path, keyword = "pattern",
                            message = format("%q does not match %s", v, want) }
      end
    elseif k == "minimum" or k == "maximum" then
      if kind == "integer" or kind == "number" then
        if k == "minimum" and v < want or k == "maximum" and v > want then
          errs[#errs + 1] = { path = path, keyword = k, message = format("%s, %s %s", tostring(v), k, tostring(want)) }
        end
      end
    elseif k == "discriminator" then -- luacheck: ignore 542
      -- used by oneOf above for error reports only
    elseif not ANNOTATIONS[k] then
      error("schema: unsupported keyword '" .. tostring(k) .. "'")
    end
  end
end

check = function(self, s, v, path, errs)
  if s == true then return end
  if s == false then
    errs[#errs + 1] = { path = path, keyword = "false", message = "no value allowed" }
    return
  end
  local m = self:merge(s)
  local kind = self:kind(v)
  if kind == "null" and m.nullable then return end
  if m.type then
    local ok = false
    local wants = type(m.type) == "table" and m.type or { m.type }
    for _, w in ipairs(wants) do
      if type_ok(kind, w) then ok = true end
    end
    if m.conflict then ok = false end
    if not ok then
      errs[#errs + 1] = { path = path, keyword = "type",
                          message = format("%s expected, got %s", concat(wants, "|"), kind_name(kind)) }
      return
    end
  end
  if kind == "object" or kind == "empty" then
    for _, r in ipairs(m.required) do
      if v[r] == nil then
        errs[#errs + 1] = { path = pointer(path, r), keyword = "required",
                            message = "missing required property '" .. r .. "'" }
      end
    end
    local keys = {}
    for key in pairs(v) do keys[#keys + 1] = tostring(key) end
    sort(keys)
    for _, key in ipairs(keys) do
      local ps = m.properties[key]
      if ps then
        check(self, ps, v[key], pointer(path, key), errs)
      elseif m.closed then
        errs[#errs + 1] = { path = pointer(path, key), keyword = "additionalProperties",
                            message = "property '" .. key .. "' is not allowed" }
      elseif m.additional then
        check(self, m.additional, v[key], pointer(path, key), errs)
      end
    end
  end
  for _, part in ipairs(m.also) do
    part.discriminator = part.discriminator or m.discriminator
    check_part(self, part, v, path, errs, kind)
  end
end

--- Validate a value against a schema (a table or a "#/..." reference).
-- @treturn boolean true when valid
-- @treturn table the list of errors (empty when valid)
function Validator:validate(value, s)
  if type(s) == "string" then s = self:resolve(s) end
  local errs = {}
  check(self, s, value, "", errs)
  return #errs == 0, errs
end

--- One line per error: "path: message [keyword]".
function schema.format(errs)
  local lines = {}
  for i, e in ipairs(errs) do
    lines[i] = format("%s: %s [%s]", e.path == "" and "/" or e.path, e.message, e.keyword)
  end
  return concat(lines, "\n")
end

return schema
