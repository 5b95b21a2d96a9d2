#!/usr/bin/env node
// Node peer of the webhook-ingest benchmark: the same job as whatsapp.webhook's hook:parse
// and bench/peer_lua.lua, done the usual Node way: crypto.createHmac('sha256') over the raw body,
// crypto.timingSafeEqual against X-Hub-Signature-256, JSON.parse, and a JS walk of
// entry x change x message/status/error producing flat event objects (kind, type, id, from,
// timestamp as a number, text, contact, reply, media, location, reaction, context, referral,
// conversation, pricing, errors...).
//
// Usage: node bench/peer_node.js [bodies_dir]    (default: bodies/ next to this script)
// Environment: BENCH_SECONDS (default 0.5), BENCH_REPS (default 5), BENCH_NODE_INPUT=buffer to
// pass the raw body as a Buffer instead of a string.
//
// For each body (single, batch): checks that a good signature is accepted and a bad one
// rejected, calibrates N so one run takes about BENCH_SECONDS, times BENCH_REPS runs
// (process.hrtime.bigint, wall clock) and prints the median as
//   RESULT interp=node impl=node body=<name> bytes=<n> events=<n> n=<iterations> ns=<ns/op>
//          check=<hash of kinds and ids>
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const SECRET = 'bench-app-secret-0123456789abcdef';
const SECONDS = Number(process.env.BENCH_SECONDS) || 0.5;
const REPS = Math.floor(Number(process.env.BENCH_REPS) || 5);
const AS_BUFFER = process.env.BENCH_NODE_INPUT === 'buffer';
const BODIES = process.argv[2] || path.join(__dirname, 'bodies');
const BODY_NAMES = ['single', 'batch'];

const MEDIA = new Set(['image', 'video', 'audio', 'document', 'sticker']);

function isObj(v) {
  return v !== null && typeof v === 'object';
}

function integer(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Number(v);
  return undefined;
}

function errorsOf(list) {
  if (!Array.isArray(list)) return undefined;
  const out = [];
  for (const e of list) {
    if (!isObj(e)) continue;
    const ed = e.error_data;
    out.push({ code: e.code, title: e.title, message: e.message,
               details: isObj(ed) ? ed.details : undefined, href: e.href });
  }
  return out;
}

function contactOf(c) {
  const p = isObj(c.profile) ? c.profile : undefined;
  return { name: p && p.name, wa_id: c.wa_id, user_id: c.user_id,
           parent_user_id: c.parent_user_id, username: p && p.username };
}

function messageEvent(m, base, contacts, byWaId) {
  let type = m.type || 'unknown';
  const ev = {
    kind: 'message', type: undefined, field: base.field, waba_id: base.waba_id,
    entry_time: base.entry_time, phone_number_id: base.phone_number_id,
    display_phone_number: base.display_phone_number,
    id: m.id, from: m.from, from_user_id: m.from_user_id, group_id: m.group_id,
    timestamp: integer(m.timestamp), contact: undefined, text: undefined,
  };

  if (contacts) {
    if (contacts.length === 1) ev.contact = contactOf(contacts[0]);
    else if (ev.from && byWaId.has(ev.from)) ev.contact = contactOf(byWaId.get(ev.from));
  }

  if (type === 'text') {
    if (isObj(m.text)) ev.text = m.text.body;
  } else if (MEDIA.has(type)) {
    const md = m[type];
    if (isObj(md)) {
      ev.media = { id: md.id, mime_type: md.mime_type, sha256: md.sha256, caption: md.caption,
                   filename: md.filename, url: md.url, voice: md.voice, animated: md.animated };
      ev.text = md.caption;
    }
  } else if (type === 'interactive') {
    const it = isObj(m.interactive) ? m.interactive : undefined;
    const sub = it && it.type;
    if (sub === 'button_reply' || sub === 'list_reply') {
      const r = it[sub];
      if (isObj(r)) {
        ev.reply = { id: r.id, title: r.title, description: r.description };
        ev.text = r.title;
      }
      type = sub;
    } else if (sub === 'nfm_reply') {
      const r = isObj(it.nfm_reply) ? it.nfm_reply : undefined;
      const name = r && r.name;
      type = name === 'address_message' ? 'address_reply' : 'flow_reply';
      if (r) {
        let response;
        try { response = JSON.parse(r.response_json); } catch (_) { response = undefined; }
        ev.flow = { name, body: r.body, response_json: r.response_json, response };
        ev.text = r.body;
      }
    } else if (sub) {
      type = sub;
    }
  } else if (type === 'button') {
    const b = m.button;
    if (isObj(b)) {
      ev.payload = b.payload;
      ev.text = b.text;
      ev.reply = { id: b.payload, title: b.text };
    }
  } else if (type === 'location') {
    const l = m.location;
    if (isObj(l)) {
      ev.location = { latitude: Number(l.latitude), longitude: Number(l.longitude),
                      name: l.name, address: l.address, url: l.url };
    }
  } else if (type === 'reaction') {
    const r = m.reaction;
    if (isObj(r)) {
      const emoji = r.emoji ? r.emoji : undefined;
      ev.reaction = { message_id: r.message_id, emoji, removed: emoji === undefined };
    }
  } else if (type === 'contacts') {
    ev.contacts = m.contacts;
  } else if (type === 'order') {
    ev.order = m.order;
    if (isObj(m.order)) ev.text = m.order.text;
  } else if (type === 'system') {
    ev.system = m.system;
    if (isObj(m.system)) ev.text = m.system.body;
  }
  ev.type = type;

  const ctx = m.context;
  if (isObj(ctx)) {
    const rp = ctx.referred_product;
    ev.context = {
      from: ctx.from, id: ctx.id,
      forwarded: ctx.forwarded === true ? true : undefined,
      frequently_forwarded: ctx.frequently_forwarded === true ? true : undefined,
      referred_product: isObj(rp)
        ? { catalog_id: rp.catalog_id, product_retailer_id: rp.product_retailer_id }
        : undefined,
    };
  }
  if (isObj(m.referral)) ev.referral = m.referral;
  if (m.errors) ev.errors = errorsOf(m.errors);
  return ev;
}

function statusEvent(s, base, contact) {
  const status = s.status || 'unknown';
  return {
    kind: 'status', type: status, status, field: base.field, waba_id: base.waba_id,
    entry_time: base.entry_time, phone_number_id: base.phone_number_id,
    display_phone_number: base.display_phone_number,
    id: s.id, timestamp: integer(s.timestamp), recipient_id: s.recipient_id,
    recipient_user_id: s.recipient_user_id,
    parent_recipient_user_id: s.parent_recipient_user_id,
    recipient_participant_id: s.recipient_participant_id,
    recipient_type: s.recipient_type, biz_opaque_callback_data: s.biz_opaque_callback_data,
    conversation: isObj(s.conversation) ? s.conversation : undefined,
    pricing: isObj(s.pricing) ? s.pricing : undefined,
    errors: s.errors ? errorsOf(s.errors) : undefined,
    contact,
  };
}

class PayloadError extends Error {}

function walk(doc) {
  if (!isObj(doc) || Array.isArray(doc)) throw new PayloadError('payload is not an object');
  if (doc.object !== undefined && doc.object !== 'whatsapp_business_account') {
    throw new PayloadError('unexpected object');
  }
  const entries = doc.entry;
  if (!Array.isArray(entries)) throw new PayloadError('entry missing');
  const events = [];
  for (const entry of entries) {
    if (!isObj(entry)) throw new PayloadError('entry is not an object');
    const changes = entry.changes;
    if (!Array.isArray(changes)) throw new PayloadError('changes is not an array');
    const wabaId = entry.id;
    const entryTime = integer(entry.time);
    for (const change of changes) {
      if (!isObj(change)) throw new PayloadError('change is not an object');
      const field = change.field;
      if (typeof field !== 'string') throw new PayloadError('field is not a string');
      const value = isObj(change.value) ? change.value : {};
      const md = isObj(value.metadata) ? value.metadata : undefined;
      const base = { field, waba_id: wabaId, entry_time: entryTime,
                     phone_number_id: md && md.phone_number_id,
                     display_phone_number: md && md.display_phone_number };
      const { messages, statuses, errors } = value;
      if (field === 'messages' && (messages || statuses || errors)) {
        const contacts = Array.isArray(value.contacts) ? value.contacts : undefined;
        let byWaId;
        if (contacts && contacts.length > 1) {
          byWaId = new Map();
          for (const c of contacts) if (isObj(c) && c.wa_id) byWaId.set(c.wa_id, c);
        }
        if (messages) {
          if (!Array.isArray(messages)) throw new PayloadError('messages is not an array');
          for (const m of messages) {
            if (!isObj(m)) throw new PayloadError('message is not an object');
            events.push(messageEvent(m, base, contacts, byWaId));
          }
        }
        if (statuses) {
          if (!Array.isArray(statuses)) throw new PayloadError('statuses is not an array');
          const contact = contacts && contacts.length ? contactOf(contacts[0]) : undefined;
          for (const s of statuses) {
            if (!isObj(s)) throw new PayloadError('status is not an object');
            events.push(statusEvent(s, base, contact));
          }
        }
        if (errors) {
          for (const e of errorsOf(errors) || []) {
            events.push({ kind: 'error', type: 'error', field, waba_id: wabaId,
                          entry_time: entryTime, phone_number_id: base.phone_number_id,
                          display_phone_number: base.display_phone_number,
                          error: e, code: e.code });
          }
        }
      } else {
        events.push({ kind: 'change', type: field, field, waba_id: wabaId, entry_time: entryTime,
                      phone_number_id: base.phone_number_id,
                      display_phone_number: base.display_phone_number, value,
                      event: typeof value.event === 'string' ? value.event : undefined });
      }
    }
  }
  return events;
}

const SIG_RE = /^sha256=[0-9a-fA-F]{64}$/;

// parse(body, headers) -> { events } | { error }
function makeParser(secret) {
  return function parse(body, headers) {
    const sig = headers['x-hub-signature-256'];
    if (typeof sig !== 'string' || !SIG_RE.test(sig)) return { error: 'invalid_signature' };
    const digest = crypto.createHmac('sha256', secret).update(body).digest();
    const given = Buffer.from(sig.slice(7), 'hex');
    if (!crypto.timingSafeEqual(digest, given)) return { error: 'invalid_signature' };
    let doc;
    try {
      doc = JSON.parse(body);
    } catch (_) {
      return { error: 'invalid_payload' };
    }
    try {
      return { events: walk(doc) };
    } catch (e) {
      if (e instanceof PayloadError) return { error: 'invalid_payload' };
      throw e;
    }
  };
}

function sign(body) {
  return 'sha256=' + crypto.createHmac('sha256', SECRET).update(body).digest('hex');
}

function fingerprint(events) {
  const s = events.map((ev) => `${ev.kind}:${ev.id}`).join('\n');
  return crypto.createHash('sha256').update(s).digest('hex').slice(0, 16);
}

function loop(parse, body, headers, n) {
  let last;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) last = parse(body, headers);
  const t = Number(process.hrtime.bigint() - t0) / 1e9;
  if (!last || !last.events) throw new Error('parse failed during timing');
  return t;
}

function calibrate(parse, body, headers) {
  let n = 1;
  for (;;) {
    const t = loop(parse, body, headers, n);
    if (t >= 0.1) return Math.max(1, Math.round(n * SECONDS / t));
    n *= t < 0.01 ? 10 : 2;
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

function main() {
  const parse = makeParser(SECRET);
  for (const name of BODY_NAMES) {
    const raw = fs.readFileSync(path.join(BODIES, `${name}.json`));
    const text = raw.toString('utf8');
    const body = AS_BUFFER ? raw : text;
    const headers = { 'x-hub-signature-256': sign(raw) };
    const bad = { 'x-hub-signature-256': sign(text + ' ') };

    const res = parse(body, headers);
    if (!res.events) throw new Error(`${name}: node peer failed: ${res.error}`);
    if (parse(body, bad).events) throw new Error(`${name}: node peer accepted a bad signature`);

    const n = calibrate(parse, body, headers);
    const times = [];
    for (let r = 0; r < REPS; r++) {
      if (global.gc) global.gc();
      times.push(loop(parse, body, headers, n) / n * 1e9);
    }
    console.log(`RESULT interp=node impl=node body=${name} bytes=${raw.length} ` +
                `events=${res.events.length} n=${n} ns=${median(times).toFixed(1)} ` +
                `check=${fingerprint(res.events)}`);
  }
}

main();
