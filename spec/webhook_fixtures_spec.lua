-- Every webhook fixture (spec/fixtures/webhooks/*.json) through hook:parse, with its events'
-- fields checked against doc/events.md (the event contract) and against the fixture itself.
--
-- Three tests per fixture:
--   * "matches its expectations": the literal expectations of the table below (`EXPECT`);
--   * "follows the payload structure": events rebuilt from the decoded fixture (kind, order,
--     field, waba_id, entry_time, metadata, id / from / status / code / change value);
--   * "keeps the source in raw": ev.raw deep-equals the message / status / error / value.
local cjson = require "cjson"
local helpers = require "helpers"

local DIR = "webhooks"
local SECRET = "test_app_secret"

local WABA = "100000000000002"
local PNID = "100000000000001"
local DPN = "15550001111"
local USER = "15550002222"
local BSUID = "US.1000000000000001"
local PARENT = "US.ENT.1000000000000001"

---------------------------------------------------------------------------------------------
-- Expectation language
--   NIL          the field must be absent
--   FALSY        nil or false
--   SAME(v)      deep equality (assert.same) with v
--   SRC"a.b.c"   deep equality with that path of the event's source object (message, status,
--                error or change value, decoded from the fixture with cjson)
--   ALL{a, b}    every one of the expectations a, b, ...
--   table        the listed keys are checked recursively (other keys may exist); when the
--                table is a non-empty array, the actual array must have the same length
--   other        assert.equal; the event's own `timestamp` and `entry_time` must also be
--                integers (numbers inside generic copies are only compared by value)
---------------------------------------------------------------------------------------------
local expect = require "expect"
local NIL, FALSY, SAME, SRC, ALL = expect.NIL, expect.FALSY, expect.SAME, expect.SRC, expect.ALL
local is_integer, match, with = expect.is_integer, expect.match, expect.with

---------------------------------------------------------------------------------------------
-- Event constructors with the fixtures' common envelope values
---------------------------------------------------------------------------------------------

-- messages / statuses / value errors of a `messages` change (metadata present, no entry time)
local function messages_envelope()
  return { field = "messages", waba_id = WABA, phone_number_id = PNID,
           display_phone_number = DPN, entry_time = NIL }
end

local function M(t)
  local e = with(messages_envelope(), { kind = "message", from = USER })
  return with(e, t)
end

local function S(t)
  local e = with(messages_envelope(), { kind = "status", recipient_id = USER })
  e = with(e, t)
  if e.type == nil then e.type = e.status end
  return e
end

local function ER(t)
  return with(with(messages_envelope(), { kind = "error", type = "error" }), t)
end

-- A change event. `time` is the entry time (nil: none in the fixture); `meta`: value.metadata
-- present (phone number ids filled in); t.value is a partial literal check of the value.
local function CH(field, time, meta, t)
  local e = { kind = "change", type = field, field = field, waba_id = WABA,
              entry_time = time or NIL, event = NIL,
              phone_number_id = meta and PNID or NIL,
              display_phone_number = meta and DPN or NIL }
  e = with(e, t or {})
  e.value = ALL{ SRC"", t and t.value or {} }
  return e
end

-- contacts[] entries as the flat `contact` table
local C_USER = { name = "Test User", wa_id = USER, user_id = NIL, parent_user_id = NIL,
                 username = NIL }
local C_USER_BSUID = { name = "Test User", wa_id = USER, user_id = BSUID,
                       parent_user_id = PARENT, username = NIL }

local THUMBS_UP = "\240\159\145\141"      -- U+1F44D
local OPEN_MOUTH = "\240\159\152\174"     -- U+1F62E
local ERROR_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"

local UNSUPPORTED_ERRORS = {
  { code = 131051, title = "Message type unknown", message = "Message type unknown",
    details = "Message type is currently not supported.", href = NIL },
}

---------------------------------------------------------------------------------------------
-- Expectations, one entry per fixture file: n = number of events, events = per event
---------------------------------------------------------------------------------------------
local EXPECT = {}

EXPECT["account_alerts.json"] = { n = 1, events = {
  CH("account_alerts", 1745612159, false, { value = {
    entity_type = "BUSINESS", entity_id = "506914307656634",
    alert_info = { alert_severity = "WARNING", alert_status = "ACTIVE",
                   alert_type = "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED" } } }),
} }

EXPECT["account_review_update.json"] = { n = 1, events = {
  CH("account_review_update", 1739321024, false, { value = { decision = "APPROVED" } }),
} }

EXPECT["account_update_deleted.json"] = { n = 1, events = {
  CH("account_update", 1743451903, false, { event = "ACCOUNT_DELETED",
    value = { event = "ACCOUNT_DELETED" } }),
} }

EXPECT["account_update_disabled_scheduled.json"] = { n = 1, events = {
  CH("account_update", 1604703058, false, { event = "DISABLED_UPDATE", value = {
    ban_info = { waba_ban_state = "SCHEDULE_FOR_DISABLE", waba_ban_date = "January 31, 2021" } } }),
} }

EXPECT["account_update_partner_added.json"] = { n = 1, events = {
  CH("account_update", 1744823932, false, { event = "PARTNER_ADDED", value = {
    waba_info = { waba_id = "980198427658004", owner_business_id = "2329417887457253",
                  solution_id = "1715120619246906",
                  solution_partner_business_ids = { "2949482758682047", "520744086200222" } } } }),
} }

EXPECT["account_update_pricing_tier.json"] = { n = 1, events = {
  CH("account_update", 1743451903, false, { event = "VOLUME_BASED_PRICING_TIER_UPDATE", value = {
    volume_tier_info = { tier_update_time = 1743451903, pricing_category = "UTILITY",
                         tier = "25000001:50000000", effective_month = "2025-11",
                         region = "India" } } }),
} }

EXPECT["account_update_restriction.json"] = { n = 1, events = {
  CH("account_update", 1641330498, false, { event = "ACCOUNT_RESTRICTION", value = {
    restriction_info = {
      { restriction_type = "RESTRICTED_BIZ_INITIATED_MESSAGING", expiration = 1641330498 },
      { restriction_type = "RESTRICTED_ADD_PHONE_NUMBER_ACTION", expiration = 1641330498 },
    } } }),
} }

EXPECT["account_update_verified_account.json"] = { n = 1, events = {
  CH("account_update", 1604703058, false, { event = "VERIFIED_ACCOUNT",
    value = { phone_number = DPN } }),
} }

EXPECT["account_update_violation.json"] = { n = 1, events = {
  CH("account_update", 1743451903, false, { event = "ACCOUNT_VIOLATION",
    value = { violation_info = { violation_type = "ADULT" } } }),
} }

EXPECT["automatic_events_purchase.json"] = { n = 1, events = {
  CH("automatic_events", nil, true, { value = { automatic_events = { {
    id = "wamid.HBgLMTU1NTAwMDIyMjIVAgARGBIwRkU4NDI5Nzk3RjZDMzE2RUMA", event_name = "Purchase",
    timestamp = 1749069131, ctwa_clid = "CTWA_CLID_PLACEHOLDER",
    custom_data = { currency = "USD", value = 25000 } } } } }),
} }

EXPECT["business_capability_update.json"] = { n = 1, events = {
  CH("business_capability_update", 1739321024, false, { value = {
    max_daily_conversations_per_business = 2000, max_phone_numbers_per_waba = 25 } }),
} }

EXPECT["calls_connect_user_initiated.json"] = { n = 1, events = {
  -- the `event` is inside calls[], not value.event: no flat `event`
  CH("calls", nil, true, { value = {
    contacts = { { wa_id = USER, user_id = BSUID } },
    calls = { { id = "wacid.xxxx=", from = USER, to = DPN, event = "connect",
                timestamp = "1752583107", direction = "USER_INITIATED",
                session = { sdp = "<<RFC 8866 SDP>>", sdp_type = "offer" } } } } }),
} }

-- messages: media -------------------------------------------------------------------------

EXPECT["messages_audio_file.json"] = { n = 1, events = {
  M{ type = "audio", id = "wamid.xyzxyz", timestamp = 1697043509, contact = C_USER_BSUID,
     text = NIL,
     media = { id = "1234567890987654321", mime_type = "audio/ogg; codecs=opus",
               sha256 = "E3dxS/PdYZE7ppA3pQ4mpCFaXBJ8pX4SRN/dsfvds/iPGA=", voice = false,
               caption = NIL, filename = NIL, animated = NIL, url = NIL },
     context = { forwarded = true, frequently_forwarded = NIL, from = NIL, id = NIL } },
} }

EXPECT["messages_audio_voice.json"] = { n = 1, events = {
  M{ type = "audio", id = "wamid.HBzk5zNkE1NNzAzgNNTUyNMDkzIYFDNFNhjMyNjcUCABQjA1NzcDY0M0AA==",
     timestamp = 1673033070, contact = C_USER, context = NIL,
     media = { id = "827776106019109", mime_type = "audio/ogg; codecs=opus",
               sha256 = "iWa0+O81ZLcSkZx6n4QAmrWuHpn8HWFX3gB6a3fQtmk=", voice = true,
               caption = NIL, url = NIL } },
} }

EXPECT["messages_document.json"] = { n = 1, events = {
  M{ type = "document", id = "wamid.xyzxyz", timestamp = 1697043666, contact = C_USER_BSUID,
     text = "caption",
     media = { id = "1234567890987654321", mime_type = "application/pdf",
               sha256 = "grwfwe/ZPx0wAbdfbdeFUNItPZ0RylL8gGUvdt3YFqc18SY=",
               caption = "caption", filename = "filename.pdf", voice = NIL, url = NIL },
     context = { forwarded = true } },
} }

EXPECT["messages_image.json"] = { n = 1, events = {
  M{ type = "image", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
     timestamp = 1744344496, contact = C_USER, text = "Taj Mahal",
     media = { id = "1003383421387256", mime_type = "image/jpeg",
               sha256 = "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=", caption = "Taj Mahal",
               url = "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=133...",
               filename = NIL, voice = NIL, animated = NIL } },
} }

EXPECT["messages_image_no_url.json"] = { n = 1, events = {
  M{ type = "image", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQ1ODQwM0RGOThBMURDMkU2Mjg3NgA=",
     timestamp = 1673032525, contact = C_USER, text = NIL,
     media = { id = "8472976218001204", mime_type = "image/jpeg",
               sha256 = "ciJuSxU7RLnnFz3cNcasdL7UQKt9e1yj/3u+Rhsabv0=", caption = NIL,
               url = NIL } },
} }

EXPECT["messages_video_forwarded.json"] = { n = 1, events = {
  M{ type = "video", id = "wamid.xyzxyz", timestamp = 1697044362, contact = C_USER_BSUID,
     text = "caption",
     media = { id = "765756756", mime_type = "video/mp4",
               sha256 = "Jh+2ij6PzUv/J2y+grrtegr/ZMzRxkEPwc24Oyib4s03w9Jc=", caption = "caption",
               url = NIL },
     context = { forwarded = true, frequently_forwarded = NIL } },
} }

EXPECT["messages_sticker_animated.json"] = { n = 1, events = {
  M{ type = "sticker", id = "wamid.xyzxyz", timestamp = 1697043785, contact = C_USER_BSUID,
     text = NIL,
     media = { id = "1234567890987654321", mime_type = "image/webp",
               sha256 = "HcwyCKrTKXHk0a00ms4HWIA76GY0Du6q4Z/iuwevw=", animated = true,
               caption = NIL, voice = NIL } },
} }

EXPECT["messages_sticker_static.json"] = { n = 1, events = {
  M{ type = "sticker", id = "wamid.nBgN6TUyN2k5NzAzM5kzNhUCABI8FDNFQjAxQkE5REI4NEUzQ5Y5QTNgAA==",
     timestamp = 1673028387, contact = C_USER,
     media = { id = "1604825680670873", mime_type = "image/webp",
               sha256 = "pBKxk2Fu9/n+VKiP4Lve+mWg5b+jPorDpPqtelcS1D0=", animated = false } },
} }

-- messages: batches -----------------------------------------------------------------------

EXPECT["messages_batch_two_changes.json"] = { n = 2, events = {
  M{ type = "text", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRCNTcxOEJEMUMxMjZBNDVGNjhCMQA=",
     timestamp = 1669233778, text = "MESSAGE_BODY", contact = C_USER },
  M{ type = "text", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQ5QjlCNkJBRkNFNkEwMzJCMkVDOQA=",
     timestamp = 1669233779, text = "MESSAGE_BODY2", contact = C_USER },
} }

EXPECT["messages_batch_two_messages.json"] = { n = 2, events = {
  M{ type = "text", id = "wamid.GBGX2323902", timestamp = 1680123456,
     display_phone_number = "+1 555-000-1111", text = "Hello from a text message",
     contact = C_USER },
  M{ type = "reaction", id = "wamid.OMGReaction", timestamp = 1680123457,
     display_phone_number = "+1 555-000-1111", contact = C_USER, text = NIL,
     reaction = { message_id = "wamid.GBGX2323902", emoji = THUMBS_UP, removed = FALSY } },
} }

-- messages: buttons, interactive -----------------------------------------------------------

EXPECT["messages_button_template_quick_reply.json"] = { n = 1, events = {
  M{ type = "button", id = "wamid.xsidjw", timestamp = 1698269027, contact = C_USER_BSUID,
     payload = "callback_data", text = "title",
     reply = { id = "callback_data", title = "title", description = NIL },
     context = { from = DPN, id = "wamid.xyzxyz==", forwarded = NIL,
                 frequently_forwarded = NIL, referred_product = NIL } },
} }

EXPECT["messages_button_with_referral_and_context.json"] = { n = 1, events = {
  M{ type = "button", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRCNTcxOEJEMUMxMjZBNDVGNjhCMQA=",
     timestamp = 1669233778, -- a JSON number in this fixture
     contact = C_USER, payload = "No-Button-Payload", text = "No",
     reply = { id = "No-Button-Payload", title = "No" },
     context = { from = DPN, id = "wamid.HBgLMTU1NTAwMDIyMjIVAgARGBI2QkRCRkJEMkVDODYzRDlDODEA",
                 forwarded = true, frequently_forwarded = true,
                 referred_product = { catalog_id = "CATALOG_ID",
                                      product_retailer_id = "PRODUCT_ID" } },
     referral = ALL{ SRC"referral", {
       source_url = "AD_OR_POST_FB_URL", source_id = "ADID", source_type = "ad or post",
       headline = "AD_TITLE", body = "AD_DESCRIPTION", media_type = "image or video",
       image_url = "RAW_IMAGE_URL", video_url = "RAW_VIDEO_URL",
       thumbnail_url = "RAW_THUMBNAIL_URL" } } },
} }

EXPECT["messages_button_without_context.json"] = { n = 1, events = {
  M{ type = "button", id = "wamid.xsidjx", timestamp = 1698269027, from_user_id = BSUID,
     contact = C_USER_BSUID, payload = "callback_data", text = "title",
     reply = { id = "callback_data", title = "title" }, context = NIL },
} }

EXPECT["messages_interactive_button_reply.json"] = { n = 1, events = {
  M{ type = "button_reply", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA=",
     timestamp = 1750025136, contact = C_USER, text = "Cancel", payload = NIL,
     reply = { id = "cancel-button", title = "Cancel", description = NIL },
     context = { from = DPN, id = "wamid.HBgLMTU1NTAwMDIyMjIVAgARGBI3MEM2RUJFNkI0RENGQTVDRjUA" } },
} }

EXPECT["messages_interactive_call_permission_reply.json"] = { n = 1, events = {
  M{ type = "call_permission_reply", id = "wamid.x", timestamp = 1752582182,
     contact = C_USER_BSUID,
     call_permission = ALL{ SRC"interactive.call_permission_reply", {
       response = "accept", expiration_timestamp = 1753186982,
       response_source = "user_action" } },
     context = { from = PNID, id = "wamid.y==" } },
} }

EXPECT["messages_interactive_list_reply.json"] = { n = 1, events = {
  M{ type = "list_reply", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
     timestamp = 1749854575, contact = C_USER, text = "Priority Mail Express",
     reply = { id = "priority_express", title = "Priority Mail Express",
               description = "Next Day to 2 Days" },
     context = { from = DPN, id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=" } },
} }

EXPECT["messages_interactive_list_reply_no_description.json"] = { n = 1, events = {
  M{ type = "list_reply", id = "wamid.zyzxyz", timestamp = 1698266905, contact = C_USER_BSUID,
     text = "title", reply = { id = "callback_data", title = "title", description = NIL },
     context = { from = PNID, id = "wamid.xyzxyz" } },
} }

EXPECT["messages_interactive_nfm_reply_flow.json"] = { n = 1, events = {
  M{ type = "flow_reply", id = "wamid.wegrchytvwcggt==", timestamp = 1702502473,
     contact = C_USER_BSUID, text = "Sent",
     flow = { name = "flow", body = "Sent",
              response_json = SRC"interactive.nfm_reply.response_json",
              response = SAME{ comment_text = "Comment Text", delivery_rating = "4",
                               flow_token = "AQAAAAACS5FpgQ_cAAAAAD0QI3s.",
                               purchase_rating = "2", recommend_radio = "0",
                               cs_rating = "0" } },
     context = { from = DPN, id = "wamid.gvwegfretge==" } },
} }

-- messages: contacts -----------------------------------------------------------------------

EXPECT["messages_contacts_full_card.json"] = { n = 1, events = {
  M{ type = "contacts", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRCNTcxOEJEMUMxMjZBNDVGNjhCMQA=",
     timestamp = 1669233778, contact = C_USER, text = NIL,
     contacts = ALL{ SRC"contacts", { {
       name = { formatted_name = "Contact One", first_name = "Contact", last_name = "One",
                middle_name = "Middle", suffix = "Jr.", prefix = "Dr." },
       birthday = "1989-03-16",
       addresses = { { city = "Menlo Park", country_code = "US", street = "1 Hacker Way",
                       zip = "94025", type = "WORK" } },
       emails = { { email = "contact1@example.com", type = "WORK" } },
       org = { company = "Example Co", department = "Engineering", title = "Engineer" },
       phones = { { phone = "+1 555-000-3333", wa_id = "15550003333", type = "WORK" } },
       urls = { { url = "https://example.com", type = "WORK" } },
     } } } },
} }

EXPECT["messages_contacts_multiple.json"] = { n = 1, events = {
  M{ type = "contacts", id = "wamid.xyzxyz", timestamp = 1697044621, contact = C_USER_BSUID,
     contacts = ALL{ SRC"contacts", {
       { name = { formatted_name = "Contact One" },
         phones = { { phone = "+1 555-000-3333", type = "CELL" } } },
       { name = { formatted_name = "Contact", last_name = NIL },
         phones = { { phone = "+1 555-000-4444", type = "HOME" } } },
       { name = { formatted_name = "Contact Three" },
         phones = { { phone = "+1 555-000-5555", type = "WORK" } } },
     } } },
} }

EXPECT["messages_contacts_single.json"] = { n = 1, events = {
  M{ type = "contacts", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
     timestamp = 1744344496, contact = C_USER,
     contacts = ALL{ SRC"contacts", { {
       name = { formatted_name = "Contact One", first_name = "Contact", last_name = "One" },
       org = { company = "Social Tsunami" },
       phones = { { phone = "+1 555-000-4444", wa_id = "15550003333", type = "MOBILE" } },
     } } } },
} }

-- messages: edit, revoke, reaction, welcome --------------------------------------------------

EXPECT["messages_edit.json"] = { n = 1, events = {
  M{ type = "edit", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
     timestamp = 1749854575, contact = C_USER_BSUID,
     text = "Updated image caption", -- the edited message's new text (an image caption here)
     context = NIL,
     edit = { original_message_id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
              message = ALL{ SRC"edit.message", {
                type = "image", context = { id = "M0" },
                image = { caption = "Updated image caption", id = "1234567890",
                          url = "https://media.example.com/updated-image.jpg" } } } } },
} }

EXPECT["messages_revoke.json"] = { n = 1, events = {
  M{ type = "revoke", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQ4ODMwMjI0OUFGQjkyRTVBNkYzNAA",
     timestamp = 1697043223, contact = C_USER_BSUID, text = NIL,
     revoke = { original_message_id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRCNEQ1QzZCMDhCNjUyOEIyRDFFRAA" } },
} }

EXPECT["messages_reaction.json"] = { n = 1, events = {
  M{ type = "reaction", id = "wamid.xyzxyz", timestamp = 1697044456, contact = C_USER_BSUID,
     text = NIL,
     reaction = { message_id = "wamid.yzxyzx=", emoji = OPEN_MOUTH, removed = FALSY } },
} }

EXPECT["messages_reaction_removed_empty_emoji.json"] = { n = 1, events = {
  M{ type = "reaction", id = "wamid.xyzxyz", timestamp = 1697044456, contact = C_USER_BSUID,
     reaction = { message_id = "wamid.yzxyzx=", emoji = NIL, removed = true } },
} }

EXPECT["messages_reaction_removed_no_emoji.json"] = { n = 1, events = {
  M{ type = "reaction", id = "wamid.xyzxyz", timestamp = 1697044456, contact = C_USER_BSUID,
     reaction = { message_id = "wamid.yzxyzx=", emoji = NIL, removed = true } },
} }

EXPECT["messages_request_welcome.json"] = { n = 1, events = {
  M{ type = "request_welcome", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
     timestamp = 1739321024, contact = C_USER, text = NIL, context = NIL },
} }

-- messages: location ----------------------------------------------------------------------

EXPECT["messages_location_current.json"] = { n = 1, events = {
  M{ type = "location", id = "wamid.xyzxyz", timestamp = 1697044557, contact = C_USER_BSUID,
     location = { latitude = 12.25089, longitude = 43.90539, name = NIL, address = NIL, url = NIL },
     context = { forwarded = true } },
} }

EXPECT["messages_location_foursquare_url.json"] = { n = 1, events = {
  M{ type = "location", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQ5NjlEN0ZFNEQyQjYyNEM1QkI5QwA=",
     timestamp = 1673641462, contact = C_USER,
     location = { latitude = -10.93941311633, longitude = -10.606395436721, name = NIL,
                  address = NIL, url = "https://foursquare.com/v/5c42c5667d8497002c6e09f9" } },
} }

EXPECT["messages_location_named.json"] = { n = 1, events = {
  M{ type = "location", id = "wamid.xyzxyz", timestamp = 1697044557, contact = C_USER_BSUID,
     location = { latitude = 37.4611978, longitude = -122.2164385, name = "Facebook HQ",
                  address = "1 Hacker Way, Menlo Park, CA 94025",
                  url = "https://maps.google.com/?cid=2000000000000000000" },
     context = { forwarded = true } },
} }

EXPECT["messages_location_request_reply.json"] = { n = 1, events = {
  M{ type = "location", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQTRCRDcwNzgzMTRDNTAwRTgwRQA=",
     timestamp = 1702920965, contact = C_USER,
     location = { latitude = 40.782910059774, longitude = -73.959075808525,
                  name = "Solomon R. Guggenheim Museum",
                  address = "1071 5th Ave, New York, NY 10128", url = NIL },
     context = { from = DPN, id = "wamid.HBgLMTU1NTAwMDIyMjIVAgARGBI1QjJGRjI1RDY0RkE4Nzg4QzcA" } },
} }

-- messages: order -------------------------------------------------------------------------

EXPECT["messages_order.json"] = { n = 1, events = {
  M{ type = "order", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRFMzkzMEY4RDdGNDBERDVERkJCNQA=",
     timestamp = 1786204851, from_user_id = BSUID,
     contact = { name = "Test User", wa_id = USER, user_id = BSUID, parent_user_id = NIL },
     text = "", -- order.text, sent as ""
     order = ALL{ SRC"order", { catalog_id = "100000000000006", text = "", product_items = {
       { product_retailer_id = "MAI-006", quantity = 1, item_price = 15.5, currency = "USD" },
       { product_retailer_id = "BEV-001", quantity = 1, item_price = 4.5, currency = "USD" },
       { product_retailer_id = "DES-003", quantity = 1, item_price = 5, currency = "USD" },
     } } } },
} }

EXPECT["messages_order_three_items.json"] = { n = 1, events = {
  M{ type = "order", id = "wamid.xyzxyz", timestamp = 1697044668, contact = C_USER_BSUID,
     text = "",
     order = ALL{ SRC"order", { catalog_id = "354160437058781", text = "", product_items = {
       { product_retailer_id = "HAMBURGER", quantity = 3, item_price = 30, currency = "ILS" },
       { product_retailer_id = "FRENCH_FRIES", quantity = 2, item_price = 35, currency = "ILS" },
       { product_retailer_id = "SODA", quantity = 2, item_price = 10, currency = "ILS" },
     } } } },
} }

-- messages: system ------------------------------------------------------------------------

EXPECT["messages_system_customer_identity_changed.json"] = { n = 1, events = {
  M{ type = "system", id = "wamid.xyzxyz", timestamp = 1697044706, contact = C_USER,
     text = "User identity changed",
     system = ALL{ SRC"system", { body = "User identity changed",
                                  type = "customer_identity_changed" } },
     identity = ALL{ SRC"identity", { acknowledged = true, created_timestamp = "1697044706",
                                      hash = "xyzxyz" } } },
} }

EXPECT["messages_system_user_changed_number.json"] = { n = 1, events = {
  M{ type = "system", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGAoxMTgyMDg2MjY3AA==",
     timestamp = 1750269342, contact = NIL, identity = NIL,
     text = "User Test User changed from 15550002222 to 15550003333",
     system = ALL{ SRC"system", { wa_id = "15550003333", type = "user_changed_number" } } },
} }

EXPECT["messages_system_user_changed_number_legacy_new_wa_id.json"] = { n = 1, events = {
  M{ type = "system", id = "wamid.USERCHANGE", timestamp = 1689999999, contact = NIL,
     text = "NAME changed from 15550002222 to 15550003333",
     system = ALL{ SRC"system", { new_wa_id = "15550003333", type = "user_changed_number",
                                  wa_id = NIL } } },
} }

-- messages: text --------------------------------------------------------------------------

EXPECT["messages_text_basic.json"] = { n = 1, events = {
  M{ type = "text", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
     timestamp = 1749416383, contact = C_USER, text = "Does it come in another color?",
     context = NIL, referral = NIL, media = NIL, reply = NIL, errors = NIL,
     from_user_id = NIL, group_id = NIL },
} }

EXPECT["messages_text_forwarded.json"] = { n = 1, events = {
  M{ type = "text", id = "wamid.xyzxyz", timestamp = 1697044815, contact = C_USER_BSUID,
     text = "forwarded text",
     context = { forwarded = true, frequently_forwarded = NIL, from = NIL, id = NIL } },
} }

EXPECT["messages_text_frequently_forwarded.json"] = { n = 1, events = {
  M{ type = "text", id = "wamid.xyzxyz", timestamp = 1697044968, contact = C_USER_BSUID,
     text = "text forwarded many times",
     context = { frequently_forwarded = true, forwarded = NIL, from = NIL, id = NIL } },
} }

EXPECT["messages_text_referral_ad_legacy_placeholders.json"] = { n = 1, events = {
  M{ type = "text", id = "wamid.ID", timestamp = 1697045000, contact = C_USER_BSUID,
     text = "BODY", context = NIL,
     referral = ALL{ SRC"referral", {
       source_url = "AD_OR_POST_FB_URL", source_id = "ADID", source_type = "ad or post",
       image_url = "RAW_IMAGE_URL", video_url = "RAW_VIDEO_URL",
       thumbnail_url = "RAW_THUMBNAIL_URL", ctwa_clid = "CTWA_CLID_PLACEHOLDER" } } },
} }

EXPECT["messages_text_referral_ctwa_ad.json"] = { n = 1, events = {
  M{ type = "text", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=",
     timestamp = 1750275992, contact = C_USER, text = "Can I get more info about this?",
     referral = ALL{ SRC"referral", {
       source_url = "https://fb.me/3cr4Wqqkv", source_id = "120226305854810726",
       source_type = "ad", body = "Summer Succulents are here!", headline = "Chat with us",
       media_type = "image", image_url = "https://scontent.xx.fbcdn.net/v/t45.1...",
       ctwa_clid = "CTWA_CLID_PLACEHOLDER",
       welcome_message = { text = "Hi there! Let us know how we can help!" } } } },
} }

EXPECT["messages_text_referred_product.json"] = { n = 1, events = {
  M{ type = "text", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQTA2NTUwRkNEMDdFQjJCRUU0NQA=",
     timestamp = 1750016800, contact = C_USER, text = "Is this still available?",
     context = { from = DPN, id = "wamid.HBgLMTU1NTAwMDIyMjIVAgARGA9wcm9kdWN0X2lucXVpcnkA",
                 forwarded = NIL,
                 referred_product = { catalog_id = "194836987003835",
                                      product_retailer_id = "di9ozbzfi4" } } },
} }

EXPECT["messages_text_reply_context.json"] = { n = 1, events = {
  M{ type = "text", id = "wamid.xyzxyz", timestamp = 1697044746, contact = C_USER_BSUID,
     text = "replied text",
     context = { from = DPN, id = "wamid.xyzxyz==", forwarded = NIL,
                 frequently_forwarded = NIL, referred_product = NIL } },
} }

EXPECT["messages_text_username_only_no_phone.json"] = { n = 1, events = {
  M{ type = "text", id = "ABGGFlA5Fpa", timestamp = 1504902988, from = NIL,
     from_user_id = BSUID, from_parent_user_id = PARENT, text = "this is a text message",
     contact = { name = "Test User", username = "@testuser", wa_id = NIL, user_id = BSUID,
                 parent_user_id = PARENT } },
} }

EXPECT["messages_text_with_user_id.json"] = { n = 1, events = {
  M{ type = "text", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRCMjg3NzkxREFERTlEOUM0RDQzNgA=",
     timestamp = 1786173626, from_user_id = BSUID, from_parent_user_id = NIL, text = "Hi",
     contact = { name = "Test User", wa_id = USER, user_id = BSUID, parent_user_id = NIL,
                 username = NIL } },
} }

EXPECT["messages_text_without_contact_profile.json"] = { n = 1, events = {
  M{ type = "text", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRCNTcxOEJEMUMxMjZBNDVGNjhCMQA=",
     timestamp = 1669233778, text = "MESSAGE_BODY",
     contact = { wa_id = USER, name = NIL, username = NIL, user_id = NIL } },
} }

-- messages: unknown / unsupported / value errors -------------------------------------------

EXPECT["messages_unknown_legacy.json"] = { n = 1, events = {
  M{ type = "unknown", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRCNTcxOEJEMUMxMjZBNDVGNjhCMQA=",
     timestamp = 1669233778, contact = C_USER, text = NIL,
     errors = { { code = 131051, title = "Unsupported message type" } } },
} }

EXPECT["messages_unsupported_with_subtype.json"] = { n = 1, events = {
  M{ type = "unsupported", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
     timestamp = 1750090702, contact = C_USER, unsupported_type = "edit",
     errors = UNSUPPORTED_ERRORS },
} }

EXPECT["messages_unsupported_without_subtype.json"] = { n = 1, events = {
  M{ type = "unsupported", id = "wamid.nBgN6TUyN2k5NzAzM5kzNhUCABI8FDNFQjAxQkE5REI4NEUzQ5Y5QTNgAA==",
     timestamp = 1673026174, contact = C_USER, unsupported_type = NIL,
     errors = UNSUPPORTED_ERRORS },
} }

EXPECT["messages_value_errors.json"] = { n = 2, events = {
  -- an interactive message without its `interactive` object, then the value-level error
  M{ type = "interactive", id = "wamid.wegrchytvwcggt=", timestamp = 1700505494,
     contact = C_USER_BSUID, reply = NIL, flow = NIL,
     context = { from = DPN, id = "wamid.gvwegfretge==" } },
  ER{ code = 131000,
      error = { code = 131000, title = "Something went wrong", message = "Something went wrong",
                details = "Unsupported webhook payload", href = NIL } },
} }

-- other fields ----------------------------------------------------------------------------

EXPECT["phone_number_name_update.json"] = { n = 1, events = {
  CH("phone_number_name_update", 1739321024, false, { value = {
    display_phone_number = DPN, decision = "APPROVED", requested_verified_name = "Test Business",
    rejection_reason = cjson.null } }),
} }

EXPECT["phone_number_quality_update_flagged_legacy.json"] = { n = 1, events = {
  CH("phone_number_quality_update", 1608243062, false, { event = "FLAGGED",
    value = { display_phone_number = DPN, current_limit = "TIER_10K" } }),
} }

EXPECT["phone_number_quality_update_throughput.json"] = { n = 1, events = {
  CH("phone_number_quality_update", 1748454394, false, { event = "THROUGHPUT_UPGRADE",
    value = { display_phone_number = DPN, current_limit = "TIER_UNLIMITED" } }),
} }

EXPECT["security_pin_reset.json"] = { n = 1, events = {
  CH("security", 1748811473, false, { event = "PIN_RESET_REQUEST",
    value = { display_phone_number = DPN, requester = "61555822107539" } }),
} }

EXPECT["smb_app_state_sync.json"] = { n = 1, events = {
  CH("smb_app_state_sync", nil, true, { value = { state_sync = { {
    type = "contact", action = "add", metadata = { timestamp = "1739321024" },
    contact = { full_name = "Test Contact", first_name = "Test", phone_number = USER } } } } }),
} }

EXPECT["smb_message_echoes_text.json"] = { n = 1, events = {
  -- echoes of messages sent from the Business app are a change, not inbound messages
  CH("smb_message_echoes", nil, true, { value = {
    contacts = { { wa_id = USER } },
    message_echoes = { {
      from = DPN, to = USER, to_user_id = BSUID, type = "text", timestamp = "1697043223",
      id = "wamid.HBgLMTU1NTAwMDIyMjIVAgARGBJCMkQyMUU3NzFEOUY4Njg2NUMA",
      text = { body = "Test message" } } } } }),
} }

-- statuses --------------------------------------------------------------------------------

local CBP_SERVICE = { billable = true, pricing_model = "CBP", category = "service" }
local PMP_FREE_CS = { billable = false, pricing_model = "PMP", category = "service",
                      type = "free_customer_service" }
local PMP_MARKETING = { billable = true, pricing_model = "PMP", type = "regular",
                        category = "marketing" }
local C_WA_BSUID = { wa_id = USER, user_id = BSUID, name = NIL, parent_user_id = NIL }

EXPECT["statuses_delivered_cbp.json"] = { n = 1, events = {
  S{ status = "delivered", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA",
     timestamp = 1750263773, contact = NIL, errors = NIL, biz_opaque_callback_data = NIL,
     conversation = ALL{ SRC"conversation", { id = "6ceb9d929c9bdc4f90e967a32f8639b4",
                                              origin = { type = "service" } } },
     pricing = ALL{ SRC"pricing", CBP_SERVICE } },
} }

EXPECT["statuses_delivered_pmp.json"] = { n = 1, events = {
  S{ status = "delivered", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRBMEVDNEM5MDBCMjg1MkYwQjEyNwA=",
     timestamp = 1786174619, recipient_user_id = BSUID, contact = C_WA_BSUID,
     conversation = NIL, pricing = ALL{ SRC"pricing", PMP_FREE_CS } },
} }

EXPECT["statuses_failed_130472_experiment.json"] = { n = 1, events = {
  S{ status = "failed", id = "wamid.xyzxyz", timestamp = 1689380458, contact = C_USER_BSUID,
     errors = { { code = 130472, title = "User's number is part of an experiment",
                  message = "User's number is part of an experiment",
                  details = "Failed to send message because this user's phone number is part"
                    .. " of an experiment",
                  href = ERROR_HREF } } },
} }

EXPECT["statuses_failed_131047_reengagement.json"] = { n = 1, events = {
  S{ status = "failed", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRFRjYxNUU4MEZCNjVBRjA3OEQwNQA=",
     timestamp = 1682651887, contact = NIL, conversation = NIL, pricing = NIL,
     errors = { { code = 131047, title = "Re-engagement message",
                  message = "Re-engagement message",
                  details = "Message failed to send because more than 24 hours have passed"
                    .. " since the customer last replied to this number.",
                  href = ERROR_HREF } } },
} }

EXPECT["statuses_failed_131049_ecosystem.json"] = { n = 1, events = {
  S{ status = "failed", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA",
     timestamp = 1751142888,
     errors = { { code = 131049,
                  title = "This message was not delivered to maintain healthy ecosystem engagement.",
                  details = "In order to maintain a healthy ecosystem engagement, the message"
                    .. " failed to be delivered.",
                  href = "/documentation/business-messaging/whatsapp/support/error-codes" } } },
} }

EXPECT["statuses_failed_131053_media_upload.json"] = { n = 1, events = {
  S{ status = "failed", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRERkZCRjhGNUJEQzg0QjI5RjQ2NQA=",
     timestamp = 1677783372,
     errors = { { code = 131053, title = "Media upload error", message = "Media upload error",
                  details = "Unsupported Video mime type text/html. Please use one of"
                    .. " video/3gpp, video/mp4.",
                  href = NIL } } },
} }

EXPECT["statuses_played_voice.json"] = { n = 1, events = {
  S{ status = "played", id = "wamid.xyzxyz", timestamp = 1689380458, contact = C_USER_BSUID,
     conversation = ALL{ SRC"conversation", { id = "7270432eae37498234f4444b35ffc5",
                                              origin = { type = "service" } } },
     pricing = ALL{ SRC"pricing", CBP_SERVICE } },
} }

EXPECT["statuses_read_group.json"] = { n = 1, events = {
  S{ status = "read", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgARGBJEMzU0NTk2Mjk2Q0JBN0ZFNDcA",
     timestamp = 1698266945, recipient_id = "fowefinoewcnw", recipient_type = "group",
     recipient_participant_id = USER, pricing = NIL, conversation = NIL,
     contact = { name = "Test User", username = "@testuser", wa_id = USER, user_id = BSUID,
                 parent_user_id = PARENT } },
} }

EXPECT["statuses_read_no_pricing.json"] = { n = 1, events = {
  S{ status = "read", id = "wamid.nBgN6TUyN2k5NzAzM5kzNhUCABI8FDNFQjAxQkE5REI4NEUzQ5Y5QTNgAA==",
     timestamp = 1673020317, pricing = NIL, conversation = NIL, contact = NIL, errors = NIL,
     recipient_user_id = NIL, recipient_type = NIL },
} }

EXPECT["statuses_read_pmp.json"] = { n = 1, events = {
  S{ status = "read", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRBMEVDNEM5MDBCMjg1MkYwQjEyNwA=",
     timestamp = 1786174639, recipient_user_id = BSUID, contact = C_WA_BSUID,
     pricing = ALL{ SRC"pricing", PMP_FREE_CS } },
} }

EXPECT["statuses_sent_business_initiated_legacy.json"] = { n = 1, events = {
  S{ status = "sent", id = "wamid.nBgN6TUyN2k5NzAzM5kzNhUCABI8FDNFQjAxQkE5REI4NEUzQ5Y5QTNgAA==",
     timestamp = 1673020317,
     conversation = ALL{ SRC"conversation", { id = "8eb644d2350611f3746e7f0985bddfc1",
                                              expiration_timestamp = "1673031000",
                                              origin = { type = "business_initiated" } } },
     pricing = ALL{ SRC"pricing", { billable = true, pricing_model = "CBP",
                                    category = "business_initiated" } } },
} }

EXPECT["statuses_sent_marketing_pmp.json"] = { n = 1, events = {
  S{ status = "sent", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
     timestamp = 1750030073,
     conversation = ALL{ SRC"conversation", { id = "72b14d6bd5407799e66f64d1b338e567",
                                              expiration_timestamp = "1750116480",
                                              origin = { type = "marketing" } } },
     pricing = ALL{ SRC"pricing", PMP_MARKETING } },
} }

EXPECT["statuses_sent_minimal_v24.json"] = { n = 1, events = {
  S{ status = "sent", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
     timestamp = 1750030073, conversation = NIL, pricing = NIL, errors = NIL,
     biz_opaque_callback_data = NIL, contact = NIL },
} }

EXPECT["statuses_sent_pmp_free_customer_service.json"] = { n = 1, events = {
  S{ status = "sent", id = "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRBMEVDNEM5MDBCMjg1MkYwQjEyNwA=",
     timestamp = 1786174613, recipient_user_id = BSUID, contact = C_WA_BSUID,
     conversation = NIL, pricing = ALL{ SRC"pricing", PMP_FREE_CS } },
} }

EXPECT["statuses_sent_service_cbp.json"] = { n = 1, events = {
  S{ status = "sent", id = "wamid.xyzxyz", timestamp = 1698266945, contact = C_USER_BSUID,
     conversation = ALL{ SRC"conversation", { id = "7270432eae37498234f4444b35ffc5",
                                              expiration_timestamp = "1698339900",
                                              origin = { type = "service" } } },
     pricing = ALL{ SRC"pricing", CBP_SERVICE } },
} }

EXPECT["statuses_sent_to_bsuid.json"] = { n = 1, events = {
  S{ status = "sent", id = "ABGGFlA5Fpa", timestamp = 1504902988, recipient_id = NIL,
     recipient_user_id = BSUID, parent_recipient_user_id = PARENT,
     contact = { name = "Test User", wa_id = NIL, user_id = BSUID, parent_user_id = PARENT },
     conversation = ALL{ SRC"conversation", { id = "CONVERSATION_ID",
                                              expiration_timestamp = "1504903988",
                                              origin = { type = "marketing" } } },
     pricing = ALL{ SRC"pricing", PMP_MARKETING } },
} }

EXPECT["statuses_with_biz_opaque_callback_data.json"] = { n = 1, events = {
  S{ status = "sent", id = "wamid.xyzxyz", timestamp = 1698266945, contact = C_USER_BSUID,
     biz_opaque_callback_data = "some data",
     conversation = ALL{ SRC"conversation", { id = "7270432eae37498234f4444b35ffc5",
                                              expiration_timestamp = "1698339900",
                                              origin = { type = "service" } } },
     pricing = ALL{ SRC"pricing", CBP_SERVICE } },
} }

-- templates -------------------------------------------------------------------------------

EXPECT["template_category_update_completed.json"] = { n = 1, events = {
  CH("template_category_update", 1746169200, false, { value = {
    message_template_id = 278077987957091, message_template_name = "welcome_template",
    message_template_language = "en-US", previous_category = "UTILITY",
    new_category = "MARKETING" } }),
} }

EXPECT["template_category_update_impending.json"] = { n = 1, events = {
  CH("template_category_update", 1746082800, false, { value = {
    message_template_id = 278077987957091, message_template_name = "welcome_template",
    new_category = "UTILITY", correct_category = "MARKETING",
    category_update_timestamp = 1746169200, previous_category = NIL } }),
} }

EXPECT["template_components_update.json"] = { n = 1, events = {
  CH("message_template_components_update", 1751250234, false, { value = {
    message_template_id = 1315502779341834, message_template_name = "order_confirmation",
    message_template_language = "en_US", message_template_title = "Your order is confirmed!",
    message_template_footer = "Lucky Shrub: the Succulent Specialists!",
    message_template_buttons = {
      { message_template_button_type = "PHONE_NUMBER",
        message_template_button_phone_number = "+15550002222" },
      { message_template_button_type = "URL",
        message_template_button_url = "https://www.luckyshrub.com/support" },
    } } }),
} }

EXPECT["template_quality_update.json"] = { n = 1, events = {
  CH("message_template_quality_update", 1674864290, false, { value = {
    previous_quality_score = "GREEN", new_quality_score = "YELLOW",
    message_template_id = 806312974732579, message_template_name = "welcome_template" } }),
} }

EXPECT["template_status_approved.json"] = { n = 1, events = {
  CH("message_template_status_update", 1751247548, false, { event = "APPROVED", value = {
    message_template_id = 1689556908129832, message_template_name = "order_confirmation",
    message_template_language = "en_US", reason = "NONE",
    message_template_category = "UTILITY" } }),
} }

EXPECT["template_status_flagged_disable_info.json"] = { n = 1, events = {
  CH("message_template_status_update", 1604703141, false, { event = "FLAGGED", value = {
    message_template_id = 1234567, message_template_name = "My message template",
    reason = cjson.null, -- JSON null is kept as whatsapp.null (== cjson.null) in generic copies
    disable_info = { disable_date = "January 31, 2021" } } }),
} }

EXPECT["template_status_rejected_invalid_format.json"] = { n = 1, events = {
  CH("message_template_status_update", 1751247548, false, { event = "REJECTED", value = {
    message_template_id = 1689556908129835, message_template_name = "abandoned_cart",
    message_template_language = "en", reason = "INVALID_FORMAT",
    message_template_category = "MARKETING", rejection_info = SRC"rejection_info" } }),
} }

EXPECT["template_status_rejected_legacy.json"] = { n = 1, events = {
  CH("message_template_status_update", 1674250641, false, { event = "REJECTED", value = {
    message_template_id = 905507062668800, message_template_name = "schedule_confirmation4",
    message_template_language = "pt_BR", reason = "SCAM", message_template_category = NIL } }),
} }

-- user preferences ------------------------------------------------------------------------

EXPECT["user_preferences_resume.json"] = { n = 1, events = {
  CH("user_preferences", nil, true, { value = { user_preferences = { {
    wa_id = "15550003333", category = "marketing_messages", value = "resume",
    detail = "User requested to resume marketing messages", timestamp = 1731705721 } } } }),
} }

EXPECT["user_preferences_signup.json"] = { n = 1, events = {
  CH("user_preferences", nil, true, { value = { user_preferences = { {
    wa_id = "15550003333", category = "marketing_messages", value = "signup",
    signup_id = "13176843987434774", timestamp = 1731705721 } } } }),
} }

---------------------------------------------------------------------------------------------
-- Running the parser
---------------------------------------------------------------------------------------------
local hook

local function parse_fixture(name)
  if not hook then
    hook = require("whatsapp.webhook").new{ app_secret = SECRET }
  end
  local body = helpers.fixture_raw(DIR .. "/" .. name)
  local events, err = hook:parse(body, helpers.signed(body))
  assert.is_nil(err, name .. ": parse error " .. tostring(err and (err.message or err.code) or err))
  assert.is_table(events, name .. ": no events")
  return events, cjson.decode(body)
end

-- The events the contract says a payload produces, rebuilt from the decoded fixture, each
-- with the source object `raw` should be, and its entry / change.
local function source_events(src)
  local out = {}
  local function add(kind, obj, entry, change)
    out[#out + 1] = { kind = kind, obj = obj, entry = entry, change = change }
  end
  for _, entry in ipairs(src.entry) do
    for _, change in ipairs(entry.changes) do
      local v = change.value
      local n = 0
      if change.field == "messages" and type(v) == "table" then
        for _, m in ipairs(v.messages or {}) do add("message", m, entry, change); n = n + 1 end
        for _, s in ipairs(v.statuses or {}) do add("status", s, entry, change); n = n + 1 end
        for _, e in ipairs(v.errors or {}) do add("error", e, entry, change); n = n + 1 end
      end
      if n == 0 then add("change", v, entry, change) end
    end
  end
  return out
end

local function opt(v)
  if v == nil or v == cjson.null then return nil end
  return v
end

local function check_error_object(e, path)
  assert.is_table(e, path .. " should be an error table")
  assert.is_not_nil(e.code, path .. ".code")
  assert.is_not_nil(e.category, path .. ".category")
  local s = tostring(e)
  assert.is_string(s)
  assert.is_nil(s:match("^table: "), path .. " should have a __tostring")
end

---------------------------------------------------------------------------------------------
-- The specs
---------------------------------------------------------------------------------------------
describe("webhook fixtures", function()
  local files = helpers.list(DIR)

  it("finds the 95 fixture files", function()
    assert.equal(95, #files)
  end)

  it("has an expectation entry for every fixture file", function()
    local missing = {}
    for _, name in ipairs(files) do
      if not EXPECT[name] then missing[#missing + 1] = name end
    end
    assert.same({}, missing)
  end)

  it("has a fixture file for every expectation entry", function()
    local present, stale = {}, {}
    for _, name in ipairs(files) do present[name] = true end
    for name in pairs(EXPECT) do
      if not present[name] then stale[#stale + 1] = name end
    end
    table.sort(stale)
    assert.same({}, stale)
  end)

  for _, name in ipairs(files) do
    describe(name, function()
      it("matches its expectations", function()
        local exp = EXPECT[name]
        assert.is_table(exp, "no expectation entry for " .. name)
        local events, src = parse_fixture(name)
        assert.equal(exp.n, #events, name .. ": number of events")
        assert.equal(exp.n, #exp.events, name .. ": expectation table is incomplete")
        local sources = source_events(src)
        for i, want in ipairs(exp.events) do
          local ev = events[i]
          local path = name .. " event " .. i
          assert.is_table(ev, path)
          match(want, ev, path, sources[i] and sources[i].obj, nil)
          for j, e in ipairs(type(ev.errors) == "table" and ev.errors or {}) do
            check_error_object(e, path .. ".errors[" .. j .. "]")
          end
          if ev.kind == "error" then check_error_object(ev.error, path .. ".error") end
        end
      end)

      it("follows the payload structure", function()
        local events, src = parse_fixture(name)
        local want = source_events(src)
        assert.equal(#want, #events, name .. ": number of events")
        for i, w in ipairs(want) do
          local ev, path = events[i], name .. " event " .. i
          local v = w.change.value
          local meta = type(v) == "table" and type(v.metadata) == "table" and v.metadata or {}
          assert.equal(w.kind, ev.kind, path .. ".kind")
          assert.equal(w.change.field, ev.field, path .. ".field")
          assert.equal(w.entry.id, ev.waba_id, path .. ".waba_id")
          assert.equal(opt(w.entry.time), ev.entry_time, path .. ".entry_time")
          if ev.entry_time ~= nil then
            assert.is_true(is_integer(ev.entry_time), path .. ".entry_time is an integer")
          end
          assert.equal(opt(meta.phone_number_id), ev.phone_number_id, path .. ".phone_number_id")
          assert.equal(opt(meta.display_phone_number), ev.display_phone_number,
                       path .. ".display_phone_number")
          assert.is_string(ev.type, path .. ".type")
          if w.kind == "message" then
            assert.equal(w.obj.id, ev.id, path .. ".id")
            assert.equal(opt(w.obj.from), ev.from, path .. ".from")
            assert.equal(tonumber(w.obj.timestamp), ev.timestamp, path .. ".timestamp")
            assert.is_true(is_integer(ev.timestamp), path .. ".timestamp is an integer")
            if w.obj.type ~= "interactive" then
              assert.equal(w.obj.type, ev.type, path .. ".type")
            end
            if w.obj.type == "text" then
              assert.equal(w.obj.text.body, ev.text, path .. ".text")
            end
          elseif w.kind == "status" then
            assert.equal(w.obj.id, ev.id, path .. ".id")
            assert.equal(w.obj.status, ev.status, path .. ".status")
            assert.equal(w.obj.status, ev.type, path .. ".type")
            assert.equal(opt(w.obj.recipient_id), ev.recipient_id, path .. ".recipient_id")
            assert.equal(tonumber(w.obj.timestamp), ev.timestamp, path .. ".timestamp")
            assert.is_true(is_integer(ev.timestamp), path .. ".timestamp is an integer")
          elseif w.kind == "error" then
            assert.equal("error", ev.type, path .. ".type")
            assert.equal(w.obj.code, ev.code, path .. ".code")
            assert.equal(w.obj.code, ev.error and ev.error.code, path .. ".error.code")
          else
            assert.equal(w.change.field, ev.type, path .. ".type")
            assert.same(v, ev.value, path .. ".value")
            local event = type(v) == "table" and v.event or nil
            assert.equal(type(event) == "string" and event or nil, ev.event, path .. ".event")
          end
        end
      end)

      it("keeps the source in raw", function()
        local events, src = parse_fixture(name)
        local want = source_events(src)
        assert.equal(#want, #events, name .. ": number of events")
        for i, w in ipairs(want) do
          assert.same(w.obj, events[i].raw, name .. " event " .. i .. ".raw")
        end
      end)
    end)
  end
end)
