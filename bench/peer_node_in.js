// Inbound HTTP benchmark, Node peer (run by bench/http.sh): Node's `http` server checking
// X-Hub-Signature-256 (HMAC-SHA256 of the raw body, constant-time compare) and JSON.parse-ing
// the body, answering 200 (401/400 on a bad request). Runs until SIGTERM/SIGINT.
//
//   BENCH_APP_SECRET=... BENCH_PORT_FILE=/tmp/port node bench/peer_node_in.js
//
// Writes the port to BENCH_PORT_FILE (or stdout) once listening; at shutdown prints
//   RESULT impl=node_http requests=N ok=N failed=N events=N
// and exits 1 when any request failed.
'use strict';
const http = require('http');
const crypto = require('crypto');
const fs = require('fs');

const secret = process.env.BENCH_APP_SECRET || 'bench-app-secret';
let requests = 0, ok = 0, failed = 0, events = 0, firstErr = null;

function onEvent() {} // the application's no-op handler

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    requests++;
    const raw = Buffer.concat(chunks);
    const sig = String(req.headers['x-hub-signature-256'] || '');
    const want = 'sha256=' + crypto.createHmac('sha256', secret).update(raw).digest('hex');
    if (sig.length !== want.length || !crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(want))) {
      failed++; firstErr = firstErr || 'bad signature';
      res.writeHead(401); res.end(); return;
    }
    let doc;
    try { doc = JSON.parse(raw.toString('utf8')); } catch (e) {
      failed++; firstErr = firstErr || 'bad json';
      res.writeHead(400); res.end(); return;
    }
    ok++;
    for (const entry of doc.entry || []) {
      for (const change of entry.changes || []) {
        const v = change.value || {};
        for (const m of v.messages || []) { events++; onEvent(m); }
        for (const s of v.statuses || []) { events++; onEvent(s); }
      }
    }
    res.writeHead(200); res.end();
  });
});
server.keepAliveTimeout = 60000;

server.listen(Number(process.env.BENCH_PORT || 0), '127.0.0.1', () => {
  const port = server.address().port;
  const file = process.env.BENCH_PORT_FILE;
  if (file) { fs.writeFileSync(file + '.tmp', port + '\n'); fs.renameSync(file + '.tmp', file); }
  else console.log(port);
});

function stop() {
  server.close();
  server.closeAllConnections && server.closeAllConnections();
  console.log(`RESULT impl=node_http requests=${requests} ok=${ok} failed=${failed} events=${events}`);
  if (failed > 0) console.error(`peer_node_in: ${failed} requests failed; first: ${firstErr}`);
  process.exit(failed > 0 ? 1 : 0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
