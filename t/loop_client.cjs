'use strict';
// A client loop of protocol v2 (docs/PROTOCOL.md section 18), written from
// the protocol with node:crypto and node:http only, independent of the
// module and of client/zeq-e2e-client.js: t/restart.t runs it against a
// server that it restarts meanwhile.
//
//   node t/loop_client.cjs HOST:PORT PATH CALLS CONCURRENCY PREFIX
//
// Sends CALLS encrypted POSTs to PATH?call=PREFIX-N (N from 1), with at
// most CONCURRENCY at a time, each on a connection of its own with
// "Expect: 100-continue": the body leaves only once the server has taken
// the request in. Every call must succeed from the caller's point of view:
// it is sent again only when the server guarantees that it did not run
//   - 401 e2e_session_invalid (answered before the application): a new
//     handshake, then the call again;
//   - 503 e2e_unavailable (likewise): after Retry-After;
//   - no connection (refused), or the connection lost before the server
//     asked for the body (no 100 Continue, no answer): the body never left.
// Anything else (a lost answer after the body left, another status, an
// answer that does not verify or is not the echo of the call) is a failure
// of that call, never retried. Prints one JSON line with the counts.
const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');

const [hostport, path, callsArg, concArg, prefix] = process.argv.slice(2);
const [host, port] = hostport.split(':');
const CALLS = Number(callsArg);
const CONCURRENCY = Number(concArg);
const E2E = 'application/x-zeq-e2e';
const FINAL = 0x80000000;
const RECORD = 16384;

const stats = {
  calls: CALLS, ok: 0, failed: 0, failures: [], handshakes: 0,
  retries: { session: 0, unavailable: 0, refused: 0, notTaken: 0 },
};

const b64url = (b) => b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const unb64url = (s) => Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const aad = (...parts) => Buffer.from(parts.join('\0'), 'utf8');

function nonceOf(base, i) {
  const n = Buffer.from(base);
  const c = Buffer.alloc(12);
  c.writeUInt32BE(Math.floor(i / 2 ** 32), 4);
  c.writeUInt32BE(i % 2 ** 32, 8);
  for (let k = 0; k < 12; k++) n[k] ^= c[k];
  return n;
}

// 0x02 || nonce_base || records (18.5).
function seal(key, ad, plain) {
  const base = crypto.randomBytes(12);
  const out = [Buffer.from([2]), base];
  let off = 0;
  let i = 0;
  do {
    const n = Math.min(RECORD, plain.length - off);
    const last = off + n >= plain.length;
    const header = Buffer.alloc(4);
    header.writeUInt32BE(((last ? FINAL : 0) | n) >>> 0);
    const c = crypto.createCipheriv('aes-256-gcm', key, nonceOf(base, i));
    c.setAAD(Buffer.concat([ad, header]));
    out.push(header, c.update(plain.subarray(off, off + n)), c.final(), c.getAuthTag());
    off += n;
    i++;
  } while (off < plain.length);
  return Buffer.concat(out);
}

// The plaintext, or null when anything is wrong.
function open(key, ad, msg) {
  if (msg.length < 13 || msg[0] !== 2) return null;
  const base = msg.subarray(1, 13);
  const parts = [];
  let at = 13;
  for (let i = 0; ; i++) {
    if (msg.length - at < 4) return null;
    const h = msg.readUInt32BE(at);
    const header = msg.subarray(at, at + 4);
    const len = h & 0xffffff;
    if ((h & 0x7f000000) || msg.length - at - 4 < len + 16) return null;
    try {
      const d = crypto.createDecipheriv('aes-256-gcm', key, nonceOf(base, i));
      d.setAAD(Buffer.concat([ad, header]));
      d.setAuthTag(msg.subarray(at + 4 + len, at + 20 + len));
      parts.push(d.update(msg.subarray(at + 4, at + 4 + len)), d.final());
    } catch (e) {
      return null;
    }
    at += 20 + len;
    if (h & FINAL) return at === msg.length ? Buffer.concat(parts) : null;
  }
}

// One HTTP exchange. Resolves { status, headers, body } or
// { error, taken } (taken: the server asked for the body, or it was sent).
function exchange(method, target, headers, body, expectContinue) {
  return new Promise((resolve) => {
    let taken = false;
    let done = false;
    const finish = (v) => { if (!done) { done = true; resolve(v); } };
    const h = { ...headers, 'Content-Length': String(body.length) };
    if (expectContinue) h.Expect = '100-continue';
    const req = http.request({ host, port, method, path: target, headers: h, agent: false });
    req.setTimeout(60000, () => req.destroy(new Error('timeout')));
    req.on('continue', () => { taken = true; req.end(body); });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => finish({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', (e) => finish({ error: e.code || e.message, taken: true }));
    });
    req.on('error', (e) => finish({ error: e.code || e.message, taken }));
    if (expectContinue) req.flushHeaders();
    else { taken = true; req.end(body); }
  });
}

// What must never reach a log (t/zz_log_search.t): appended to the file
// ZEQ_T_NEEDLES names, "KIND<tab>HEX" lines (t/lib/ZeqTest.pm).
function recordNeedles(pairs) {
  if (!process.env.ZEQ_T_NEEDLES) return;
  fs.appendFileSync(process.env.ZEQ_T_NEEDLES, pairs.map(([k, v]) => `${k}\t${v.toString('hex')}\n`).join(''));
}

let session = null;   // { id, c2s, s2c, seq, gen }
let sessionGen = 0;
let pending = null;

async function handshake() {
  for (;;) {
    const ecdh = crypto.createECDH('prime256v1');
    const point = ecdh.generateKeys();
    const cn = crypto.randomBytes(32);
    const body = Buffer.from(JSON.stringify({ version: 2, clientNonce: cn.toString('hex'), clientKey: b64url(point) }));
    const r = await exchange('POST', '/api/e2e/handshake', { 'Content-Type': 'application/json' }, body, false);
    if (r.error || r.status === 503) {
      // Nothing was made (or the server is not there): try again.
      await sleep(r.error ? 50 : 1000 * Math.min(2, Number(r.headers['retry-after']) || 1));
      continue;
    }
    const j = r.status === 200 ? JSON.parse(r.body.toString('utf8')) : null;
    if (!j || j.version !== 2) throw new Error(`handshake answered ${r.status}`);
    const z = ecdh.computeSecret(unb64url(j.serverKey));
    const salt = Buffer.concat([cn, Buffer.from(j.serverNonce, 'hex')]);
    stats.handshakes++;
    const s = {
      id: j.sessionId, seq: 0, gen: ++sessionGen,
      c2s: Buffer.from(crypto.hkdfSync('sha256', z, salt, 'zeq-e2e/2 c2s', 32)),
      s2c: Buffer.from(crypto.hkdfSync('sha256', z, salt, 'zeq-e2e/2 s2c', 32)),
    };
    recordNeedles([['session-id', Buffer.from(s.id)], ['shared-secret', z], ['key', s.c2s], ['key', s.s2c]]);
    return s;
  }
}

// The current session; a new one when the one that failed is current.
async function currentSession(failedGen) {
  if (session && session.gen !== failedGen) return session;
  if (!pending) pending = handshake().then((s) => { session = s; pending = null; return s; });
  return pending;
}

async function call(n) {
  const target = `${path}?call=${prefix}-${n}`;
  const plain = Buffer.from(JSON.stringify({ call: `${prefix}-${n}` }));
  let s = await currentSession(-1);
  for (let attempt = 0; attempt < 1000; attempt++) {
    const seq = s.seq++;
    const body = seal(s.c2s, aad('zeq-e2e/2 request', s.id, seq, 'POST', target, ''), plain);
    const r = await exchange('POST', target, {
      'X-E2E-Session': s.id, 'X-E2E-Seq': String(seq), Accept: E2E, 'Content-Type': E2E,
    }, body, true);
    if (r.error) {
      if (r.error === 'ECONNREFUSED') { stats.retries.refused++; await sleep(50); continue; }
      if (!r.taken) { stats.retries.notTaken++; await sleep(50); continue; }
      return fail(n, `connection lost after the body was sent (${r.error})`);
    }
    const ctype = (r.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
    const code = ctype === 'application/json' ? (JSON.parse(r.body.toString('utf8') || '{}').error || '') : '';
    if (r.status === 401 && code === 'e2e_session_invalid') {
      stats.retries.session++;
      s = await currentSession(s.gen);
      continue;
    }
    if (r.status === 503 && code === 'e2e_unavailable') {
      stats.retries.unavailable++;
      await sleep(1000 * Math.min(2, Number(r.headers['retry-after']) || 1));
      continue;
    }
    if (r.status !== 200 || ctype !== E2E) return fail(n, `answered ${r.status} ${code}`);
    const ad = aad('zeq-e2e/2 response', s.id, seq, '200', r.headers['x-e2e-content-type'] || '',
                   r.headers['x-e2e-content-encoding'] || '');
    const pt = open(s.s2c, ad, r.body);
    if (pt === null) return fail(n, 'the answer does not verify');
    let echoed;
    try { echoed = JSON.parse(pt.toString('utf8')).body; } catch (e) { echoed = null; }
    if (echoed !== plain.toString('utf8')) return fail(n, 'the answer is not the echo of the call');
    stats.ok++;
    return;
  }
  return fail(n, 'too many attempts');
}

function fail(n, why) {
  stats.failed++;
  if (stats.failures.length < 20) stats.failures.push(`${prefix}-${n}: ${why}`);
}

(async () => {
  const t0 = Date.now();
  let next = 1;
  const worker = async () => { while (next <= CALLS) await call(next++); };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  stats.seconds = (Date.now() - t0) / 1000;
  process.stdout.write(JSON.stringify(stats) + '\n');
})().catch((e) => {
  process.stdout.write(JSON.stringify({ ...stats, fatal: String(e && e.stack || e) }) + '\n');
  process.exit(1);
});
