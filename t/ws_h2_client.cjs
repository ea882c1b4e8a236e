// WebSockets over HTTP/2 (RFC 8441) for t/ws_h2.t: an independent client
// of docs/PROTOCOL.md (sections 3 to 5 and 16) with node:http2 and
// node:crypto only (Node 18 or newer, no package). It does the handshake
// over h2, opens WebSockets with an extended CONNECT (:protocol websocket)
// and prints one JSON object with what it saw; t/ws_h2.t judges it.
//
//   node t/ws_h2_client.cjs HOST PORT CONN
//   environment: ZEQ_T_H2_SECRET  the virtual host's secret
'use strict';

const http2 = require('node:http2');
const crypto = require('node:crypto');

const [host, port, conn] = process.argv.slice(2);
const secret = process.env.ZEQ_T_H2_SECRET || '';
const authority = `${host}:${port}`;
const out = { node: process.versions.node };

function finish(code) {
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(code);
}
setTimeout(() => { out.error = 'timeout'; finish(1); }, 30000).unref();

// --- envelopes (PROTOCOL.md 5 and 16.2) -----------------------------------------
function seal(key, plaintext) {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), ct]);       // iv || tag || ciphertext
}
function open(key, env) {
  if (env.length < 28) return null;
  try {
    const d = crypto.createDecipheriv('aes-256-gcm', key, env.subarray(0, 12));
    d.setAuthTag(env.subarray(12, 28));
    return Buffer.concat([d.update(env.subarray(28)), d.final()]);
  } catch (e) {
    return null;
  }
}
const TYPE = { text: 1, binary: 2 };
function sealMessage(key, type, data) {
  return seal(key, Buffer.concat([Buffer.from([TYPE[type]]), data]));
}

// --- frames (RFC 6455 5.2; client frames masked) -----------------------------------
function frame(opcode, payload, fin = true) {
  const len = payload.length;
  let head;
  if (len < 126) head = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len]);
  else if (len <= 0xffff) {
    head = Buffer.alloc(4);
    head[0] = (fin ? 0x80 : 0) | opcode; head[1] = 0x80 | 126; head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = (fin ? 0x80 : 0) | opcode; head[1] = 0x80 | 127; head.writeBigUInt64BE(BigInt(len), 2);
  }
  const mask = crypto.randomBytes(4);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, body]);
}
// Parses complete frames off buf; returns [frames, rest].
function parseFrames(buf) {
  const frames = [];
  for (;;) {
    if (buf.length < 2) break;
    let len = buf[1] & 0x7f, off = 2;
    if (len === 126) { if (buf.length < 4) break; len = buf.readUInt16BE(2); off = 4; }
    else if (len === 127) { if (buf.length < 10) break; len = Number(buf.readBigUInt64BE(2)); off = 10; }
    const masked = (buf[1] & 0x80) !== 0;
    if (masked) off += 4;
    if (buf.length < off + len) break;
    let payload = Buffer.from(buf.subarray(off, off + len));
    if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[off - 4 + (i & 3)];
    frames.push({ fin: (buf[0] & 0x80) !== 0, rsv: (buf[0] >> 4) & 7, opcode: buf[0] & 0x0f,
                  masked, len, payload });
    buf = buf.subarray(off + len);
  }
  return [frames, buf];
}

// --- HTTP/2 -------------------------------------------------------------------------
// Apache::Test names the host "localhost" but listens on IPv4; Node 18
// tries the first address it resolves (often ::1) and no other.
const connectHost = host === 'localhost' ? '127.0.0.1' : host;
const client = http2.connect(`https://${connectHost}:${port}`, {
  servername: 'localhost', rejectUnauthorized: false,
});
client.on('error', (e) => { out.error = String(e); finish(1); });

function request(headers, body) {
  return new Promise((resolve) => {
    const s = client.request(headers);
    const chunks = [];
    let h = {};
    s.on('response', (rh) => { h = rh; });
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => resolve({ status: h[':status'], headers: h, body: Buffer.concat(chunks) }));
    s.on('error', (e) => resolve({ status: 0, error: String(e), body: Buffer.alloc(0) }));
    s.end(body);
  });
}

// An extended CONNECT; resolves with a socket object once the answer came.
function openSocket(path, extra = {}) {
  return new Promise((resolve) => {
    const s = client.request({
      ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https',
      ':authority': authority, ':path': path, 'sec-websocket-version': '13', ...extra,
    });
    const sock = { stream: s, buf: Buffer.alloc(0), frames: [], waiters: [], ended: false, body: [] };
    const wake = () => { const w = sock.waiters; sock.waiters = []; w.forEach((f) => f()); };
    s.on('response', (h) => {
      sock.status = h[':status'];
      sock.headers = h;
      resolve(sock);
    });
    s.on('data', (d) => {
      if (sock.status !== 200) { sock.body.push(d); return; }
      const [fr, rest] = parseFrames(Buffer.concat([sock.buf, d]));
      sock.buf = rest;
      sock.frames.push(...fr);
      wake();
    });
    s.on('end', () => { sock.ended = true; wake(); });
    s.on('close', () => { sock.ended = true; wake(); });
    s.on('error', (e) => { sock.error = String(e); sock.ended = true; wake(); resolve(sock); });
  });
}
// The next frame, or null at the end of the stream or after ms.
function nextFrame(sock, ms = 5000) {
  return new Promise((resolve) => {
    const tryNow = () => {
      if (sock.frames.length) return resolve(sock.frames.shift());
      if (sock.ended) return resolve(null);
      sock.waiters.push(tryNow);
    };
    setTimeout(() => resolve(null), ms).unref();
    tryNow();
  });
}
function endOf(sock, ms = 5000) {
  return new Promise((resolve) => {
    const check = () => (sock.ended ? resolve(true) : sock.waiters.push(check));
    setTimeout(() => resolve(sock.ended), ms).unref();
    check();
  });
}
function describe(key, f) {
  if (!f) return { kind: 'none' };
  const d = { opcode: f.opcode, fin: f.fin, rsv: f.rsv, masked: f.masked, len: f.len };
  if (f.opcode >= 8) { d.payloadHex = f.payload.toString('hex'); return d; }
  const pt = key ? open(key, f.payload) : null;
  d.verifies = !!pt;
  if (pt) {
    d.type = pt[0];
    d.sha256 = crypto.createHash('sha256').update(pt.subarray(1)).digest('hex');
    d.textStart = pt.subarray(1, 65).toString('utf8');
  } else {
    d.sha256 = crypto.createHash('sha256').update(f.payload).digest('hex');
    d.textStart = f.payload.subarray(0, 64).toString('utf8');
  }
  return d;
}

async function main() {
  await new Promise((resolve) => client.once('remoteSettings', resolve));
  out.enableConnectProtocol = !!client.remoteSettings.enableConnectProtocol;
  out.alpn = client.alpnProtocol;

  // Handshake (PROTOCOL.md 3, 4).
  const clientNonce = crypto.randomBytes(32);
  const hs = await request({ ':method': 'POST', ':path': '/api/e2e/handshake',
                             'content-type': 'application/json' },
                           JSON.stringify({ clientNonce: clientNonce.toString('hex') }));
  out.handshakeStatus = hs.status;
  const j = JSON.parse(hs.body.toString() || '{}');
  const key = crypto.pbkdf2Sync(Buffer.from(secret, 'utf8'),
                                Buffer.concat([clientNonce, Buffer.from(j.serverNonce || '', 'hex')]),
                                100000, 32, 'sha256');
  out.keyHex = key.toString('hex');
  out.sessionId = j.sessionId || null;
  const sid = encodeURIComponent(j.sessionId || '');

  // An encrypted socket: a text and a 70000-byte binary message, a ping, a close.
  const ws = await openSocket(`/ws/echo?conn=${conn}&e2e_session=${sid}`,
                              { 'sec-websocket-extensions': 'permessage-deflate' });
  out.connectStatus = ws.status;
  out.connectExtensions = ws.headers ? ws.headers['sec-websocket-extensions'] || null : null;
  const text = Buffer.from('hello over HTTP/2 \u00fc \u20ac', 'utf8');
  const bin = crypto.createHash('sha256').update('h2 binary').digest();
  const big = Buffer.alloc(70000);
  for (let i = 0; i < big.length; i += 32) bin.copy(big, i, 0, Math.min(32, big.length - i));
  out.sent = {
    text: crypto.createHash('sha256').update(text).digest('hex'),
    binary: crypto.createHash('sha256').update(big).digest('hex'),
  };
  if (ws.status === 200) {
    ws.stream.write(frame(0x2, sealMessage(key, 'text', text)));
    out.textEcho = describe(key, await nextFrame(ws));
    ws.stream.write(frame(0x2, sealMessage(key, 'binary', big)));
    out.binaryEcho = describe(key, await nextFrame(ws));
    ws.stream.write(frame(0x9, Buffer.from('h2 ping')));
    out.pong = describe(key, await nextFrame(ws));
    ws.stream.write(frame(0x8, Buffer.from([0x03, 0xe8])));
    out.close = describe(key, await nextFrame(ws));
    ws.stream.end();
    out.ended = await endOf(ws);
  }

  // A last message and the close frame in the DATA frame that ends the
  // stream: both reach the backend, in order, before the end.
  const wl = await openSocket(`/ws/echo?conn=${conn}-last&e2e_session=${sid}`);
  out.lastStatus = wl.status;
  if (wl.status === 200) {
    const lastText = Buffer.from('the last words, with END_STREAM', 'utf8');
    out.sent.last = crypto.createHash('sha256').update(lastText).digest('hex');
    wl.stream.end(Buffer.concat([frame(0x2, sealMessage(key, 'text', lastText)),
                                 frame(0x8, Buffer.from([0x03, 0xe8]))]));
    out.lastEnded = await endOf(wl);
  }

  // A tampered envelope: close 1008, nothing forwarded.
  const wt = await openSocket(`/ws/echo?conn=${conn}-tamper&e2e_session=${sid}`);
  out.tamperStatus = wt.status;
  if (wt.status === 200) {
    const env = sealMessage(key, 'text', Buffer.from('must not arrive'));
    env[30] ^= 1;
    wt.stream.write(frame(0x2, env));
    out.tamperClose = describe(key, await nextFrame(wt));
    out.tamperEnded = await endOf(wt);
  }

  // An unknown session: 401 before any tunnel.
  const wu = await openSocket(`/ws/echo?conn=${conn}-unknown&e2e_session=${'A'.repeat(43)}`);
  out.unknownStatus = wu.status;
  await endOf(wu, 2000);
  out.unknownBody = Buffer.concat(wu.body).toString('utf8');
  out.unknownType = wu.headers ? wu.headers['content-type'] || null : null;

  // No e2e_session: a plaintext socket.
  const wp = await openSocket(`/ws/echo?conn=${conn}-plain`);
  out.plainStatus = wp.status;
  if (wp.status === 200) {
    wp.stream.write(frame(0x1, Buffer.from('plain over h2')));
    out.plainEcho = describe(null, await nextFrame(wp));
    wp.stream.write(frame(0x8, Buffer.from([0x03, 0xe8])));
    await nextFrame(wp, 2000);
    wp.stream.end();
  }

  client.close();
  finish(0);
}

main().catch((e) => { out.error = String(e && e.stack || e); finish(1); });
