// What crossed the wire, judged with node:crypto (client/test/v2.mjs for
// protocol v2, server.mjs's PBKDF2 and AES-GCM for v1), never with the
// library's code.
//
// installWireTap() records every request the library sends through
// globalThis.fetch and captures the ECDH private keys the library generates
// (v2.mjs, captureClientKeys), so that the session keys of every handshake
// on the wire can be derived again here: Z by node:crypto's ECDH from the
// captured private key and the serverKey of the answer, k_c2s and k_s2c by
// node:crypto's HKDF from Z and the nonces of the request and the answer.
import assert from 'node:assert/strict';
import { deriveKeyNode, openNode } from './server.mjs';
import * as v2 from './v2.mjs';

export const isHandshake = (e) => new URL(e.url).pathname === '/api/e2e/handshake';

/** The request-target of a URL as Node.js's fetch sends it: path and query. */
export function targetOf(url) {
  const u = new URL(url);
  return u.pathname + u.search;
}

function mediaType(value) {
  return value ? value.split(';')[0].trim().toLowerCase() : '';
}

/**
 * The sessions of the handshakes in a list of wire entries: sessionId ->
 * { version: 1, key } or { version: 2, c2s, s2c, psk, ... }.
 */
export function sessionsOf(entries, captured, secret) {
  const sessions = new Map();
  for (const e of entries) {
    if (e.status !== 200 || !isHandshake(e)) continue;
    const request = JSON.parse(e.requestBody.toString('utf8'));
    const answer = JSON.parse(e.responseBody.toString('utf8'));
    if (answer.version === 2) {
      sessions.set(answer.sessionId, { version: 2, ...v2.keysFromHandshake(request, answer, captured, { secret }) });
    } else {
      sessions.set(answer.sessionId, { version: 1, sessionId: answer.sessionId,
        key: deriveKeyNode(secret, request.clientNonce, answer.serverNonce) });
    }
  }
  return sessions;
}

/**
 * Records every request that reaches the network through globalThis.fetch:
 * install it before the library sends anything (the library sends through
 * whatever globalThis.fetch is). Entries: { method, url, requestHeaders,
 * requestBody (Buffer|null), status, responseHeaders, responseBody (Buffer),
 * redirected }.
 */
export function installWireTap() {
  const capture = v2.captureClientKeys();
  const previous = globalThis.fetch;
  const log = [];
  const tap = async (input, init) => {
    const req = new Request(input, init);
    const requestBody = req.body ? Buffer.from(await req.clone().arrayBuffer()) : null;
    const entry = {
      method: req.method, url: req.url, requestHeaders: new Headers(req.headers), requestBody,
    };
    log.push(entry);
    const res = await previous.call(globalThis, req);
    entry.status = res.status;
    entry.redirected = res.redirected;
    entry.responseURL = res.url;
    entry.responseHeaders = new Headers(res.headers);
    entry.responseBody = Buffer.from(await res.clone().arrayBuffer());
    return res;
  };
  globalThis.fetch = tap;
  return {
    log,
    tap,
    captured: capture.captured,
    restore() {
      if (globalThis.fetch === tap) globalThis.fetch = previous;
      capture.restore();
    },
    /** The sessions of the handshakes seen so far (sessionsOf). */
    sessions(secret) {
      return sessionsOf(log, capture.captured, secret);
    },
    /** v1: the session keys of the handshakes seen so far, by sessionId. */
    keys(secret) {
      const keys = new Map();
      for (const [id, s] of this.sessions(secret)) if (s.version === 1) keys.set(id, s.key);
      return keys;
    },
  };
}

/**
 * Checks one exchange of a v2 session as node:crypto sees it, and returns
 * { seq, request (plaintext or null), response (plaintext or null),
 * moduleError (the unsealed JSON error, or null) }:
 *  - X-E2E-Seq is a decimal number;
 *  - a body is a sealed message under k_c2s bound to (session, seq, method,
 *    target, X-E2E-Content-Type), of the length of 16 KiB records; without a
 *    body, X-E2E-Seal is the sealed empty message bound the same way;
 *  - the answer: a module error (plaintext JSON, no seal), or a sealed body
 *    under k_s2c bound to (session, seq, status, X-E2E-Content-Type,
 *    X-E2E-Content-Encoding) (with a Content-Length: exactly that of 16 KiB
 *    records; streamed without one: records of at most 16 KiB), or, without
 *    a body (HEAD, 204, 304), an X-E2E-Seal bound the same way.
 * `target` defaults to the path and query of the entry's URL.
 */
export function checkV2Exchange(entry, session, { target = targetOf(entry.url) } = {}) {
  const h = entry.requestHeaders;
  assert.equal(h.get('x-e2e-session'), session.sessionId, 'X-E2E-Session is the session\'s');
  const seqText = h.get('x-e2e-seq');
  assert.match(String(seqText), /^(0|[1-9][0-9]*)$/, `X-E2E-Seq is a decimal number, not ${seqText}`);
  const seq = Number(seqText);
  assert.match(h.get('accept') || '', /application\/x-zeq-e2e/, 'Accept asks for a sealed answer');
  const innerType = h.get('x-e2e-content-type') ?? '';
  const aad = v2.requestAAD(session.sessionId, seq, entry.method, target, innerType);
  let request = null;
  if (entry.requestBody !== null) {
    assert.equal(h.get('content-type'), v2.MEDIA_TYPE, 'a body is sent as application/x-zeq-e2e');
    assert.equal(h.get('x-e2e-seal'), null, 'a request with a body has no X-E2E-Seal');
    assert.equal(h.get('content-encoding'), null, 'no Content-Encoding on a sealed body');
    request = v2.openMessage(session.c2s, aad, entry.requestBody);
    assert.equal(entry.requestBody.length, v2.sealedLength(request.length), 'the body is in 16 KiB records');
  } else {
    const seal = h.get('x-e2e-seal');
    assert.ok(seal, `${entry.method} ${target} without a body carries X-E2E-Seal`);
    assert.equal(v2.openMessage(session.c2s, aad, v2.fromB64url(seal)).length, 0, 'the seal seals the empty message');
  }
  const rh = entry.responseHeaders;
  const sealed = mediaType(rh.get('content-type')) === v2.MEDIA_TYPE;
  if (!sealed && rh.get('x-e2e-seal') === null && entry.status >= 400 && /json/.test(rh.get('content-type') || '')) {
    const text = entry.responseBody.toString('utf8');
    return { seq, request, response: null, moduleError: text ? JSON.parse(text) : { error: null } };
  }
  const raad = v2.responseAAD(session.sessionId, seq, entry.status, rh.get('x-e2e-content-type') ?? '',
    rh.get('x-e2e-content-encoding') ?? '');
  let response = null;
  if (entry.method === 'HEAD' || [204, 205, 304].includes(entry.status)) {
    assert.equal(entry.responseBody.length, 0, 'no body');
    const seal = rh.get('x-e2e-seal');
    assert.ok(seal, `the ${entry.status} answer to ${entry.method} ${target} carries X-E2E-Seal`);
    assert.equal(v2.openMessage(session.s2c, raad, v2.fromB64url(seal)).length, 0, 'the answer\'s seal seals the empty message');
  } else {
    assert.ok(sealed, `the ${entry.status} answer to ${entry.method} ${target} is application/x-zeq-e2e, not ${rh.get('content-type')}`);
    const opened = v2.openMessageDetail(session.s2c, raad, entry.responseBody);
    response = opened.plaintext;
    if (rh.get('content-length') !== null) {
      // An answer whose length the server knew before its first byte (18.8).
      assert.equal(rh.get('content-length'), String(entry.responseBody.length), 'Content-Length is the sealed length');
      assert.equal(entry.responseBody.length, v2.sealedLength(response.length), 'the answer is in 16 KiB records');
    } else {
      // Streamed (chunked): sealed as the application wrote it, a record at
      // each flush, none over 16 KiB.
      assert.ok(opened.records.every((n) => n <= v2.RECORD), `records of at most 16 KiB: ${opened.records}`);
    }
  }
  return { seq, request, response, moduleError: null };
}

/** The same for a v1 session: envelopes of 28 + n bytes under the one key. */
export function checkV1Exchange(entry, session) {
  assert.equal(entry.requestHeaders.get('x-e2e-session'), session.sessionId);
  assert.equal(entry.requestHeaders.get('x-e2e-seq'), null, 'a v1 request has no X-E2E-Seq');
  assert.match(entry.requestHeaders.get('accept'), /application\/x-zeq-e2e/);
  let request = null;
  if (entry.requestBody !== null) {
    assert.equal(entry.requestHeaders.get('content-type'), 'application/x-zeq-e2e');
    assert.equal(entry.requestHeaders.get('content-encoding'), null);
    request = openNode(session.key, entry.requestBody);
    assert.equal(entry.requestBody.length, request.length + 28);
  }
  const rh = entry.responseHeaders;
  if (mediaType(rh.get('content-type')) !== v2.MEDIA_TYPE && entry.status >= 400 && /json/.test(rh.get('content-type') || '')) {
    return { request, response: null, moduleError: JSON.parse(entry.responseBody.toString('utf8')) };
  }
  let response = null;
  if (entry.method !== 'HEAD' && ![204, 304].includes(entry.status)) {
    assert.equal(rh.get('content-type'), 'application/x-zeq-e2e');
    response = openNode(session.key, entry.responseBody);
    assert.equal(entry.responseBody.length, response.length + 28);
    assert.equal(rh.get('content-length'), String(entry.responseBody.length));
  }
  return { request, response, moduleError: null };
}

/** checkV2Exchange or checkV1Exchange, by the session's version. */
export function checkExchange(entry, session, options) {
  return session.version === 2 ? checkV2Exchange(entry, session, options) : checkV1Exchange(entry, session);
}

/** The length on the wire of a sealed body of n bytes: v2 records, v1 an envelope. */
export function sealedSize(version, n) {
  return version === 2 ? v2.sealedLength(n) : n + 28;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits for a condition (no fixed delays): resolves to its first truthy value. */
export async function until(what, check, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * Asserts that Apache read the request of session `sid` with number `seq`
 * as `method target` (its request line, from server.requestLines(), which
 * mod_log_config writes after the answer: waited for).
 */
export async function assertRequestLine(server, sid, seq, method, target) {
  const line = await until(`Apache's log line of ${sid} seq ${seq}`,
    () => server.requestLines().find((l) => l.session === sid && l.seq === String(seq)));
  assert.deepEqual([line.method, line.target], [method, target],
    `Apache read seq ${seq} as ${line.method} ${line.target}, the seal is bound to ${method} ${target}`);
  return line;
}
