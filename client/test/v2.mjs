// Protocol v2 (docs/PROTOCOL.md section 18) written again with node:crypto
// for the tests: the judge of what the library puts on the wire. Nothing
// here imports the library or Web Crypto: ECDH is node:crypto's createECDH,
// HKDF its hkdfSync, AES-GCM its createCipheriv/createDecipheriv (OpenSSL),
// ECDSA its sign/verify. v2.test.mjs checks it against the test vectors of
// section 18.13 first.
//
// How the tests get the keys of the library's sessions: captureClientKeys()
// wraps crypto.subtle.generateKey (in Node.js; clientKeyCaptureScript() does
// the same in a page) so that the ECDH key pair the library asks for is made
// extractable, and records its private key as a JWK. The library's code
// does not change and never sees the difference; the test then computes Z
// from that private key and the serverKey seen on the network, and the
// session keys from Z and the nonces seen on the network, all with
// node:crypto. keysFromHandshake() also checks that the captured key's
// public half is the clientKey the library sent.

import {
  createECDH, createCipheriv, createDecipheriv, createHash, hkdfSync, pbkdf2Sync, randomBytes,
  createPublicKey, createPrivateKey, sign as nodeSign, verify as nodeVerify, generateKeyPairSync,
} from 'node:crypto';

export const RECORD = 16384;
export const RECORD_MAX = 1 << 20;
export const MEDIA_TYPE = 'application/x-zeq-e2e';

export function b64url(bytes) {
  return Buffer.from(bytes).toString('base64url');
}

export function fromB64url(text) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text)) throw new Error(`not base64url: ${text}`);
  return Buffer.from(text, 'base64url');
}

const z0 = Buffer.from([0]);
/** Fields joined with 0x00; strings as their bytes (latin1: header values and ASCII). */
function joined(fields) {
  const parts = [];
  fields.forEach((f, i) => {
    if (i) parts.push(z0);
    parts.push(Buffer.isBuffer(f) ? f : Buffer.from(String(f), 'latin1'));
  });
  return Buffer.concat(parts);
}

/** message_aad of a request (18.6). */
export function requestAAD(sessionId, seq, method, target, innerType = '') {
  return joined(['zeq-e2e/2 request', sessionId, seq, method, target, innerType]);
}

/** message_aad of an answer (18.8). */
export function responseAAD(sessionId, seq, status, innerType = '', innerEncoding = '') {
  return joined(['zeq-e2e/2 response', sessionId, seq, String(status).padStart(3, '0'), innerType, innerEncoding]);
}

/** message_aad of a WebSocket message (18.11). */
export function wsAAD(sessionId, upgradeSeq, direction, counter) {
  return joined(['zeq-e2e/2 ws', sessionId, upgradeSeq, direction, counter]);
}

function recordNonce(nonceBase, i) {
  const n = Buffer.from(nonceBase);
  const x = Buffer.alloc(8);
  x.writeBigUInt64BE(BigInt(i));
  for (let k = 0; k < 8; k++) n[4 + k] ^= x[k];
  return n;
}

/**
 * Seals plaintext into a sealed message (18.5): 0x02 || nonce_base ||
 * records of `recordSize` bytes (the last one shorter, one empty final record
 * for an empty plaintext). `records` may instead give the record lengths.
 */
export function sealMessage(key, aad, plaintext, { nonceBase = randomBytes(12), recordSize = RECORD, records } = {}) {
  const pt = Buffer.from(plaintext);
  let sizes = records;
  if (!sizes) {
    sizes = [];
    for (let off = 0; off < pt.length; off += recordSize) sizes.push(Math.min(recordSize, pt.length - off));
    if (sizes.length === 0) sizes.push(0);
  }
  const out = [messagePrefix(nonceBase)];
  let off = 0;
  sizes.forEach((n, i) => {
    out.push(sealRecord(key, aad, nonceBase, i, pt.subarray(off, off + n), i === sizes.length - 1));
    off += n;
  });
  if (off !== pt.length) throw new Error('record sizes do not add up to the plaintext');
  return Buffer.concat(out);
}

/** The prefix of a sealed message: 0x02 || nonce_base. */
export function messagePrefix(nonceBase) {
  return Buffer.concat([Buffer.from([0x02]), Buffer.from(nonceBase)]);
}

/** Record i of a sealed message: header || ciphertext || tag (18.5). */
export function sealRecord(key, aad, nonceBase, i, plaintext, final) {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(((final ? 0x80000000 : 0) | plaintext.length) >>> 0);
  const c = createCipheriv('aes-256-gcm', key, recordNonce(nonceBase, i));
  c.setAAD(Buffer.concat([aad, header]));
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([header, ct, c.getAuthTag()]);
}

/**
 * Opens a sealed message: the plaintext, or throws (any flaw refuses the
 * whole message). Returns { plaintext, records: [lengths] } with `detail`.
 */
export function openMessageDetail(key, aad, message) {
  const m = Buffer.from(message);
  if (m.length < 13 + 20) throw new Error(`a sealed message of ${m.length} bytes is too short`);
  if (m[0] !== 0x02) throw new Error(`a sealed message starts with 0x02, not 0x${m[0].toString(16)}`);
  const nonceBase = m.subarray(1, 13);
  const parts = [];
  const records = [];
  let off = 13;
  for (let i = 0; ; i++) {
    if (off + 4 > m.length) throw new Error('the message ends before its final record');
    const header = m.readUInt32BE(off);
    const final = (header & 0x80000000) !== 0;
    const n = header & 0xffffff;
    if ((header & 0x7f000000) !== 0) throw new Error('reserved header bits are set');
    if (n > RECORD_MAX) throw new Error(`a record of ${n} bytes`);
    if (off + 4 + n + 16 > m.length) throw new Error('the message ends inside a record');
    const d = createDecipheriv('aes-256-gcm', key, recordNonce(nonceBase, i));
    d.setAAD(Buffer.concat([aad, m.subarray(off, off + 4)]));
    d.setAuthTag(m.subarray(off + 4 + n, off + 4 + n + 16));
    parts.push(Buffer.concat([d.update(m.subarray(off + 4, off + 4 + n)), d.final()]));
    records.push(n);
    off += 4 + n + 16;
    if (final) break;
  }
  if (off !== m.length) throw new Error(`${m.length - off} bytes after the final record`);
  return { plaintext: Buffer.concat(parts), records, nonceBase: Buffer.from(nonceBase) };
}

export function openMessage(key, aad, message) {
  return openMessageDetail(key, aad, message).plaintext;
}

/** The length of a message of n bytes in 16 KiB records. */
export function sealedLength(n) {
  return 13 + 20 * Math.max(1, Math.ceil(n / RECORD)) + n;
}

/** PSK = PBKDF2-HMAC-SHA256(secret, "zeq-e2e/2 psk", 100000, 32) (18.3). */
export function pskOf(secret) {
  return pbkdf2Sync(Buffer.from(secret, 'utf8'), 'zeq-e2e/2 psk', 100000, 32, 'sha256');
}

/** k_c2s and k_s2c from Z (18.2). */
export function sessionKeys(z, clientNonceHex, serverNonceHex, psk = null) {
  const ikm = psk ? Buffer.concat([z, psk]) : z;
  const salt = Buffer.concat([Buffer.from(clientNonceHex, 'hex'), Buffer.from(serverNonceHex, 'hex')]);
  const k = (info) => Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from(info), 32));
  return { c2s: k('zeq-e2e/2 c2s'), s2c: k('zeq-e2e/2 s2c') };
}

/** A P-256 key agreement of node:crypto from a private scalar (Buffer) or a fresh one. */
export function ecdh(privateKey) {
  const e = createECDH('prime256v1');
  if (privateKey) e.setPrivateKey(privateKey);
  else e.generateKeys();
  return e;
}

/** The transcript a signature covers (18.4). */
export function transcript(clientNonceHex, serverNonceHex, clientKey, serverKey, sessionId) {
  return Buffer.concat([Buffer.from('zeq-e2e/2 handshake\0'), Buffer.from(clientNonceHex, 'hex'),
    Buffer.from(serverNonceHex, 'hex'), Buffer.from(clientKey), Buffer.from(serverKey), Buffer.from(sessionId)]);
}

/** A P-256 signing key: { privateKey, spki (DER), spkiB64url, jwk, signer, pem }. */
export function signingKey() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return describeSigningKey(privateKey, publicKey);
}

export function describeSigningKey(privateKey, publicKey) {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return {
    privateKey,
    publicKey,
    spki,
    spkiB64url: b64url(spki),
    jwk: publicKey.export({ format: 'jwk' }),
    signer: b64url(createHash('sha256').update(spki).digest()),
    pem: privateKey.export({ type: 'pkcs8', format: 'pem' }),
  };
}

/** Loads a PEM private key (what ZeqE2EServerKey reads) into describeSigningKey's form. */
export function signingKeyFromPem(pem) {
  const privateKey = createPrivateKey(pem);
  return describeSigningKey(privateKey, createPublicKey(privateKey));
}

export function signTranscript(key, data) {
  return nodeSign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
}

export function verifyTranscript(key, data, signature) {
  return nodeVerify('sha256', data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
}

// ---------------------------------------------------------------------------
// The keys of the library's sessions.

/**
 * Wraps crypto.subtle.generateKey so that the ECDH pairs it makes are
 * extractable; records each private key (a JWK) in the returned list.
 * restore() puts the original back.
 */
export function captureClientKeys(subtle = globalThis.crypto.subtle) {
  const original = subtle.generateKey;
  const captured = [];
  subtle.generateKey = async function generateKey(algorithm, extractable, usages) {
    if (!algorithm || algorithm.name !== 'ECDH') return original.call(subtle, algorithm, extractable, usages);
    const pair = await original.call(subtle, algorithm, true, usages);
    captured.push({ jwk: await subtle.exportKey('jwk', pair.privateKey), askedExtractable: extractable, usages });
    return pair;
  };
  return {
    captured,
    restore() { subtle.generateKey = original; },
  };
}

/** The same as an init script for a page (window.zeqTestKeys). */
export function clientKeyCaptureScript() {
  return `(() => {
    const proto = SubtleCrypto.prototype;
    const original = proto.generateKey;
    window.zeqTestKeys = [];
    proto.generateKey = async function generateKey(algorithm, extractable, usages) {
      if (!algorithm || algorithm.name !== 'ECDH') return original.call(this, algorithm, extractable, usages);
      const pair = await original.call(this, algorithm, true, usages);
      window.zeqTestKeys.push({ jwk: await this.exportKey('jwk', pair.privateKey), askedExtractable: extractable,
        usages: [...usages] });
      return pair;
    };
  })();`;
}

/** The uncompressed point of a captured private JWK (x, y). */
function pointOfJwk(jwk) {
  return Buffer.concat([Buffer.from([4]), fromB64url(jwk.x), fromB64url(jwk.y)]);
}

/**
 * The session of a v2 handshake seen on the network: request and answer
 * bodies (parsed JSON) and the captured private keys. Throws when none of
 * the captured keys is the one whose public half the request carried.
 * Returns { sessionId, seq: 0, c2s, s2c, z, psk, request, answer }.
 */
export function keysFromHandshake(request, answer, captured, { secret } = {}) {
  const clientKey = fromB64url(request.clientKey);
  const own = captured.find((c) => pointOfJwk(c.jwk).equals(clientKey));
  if (!own) throw new Error('no captured ECDH key is the clientKey on the wire');
  const e = ecdh(fromB64url(own.jwk.d));
  if (!e.getPublicKey().equals(clientKey)) throw new Error('the captured private key does not give the clientKey');
  const z = e.computeSecret(fromB64url(answer.serverKey));
  let psk = null;
  if (request.psk === true) {
    if (secret === undefined) throw new Error('a PSK handshake: the test must give the secret');
    psk = pskOf(secret);
  }
  return { sessionId: answer.sessionId, z, psk, request, answer,
    ...sessionKeys(z, request.clientNonce, answer.serverNonce, psk) };
}

// ---------------------------------------------------------------------------
// A v2 client of node:crypto, to probe the server and to forge messages.

/** The handshake of a node:crypto client: { sessionId, c2s, s2c, seq, answer, ... }. */
export async function nodeHandshake(origin, { psk = null, path = '/api/e2e/handshake', fetchImpl = fetch } = {}) {
  const e = ecdh();
  const clientNonce = randomBytes(32).toString('hex');
  const request = { version: 2, clientNonce, clientKey: b64url(e.getPublicKey()) };
  if (psk) request.psk = true;
  const res = await fetchImpl(origin + path, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(request),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`handshake: ${res.status} ${text}`);
  const answer = JSON.parse(text);
  const z = e.computeSecret(fromB64url(answer.serverKey));
  return { sessionId: answer.sessionId, seq: 0, z, request, answer, origin,
    ...sessionKeys(z, clientNonce, answer.serverNonce, psk) };
}

/**
 * One v2 request of a node:crypto session: { status, headers, body (raw),
 * plaintext (opened, or null), seq }. Throws when a sealed answer does not
 * verify.
 */
export async function nodeRequest(session, method, target, { body = null, type = null, headers = {}, fetchImpl = fetch } = {}) {
  const seq = session.seq++;
  const h = new Headers(headers);
  h.set('X-E2E-Session', session.sessionId);
  h.set('X-E2E-Seq', String(seq));
  h.set('Accept', MEDIA_TYPE);
  if (type !== null) h.set('X-E2E-Content-Type', type);
  const aad = requestAAD(session.sessionId, seq, method, target, type ?? '');
  let sent;
  if (body !== null) {
    h.set('Content-Type', MEDIA_TYPE);
    sent = sealMessage(session.c2s, aad, body);
  } else {
    h.set('X-E2E-Seal', b64url(sealMessage(session.c2s, aad, Buffer.alloc(0))));
  }
  const res = await fetchImpl(session.origin + target, { method, headers: h, body: sent, redirect: 'manual' });
  const raw = Buffer.from(await res.arrayBuffer());
  const rAAD = responseAAD(session.sessionId, seq, res.status, res.headers.get('x-e2e-content-type') ?? '',
    res.headers.get('x-e2e-content-encoding') ?? '');
  let plaintext = null;
  if ((res.headers.get('content-type') || '').split(';')[0].trim() === MEDIA_TYPE && method !== 'HEAD' && raw.length) {
    plaintext = openMessage(session.s2c, rAAD, raw);
  }
  let sealOk = null;
  if (res.headers.get('x-e2e-seal') !== null) {
    sealOk = openMessage(session.s2c, rAAD, fromB64url(res.headers.get('x-e2e-seal'))).length === 0;
  }
  return { status: res.status, headers: res.headers, body: raw, plaintext, seq, sealOk };
}
