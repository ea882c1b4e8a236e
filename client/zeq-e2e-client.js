/*
 * zeq-e2e-client.js: the browser half of mod_zeq_e2e (protocol v1, see
 * docs/PROTOCOL.md). One ES module, no dependencies, Web Crypto only.
 *
 *   import { zeqE2EHandshake, zeqE2EWrap } from '/static/zeq-e2e-client.js';
 *   try { await zeqE2EHandshake(window.location.origin, { secret }); zeqE2EWrap(); }
 *   catch (e) { (plaintext continues to work) }
 *
 * After a successful handshake, every same-origin request made with
 * zeqE2EFetch (or with fetch, once wrapped) travels with its body sealed in
 * an AES-256-GCM envelope (iv || tag || ciphertext) and asks for an
 * encrypted answer, which it opens before the application sees it. Answers
 * that should have been encrypted but were not are rejected (fail closed).
 * zeqE2EWebSocket opens a WebSocket whose messages travel the same way, each
 * in one binary frame; a server frame that is not a verifying envelope
 * closes the socket undelivered.
 *
 * Licensed under the Apache License, Version 2.0.
 */

/** The envelope's media type (outer Content-Type of encrypted bodies). */
export const ZEQ_E2E_MEDIA_TYPE = 'application/x-zeq-e2e';

const PROTOCOL_VERSION = 1;
const DEFAULT_HANDSHAKE_PATH = '/api/e2e/handshake';
const HDR_SESSION = 'X-E2E-Session';
const HDR_CONTENT_TYPE = 'X-E2E-Content-Type';
const HDR_CONTENT_ENCODING = 'X-E2E-Content-Encoding';
const PBKDF2_ITERATIONS = 100000;
const NONCE_LEN = 32;
const IV_LEN = 12;
const TAG_LEN = 16;
/** iv + tag: an envelope is this many bytes longer than its plaintext. */
export const ZEQ_E2E_ENVELOPE_OVERHEAD = IV_LEN + TAG_LEN;
/** Renew a session this long before it expires (at most; see renewMargin). */
const RENEW_MARGIN_MS = 60000;
/** Envelopes sealed under one key before a new handshake (protocol: 2^32). */
const MAX_SEALS_PER_SESSION = 2 ** 31;

const encoder = new TextEncoder();

/**
 * The errors this library rejects with. `code` is the server's error code
 * (`e2e_unavailable`, `e2e_session_invalid`, ...) when the server answered
 * with one, or one of the library's own:
 *   e2e_network          the handshake could not reach the server (see cause)
 *   e2e_bad_handshake_answer  the handshake answer is not protocol v1
 *   e2e_handshake_failed the handshake got an answer that is not an error
 *                        of the protocol (404 page, proxy error, ...)
 *   e2e_downgrade        an encrypted request got an answer that is not an
 *                        envelope and not a module error
 *   e2e_bad_envelope     an answer's envelope did not verify
 *   e2e_unsupported      something this client cannot do (an unknown
 *                        X-E2E-Content-Encoding, no Web Crypto, no
 *                        WebSocket, ...)
 *   e2e_no_session       zeqE2EWebSocket before a successful handshake
 *   e2e_cross_origin     zeqE2EWebSocket to another origin than the session's
 * On a WebSocket, e2e_bad_envelope (a server frame refused) is the `error`
 * property of the socket's error event.
 */
export class ZeqE2EError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{ status?: number, cause?: unknown }} [options]
   */
  constructor(code, message, options = {}) {
    const { status = 0, cause } = options;
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ZeqE2EError';
    this.code = code;
    this.status = status;
    if (cause !== undefined && this.cause === undefined) this.cause = cause;
  }
}

// ---------------------------------------------------------------------------
// Internal state: one default session for one origin.
//
// `config` is set by a successful zeqE2EHandshake and names the origin whose
// requests get encrypted, the secret (kept to renew) and the handshake path.
// `session` is { id, key (non-extractable AES-GCM CryptoKey), expiresAt,
// ttlMs, seals }. `pending` is the handshake in flight that concurrent
// requests share. A later zeqE2EWebSocket uses getSession(), sealEnvelope()
// and openEnvelope() the same way zeqE2EFetch does.

const state = {
  config: null,
  session: null,
  pending: null,
  /** the fetch zeqE2EWrap replaced, used underneath while wrapped */
  wrappedFetch: null,
};

const nativeFetchAtLoad = typeof globalThis.fetch === 'function' ? globalThis.fetch : null;

/** The fetch that really sends requests (never zeqE2EFetch itself). */
function underlyingFetch(input, init) {
  let f = state.wrappedFetch || globalThis.fetch;
  if (f === zeqE2EFetch || typeof f !== 'function') f = nativeFetchAtLoad;
  if (typeof f !== 'function') {
    return Promise.reject(new ZeqE2EError('e2e_unsupported', 'no fetch() in this environment'));
  }
  return f.call(globalThis, input, init);
}

function subtle() {
  const c = globalThis.crypto;
  if (!c || !c.subtle || typeof c.getRandomValues !== 'function') {
    throw new ZeqE2EError('e2e_unsupported',
      'Web Crypto (globalThis.crypto.subtle) is not available; browsers offer it only in ' +
      'secure contexts (https: or localhost), Node.js 18 needs --experimental-global-webcrypto');
  }
  return c.subtle;
}

function randomBytes(n) {
  subtle();
  const b = new Uint8Array(n);
  globalThis.crypto.getRandomValues(b);
  return b;
}

function toHex(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += bytes[i].toString(16).padStart(2, '0');
  return s;
}

function fromHex(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
  return out;
}

function secretBytes(secret) {
  if (typeof secret === 'string') return encoder.encode(secret);
  if (secret instanceof ArrayBuffer) return new Uint8Array(secret.slice(0));
  if (ArrayBuffer.isView(secret)) {
    return new Uint8Array(secret.buffer.slice(secret.byteOffset, secret.byteOffset + secret.byteLength));
  }
  throw new TypeError('zeqE2EHandshake: options.secret must be a string or bytes');
}

/** The media type of a Content-Type value, lowercased, without parameters. */
function mediaType(value) {
  return value ? value.split(';')[0].trim().toLowerCase() : '';
}

function throwIfAborted(signal) {
  if (signal && signal.aborted) {
    throw signal.reason !== undefined ? signal.reason : new DOMException('The operation was aborted.', 'AbortError');
  }
}

/** Waits for promise, but rejects as soon as signal aborts. */
function abortable(promise, signal) {
  if (!signal) return promise;
  throwIfAborted(signal);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      reject(signal.reason !== undefined ? signal.reason : new DOMException('The operation was aborted.', 'AbortError'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}

// ---------------------------------------------------------------------------
// Envelope: iv (12) || tag (16) || ciphertext. Web Crypto's AES-GCM works on
// ciphertext || tag, hence the reordering.

/** Seals plaintext bytes into an envelope under an AES-GCM CryptoKey. */
async function sealEnvelope(key, plaintext) {
  const iv = randomBytes(IV_LEN);
  const sealed = new Uint8Array(await subtle().encrypt(
    { name: 'AES-GCM', iv, tagLength: TAG_LEN * 8 }, key, plaintext));
  const n = sealed.length - TAG_LEN;
  const out = new Uint8Array(ZEQ_E2E_ENVELOPE_OVERHEAD + n);
  out.set(iv, 0);
  out.set(sealed.subarray(n), IV_LEN);
  out.set(sealed.subarray(0, n), ZEQ_E2E_ENVELOPE_OVERHEAD);
  return out;
}

/** Opens an envelope; rejects with e2e_bad_envelope unless the tag verifies. */
async function openEnvelope(key, envelope) {
  const env = envelope instanceof Uint8Array ? envelope : new Uint8Array(envelope);
  if (env.length < ZEQ_E2E_ENVELOPE_OVERHEAD) {
    throw new ZeqE2EError('e2e_bad_envelope', `envelope of ${env.length} bytes is shorter than 28`);
  }
  const n = env.length - ZEQ_E2E_ENVELOPE_OVERHEAD;
  const data = new Uint8Array(n + TAG_LEN);
  data.set(env.subarray(ZEQ_E2E_ENVELOPE_OVERHEAD), 0);
  data.set(env.subarray(IV_LEN, ZEQ_E2E_ENVELOPE_OVERHEAD), n);
  try {
    return new Uint8Array(await subtle().decrypt(
      { name: 'AES-GCM', iv: env.slice(0, IV_LEN), tagLength: TAG_LEN * 8 }, key, data));
  } catch (e) {
    throw new ZeqE2EError('e2e_bad_envelope', 'the envelope did not verify (wrong key or altered bytes)', { cause: e });
  }
}

/** PBKDF2-HMAC-SHA256(secret, clientNonce || serverNonce, 100000) -> AES-256-GCM. */
async function deriveSessionKey(secret, clientNonce, serverNonce) {
  const s = subtle();
  const base = await s.importKey('raw', secret, 'PBKDF2', false, ['deriveKey']);
  const salt = new Uint8Array(NONCE_LEN * 2);
  salt.set(clientNonce, 0);
  salt.set(serverNonce, NONCE_LEN);
  return s.deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt, iterations: PBKDF2_ITERATIONS },
    base, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

// ---------------------------------------------------------------------------
// Handshake and sessions.

async function readModuleError(res) {
  if (!/json/i.test(res.headers.get('content-type') || '')) {
    if (res.body) await res.body.cancel().catch(() => {});
    return null;
  }
  let text;
  try { text = await res.text(); } catch { return null; }
  try {
    const j = JSON.parse(text);
    if (j && typeof j.error === 'string' && j.error.startsWith('e2e_')) {
      return { code: j.error, message: typeof j.message === 'string' ? j.message : '', text };
    }
  } catch { /* not JSON */ }
  return null;
}

/** One handshake against config; resolves to a new session object. */
async function performHandshake(config) {
  const clientNonce = randomBytes(NONCE_LEN);
  const url = new URL(config.handshakePath, config.origin).href;
  const started = Date.now();
  let res;
  try {
    res = await underlyingFetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ clientNonce: toHex(clientNonce) }),
      cache: 'no-store',
      credentials: 'same-origin',
    });
  } catch (e) {
    throw new ZeqE2EError('e2e_network', `handshake with ${url} failed: ${e && e.message}`, { cause: e });
  }
  if (res.status !== 200) {
    const err = await readModuleError(res);
    if (err) {
      throw new ZeqE2EError(err.code, `handshake refused (${res.status} ${err.code}): ${err.message}`,
        { status: res.status });
    }
    throw new ZeqE2EError('e2e_handshake_failed',
      `handshake with ${url} answered ${res.status} without a protocol error`, { status: res.status });
  }
  let answer;
  try {
    answer = await res.json();
  } catch (e) {
    throw new ZeqE2EError('e2e_bad_handshake_answer', 'the handshake answer is not JSON', { status: 200, cause: e });
  }
  const bad = (why) => new ZeqE2EError('e2e_bad_handshake_answer', `the handshake answer ${why}`, { status: 200 });
  if (!answer || typeof answer !== 'object') throw bad('is not a JSON object');
  if (answer.version !== PROTOCOL_VERSION) throw bad(`has version ${JSON.stringify(answer.version)}, not 1`);
  if (typeof answer.sessionId !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(answer.sessionId)) {
    throw bad('has no valid sessionId');
  }
  if (typeof answer.serverNonce !== 'string' || !/^[0-9a-fA-F]{64}$/.test(answer.serverNonce)) {
    throw bad('has no valid serverNonce');
  }
  if (!Number.isFinite(answer.expiresIn) || answer.expiresIn <= 0) throw bad('has no valid expiresIn');
  const key = await deriveSessionKey(config.secret, clientNonce, fromHex(answer.serverNonce));
  const ttlMs = answer.expiresIn * 1000;
  return { id: answer.sessionId, key, expiresAt: started + ttlMs, ttlMs, seals: 0 };
}

/** How long before expiresAt a session is renewed. */
function renewMargin(session) {
  return Math.min(RENEW_MARGIN_MS, session.ttlMs / 5);
}

function sessionIsFresh(session) {
  return session && session.seals < MAX_SEALS_PER_SESSION &&
    Date.now() < session.expiresAt - renewMargin(session);
}

/**
 * A new handshake shared by everyone who asks while it runs. `stale` is the
 * session the caller found wanting: if another caller has already replaced
 * it, that newer session is used.
 */
function renewSession(stale) {
  if (state.session && state.session !== stale) return Promise.resolve(state.session);
  if (!state.pending) {
    const config = state.config;
    state.pending = performHandshake(config).then(
      (session) => {
        if (state.config === config) state.session = session;
        state.pending = null;
        return session;
      },
      (e) => { state.pending = null; throw e; },
    );
  }
  return state.pending;
}

/**
 * The session to use now: the current one, renewed first when it is close to
 * its expiry (if the renewal fails while the old one still lives, the old one
 * is used).
 */
async function getSession(signal) {
  const current = state.session;
  if (sessionIsFresh(current)) return current;
  try {
    return await abortable(renewSession(current), signal);
  } catch (e) {
    if (current && Date.now() < current.expiresAt && !(signal && signal.aborted)) return current;
    throw e;
  }
}

/**
 * Performs the handshake with `origin`, derives the session key and keeps it
 * as the default session: from then on zeqE2EFetch encrypts the requests to
 * that origin. Resolves to { sessionId, expiresAt } (expiresAt in
 * milliseconds since the epoch, like Date.now()). Rejects with a
 * ZeqE2EError whose code is the server's (e2e_unavailable, ...) or the
 * library's (e2e_network, ...); the previous session, if any, stays.
 */
export async function zeqE2EHandshake(origin, options = {}) {
  if (origin === undefined || origin === null) {
    if (!globalThis.location) throw new TypeError('zeqE2EHandshake: origin is required outside a page');
    origin = globalThis.location.origin;
  }
  const config = {
    origin: new URL(String(origin)).origin,
    secret: secretBytes(options.secret),
    handshakePath: options.handshakePath || DEFAULT_HANDSHAKE_PATH,
  };
  const session = await performHandshake(config);
  state.config = config;
  state.session = session;
  state.pending = null;
  return { sessionId: session.id, expiresAt: session.expiresAt };
}

/**
 * The default session: { sessionId, expiresAt, origin } or null before a
 * successful handshake.
 */
export function zeqE2ESession() {
  if (!state.config || !state.session) return null;
  return { sessionId: state.session.id, expiresAt: state.session.expiresAt, origin: state.config.origin };
}

// ---------------------------------------------------------------------------
// Requests and responses.

/** Serialises any fetch body the way fetch would: { bytes, type }. */
async function bodyBytes(body) {
  // Response's body extraction is fetch's: string, URLSearchParams, FormData
  // (multipart with its boundary), Blob (its type), BufferSource,
  // ReadableStream (read to the end).
  const r = new Response(body);
  return { bytes: new Uint8Array(await r.arrayBuffer()), type: r.headers.get('content-type') };
}

function resolveURL(input) {
  const raw = (typeof Request !== 'undefined' && input instanceof Request) ? input.url : String(input);
  // fetch resolves against the document's base URL (a worker's location).
  const base = (globalThis.document && globalThis.document.baseURI) ||
    (globalThis.location && globalThis.location.href) || (state.config && state.config.origin + '/');
  try {
    return new URL(raw, base);
  } catch {
    return null;
  }
}

/** The body-less statuses (no envelope, nothing to authenticate). */
function isNullBodyStatus(status) {
  return (status >= 100 && status < 200) || status === 204 || status === 205 || status === 304;
}

function withURL(response, original) {
  try {
    Object.defineProperty(response, 'url', { value: original.url, configurable: true });
    Object.defineProperty(response, 'redirected', { value: original.redirected, configurable: true });
  } catch { /* not essential */ }
  return response;
}

async function decodeContent(bytes, coding) {
  const codings = coding.split(',').map((c) => c.trim().toLowerCase()).filter((c) => c && c !== 'identity');
  for (let i = codings.length - 1; i >= 0; i--) {
    let format = codings[i];
    if (format === 'x-gzip') format = 'gzip';
    if ((format !== 'gzip' && format !== 'deflate') || typeof DecompressionStream === 'undefined') {
      throw new ZeqE2EError('e2e_unsupported', `cannot undo X-E2E-Content-Encoding ${codings[i]}`);
    }
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream(format));
    bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  }
  return bytes;
}

/** Turns the answer to an encrypted request into what the app sees. */
async function openResponse(res, session, method, signal) {
  const isEnvelope = mediaType(res.headers.get('content-type')) === ZEQ_E2E_MEDIA_TYPE;
  const headers = new Headers(res.headers);
  if (isEnvelope) {
    const innerType = res.headers.get(HDR_CONTENT_TYPE);
    const coding = res.headers.get(HDR_CONTENT_ENCODING);
    headers.delete(HDR_CONTENT_TYPE);
    headers.delete(HDR_CONTENT_ENCODING);
    headers.delete('content-type');
    headers.delete('content-length');
    if (innerType) headers.set('content-type', innerType);
    const init = { status: res.status, statusText: res.statusText, headers };
    if (method === 'HEAD' || isNullBodyStatus(res.status)) {
      const outer = Number(res.headers.get('content-length'));
      if (!coding && Number.isInteger(outer) && outer >= ZEQ_E2E_ENVELOPE_OVERHEAD) {
        headers.set('content-length', String(outer - ZEQ_E2E_ENVELOPE_OVERHEAD));
      }
      if (res.body) await res.body.cancel().catch(() => {});
      return withURL(new Response(null, init), res);
    }
    const envelope = new Uint8Array(await abortable(res.arrayBuffer(), signal));
    let plain = await openEnvelope(session.key, envelope);
    if (coding) plain = await decodeContent(plain, coding);
    headers.set('content-length', String(plain.length));
    return withURL(new Response(plain, init), res);
  }
  // Not an envelope: acceptable only when there is no body to trust.
  if (res.type === 'opaqueredirect' || method === 'HEAD' || isNullBodyStatus(res.status)) return res;
  if (res.status >= 300 && res.status < 400) {
    // redirect: 'manual' outside a browser; a redirect's body is never used.
    if (res.body) await res.body.cancel().catch(() => {});
    headers.delete('content-length');
    return withURL(new Response(null, { status: res.status, statusText: res.statusText, headers }), res);
  }
  if (res.status >= 400) {
    const err = await readModuleError(res);
    if (err) {
      // A module error: plaintext by design, answered before the app ran.
      const out = withURL(new Response(err.text, { status: res.status, statusText: res.statusText, headers }), res);
      out.zeqE2EError = err.code;
      return out;
    }
  } else if (res.body) {
    await res.body.cancel().catch(() => {});
  }
  throw new ZeqE2EError('e2e_downgrade',
    `${method} ${res.url} was sent encrypted but answered ${res.status} in plaintext ` +
    `(${res.headers.get('content-type') || 'no Content-Type'}); refusing an unauthenticated body`,
    { status: res.status });
}

/**
 * fetch with end-to-end encryption: same signature and result as fetch.
 * Requests to the handshake's origin get their body sealed and ask for an
 * encrypted answer, which is opened into a genuine Response (original status,
 * statusText and headers, Content-Type = the application's). Other requests,
 * and all requests before a successful handshake, go to fetch untouched.
 *
 * Rejects (fail closed) with ZeqE2EError e2e_downgrade when an encrypted
 * request gets a plaintext answer that is not a module error, and with
 * e2e_bad_envelope when the answer's envelope does not verify. Module errors
 * (plaintext JSON {"error": "e2e_..."}, status 4xx/5xx) resolve as a Response
 * with that status and body, and a `zeqE2EError` property naming the code;
 * 401 e2e_session_invalid is first handled by one new handshake and one retry.
 */
export async function zeqE2EFetch(input, init) {
  const config = state.config;
  if (!config) return underlyingFetch(input, init);
  const url = resolveURL(input);
  if (!url || url.origin !== config.origin || url.pathname === config.handshakePath) {
    return underlyingFetch(input, init);
  }
  const isRequest = typeof Request !== 'undefined' && input instanceof Request;
  const signal = (init && init.signal) || (isRequest ? input.signal : undefined);
  throwIfAborted(signal);

  // The plaintext body and its media type, read once, sealed for each try.
  let plain = null;
  let plainType = null;
  if (init && init.body !== undefined && init.body !== null) {
    ({ bytes: plain, type: plainType } = await abortable(bodyBytes(init.body), signal));
  } else if (isRequest && input.body !== null) {
    plain = new Uint8Array(await abortable(input.clone().arrayBuffer(), signal));
    plainType = input.headers.get('content-type');
  }
  const baseHeaders = new Headers(init && init.headers !== undefined ? init.headers : (isRequest ? input.headers : undefined));
  if (plain !== null) {
    if (baseHeaders.has('content-encoding')) {
      throw new ZeqE2EError('e2e_unsupported', 'an encrypted request cannot carry Content-Encoding');
    }
    const type = baseHeaders.get('content-type') || plainType || 'application/octet-stream';
    baseHeaders.set(HDR_CONTENT_TYPE, type);
    baseHeaders.set('content-type', ZEQ_E2E_MEDIA_TYPE);
    baseHeaders.delete('content-length');
  }
  const accept = baseHeaders.get('accept');
  if (!accept || !accept.toLowerCase().includes(ZEQ_E2E_MEDIA_TYPE)) {
    baseHeaders.set('accept', `${accept || '*/*'}, ${ZEQ_E2E_MEDIA_TYPE}`);
  }
  const method = (init && init.method ? String(init.method) : (isRequest ? input.method : 'GET')).toUpperCase();

  for (let attempt = 0; ; attempt++) {
    const session = await getSession(signal);
    const headers = new Headers(baseHeaders);
    headers.set(HDR_SESSION, session.id);
    const requestInit = { ...(init || {}), headers };
    if (plain !== null) {
      session.seals++;
      requestInit.body = await sealEnvelope(session.key, plain);
    } else {
      delete requestInit.body;
    }
    if ('duplex' in requestInit) delete requestInit.duplex;
    const request = new Request(isRequest ? input : url.href, requestInit);
    const res = await underlyingFetch(request);
    if (res.status === 401 && attempt === 0 &&
        mediaType(res.headers.get('content-type')) !== ZEQ_E2E_MEDIA_TYPE) {
      const err = await readModuleError(res.clone());
      if (err && err.code === 'e2e_session_invalid') {
        if (res.body) await res.body.cancel().catch(() => {});
        // Forget it so that the retry handshakes (shared with concurrent
        // requests that got the same answer).
        await abortable(renewSession(session), signal);
        continue;
      }
    }
    return openResponse(res, session, method, signal);
  }
}

// ---------------------------------------------------------------------------
// Wrapping the global fetch.

/** Replaces globalThis.fetch with zeqE2EFetch. Wrapping twice is harmless. */
export function zeqE2EWrap() {
  if (globalThis.fetch === zeqE2EFetch) return;
  state.wrappedFetch = globalThis.fetch;
  globalThis.fetch = zeqE2EFetch;
}

/** Restores the fetch that zeqE2EWrap replaced. Harmless when not wrapped. */
export function zeqE2EUnwrap() {
  if (globalThis.fetch !== zeqE2EFetch) return;
  globalThis.fetch = state.wrappedFetch || nativeFetchAtLoad;
  state.wrappedFetch = null;
}

// ---------------------------------------------------------------------------
// WebSockets (protocol section 16). The socket is opened with
// ?e2e_session=<sessionId>; every data message, both ways, is one binary
// frame carrying an envelope of type || message (0x01 text, 0x02 binary).
// Sealing and opening are asynchronous (Web Crypto), so both directions run
// through promise chains that keep the order of messages.

const WS_TYPE_TEXT = 0x01;
const WS_TYPE_BINARY = 0x02;
const WS_SESSION_PARAM = 'e2e_session';
const WS_CONNECTING = 0;
const WS_OPEN = 1;
const WS_CLOSING = 2;
const WS_CLOSED = 3;
/**
 * The codes of the closes the library starts itself: 4000 + the RFC 6455
 * code, since close() only takes 1000 and 3000-4999 in browsers. 4008: a
 * server frame that is not a binary frame with a verifying envelope of a
 * known type (1008, policy violation); 4007: a text message that is not
 * UTF-8 (1007).
 */
export const ZEQ_E2E_WS_CLOSE_POLICY = 4008;
export const ZEQ_E2E_WS_CLOSE_BAD_TEXT = 4007;
/** The close code of a socket that ends without a close frame (RFC 6455). */
const WS_CLOSE_ABNORMAL = 1006;

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

function invalidState(message) {
  return new DOMException(message, 'InvalidStateError');
}

/**
 * The URL of a WebSocket to the session's origin: relative URLs resolve
 * against the page when the page is on that origin, else against the origin;
 * http(s) becomes ws(s), the fragment and any e2e_session parameter go.
 * Throws SyntaxError as WebSocket does, ZeqE2EError e2e_cross_origin for
 * another origin (the session must not travel elsewhere).
 */
function webSocketURL(input, origin) {
  let base = origin + '/';
  const pageBase = globalThis.document && globalThis.document.baseURI;
  if (pageBase) {
    try { if (new URL(pageBase).origin === origin) base = pageBase; } catch { /* the origin */ }
  }
  let url;
  try {
    url = new URL(String(input), base);
  } catch {
    throw new DOMException(`The URL '${input}' is invalid.`, 'SyntaxError');
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new DOMException(`The URL's scheme must be either 'http', 'https', 'ws', or 'wss'. '${url.protocol}' is not allowed.`,
      'SyntaxError');
  }
  url.hash = '';
  const httpOrigin = new URL(`${url.protocol === 'wss:' ? 'https' : 'http'}://${url.host}`).origin;
  if (httpOrigin !== origin) {
    throw new ZeqE2EError('e2e_cross_origin',
      `zeqE2EWebSocket: ${url.href} is not on the origin of the session (${origin})`);
  }
  // Any e2e_session of the caller's is dropped: the library sets its own.
  const params = url.search.slice(1).split('&')
    .filter((p) => p !== '' && p.split('=')[0] !== WS_SESSION_PARAM);
  url.search = params.length ? `?${params.join('&')}` : '';
  return url;
}

/**
 * The bytes of a message for send(): { type, size, bytes }, bytes a
 * Uint8Array (copied now) or, for a Blob, a function that reads them.
 */
function outgoingMessage(data) {
  if (typeof data === 'string') {
    const bytes = encoder.encode(data);
    return { type: WS_TYPE_TEXT, size: bytes.length, bytes };
  }
  if (data instanceof ArrayBuffer) {
    return { type: WS_TYPE_BINARY, size: data.byteLength, bytes: new Uint8Array(data.slice(0)) };
  }
  if (ArrayBuffer.isView(data)) {
    // Copied now, as WebSocket does: later changes to the view do not count.
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    return { type: WS_TYPE_BINARY, size: bytes.length, bytes };
  }
  if (typeof Blob !== 'undefined' && data instanceof Blob) {
    return { type: WS_TYPE_BINARY, size: data.size, bytes: () => data.arrayBuffer().then((b) => new Uint8Array(b)) };
  }
  if (typeof SharedArrayBuffer !== 'undefined' && data instanceof SharedArrayBuffer) {
    return { type: WS_TYPE_BINARY, size: data.byteLength, bytes: new Uint8Array(data).slice() };
  }
  // Anything else is sent as its string, like WebSocket.send does.
  return outgoingMessage(String(data));
}

/** The bytes (or a promise of them) of a received binary frame; null for a text frame. */
function incomingBytes(data) {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (typeof Blob !== 'undefined' && data instanceof Blob) return data.arrayBuffer().then((b) => new Uint8Array(b));
  return null;
}

function closeEvent(code, reason, wasClean) {
  if (typeof CloseEvent === 'function') return new CloseEvent('close', { code, reason, wasClean });
  const ev = new Event('close');
  Object.defineProperties(ev, {
    code: { value: code, enumerable: true },
    reason: { value: reason, enumerable: true },
    wasClean: { value: wasClean, enumerable: true },
  });
  return ev;
}

function errorEvent(error) {
  const ev = new Event('error');
  if (error !== undefined) Object.defineProperty(ev, 'error', { value: error, enumerable: true });
  return ev;
}

/**
 * A WebSocket whose messages travel encrypted under the default session: the
 * interface of WebSocket (an EventTarget), send() seals, and message events
 * deliver what the server's application sent. See zeqE2EWebSocket.
 */
export class ZeqE2EWebSocket extends EventTarget {
  static CONNECTING = WS_CONNECTING;
  static OPEN = WS_OPEN;
  static CLOSING = WS_CLOSING;
  static CLOSED = WS_CLOSED;

  #url;
  #origin;
  #protocols;
  #socket = null;
  #session = null;
  #readyState = WS_CONNECTING;
  #binaryType = 'blob';
  /** bytes given to send() not yet handed to the socket (being sealed) */
  #queued = 0;
  /** bytes given to send() after the socket began to close */
  #discarded = 0;
  #sending = Promise.resolve();
  #receiving = Promise.resolve();
  /** the library failed the socket (a bad frame): nothing more is delivered */
  #failed = false;
  /** close() was called: messages still arriving are dropped, as WebSocket does */
  #closeCalled = false;
  #handlers = { open: null, message: null, error: null, close: null };

  /**
   * @param {string | URL} url
   * @param {string | string[]} [protocols]
   */
  constructor(url, protocols) {
    super();
    const config = state.config;
    if (!config || !state.session) {
      throw new ZeqE2EError('e2e_no_session',
        'zeqE2EWebSocket needs the session of a successful zeqE2EHandshake: call it first');
    }
    if (typeof globalThis.WebSocket !== 'function') {
      throw new ZeqE2EError('e2e_unsupported', 'no WebSocket in this environment (Node.js has one from version 22)');
    }
    subtle();
    const target = webSocketURL(url, config.origin);
    this.#url = target.href;
    this.#origin = target.origin;
    this.#protocols = protocols;
    if (sessionIsFresh(state.session)) {
      // Errors of WebSocket's constructor (bad protocols, a blocked port)
      // are thrown here, as by `new WebSocket`.
      this.#connect(state.session);
    } else {
      // Close to its expiry: renewed first, as zeqE2EFetch does.
      getSession().then((session) => {
        if (this.#readyState !== WS_CONNECTING) {
          this.#abort(undefined);
          return;
        }
        try {
          this.#connect(session);
        } catch (e) {
          this.#abort(e);
        }
      }, (e) => this.#abort(e));
    }
  }

  /** Opens the underlying socket with the session's id in the query. */
  #connect(session) {
    const wire = new URL(this.#url);
    wire.search = `${wire.search ? `${wire.search}&` : '?'}${WS_SESSION_PARAM}=${encodeURIComponent(session.id)}`;
    const socket = this.#protocols === undefined
      ? new globalThis.WebSocket(wire.href)
      : new globalThis.WebSocket(wire.href, this.#protocols);
    this.#session = session;
    this.#socket = socket;
    socket.binaryType = 'arraybuffer';
    socket.addEventListener('open', () => this.#onOpen());
    socket.addEventListener('message', (ev) => this.#onMessage(ev));
    socket.addEventListener('error', () => this.#onError());
    socket.addEventListener('close', (ev) => this.#onClose(ev));
  }

  /** Ends a socket that never got its underlying one: error, then close 1006. */
  #abort(error) {
    this.#readyState = WS_CLOSED;
    this.dispatchEvent(errorEvent(error));
    this.dispatchEvent(closeEvent(WS_CLOSE_ABNORMAL, '', false));
  }

  /** Runs step after every earlier event of the socket, in order. */
  #inOrder(step) {
    this.#receiving = this.#receiving.then(step).catch((e) => this.#fail(e));
  }

  #onOpen() {
    this.#inOrder(() => {
      if (this.#readyState !== WS_CONNECTING) return;
      this.#readyState = WS_OPEN;
      this.dispatchEvent(new Event('open'));
    });
  }

  #onMessage(ev) {
    if (this.#failed) return;
    const bytes = incomingBytes(ev.data);
    if (bytes === null) {
      this.#inOrder(() => {
        throw new ZeqE2EError('e2e_bad_envelope',
          'the server sent a text frame on an encrypted WebSocket (plaintext is refused)');
      });
      return;
    }
    const key = this.#session.key;
    // Opened now (in parallel), delivered in order.
    const opened = Promise.resolve(bytes).then((env) => openEnvelope(key, env));
    opened.catch(() => {});
    this.#inOrder(async () => this.#deliver(await opened));
  }

  /** Delivers type || message as a MessageEvent; throws for a bad one. */
  #deliver(plain) {
    if (this.#failed || this.#closeCalled) return;
    let data;
    if (plain.length >= 1 && plain[0] === WS_TYPE_TEXT) {
      try {
        data = utf8Fatal.decode(plain.subarray(1));
      } catch (e) {
        const err = new ZeqE2EError('e2e_bad_envelope', 'a text message from the server is not UTF-8', { cause: e });
        err.closeCode = ZEQ_E2E_WS_CLOSE_BAD_TEXT;
        throw err;
      }
    } else if (plain.length >= 1 && plain[0] === WS_TYPE_BINARY) {
      data = this.#binaryType === 'arraybuffer' ? plain.slice(1).buffer : new Blob([plain.subarray(1)]);
    } else {
      throw new ZeqE2EError('e2e_bad_envelope', plain.length
        ? `a message from the server has the unknown type byte 0x${plain[0].toString(16).padStart(2, '0')}`
        : 'a message from the server has no type byte');
    }
    this.dispatchEvent(new MessageEvent('message', { data, origin: this.#origin }));
  }

  #onError() {
    this.#inOrder(() => {
      if (!this.#failed) this.dispatchEvent(errorEvent(undefined));
    });
  }

  #onClose(ev) {
    if (this.#readyState < WS_CLOSING) this.#readyState = WS_CLOSING;
    const { code, reason, wasClean } = ev;
    this.#inOrder(() => {
      this.#readyState = WS_CLOSED;
      this.dispatchEvent(closeEvent(code, reason, wasClean && !this.#failed));
    });
  }

  /**
   * Fails the socket: closes the underlying one at once (4008, or the
   * error's closeCode), fires error with the ZeqE2EError as event.error;
   * nothing more is delivered or sent. The close event follows when the
   * underlying socket has closed.
   */
  #fail(error) {
    if (this.#failed || this.#readyState === WS_CLOSED) return;
    this.#failed = true;
    if (this.#readyState < WS_CLOSING) this.#readyState = WS_CLOSING;
    const err = error instanceof ZeqE2EError ? error
      : new ZeqE2EError('e2e_unsupported', `the WebSocket failed: ${error && error.message}`, { cause: error });
    try {
      if (this.#socket && this.#socket.readyState < WS_CLOSING) {
        this.#socket.close(err.closeCode || ZEQ_E2E_WS_CLOSE_POLICY, err.code);
      }
    } catch { /* already closing */ }
    this.dispatchEvent(errorEvent(err));
  }

  /**
   * Seals data (string: a text message; ArrayBuffer, a typed array, DataView
   * or Blob: a binary message) into one binary frame. Messages leave in the
   * order of the calls.
   */
  send(data) {
    if (arguments.length === 0) throw new TypeError("Failed to execute 'send': 1 argument required, but only 0 present.");
    if (this.#readyState === WS_CONNECTING) {
      throw invalidState("Failed to execute 'send' on 'ZeqE2EWebSocket': Still in CONNECTING state.");
    }
    const message = outgoingMessage(data);
    if (this.#readyState !== WS_OPEN || this.#failed) {
      // As WebSocket does: counted, and dropped.
      this.#discarded += message.size;
      return;
    }
    const session = this.#session;
    session.seals++;
    this.#queued += message.size;
    const read = typeof message.bytes === 'function' ? message.bytes() : message.bytes;
    const sealed = Promise.resolve(read).then((bytes) => {
      const plain = new Uint8Array(1 + bytes.length);
      plain[0] = message.type;
      plain.set(bytes, 1);
      return sealEnvelope(session.key, plain);
    });
    sealed.catch(() => {});
    this.#sending = this.#sending.then(async () => {
      let envelope;
      try {
        envelope = await sealed;
      } catch (e) {
        this.#queued -= message.size;
        this.#fail(e);
        return;
      }
      this.#queued -= message.size;
      const socket = this.#socket;
      if (!this.#failed && socket.readyState === WS_OPEN) socket.send(envelope);
    });
  }

  /**
   * Closes the socket after the messages already given to send(). code is
   * 1000 or 3000-4999, reason at most 123 bytes of UTF-8, as for WebSocket.
   */
  close(code, reason) {
    if (code !== undefined) {
      code = Number(code);
      if (code !== 1000 && !(code >= 3000 && code <= 4999)) {
        throw new DOMException(`The close code must be either 1000, or between 3000 and 4999. ${code} is neither.`,
          'InvalidAccessError');
      }
    }
    if (reason !== undefined && encoder.encode(String(reason)).length > 123) {
      throw new DOMException('The close reason must not be greater than 123 UTF-8 bytes.', 'SyntaxError');
    }
    if (this.#readyState >= WS_CLOSING) return;
    const args = [];
    if (code !== undefined || reason !== undefined) args.push(code);
    if (reason !== undefined) args.push(String(reason));
    const wasConnecting = this.#readyState === WS_CONNECTING;
    this.#readyState = WS_CLOSING;
    this.#closeCalled = true;
    const socket = this.#socket;
    if (!socket) return; // the session is being renewed: #abort follows
    if (wasConnecting) {
      socket.close(...args);
      return;
    }
    this.#sending = this.#sending.then(() => {
      if (socket.readyState < WS_CLOSING) socket.close(...args);
    });
  }

  /** The URL, resolved, without e2e_session. */
  get url() { return this.#url; }
  get readyState() { return this.#readyState; }
  get protocol() { return this.#socket ? this.#socket.protocol : ''; }
  get extensions() { return this.#socket ? this.#socket.extensions : ''; }
  /**
   * Bytes given to send() and not sent yet: those being sealed, plus the
   * underlying socket's (envelopes, 29 bytes more per message).
   */
  get bufferedAmount() {
    return this.#queued + this.#discarded + (this.#socket ? this.#socket.bufferedAmount : 0);
  }
  get binaryType() { return this.#binaryType; }
  set binaryType(value) {
    if (value === 'blob' || value === 'arraybuffer') this.#binaryType = value;
  }

  #getHandler(type) { return this.#handlers[type] ? this.#handlers[type].fn : null; }
  #setHandler(type, fn) {
    const value = typeof fn === 'function' || (fn !== null && typeof fn === 'object') ? fn : null;
    let h = this.#handlers[type];
    if (value === null) {
      if (h) this.removeEventListener(type, h.listener);
      this.#handlers[type] = null;
      return;
    }
    if (!h) {
      h = { fn: value, listener: null };
      h.listener = (ev) => (typeof h.fn === 'function' ? h.fn.call(this, ev) : undefined);
      this.#handlers[type] = h;
      this.addEventListener(type, h.listener);
    }
    h.fn = value;
  }

  get onopen() { return this.#getHandler('open'); }
  set onopen(fn) { this.#setHandler('open', fn); }
  get onmessage() { return this.#getHandler('message'); }
  set onmessage(fn) { this.#setHandler('message', fn); }
  get onerror() { return this.#getHandler('error'); }
  set onerror(fn) { this.#setHandler('error', fn); }
  get onclose() { return this.#getHandler('close'); }
  set onclose(fn) { this.#setHandler('close', fn); }
}

for (const [name, value] of [['CONNECTING', WS_CONNECTING], ['OPEN', WS_OPEN], ['CLOSING', WS_CLOSING], ['CLOSED', WS_CLOSED]]) {
  Object.defineProperty(ZeqE2EWebSocket.prototype, name, { value, enumerable: true });
}

/**
 * Opens a WebSocket whose messages travel encrypted under the default
 * session (protocol section 16): same interface as WebSocket. It performs no
 * handshake of its own; throws ZeqE2EError e2e_no_session before a
 * successful zeqE2EHandshake.
 */
export function zeqE2EWebSocket(url, protocols) {
  return new ZeqE2EWebSocket(url, protocols);
}
