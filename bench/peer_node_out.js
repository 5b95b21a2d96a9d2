// Outbound HTTP benchmark, Node peer (run by bench/http.sh): the job of bench/http_out.lua
// with Node's `http` module and a keep-alive agent (maxSockets = BENCH_INFLIGHT, default 64).
//
//   node bench/peer_node_out.js http://127.0.0.1:PORT/v23.0/106540352242922/messages
//
// Prints: RESULT impl=node_http messages=N ok=N bad=N seconds=S rate=R cpu=C
// Exits 1 when any request failed or answered anything but 200 with a parsable body.
'use strict';
const http = require('http');

const url = new URL(process.argv[2] || process.env.BENCH_URL);
const total = Number(process.env.BENCH_MESSAGES || 20000);
const inflight = Number(process.env.BENCH_INFLIGHT || 64);

const token = 'EAAG' + 'Zb7QxT9kLmN2pR4sVw6yA8cE1gJ3hK5'.repeat(6).slice(0, 186);
if (token.length !== 190) throw new Error('token length');
let body = '{"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",'
  + '"type":"text","text":{"preview_url":false,"body":"Hello Maria, your order #48213 has '
  + 'shipped and arrives Thursday. Reply STOP to opt out"}}';
body = body + ' '.repeat(220 - body.length);
if (body.length !== 220) throw new Error('body length ' + body.length);

const agent = new http.Agent({ keepAlive: true, maxSockets: inflight });
const options = {
  agent, method: 'POST', hostname: url.hostname, port: url.port, path: url.pathname,
  headers: {
    Authorization: 'Bearer ' + token,
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  },
};

let sent = 0, ok = 0, bad = 0, firstBad = null;

function post() {
  return new Promise((resolve) => {
    const req = http.request(options, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', (e) => resolve({ error: e }));
    req.end(body);
  });
}

async function worker() {
  while (sent < total) {
    sent++;
    const r = await post();
    if (r.status === 200) {
      let doc = null;
      try { doc = JSON.parse(r.body); } catch (e) { doc = null; }
      if (doc && doc.messages && doc.messages[0] && typeof doc.messages[0].id === 'string') ok++;
      else { bad++; firstBad = firstBad || 'unparsable body: ' + r.body; }
    } else {
      bad++;
      firstBad = firstBad || (r.error ? 'error ' + r.error.message : 'status ' + r.status);
    }
  }
}

(async () => {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const ws = [];
  for (let i = 0; i < inflight; i++) ws.push(worker());
  await Promise.all(ws);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  agent.destroy();
  console.log(`RESULT impl=node_http messages=${sent} ok=${ok} bad=${bad} seconds=${secs.toFixed(3)} `
    + `rate=${Math.round(sent / secs)} cpu=${((c.user + c.system) / 1e6).toFixed(3)}`);
  if (bad > 0 || ok !== total) {
    console.error(`peer_node_out: ${bad} bad answers; first: ${firstBad}`);
    process.exit(1);
  }
})();
