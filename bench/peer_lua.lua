-- The pure-Lua way to ingest a WhatsApp webhook, used as a peer in bench/webhook.lua:
-- HMAC-SHA256 of the raw body with luaossl (Debian's lua-luaossl), hex compare against
-- X-Hub-Signature-256, cjson.decode, then a Lua walk of entry x change x message/status/error
-- producing flat event tables comparable to whatsapp.webhook's (doc/events.md): kind, type,
-- field, waba_id, phone_number_id, id, from, timestamp (integer), contact, text, reply, media,
-- location, reaction, context, referral, conversation, pricing, errors...
--
-- It is meant to be a fair, reasonably efficient implementation of the same job, written the way
-- a careful Lua programmer would (no deliberate slowness, no shortcuts the library cannot take).
-- Structure is checked (entry/changes/messages/statuses must be tables, or the payload is
-- rejected; sub-objects are only indexed when they are tables) but leaf values are copied as
-- decoded, without per-field type checks: that is what typical handlers do, and it is the
-- faster choice, so the comparison does not flatter the library.
--
--   local peer = require "peer_lua"
--   local parse = peer.new("app secret")
--   local events, err = parse(raw_body, { ["X-Hub-Signature-256"] = "sha256=..." })
--
-- The second argument may also be the header value itself (a string).

local hmac = require "openssl.hmac"
local cjson_safe = require "cjson.safe"

local decode = cjson_safe.decode
local type, tonumber, ipairs = type, tonumber, ipairs
local byte, format, sub = string.byte, string.format, string.sub

local M = {}

-- format string turning the 32 digest bytes into 64 lowercase hex digits in one call
local HEX32 = string.rep("%02x", 32)

local function tab(v)
  if type(v) == "table" then return v end
  return nil
end

local function integer(v)
  local t = type(v)
  if t == "number" then return v end
  if t == "string" then return tonumber(v) end
  return nil
end

local function errors_of(list)
  if type(list) ~= "table" then return nil end
  local out, n = {}, 0
  for _, e in ipairs(list) do
    if type(e) == "table" then
      local ed = tab(e.error_data)
      n = n + 1
      out[n] = { code = e.code, title = e.title, message = e.message,
                 details = ed and ed.details, href = e.href }
    end
  end
  return out
end

local function contact_of(c)
  local profile = tab(c.profile)
  return { name = profile and profile.name, wa_id = c.wa_id, user_id = c.user_id,
           parent_user_id = c.parent_user_id, username = profile and profile.username }
end

local MEDIA = { image = true, video = true, audio = true, document = true, sticker = true }

local function message_event(m, base, contacts, by_wa_id)
  local mtype = m.type or "unknown"
  local ev = {
    kind = "message", field = base.field, waba_id = base.waba_id, entry_time = base.entry_time,
    phone_number_id = base.phone_number_id, display_phone_number = base.display_phone_number,
    id = m.id, from = m.from, from_user_id = m.from_user_id,
    group_id = m.group_id, timestamp = integer(m.timestamp),
  }

  -- contact: the only one, or the one whose wa_id is the sender
  if contacts then
    if #contacts == 1 then
      ev.contact = contact_of(contacts[1])
    elseif ev.from and by_wa_id[ev.from] then
      ev.contact = contact_of(by_wa_id[ev.from])
    end
  end

  if mtype == "text" then
    local t = tab(m.text)
    ev.text = t and t.body
  elseif MEDIA[mtype] then
    local md = tab(m[mtype])
    if md then
      ev.media = { id = md.id, mime_type = md.mime_type, sha256 = md.sha256,
                   caption = md.caption, filename = md.filename, url = md.url,
                   voice = md.voice, animated = md.animated }
      ev.text = ev.media.caption
    end
  elseif mtype == "interactive" then
    local it = tab(m.interactive)
    local sub_type = it and it.type
    if sub_type == "button_reply" or sub_type == "list_reply" then
      local r = tab(it[sub_type])
      if r then
        ev.reply = { id = r.id, title = r.title, description = r.description }
        ev.text = ev.reply.title
      end
      mtype = sub_type
    elseif sub_type == "nfm_reply" then
      local r = tab(it.nfm_reply)
      local name = r and r.name
      mtype = name == "address_message" and "address_reply" or "flow_reply"
      if r then
        ev.flow = { name = name, body = r.body, response_json = r.response_json }
        ev.flow.response = ev.flow.response_json and decode(ev.flow.response_json) or nil
        ev.text = ev.flow.body
      end
    elseif sub_type then
      mtype = sub_type
    end
  elseif mtype == "button" then
    local b = tab(m.button)
    if b then
      ev.payload = b.payload
      ev.text = b.text
      ev.reply = { id = ev.payload, title = ev.text }
    end
  elseif mtype == "location" then
    local l = tab(m.location)
    if l then
      ev.location = { latitude = tonumber(l.latitude), longitude = tonumber(l.longitude),
                      name = l.name, address = l.address, url = l.url }
    end
  elseif mtype == "reaction" then
    local r = tab(m.reaction)
    if r then
      local emoji = r.emoji
      if emoji == "" then emoji = nil end
      ev.reaction = { message_id = r.message_id, emoji = emoji, removed = emoji == nil }
    end
  elseif mtype == "contacts" then
    ev.contacts = tab(m.contacts)
  elseif mtype == "order" then
    ev.order = tab(m.order)
    ev.text = ev.order and ev.order.text
  elseif mtype == "system" then
    ev.system = tab(m.system)
    ev.text = ev.system and ev.system.body
  end
  ev.type = mtype

  local ctx = tab(m.context)
  if ctx then
    local rp = tab(ctx.referred_product)
    ev.context = {
      from = ctx.from, id = ctx.id,
      forwarded = ctx.forwarded == true or nil,
      frequently_forwarded = ctx.frequently_forwarded == true or nil,
      referred_product = rp and { catalog_id = rp.catalog_id,
                                  product_retailer_id = rp.product_retailer_id } or nil,
    }
  end
  ev.referral = tab(m.referral)
  if m.errors then ev.errors = errors_of(m.errors) end
  return ev
end

local function status_event(s, base, contact)
  local status = s.status or "unknown"
  return {
    kind = "status", type = status, status = status, field = base.field,
    waba_id = base.waba_id, entry_time = base.entry_time,
    phone_number_id = base.phone_number_id, display_phone_number = base.display_phone_number,
    id = s.id, timestamp = integer(s.timestamp), recipient_id = s.recipient_id,
    recipient_user_id = s.recipient_user_id,
    parent_recipient_user_id = s.parent_recipient_user_id,
    recipient_participant_id = s.recipient_participant_id,
    recipient_type = s.recipient_type,
    biz_opaque_callback_data = s.biz_opaque_callback_data,
    conversation = tab(s.conversation), pricing = tab(s.pricing),
    errors = s.errors and errors_of(s.errors) or nil,
    contact = contact,
  }
end

local function walk(doc)
  if type(doc) ~= "table" then return nil, "payload is not an object" end
  if doc.object ~= nil and doc.object ~= "whatsapp_business_account" then
    return nil, "unexpected object"
  end
  local entries = doc.entry
  if type(entries) ~= "table" then return nil, "entry missing" end

  local events, n = {}, 0
  for _, entry in ipairs(entries) do
    if type(entry) ~= "table" then return nil, "entry is not an object" end
    local changes = entry.changes
    if type(changes) ~= "table" then return nil, "changes is not an array" end
    local waba_id, entry_time = entry.id, integer(entry.time)
    for _, change in ipairs(changes) do
      if type(change) ~= "table" then return nil, "change is not an object" end
      local field = change.field
      if type(field) ~= "string" then return nil, "field is not a string" end
      local value = tab(change.value) or {}
      local md = tab(value.metadata)
      local base = { field = field, waba_id = waba_id, entry_time = entry_time,
                     phone_number_id = md and md.phone_number_id,
                     display_phone_number = md and md.display_phone_number }
      local messages, statuses, errs = value.messages, value.statuses, value.errors
      if field == "messages" and (messages or statuses or errs) then
        local contacts = tab(value.contacts)
        local by_wa_id
        if contacts and #contacts > 1 then
          by_wa_id = {}
          for _, c in ipairs(contacts) do
            if type(c) == "table" and c.wa_id then by_wa_id[c.wa_id] = c end
          end
        end
        if messages then
          if type(messages) ~= "table" then return nil, "messages is not an array" end
          for _, m in ipairs(messages) do
            if type(m) ~= "table" then return nil, "message is not an object" end
            n = n + 1
            events[n] = message_event(m, base, contacts, by_wa_id)
          end
        end
        if statuses then
          if type(statuses) ~= "table" then return nil, "statuses is not an array" end
          local contact = contacts and contacts[1] and contact_of(contacts[1]) or nil
          for _, s in ipairs(statuses) do
            if type(s) ~= "table" then return nil, "status is not an object" end
            n = n + 1
            events[n] = status_event(s, base, contact)
          end
        end
        if errs then
          for _, e in ipairs(errors_of(errs) or {}) do
            n = n + 1
            events[n] = { kind = "error", type = "error", field = field, waba_id = waba_id,
                          entry_time = entry_time, phone_number_id = base.phone_number_id,
                          display_phone_number = base.display_phone_number,
                          error = e, code = e.code }
          end
        end
      else
        n = n + 1
        events[n] = { kind = "change", type = field, field = field, waba_id = waba_id,
                      entry_time = entry_time, phone_number_id = base.phone_number_id,
                      display_phone_number = base.display_phone_number,
                      value = value, event = value.event }
      end
    end
  end
  return events
end

-- new(secret) -> parse(body, headers_or_signature) -> events | nil, err
function M.new(secret)
  assert(type(secret) == "string", "app secret required")
  return function(body, header)
    local sig = header
    if type(header) == "table" then
      sig = header["X-Hub-Signature-256"] or header["x-hub-signature-256"]
    end
    if type(sig) ~= "string" or #sig ~= 71 or sub(sig, 1, 7) ~= "sha256=" then
      return nil, "invalid_signature"
    end
    local digest = hmac.new(secret, "sha256"):final(body)
    local hex = format(HEX32, byte(digest, 1, 32))
    -- header hex digits may be upper case; compare case-insensitively only when needed
    local given = sub(sig, 8)
    if hex ~= given and hex ~= given:lower() then return nil, "invalid_signature" end

    local doc = decode(body)
    if doc == nil then return nil, "invalid_payload" end
    return walk(doc)
  end
end

M.walk = walk

return M
