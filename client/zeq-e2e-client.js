/*
 * zeq-e2e-client.js: the browser half of mod_zeq_e2e (docs/PROTOCOL.md).
 * One ES module, no dependencies, Web Crypto only.
 *
 *   import { zeqE2EHandshake, zeqE2EWrap } from '/static/zeq-e2e-client.js';
 *   try { await zeqE2EHandshake(window.location.origin); zeqE2EWrap(); }
 *   catch (e) { (plaintext continues to work) }
 *
 * Protocol version 2 (section 18) by default: the handshake is an ECDH key
 * agreement (P-256, HKDF-SHA256), so the page holds no secret and whoever
 * records the traffic, page included, learns nothing of any body. Each
 * direction has its own key; every request carries a sequence number and is
 * sealed with its method, target and type, every answer with its request's
 * number and its status. { secret } adds pre-shared key mode, { serverKey }
 * pins the server's signing key, { protocol: 1, secret } speaks version 1.
 *
 * After a successful handshake, every same-origin request made with
 * zeqE2EFetch (or with fetch, once wrapped) travels with its body sealed and
 * asks for a sealed answer, which it verifies and opens before the
 * application sees it. Answers that should have been sealed but were not, or
 * that do not verify, are rejected (fail closed). v2 answers stream: each
 * record is opened as it arrives, and an answer cut before its final record
 * errors with e2e_truncated, never as a shorter body. zeqE2EEventSource is
 * EventSource over it. zeqE2EWebSocket opens a WebSocket whose messages
 * travel the same way, each in one binary frame; a server frame that does
 * not verify closes the socket undelivered.
 *
 * Licensed under the Apache License, Version 2.0.
 */

/** The media type of sealed bodies (outer Content-Type). */
export const ZEQ_E2E_MEDIA_TYPE = 'application/x-zeq-e2e';

/** The protocol version zeqE2EHandshake speaks unless told otherwise. */
export const ZEQ_E2E_PROTOCOL = 2;

const DEFAULT_HANDSHAKE_PATH = '/api/e2e/handshake';
const HDR_SESSION = 'X-E2E-Session';
const HDR_SEQ = 'X-E2E-Seq';
const HDR_SEAL = 'X-E2E-Seal';
const HDR_CONTENT_TYPE = 'X-E2E-Content-Type';
const HDR_CONTENT_ENCODING = 'X-E2E-Content-Encoding';
const PBKDF2_ITERATIONS = 100000;
const NONCE_LEN = 32;
const IV_LEN = 12;
const TAG_LEN = 16;
/** v1: iv + tag, an envelope is this many bytes longer than its plaintext. */
export const ZEQ_E2E_ENVELOPE_OVERHEAD = IV_LEN + TAG_LEN;
/** v2: a sealed message's prefix (0x02 and the 12-byte nonce_base). */
const SEALED_PREFIX = 1 + IV_LEN;
/** v2: a record's header and tag. */
const RECORD_OVERHEAD = 4 + TAG_LEN;
/** v2: the plaintext bytes of the records this library sends. */
export const ZEQ_E2E_RECORD_SIZE = 16384;
/** v2: the largest record a receiver accepts. */
const RECORD_MAX = 1 << 20;
const FINAL_FLAG = 0x80000000;
/** v2: the uncompressed P-256 point, 0x04 || x || y. */
const POINT_LEN = 65;
/** v2: an ECDSA P-256 signature, r || s. */
const SIGNATURE_LEN = 64;
/** Renew a session this long before it expires (at most; see renewMargin). */
const RENEW_MARGIN_MS = 60000;
/** Messages sealed under one key before a new handshake (protocol: 2^32). */
const MAX_SEALS_PER_SESSION = 2 ** 31;
/** v2: the last sequence number JavaScript counts exactly (2^53 - 1). */
const MAX_SEQ = Number.MAX_SAFE_INTEGER;
/** v2: how many redirects of a GET or HEAD the library follows again (fetch's own limit). */
const MAX_REDIRECTS = 20;

const encoder = new TextEncoder();

/**
 * The errors this library rejects with. `code` is the server's error code
 * (`e2e_unavailable`, `e2e_session_invalid`, `e2e_version_unsupported`, ...)
 * when the server answered with one, or one of the library's own:
 *   e2e_network          the handshake could not reach the server (see cause)
 *   e2e_bad_handshake_answer  the handshake answer is not one of the protocol
 *   e2e_handshake_failed the handshake got an answer that is not an error
 *                        of the protocol (404 page, proxy error, ...)
 *   e2e_bad_signature    a pinned server key (serverKey) and an answer that
 *                        is not signed, signed by another key, or whose
 *                        signature does not verify
 *   e2e_downgrade        a version 2 handshake got a version 1 answer
 *                        (without allowV1), or a sealed request got an
 *                        answer that is not sealed and not a module error
 *   e2e_bad_envelope     an answer's sealed body or seal did not verify, or
 *                        an answer without a body came without its seal
 *   e2e_truncated        a v2 answer ended before its final record (cut
 *                        short, also when the transport ended cleanly)
 *   e2e_redirect         a version 2 request other than GET and HEAD was
 *                        redirected: the browser sent it again with its seal
 *                        to the new target, which the server refused
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
// `config` is set by a successful zeqE2EHandshake: the origin whose requests
// get sealed, the protocol, the handshake path, what renewals need (the PSK,
// the pinned keys, the v1 secret). `session` is
//   v2: { version: 2, id, c2s, s2c (non-extractable AES-GCM CryptoKeys, one
//         per direction), seq (the next sequence number), expiresAt, ttlMs,
//         seals, psk, signer }
//   v1: { version: 1, id, key, expiresAt, ttlMs, seals, psk: false, signer: null }
// `pending` is the handshake in flight that concurrent requests share.

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

function toBase64url(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Strict base64url without padding: the bytes, or null. */
function fromBase64url(text) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  let bin;
  try {
    bin = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  } catch {
    return null;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  // One spelling only: unused trailing bits must be zero.
  return toBase64url(out) === text ? out : null;
}

/** A header value's bytes (fetch hands headers over as one code unit per byte). */
function latin1(text) {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

function concatBytes(parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
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
// Version 1 envelope: iv (12) || tag (16) || ciphertext. Web Crypto's
// AES-GCM works on ciphertext || tag, hence the reordering.

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
  return s.deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt: concatBytes([clientNonce, serverNonce]), iterations: PBKDF2_ITERATIONS },
    base, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

// ---------------------------------------------------------------------------
// Version 2 sealed messages (section 18.5):
//   0x02 || nonce_base (12) || record_0 || ... || record_n
//   record_i = header_i (4: final flag in the top bit, L in the low 24)
//              || ciphertext_i (L) || tag_i (16)
// Record i is AES-256-GCM with the nonce nonce_base XOR (0^32 || uint64(i))
// and the additional data message_aad || header_i. Web Crypto's output is
// ciphertext || tag, which is exactly the rest of a record.

/** The bytes of fields joined with 0x00 (strings as ASCII/latin1: ids, numbers, header values). */
function aadOf(fields) {
  const parts = [];
  fields.forEach((f, i) => {
    if (i) parts.push(new Uint8Array(1));
    parts.push(latin1(String(f)));
  });
  return concatBytes(parts);
}

/** message_aad of a request (18.6). */
function requestAAD(sessionId, seq, method, target, innerType) {
  return aadOf(['zeq-e2e/2 request', sessionId, seq, method, target, innerType]);
}

/** message_aad of an answer (18.8): status in three digits. */
function responseAAD(sessionId, seq, status, innerType, innerEncoding) {
  return aadOf(['zeq-e2e/2 response', sessionId, seq, String(status).padStart(3, '0'), innerType, innerEncoding]);
}

/** message_aad of a WebSocket message (18.11). */
function webSocketAAD(sessionId, upgradeSeq, direction, counter) {
  return aadOf(['zeq-e2e/2 ws', sessionId, upgradeSeq, direction, counter]);
}

function recordNonce(nonceBase, i) {
  const nonce = nonceBase.slice();
  // i < 2^53: the high 32 bits of the counter go into bytes 4..7.
  const hi = Math.floor(i / 2 ** 32);
  const lo = i >>> 0;
  nonce[4] ^= hi >>> 24; nonce[5] ^= (hi >>> 16) & 0xff; nonce[6] ^= (hi >>> 8) & 0xff; nonce[7] ^= hi & 0xff;
  nonce[8] ^= lo >>> 24; nonce[9] ^= (lo >>> 16) & 0xff; nonce[10] ^= (lo >>> 8) & 0xff; nonce[11] ^= lo & 0xff;
  return nonce;
}

function recordHeader(final, length) {
  const v = ((final ? FINAL_FLAG : 0) | length) >>> 0;
  return new Uint8Array([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
}

/** The length of a sealed message of n plaintext bytes in this library's records. */
function sealedLength(n) {
  return SEALED_PREFIX + RECORD_OVERHEAD * Math.max(1, Math.ceil(n / ZEQ_E2E_RECORD_SIZE)) + n;
}

/** The plaintext length of a sealed message of `sealed` bytes in 16 KiB records, or -1. */
function plaintextLength(sealed) {
  const x = sealed - SEALED_PREFIX;
  if (!Number.isInteger(x) || x < RECORD_OVERHEAD) return -1;
  const records = Math.max(1, Math.ceil(x / (ZEQ_E2E_RECORD_SIZE + RECORD_OVERHEAD)));
  const n = x - RECORD_OVERHEAD * records;
  return n >= 0 && sealedLength(n) === sealed ? n : -1;
}

/** Seals plaintext bytes into a sealed message under an AES-GCM CryptoKey. */
async function sealMessage(key, aad, plaintext) {
  const s = subtle();
  const nonceBase = randomBytes(IV_LEN);
  const count = Math.max(1, Math.ceil(plaintext.length / ZEQ_E2E_RECORD_SIZE));
  const records = [];
  for (let i = 0; i < count; i++) {
    const chunk = plaintext.subarray(i * ZEQ_E2E_RECORD_SIZE, (i + 1) * ZEQ_E2E_RECORD_SIZE);
    const header = recordHeader(i === count - 1, chunk.length);
    records.push(s.encrypt({ name: 'AES-GCM', iv: recordNonce(nonceBase, i), additionalData: concatBytes([aad, header]),
      tagLength: TAG_LEN * 8 }, key, chunk).then((sealed) => [header, new Uint8Array(sealed)]));
  }
  const parts = [new Uint8Array([0x02]), nonceBase];
  for (const [header, sealed] of await Promise.all(records)) parts.push(header, sealed);
  return concatBytes(parts);
}

/** Bytes received and not parsed yet: the chunks as they came, taken from the front. */
class ByteQueue {
  constructor() {
    this.chunks = [];
    /** where the unread part of chunks[0] starts */
    this.head = 0;
    this.length = 0;
  }

  push(chunk) {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The next byte, not removed (length > 0). */
  peek() {
    return this.chunks[0][this.head];
  }

  /** The next n bytes (1 <= n <= length), removed: a view when one chunk holds them, else a copy. */
  take(n) {
    const first = this.chunks[0];
    let out;
    if (first.length - this.head >= n) {
      out = first.subarray(this.head, this.head + n);
      this.head += n;
    } else {
      out = new Uint8Array(n);
      for (let off = 0; off < n;) {
        const c = this.chunks[0];
        const k = Math.min(n - off, c.length - this.head);
        out.set(c.subarray(this.head, this.head + k), off);
        off += k;
        this.head += k;
        if (this.head === c.length) {
          this.chunks.shift();
          this.head = 0;
        }
      }
    }
    if (this.chunks.length && this.head === this.chunks[0].length) {
      this.chunks.shift();
      this.head = 0;
    }
    this.length -= n;
    return out;
  }
}

/**
 * Reads the records of one sealed message (18.5) from its bytes, however
 * they are split: push() takes the next bytes and returns the records they
 * complete, so that what waits is at most one record and its header, and
 * the e2e_bad_envelope of a message that is malformed (not 0x02, a header
 * with reserved bits or over the maximum, bytes after the final record) as
 * soon as the bytes show it.
 */
class MessageReader {
  /** @param {string} what the message, for errors ("the answer", "message 3 from the server") */
  constructor(what) {
    this.what = what;
    this.queue = new ByteQueue();
    this.nonceBase = null;
    /** the header of the record being read: { bytes, length, final } */
    this.header = null;
    this.next = 0;
    this.finished = false;
    this.failed = false;
  }

  bad(why, cause) {
    return new ZeqE2EError('e2e_bad_envelope', `${this.what} ${why}`, cause ? { cause } : {});
  }

  /**
   * Adds bytes; returns { records: those complete now, [{ i, bytes (the
   * header), length, final, data }], error: the malformation that follows
   * them, or null }. Nothing more is read after an error.
   */
  push(bytes) {
    const q = this.queue;
    q.push(bytes);
    const records = [];
    const stop = (why) => {
      this.failed = true;
      return { records, error: this.bad(why) };
    };
    if (this.failed) return { records, error: null };
    for (;;) {
      if (this.finished) {
        if (q.length) return stop(`has ${q.length} bytes after its final record`);
        return { records, error: null };
      }
      if (this.nonceBase === null) {
        if (q.length && q.peek() !== 0x02) return stop(`starts with 0x${q.peek().toString(16).padStart(2, '0')}, not 0x02`);
        if (q.length < SEALED_PREFIX) return { records, error: null };
        this.nonceBase = q.take(SEALED_PREFIX).slice(1);
      }
      if (this.header === null) {
        if (q.length < 4) return { records, error: null };
        const h = q.take(4).slice();
        const v = ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
        const length = v & 0xffffff;
        if ((v & 0x7f000000) !== 0 || length > RECORD_MAX) return stop('has a malformed record header');
        this.header = { bytes: h, length, final: (v & FINAL_FLAG) !== 0 };
      }
      if (q.length < this.header.length + TAG_LEN) return { records, error: null };
      records.push({ i: this.next++, ...this.header, data: q.take(this.header.length + TAG_LEN) });
      this.finished = this.header.final;
      this.header = null;
    }
  }

  /** null once the final record came, else how the bytes so far end. */
  truncation() {
    if (this.finished) return null;
    return this.header !== null ? 'ends inside a record' : 'ends before its final record';
  }

  /**
   * Opens records (in parallel) under key: { plain: their plaintexts in
   * order up to the first that fails, error: that failure or null }.
   */
  async open(key, aad, records) {
    const s = subtle();
    const settled = await Promise.allSettled(records.map((r) => s.decrypt({ name: 'AES-GCM',
      iv: recordNonce(this.nonceBase, r.i), additionalData: concatBytes([aad, r.bytes]), tagLength: TAG_LEN * 8 },
    key, r.data)));
    const plain = [];
    for (const r of settled) {
      if (r.status === 'rejected') {
        return { plain, error: this.bad('did not verify (wrong key, altered bytes, or bound to another request, ' +
          'answer or place)', r.reason) };
      }
      plain.push(new Uint8Array(r.value));
    }
    return { plain, error: null };
  }
}

/**
 * Opens a sealed message held whole (a seal, a WebSocket message); rejects
 * with e2e_bad_envelope unless it is well formed and every record verifies
 * (nothing of it is used otherwise).
 */
async function openMessage(key, aad, message, what = 'the sealed message') {
  const m = chunkBytes(message);
  const reader = new MessageReader(what);
  if (m.length < SEALED_PREFIX + RECORD_OVERHEAD) throw reader.bad(`of ${m.length} bytes is shorter than 33`);
  const { records, error: malformed } = reader.push(m);
  if (malformed) throw malformed;
  const cut = reader.truncation();
  if (cut) throw reader.bad(cut);
  const { plain, error } = await reader.open(key, aad, records);
  if (error) throw error;
  return concatBytes(plain);
}

/**
 * Bytes as a plain Uint8Array view (fetch gives Uint8Array; a Node.js
 * Buffer, whose slice() makes no copy, becomes a view of its memory).
 */
function chunkBytes(chunk) {
  if (chunk instanceof Uint8Array && chunk.constructor === Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  throw new TypeError('a body chunk that is not bytes');
}

/**
 * The bytes of a response body; a failure of its transport is not passed
 * on as an error but to onError, and the stream then ends (so that what
 * came before it is delivered first, see openStream).
 */
function transportGuard(body, onError) {
  const reader = body.getReader();
  return new ReadableStream({
    async pull(controller) {
      let r;
      try {
        r = await reader.read();
      } catch (e) {
        onError(e);
        controller.close();
        return;
      }
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * A sealed message read as a stream (18.8, Streaming): body (a
 * ReadableStream of its bytes, or null) goes through a TransformStream that
 * opens each record as soon as its last byte is there and passes its
 * plaintext on as one chunk; the stream holds one record (and what one
 * network read brings), whatever the message's size. It errors, once what
 * verified before has been read, with e2e_bad_envelope at the first record
 * that does not verify (nothing of it is passed on) or is malformed, or at
 * bytes after the final record, and with e2e_truncated when the bytes end,
 * or the connection fails, before the final record (an abort of signal
 * stays an AbortError). Returns { stream, first, failure }: first resolves
 * to the first record ({ final, length }) once it has verified, or rejects
 * with the error that comes before it; failure() is the error the stream
 * fails with, or null.
 */
function openStream(body, key, aad, signal, what) {
  const reader = new MessageReader(what);
  let failure = null;
  let transportError = null;
  let resolveFirst;
  let rejectFirst;
  const first = new Promise((resolve, reject) => { resolveFirst = resolve; rejectFirst = reject; });
  first.catch(() => {});
  // Errors travel in the stream as { error } items, in their place: a
  // TransformStream that errors drops the chunks it still holds.
  const stop = (controller, e) => {
    failure = e;
    rejectFirst(e);
    controller.enqueue({ error: e });
  };
  const source = body ? transportGuard(body, (e) => { transportError = e; })
    : new ReadableStream({ start: (c) => c.close() });
  const opener = new TransformStream({
    async transform(chunk, controller) {
      if (failure) return;
      let pushed;
      try {
        pushed = reader.push(chunkBytes(chunk));
      } catch (e) {
        stop(controller, e);
        return;
      }
      const { plain, error } = await reader.open(key, aad, pushed.records);
      plain.forEach((p, k) => {
        if (p.length) controller.enqueue({ plain: p });
        resolveFirst({ final: pushed.records[k].final, length: p.length });
      });
      if (error || pushed.error) stop(controller, error || pushed.error);
    },
    flush(controller) {
      if (failure) return;
      const e = transportError;
      if (e && ((signal && signal.aborted) || reader.finished)) {
        // An abort stays an abort; after the final record the message is
        // whole and the failure the transport's own.
        stop(controller, e);
        return;
      }
      const cut = reader.truncation();
      if (cut) {
        stop(controller, new ZeqE2EError('e2e_truncated', e
          ? `${what} was cut short: the connection failed before its final record (${e && e.message})`
          : `${what} ${cut}: it was cut short, and what came of it is not the whole answer`, e ? { cause: e } : {}));
      }
    },
  }, { highWaterMark: 1 }, { highWaterMark: 1 });
  // (The transform's readable side holds one item, so that the first record
  // is opened before anyone reads: the answer is authenticated before it is
  // returned.)
  const items = source.pipeThrough(opener).getReader();
  const stream = new ReadableStream({
    async pull(controller) {
      const { done, value } = await items.read();
      if (done) {
        controller.close();
      } else if (value.error) {
        controller.error(value.error);
        items.cancel(value.error).catch(() => {});
      } else {
        controller.enqueue(value.plain);
      }
    },
    cancel(reason) {
      return items.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { stream, first, failure: () => failure };
}

/**
 * A Response of a body stream whose reading methods (text(), json(), ...)
 * reject with the stream's own error: browsers reject those of a stream
 * that errors with a TypeError of their own ("Failed to fetch").
 */
function withStreamErrors(response, failure) {
  for (const name of ['arrayBuffer', 'blob', 'bytes', 'formData', 'json', 'text', 'clone']) {
    const native = response[name];
    if (typeof native !== 'function') continue;
    const value = name === 'clone'
      ? function clone() { return withStreamErrors(native.call(this), failure); }
      : function read() { return native.call(this).catch((e) => { throw failure() || e; }); };
    Object.defineProperty(response, name, { value, configurable: true, writable: true });
  }
  return response;
}

// ---------------------------------------------------------------------------
// Version 2 keys (sections 18.2 to 18.4).

/** PSK = PBKDF2-HMAC-SHA256(secret, "zeq-e2e/2 psk", 100000, 32 bytes), once per secret. */
async function derivePSK(secret) {
  const s = subtle();
  const base = await s.importKey('raw', secret, 'PBKDF2', false, ['deriveBits']);
  return new Uint8Array(await s.deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt: encoder.encode('zeq-e2e/2 psk'), iterations: PBKDF2_ITERATIONS }, base, 256));
}

/** k_c2s and k_s2c: HKDF-SHA256(Z [|| PSK], clientNonce || serverNonce), non-extractable. */
async function deriveDirectionKeys(z, psk, clientNonce, serverNonce) {
  const s = subtle();
  const ikm = psk ? concatBytes([z, psk]) : z;
  try {
    const base = await s.importKey('raw', ikm, 'HKDF', false, ['deriveKey']);
    const salt = concatBytes([clientNonce, serverNonce]);
    const key = (info, usage) => s.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt, info: encoder.encode(info) },
      base, { name: 'AES-GCM', length: 256 }, false, [usage]);
    const [c2s, s2c] = await Promise.all([key('zeq-e2e/2 c2s', 'encrypt'), key('zeq-e2e/2 s2c', 'decrypt')]);
    return { c2s, s2c };
  } finally {
    ikm.fill(0);
  }
}

/**
 * The pinned server keys of options.serverKey: SubjectPublicKeyInfo (DER) in
 * base64url, base64 or a PEM "PUBLIC KEY" block, or a JWK; one or a list.
 * Resolves to [{ signer (base64url SHA-256 of the SPKI), key (ECDSA verify) }].
 */
async function importServerKeys(option) {
  const s = subtle();
  const list = Array.isArray(option) ? option : [option];
  if (list.length === 0) throw new TypeError('zeqE2EHandshake: options.serverKey is an empty list');
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
  const pins = [];
  for (const item of list) {
    let spki;
    let key;
    try {
      if (typeof item === 'string') {
        const text = item.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, '').replace(/\s+/g, '')
          .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
        spki = fromBase64url(text);
        if (!spki) throw new Error('not base64url, base64 or PEM');
        key = await s.importKey('spki', spki, algorithm, true, ['verify']);
      } else if (item && typeof item === 'object') {
        if (item.d !== undefined) throw new Error('a private key');
        const { kty, crv, x, y } = item;
        key = await s.importKey('jwk', { kty, crv, x, y, ext: true }, algorithm, true, ['verify']);
        spki = new Uint8Array(await s.exportKey('spki', key));
      } else {
        throw new Error(`a ${typeof item}`);
      }
    } catch (e) {
      throw new TypeError(`zeqE2EHandshake: options.serverKey must be P-256 public keys (SPKI in base64url, ` +
        `or a JWK): ${e && e.message}`);
    }
    const signer = toBase64url(new Uint8Array(await s.digest('SHA-256', spki)));
    pins.push({ signer, key });
  }
  return pins;
}

/** The transcript a v2 handshake's signature covers (18.4). */
function handshakeTranscript(clientNonce, serverNonce, clientKey, serverKey, sessionId) {
  return concatBytes([encoder.encode('zeq-e2e/2 handshake'), new Uint8Array(1), clientNonce, serverNonce,
    clientKey, serverKey, encoder.encode(sessionId)]);
}

// ---------------------------------------------------------------------------
// Handshakes and sessions.

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

/** POSTs a handshake body; resolves to { res, started } or rejects e2e_network. */
async function postHandshake(config, body) {
  const url = new URL(config.handshakePath, config.origin).href;
  const started = Date.now();
  try {
    const res = await underlyingFetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
      cache: 'no-store',
      credentials: 'same-origin',
    });
    return { res, started, url };
  } catch (e) {
    throw new ZeqE2EError('e2e_network', `handshake with ${url} failed: ${e && e.message}`, { cause: e });
  }
}

/** The error of a refused handshake (its module error, or e2e_handshake_failed). */
async function refusedHandshake(res, url, err) {
  const e = err === undefined ? await readModuleError(res) : err;
  if (e) {
    return new ZeqE2EError(e.code, `handshake refused (${res.status} ${e.code}): ${e.message}`, { status: res.status });
  }
  return new ZeqE2EError('e2e_handshake_failed',
    `handshake with ${url} answered ${res.status} without a protocol error`, { status: res.status });
}

async function readAnswer(res) {
  let answer;
  try {
    answer = await res.json();
  } catch (e) {
    throw new ZeqE2EError('e2e_bad_handshake_answer', 'the handshake answer is not JSON', { status: 200, cause: e });
  }
  if (!answer || typeof answer !== 'object' || Array.isArray(answer)) throw badAnswer('is not a JSON object');
  return answer;
}

function badAnswer(why) {
  return new ZeqE2EError('e2e_bad_handshake_answer', `the handshake answer ${why}`, { status: 200 });
}

/** The members v1 and v2 answers share. */
function checkCommonAnswer(answer) {
  if (typeof answer.sessionId !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(answer.sessionId)) {
    throw badAnswer('has no valid sessionId');
  }
  if (typeof answer.serverNonce !== 'string' || !/^[0-9a-fA-F]{64}$/.test(answer.serverNonce)) {
    throw badAnswer('has no valid serverNonce');
  }
  if (!Number.isFinite(answer.expiresIn) || answer.expiresIn <= 0) throw badAnswer('has no valid expiresIn');
}

/** A v1 session from a v1 answer to the client nonce cn. */
async function sessionV1(config, answer, clientNonce, started) {
  checkCommonAnswer(answer);
  const key = await deriveSessionKey(config.secret, clientNonce, fromHex(answer.serverNonce));
  const ttlMs = answer.expiresIn * 1000;
  return { version: 1, id: answer.sessionId, key, expiresAt: started + ttlMs, ttlMs, seals: 0, psk: false, signer: null };
}

/** Protocol v1 (sections 3 and 4): {"clientNonce"} -> PBKDF2 of the secret. */
async function handshakeV1(config) {
  const clientNonce = randomBytes(NONCE_LEN);
  const { res, started, url } = await postHandshake(config, { clientNonce: toHex(clientNonce) });
  if (res.status !== 200) throw await refusedHandshake(res, url);
  const answer = await readAnswer(res);
  if (answer.version !== 1) throw badAnswer(`has version ${JSON.stringify(answer.version)}, not 1`);
  return sessionV1(config, answer, clientNonce, started);
}

/** Verifies a v2 answer's signature against the pinned keys; resolves to the signer. */
async function verifySignature(config, answer, transcript) {
  if (typeof answer.signature !== 'string') {
    throw new ZeqE2EError('e2e_bad_signature',
      'the handshake answer is not signed, and a server key is pinned (serverKey)', { status: 200 });
  }
  const pin = config.pins.find((p) => p.signer === answer.signer);
  if (!pin) {
    throw new ZeqE2EError('e2e_bad_signature', `the handshake answer is signed by ${JSON.stringify(answer.signer)}, ` +
      `not by a pinned key (${config.pins.map((p) => p.signer).join(', ')})`, { status: 200 });
  }
  const signature = fromBase64url(answer.signature);
  let ok = false;
  if (signature && signature.length === SIGNATURE_LEN) {
    ok = await subtle().verify({ name: 'ECDSA', hash: 'SHA-256' }, pin.key, signature, transcript);
  }
  if (!ok) {
    throw new ZeqE2EError('e2e_bad_signature',
      'the handshake answer\'s signature does not verify over this handshake under the pinned key', { status: 200 });
  }
  return pin.signer;
}

/**
 * Protocol v2 (18.1 to 18.4): a fresh P-256 pair, {"version": 2,
 * "clientNonce", "clientKey"[, "psk": true]}, Z = ECDH, the keys by HKDF.
 * The private key is non-extractable and dropped once the keys are derived.
 * With allowV1, a v1 answer (an older server) or a 400 e2e_version_unsupported
 * (a server that offers only v1) gives a v1 session.
 */
async function handshakeV2(config) {
  const s = subtle();
  const clientNonce = randomBytes(NONCE_LEN);
  let pair = await s.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
  const clientKey = new Uint8Array(await s.exportKey('raw', pair.publicKey));
  const body = { version: 2, clientNonce: toHex(clientNonce), clientKey: toBase64url(clientKey) };
  if (config.psk) body.psk = true;
  const { res, started, url } = await postHandshake(config, body);
  if (res.status !== 200) {
    const err = await readModuleError(res);
    if (err && err.code === 'e2e_version_unsupported' && config.allowV1) return handshakeV1(config);
    throw await refusedHandshake(res, url, err);
  }
  const answer = await readAnswer(res);
  if (answer.version === 1) {
    if (config.allowV1) return sessionV1(config, answer, clientNonce, started);
    throw new ZeqE2EError('e2e_downgrade', 'the server answered a version 2 handshake with version 1; ' +
      'a version 1 session is accepted only with { allowV1: true, secret }', { status: 200 });
  }
  if (answer.version !== 2) throw badAnswer(`has version ${JSON.stringify(answer.version)}, not 2`);
  checkCommonAnswer(answer);
  const serverKey = fromBase64url(answer.serverKey);
  if (!serverKey || serverKey.length !== POINT_LEN || serverKey[0] !== 0x04) {
    throw badAnswer('has no valid serverKey (an uncompressed P-256 point in base64url)');
  }
  let serverPublic;
  try {
    serverPublic = await s.importKey('raw', serverKey, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
  } catch (e) {
    throw badAnswer(`has a serverKey that is not a P-256 point (${e && e.message})`);
  }
  const serverNonce = fromHex(answer.serverNonce);
  let signer = null;
  if (config.pins) {
    signer = await verifySignature(config, answer,
      handshakeTranscript(clientNonce, serverNonce, clientKey, serverKey, answer.sessionId));
  }
  let z;
  try {
    z = new Uint8Array(await s.deriveBits({ name: 'ECDH', public: serverPublic }, pair.privateKey, 256));
  } catch (e) {
    throw badAnswer(`has a serverKey this client cannot agree a key with (${e && e.message})`);
  } finally {
    pair = null;
  }
  let keys;
  try {
    keys = await deriveDirectionKeys(z, config.psk, clientNonce, serverNonce);
  } finally {
    z.fill(0);
  }
  const ttlMs = answer.expiresIn * 1000;
  return {
    version: 2, id: answer.sessionId, c2s: keys.c2s, s2c: keys.s2c, seq: 0, expiresAt: started + ttlMs, ttlMs,
    seals: 0, psk: Boolean(config.psk), signer,
  };
}

/** One handshake against config; resolves to a new session object. */
function performHandshake(config) {
  return config.protocol === 1 ? handshakeV1(config) : handshakeV2(config);
}

/** How long before expiresAt a session is renewed. */
function renewMargin(session) {
  return Math.min(RENEW_MARGIN_MS, session.ttlMs / 5);
}

/** Whether a session may still seal (its key and numbers are not used up). */
function sessionHasRoom(session) {
  return session.seals < MAX_SEALS_PER_SESSION && (session.version !== 2 || session.seq < MAX_SEQ);
}

function sessionIsFresh(session) {
  return session && sessionHasRoom(session) && Date.now() < session.expiresAt - renewMargin(session);
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
    if (current && Date.now() < current.expiresAt && sessionHasRoom(current) && !(signal && signal.aborted)) {
      return current;
    }
    throw e;
  }
}

/** What zeqE2EHandshake and zeqE2ESession tell of a session. */
function sessionInfo(session) {
  return {
    sessionId: session.id, expiresAt: session.expiresAt, version: session.version, psk: session.psk,
    signer: session.signer,
  };
}

/**
 * Performs the handshake with `origin`, derives the session keys and keeps
 * them as the default session: from then on zeqE2EFetch seals the requests to
 * that origin. Options:
 *   protocol      2 (default) or 1
 *   secret        v2: pre-shared key mode (the secret of ZeqE2ESecret, as a
 *                 string's UTF-8 bytes or bytes); v1: the shared secret
 *   serverKey     v2: the server's signing key(s) (SPKI base64url, PEM, or a
 *                 JWK; one or a list): answers not signed by one are refused
 *   allowV1       v2: accept a v1 session from a server that offers only v1
 *                 (needs the secret, excludes serverKey)
 *   handshakePath the handshake's path (ZeqE2EHandshakePath)
 * Resolves to { sessionId, expiresAt, version, psk, signer } (expiresAt in
 * milliseconds since the epoch, like Date.now()). Rejects with a ZeqE2EError
 * whose code is the server's (e2e_unavailable, ...) or the library's
 * (e2e_network, e2e_downgrade, e2e_bad_signature, ...), or a TypeError for
 * options that do not fit together; the previous session, if any, stays.
 */
export async function zeqE2EHandshake(origin, options = {}) {
  if (origin === undefined || origin === null) {
    if (!globalThis.location) throw new TypeError('zeqE2EHandshake: origin is required outside a page');
    origin = globalThis.location.origin;
  }
  const opts = options === null || options === undefined ? {} : options;
  const protocol = opts.protocol === undefined ? ZEQ_E2E_PROTOCOL : opts.protocol;
  if (protocol !== 1 && protocol !== 2) {
    throw new TypeError(`zeqE2EHandshake: options.protocol is 1 or 2, not ${JSON.stringify(protocol)}`);
  }
  const secret = opts.secret === undefined || opts.secret === null ? null : secretBytes(opts.secret);
  const allowV1 = protocol === 2 && Boolean(opts.allowV1);
  const pinned = opts.serverKey !== undefined && opts.serverKey !== null;
  if (protocol === 1 && !secret) {
    throw new TypeError('zeqE2EHandshake: protocol 1 needs options.secret (the key derives from it)');
  }
  if (allowV1 && !secret) {
    throw new TypeError('zeqE2EHandshake: allowV1 needs options.secret: a version 1 session derives its key ' +
      'from the shared secret');
  }
  if (pinned && (protocol === 1 || allowV1)) {
    throw new TypeError('zeqE2EHandshake: serverKey cannot be combined with ' +
      `${protocol === 1 ? 'protocol 1' : 'allowV1'}: version 1 handshakes are never signed`);
  }
  const config = {
    origin: new URL(String(origin)).origin,
    handshakePath: opts.handshakePath || DEFAULT_HANDSHAKE_PATH,
    protocol,
    allowV1,
    // v1's key and v2's fallback derive from the secret; v2 keeps only the PSK.
    secret: protocol === 1 || allowV1 ? secret : null,
    psk: protocol === 2 && secret ? await derivePSK(secret) : null,
    pins: pinned ? await importServerKeys(opts.serverKey) : null,
  };
  const session = await performHandshake(config);
  state.config = config;
  state.session = session;
  state.pending = null;
  return sessionInfo(session);
}

/**
 * The default session: { sessionId, expiresAt, version, psk, signer, origin }
 * or null before a successful handshake.
 */
export function zeqE2ESession() {
  if (!state.config || !state.session) return null;
  return { ...sessionInfo(state.session), origin: state.config.origin };
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

/**
 * The URL a v2 request is sent to: the fragment dropped, and no `?` without
 * a query (browsers send `/p?` as is, Node.js's fetch as `/p`: without it,
 * every client sends the same request-target).
 */
function wireURL(url) {
  const u = new URL(url.href);
  u.hash = '';
  if (u.search === '') u.search = '';
  return u;
}

/** The request-target (path and query) fetch sends for a URL of wireURL. */
function requestTarget(u) {
  return u.pathname + u.search;
}

/** The method as fetch sends it: the six standard ones uppercased, others as given. */
function normalizeMethod(method) {
  const upper = method.toUpperCase();
  return ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT'].includes(upper) ? upper : method;
}

/**
 * A Request for href: from the caller's Request (its settings kept) or a
 * URL; init overrides as for fetch.
 */
function buildRequest(input, href, init) {
  if (typeof Request !== 'undefined' && input instanceof Request) {
    if (input.url.split('#')[0] === href) return new Request(input, init);
    const base = {
      method: input.method, headers: input.headers, credentials: input.credentials, cache: input.cache,
      redirect: input.redirect, referrer: input.referrer, referrerPolicy: input.referrerPolicy,
      integrity: input.integrity, keepalive: input.keepalive, signal: input.signal,
    };
    if (input.mode && input.mode !== 'navigate') base.mode = input.mode;
    return new Request(href, { ...base, ...init });
  }
  return new Request(href, init);
}

/** The body-less statuses (no envelope, nothing to authenticate in v1). */
function isNullBodyStatus(status) {
  return (status >= 100 && status < 200) || status === 204 || status === 205 || status === 304;
}

function withURL(response, original, redirected = false) {
  try {
    Object.defineProperty(response, 'url', { value: original.url, configurable: true });
    Object.defineProperty(response, 'redirected', { value: original.redirected || redirected, configurable: true });
  } catch { /* not essential */ }
  return response;
}

/** stream with X-E2E-Content-Encoding undone (gzip, deflate: DecompressionStream). */
function decodeStream(stream, coding) {
  const codings = coding.split(',').map((c) => c.trim().toLowerCase()).filter((c) => c && c !== 'identity');
  for (let i = codings.length - 1; i >= 0; i--) {
    let format = codings[i];
    if (format === 'x-gzip') format = 'gzip';
    if ((format !== 'gzip' && format !== 'deflate') || typeof DecompressionStream === 'undefined') {
      throw new ZeqE2EError('e2e_unsupported', `cannot undo X-E2E-Content-Encoding ${codings[i]}`);
    }
    stream = stream.pipeThrough(new DecompressionStream(format));
  }
  return stream;
}

async function decodeContent(bytes, coding) {
  return new Uint8Array(await new Response(decodeStream(new Blob([bytes]).stream(), coding)).arrayBuffer());
}

/** The headers the page sees: the application's Content-Type, no X-E2E-*. */
function innerHeaders(res) {
  const headers = new Headers(res.headers);
  const innerType = res.headers.get(HDR_CONTENT_TYPE);
  for (const h of [HDR_CONTENT_TYPE, HDR_CONTENT_ENCODING, HDR_SEAL, 'content-type', 'content-length']) headers.delete(h);
  if (innerType) headers.set('content-type', innerType);
  return headers;
}

function isSealedType(res) {
  return mediaType(res.headers.get('content-type')) === ZEQ_E2E_MEDIA_TYPE;
}

/** Turns the answer to a v1 encrypted request into what the app sees. */
async function openResponseV1(res, session, method, signal) {
  const isEnvelope = isSealedType(res);
  if (isEnvelope) {
    const coding = res.headers.get(HDR_CONTENT_ENCODING);
    const headers = innerHeaders(res);
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
    const headers = new Headers(res.headers);
    headers.delete('content-length');
    return withURL(new Response(null, { status: res.status, statusText: res.statusText, headers }), res);
  }
  return plaintextAnswer(res, method);
}

/**
 * A plaintext answer with a body to a sealed request: a module error
 * resolves as a Response with its `zeqE2EError` code, anything else rejects
 * (e2e_downgrade).
 */
async function plaintextAnswer(res, method, redirected = false) {
  if (res.status >= 400) {
    const err = await readModuleError(res);
    if (err) {
      // A module error: plaintext by design, answered before the app ran.
      const out = withURL(new Response(err.text,
        { status: res.status, statusText: res.statusText, headers: new Headers(res.headers) }), res, redirected);
      out.zeqE2EError = err.code;
      return out;
    }
  } else if (res.body) {
    await res.body.cancel().catch(() => {});
  }
  throw new ZeqE2EError('e2e_downgrade',
    `${method} ${res.url} was sent sealed but answered ${res.status} without a seal ` +
    `(${res.headers.get('content-type') || 'no Content-Type'}); refusing an unauthenticated answer`,
    { status: res.status });
}

/**
 * Turns the answer to a v2 request into what the app sees (18.8): a sealed
 * body opens under k_s2c bound to the request's number, the answer's status,
 * X-E2E-Content-Type and X-E2E-Content-Encoding; an answer without a body
 * must carry X-E2E-Seal, bound the same way.
 */
async function openResponseV2(res, session, seq, method, signal, redirected) {
  if (res.type === 'opaqueredirect') return res; // redirect: 'manual' in a browser: nothing of it is visible
  const innerType = res.headers.get(HDR_CONTENT_TYPE);
  const coding = res.headers.get(HDR_CONTENT_ENCODING);
  const seal = res.headers.get(HDR_SEAL);
  const aad = () => responseAAD(session.id, seq, res.status, innerType === null ? '' : innerType,
    coding === null ? '' : coding);
  const init = () => ({ status: res.status, statusText: res.statusText, headers: innerHeaders(res) });
  if (method === 'HEAD' || isNullBodyStatus(res.status)) {
    if (res.body) await res.body.cancel().catch(() => {});
    if (seal === null) {
      // Module errors carry no seal, and to a HEAD no body either.
      if (res.status >= 400 && !isNullBodyStatus(res.status) && !isSealedType(res)) return withURL(res, res, redirected);
      throw new ZeqE2EError('e2e_bad_envelope',
        `${method} ${res.url} was answered ${res.status} without a body and without ${HDR_SEAL}`, { status: res.status });
    }
    const sealed = fromBase64url(seal);
    if (!sealed) throw new ZeqE2EError('e2e_bad_envelope', `the answer's ${HDR_SEAL} is not base64url`, { status: res.status });
    const plain = await openMessage(session.s2c, aad(), sealed, `the answer's ${HDR_SEAL}`);
    if (plain.length !== 0) {
      throw new ZeqE2EError('e2e_bad_envelope', `the answer's ${HDR_SEAL} seals bytes, not the empty message`, { status: res.status });
    }
    const i = init();
    const outer = Number(res.headers.get('content-length'));
    if (isSealedType(res) && !coding && res.headers.get('content-length') !== null && plaintextLength(outer) >= 0) {
      i.headers.set('content-length', String(plaintextLength(outer)));
    }
    return withURL(new Response(null, i), res, redirected);
  }
  if (isSealedType(res)) {
    // Streamed (18.8): resolved once the first record has verified, which
    // authenticates the status, type and encoding; the rest is opened as it
    // arrives.
    const opened = openStream(res.body, session.s2c, aad(), signal, 'the answer');
    let first;
    try {
      first = await abortable(opened.first, signal);
    } catch (e) {
      opened.stream.cancel(e).catch(() => {});
      throw e;
    }
    const i = init();
    let stream = opened.stream;
    if (coding) {
      try {
        stream = decodeStream(stream, coding);
      } catch (e) {
        opened.stream.cancel(e).catch(() => {});
        throw e;
      }
    } else if (first.final) {
      i.headers.set('content-length', String(first.length));
    } else if (res.headers.get('content-length') !== null) {
      // An answer of known length comes in 16 KiB records: its plaintext's.
      const n = plaintextLength(Number(res.headers.get('content-length')));
      if (n >= 0) i.headers.set('content-length', String(n));
    }
    return withURL(withStreamErrors(new Response(stream, i), opened.failure), res, redirected);
  }
  return plaintextAnswer(res, method, redirected);
}

/** The module error of an unsealed answer, without consuming it: { code } or null. */
async function peekModuleError(res, method) {
  if (isSealedType(res) || res.headers.get(HDR_SEAL) !== null || res.status < 400) return null;
  // Module errors are JSON. (Nothing else is cloned: cancelling one branch of
  // a clone waits for the other.)
  if (!/json/i.test(res.headers.get('content-type') || '')) return null;
  if (method === 'HEAD') {
    // No body to read: an unsealed 401 in JSON can only be the module's.
    return res.status === 401 ? { code: 'e2e_session_invalid' } : null;
  }
  return readModuleError(res.clone());
}

/**
 * fetch with end-to-end encryption: same signature and result as fetch.
 * Requests to the handshake's origin get their body sealed and ask for a
 * sealed answer, which is verified and opened into a genuine Response
 * (original status, statusText and headers, Content-Type = the
 * application's). Other requests, and all requests before a successful
 * handshake, go to fetch untouched.
 *
 * Rejects (fail closed) with ZeqE2EError e2e_downgrade when a sealed request
 * gets an unsealed answer that is not a module error, and with
 * e2e_bad_envelope when the answer's sealed body or seal does not verify.
 * v2 answers resolve once their first record has verified; their body then
 * streams, and errors with e2e_bad_envelope at a record that does not verify
 * and with e2e_truncated if it ends before its final record.
 * Module errors (plaintext JSON {"error": "e2e_..."}, status 4xx/5xx) resolve
 * as a Response with that status and body, and a `zeqE2EError` property
 * naming the code. v2: every request gets the next sequence number; 401
 * e2e_session_invalid leads to one new handshake and one retry, 400
 * e2e_replayed to one retry with a new number; a redirected GET or HEAD is
 * sent again to where it was redirected.
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
  for (const h of [HDR_SESSION, HDR_SEQ, HDR_SEAL]) baseHeaders.delete(h);
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
  const givenMethod = init && init.method ? String(init.method) : (isRequest ? input.method : 'GET');
  const method = normalizeMethod(givenMethod);
  const upper = method.toUpperCase();

  let target = wireURL(url);
  let renewed = false;
  let replayed = false;
  let redirects = 0;
  for (;;) {
    const session = await getSession(signal);
    const headers = new Headers(baseHeaders);
    headers.set(HDR_SESSION, session.id);
    const requestInit = { ...(init || {}), headers };
    delete requestInit.body;
    if ('duplex' in requestInit) delete requestInit.duplex;
    let seq = -1;
    if (session.version === 2) {
      seq = session.seq++;
      session.seals++;
      headers.set(HDR_SEQ, String(seq));
      const innerType = headers.get(HDR_CONTENT_TYPE);
      const aad = requestAAD(session.id, seq, method, requestTarget(target), innerType === null ? '' : innerType);
      if (plain !== null) {
        requestInit.body = await sealMessage(session.c2s, aad, plain);
      } else {
        headers.set(HDR_SEAL, toBase64url(await sealMessage(session.c2s, aad, new Uint8Array(0))));
      }
    } else if (plain !== null) {
      session.seals++;
      requestInit.body = await sealEnvelope(session.key, plain);
    }
    const request = buildRequest(input, session.version === 2 ? target.href : url.href, requestInit);
    if (session.version === 2 && (request.method !== method || request.url.split('#')[0] !== target.href)) {
      throw new ZeqE2EError('e2e_unsupported',
        `fetch would send ${request.method} ${request.url}, not the ${method} ${target.href} that was sealed`);
    }
    const res = await underlyingFetch(request);
    const err = await peekModuleError(res, upper);
    if (err && err.code === 'e2e_session_invalid' && res.status === 401 && !renewed) {
      // Forget it so that the retry handshakes (shared with concurrent
      // requests that got the same answer).
      renewed = true;
      if (res.body) await res.body.cancel().catch(() => {});
      await abortable(renewSession(session), signal);
      continue;
    }
    if (session.version === 2 && err && res.redirected &&
        (err.code === 'e2e_decrypt_failed' || err.code === 'e2e_replayed')) {
      // The browser followed a redirect with this request's number and seal,
      // which the server refused at the new target: that request did not
      // run. A GET or HEAD is sent again there (a method and body that other
      // redirects may change cannot be told apart here).
      if (res.body) await res.body.cancel().catch(() => {});
      let next = null;
      try { next = new URL(res.url); } catch { /* refused below */ }
      if ((upper === 'GET' || upper === 'HEAD') && next && next.origin === config.origin && redirects < MAX_REDIRECTS) {
        redirects++;
        target = wireURL(next);
        continue;
      }
      throw new ZeqE2EError('e2e_redirect',
        `${method} ${target.href} was redirected to ${res.url}, where the browser sent it again with the seal of ` +
        `the original target (refused: ${err.code}); the application ran the original request; the library sends ` +
        'only GET and HEAD again', { status: res.status });
    }
    if (session.version === 2 && err && err.code === 'e2e_replayed' && res.status === 400 && !replayed) {
      // Not executed: again, with a new number.
      replayed = true;
      if (res.body) await res.body.cancel().catch(() => {});
      continue;
    }
    return session.version === 2
      ? openResponseV2(res, session, seq, upper, signal, redirects > 0)
      : openResponseV1(res, session, upper, signal);
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
// WebSockets (protocol sections 16 and 18.11). v2: the socket is opened
// with ?e2e_session=<id>&e2e_seq=<n>&e2e_seal=<seal of the opening as a GET>;
// every data message, both ways, is one binary frame carrying a sealed
// message of type || message (0x01 text, 0x02 binary) bound to the socket,
// its direction and its place (a counter per direction from 0). v1: only
// e2e_session, and an envelope per frame. Sealing and opening are
// asynchronous (Web Crypto), so both directions run through promise chains
// that keep the order of messages.

const WS_TYPE_TEXT = 0x01;
const WS_TYPE_BINARY = 0x02;
/** v2: the end message, alone, before each side's close frame (18.11). */
const WS_TYPE_END = 0x03;
const WS_SESSION_PARAM = 'e2e_session';
/** The query parameters of an opening (18.11), never passed on from the page. */
const WS_PARAMS = [WS_SESSION_PARAM, 'e2e_seq', 'e2e_seal'];
const WS_CONNECTING = 0;
const WS_OPEN = 1;
const WS_CLOSING = 2;
const WS_CLOSED = 3;
/**
 * The codes of the closes the library starts itself: 4000 + the RFC 6455
 * code, since close() only takes 1000 and 3000-4999 in browsers. 4008: a
 * server frame that is not a binary frame with a message that verifies (v2:
 * under its expected counter) and has a known type (1008, policy
 * violation); 4007: a text message that is not UTF-8 (1007).
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
 * http(s) becomes ws(s), the fragment, empty query items and any
 * e2e_session, e2e_seq or e2e_seal parameter (however spelt) go.
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
  // The caller's e2e_* parameters are dropped: the library sets its own.
  const params = url.search.slice(1).split('&').filter((p) => {
    if (p === '') return false;
    let name = p.split('=')[0];
    try { name = decodeURIComponent(name); } catch { /* not one of them */ }
    return !WS_PARAMS.includes(name);
  });
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

/** Throws SyntaxError, as `new WebSocket` does, for a subprotocol list it would refuse. */
function checkProtocols(protocols) {
  if (protocols === undefined) return;
  const list = typeof protocols === 'string' ? [protocols] : Array.from(protocols, String);
  const seen = new Set();
  for (const p of list) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(p) || seen.has(p)) {
      throw new DOMException(`The subprotocol '${p}' is invalid or given twice.`, 'SyntaxError');
    }
    seen.add(p);
  }
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

/** The on<type> handlers of EventTargets of this library: { type: { fn, listener } } by object. */
const eventHandlers = new WeakMap();

/**
 * Gives a class's prototype the on<type> attributes of the platform's
 * EventTargets (onopen, ...): a function set there is one more listener,
 * called with the target as `this`, replaced in place when set again.
 */
function defineEventHandlers(cls, types) {
  const of = (target) => {
    let h = eventHandlers.get(target);
    if (!h) eventHandlers.set(target, (h = {}));
    return h;
  };
  for (const type of types) {
    Object.defineProperty(cls.prototype, `on${type}`, {
      configurable: true,
      get() {
        const h = of(this)[type];
        return h ? h.fn : null;
      },
      set(fn) {
        const handlers = of(this);
        const value = typeof fn === 'function' || (fn !== null && typeof fn === 'object') ? fn : null;
        let h = handlers[type];
        if (value === null) {
          if (h) this.removeEventListener(type, h.listener);
          handlers[type] = null;
          return;
        }
        if (!h) {
          h = { fn: value, listener: null };
          const target = this;
          h.listener = (ev) => (typeof h.fn === 'function' ? h.fn.call(target, ev) : undefined);
          handlers[type] = h;
          this.addEventListener(type, h.listener);
        }
        h.fn = value;
      },
    });
  }
}

/** Puts a class's state constants ([name, value]) on its prototype, as the platform's interfaces have them. */
function defineConstants(cls, constants) {
  for (const [name, value] of constants) Object.defineProperty(cls.prototype, name, { value, enumerable: true });
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
  /** v2: the opening's sequence number, and the next message's counter each way */
  #upgradeSeq = -1;
  #sent = 0;
  #received = 0;
  /** v2: the server's end message came (its close is then clean). */
  #serverEnded = false;
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
    // As `new WebSocket` does, before any sealing makes opening asynchronous.
    checkProtocols(protocols);
    if (sessionIsFresh(state.session)) {
      // Errors of WebSocket's constructor (a blocked port) are thrown here
      // for a v1 session, as by `new WebSocket`.
      this.#connect(state.session);
    } else {
      // Close to its expiry: renewed first, as zeqE2EFetch does.
      getSession().then((session) => {
        try {
          this.#connect(session);
        } catch (e) {
          this.#abort(e);
        }
      }, (e) => this.#abort(e));
    }
  }

  /**
   * Opens the underlying socket with the session's id in the query; v2 also
   * its sequence number and the seal of the opening as a bodiless GET of the
   * URL without the three parameters (as the server rebuilds it), which
   * makes the opening asynchronous.
   */
  #connect(session) {
    if (session.version !== 2) {
      if (this.#readyState !== WS_CONNECTING) {
        this.#abort(undefined);
        return;
      }
      this.#open(session, `${WS_SESSION_PARAM}=${encodeURIComponent(session.id)}`);
      return;
    }
    const seq = session.seq++;
    session.seals++;
    const url = new URL(this.#url);
    const aad = requestAAD(session.id, seq, 'GET', url.pathname + url.search, '');
    sealMessage(session.c2s, aad, new Uint8Array(0)).then((seal) => {
      if (this.#readyState !== WS_CONNECTING) {
        // close() while the opening was being sealed.
        this.#abort(undefined);
        return;
      }
      this.#upgradeSeq = seq;
      this.#open(session, `${WS_SESSION_PARAM}=${encodeURIComponent(session.id)}&e2e_seq=${seq}` +
        `&e2e_seal=${toBase64url(seal)}`);
    }).catch((e) => this.#abort(e));
  }

  /** Creates the underlying socket: this.#url with params appended to its query. */
  #open(session, params) {
    const wire = new URL(this.#url);
    wire.search = `${wire.search ? `${wire.search}&` : '?'}${params}`;
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
    const session = this.#session;
    const counter = this.#received++;
    const upgradeSeq = this.#upgradeSeq;
    // Opened now (in parallel), delivered in order.
    const opened = Promise.resolve(bytes).then((m) => (session.version === 2
      ? openMessage(session.s2c, webSocketAAD(session.id, upgradeSeq, 's2c', counter), m,
        `message ${counter} from the server`)
      : openEnvelope(session.key, m)));
    opened.catch(() => {});
    this.#inOrder(async () => this.#deliver(await opened));
  }

  /** Delivers type || message as a MessageEvent; throws for a bad one. */
  #deliver(plain) {
    if (this.#failed) return;
    if (this.#session.version === 2 && plain.length === 1 && plain[0] === WS_TYPE_END) {
      // The server's last message: its close frame follows (also after close()).
      if (this.#serverEnded) throw new ZeqE2EError('e2e_bad_envelope', 'the server sent a second end message');
      this.#serverEnded = true;
      return;
    }
    if (this.#serverEnded) {
      throw new ZeqE2EError('e2e_bad_envelope', 'the server sent a message after its end message');
    }
    if (this.#closeCalled) return;
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
      // v2: a close frame without the server's end message first is not
      // clean: its last messages may have been dropped. (After close(), the
      // browser drops whatever arrives, the server's end message included,
      // as it drops any message: the page asked for no more.)
      const ended = this.#session === null || this.#session.version !== 2 || this.#serverEnded || this.#closeCalled;
      this.dispatchEvent(closeEvent(code, reason, wasClean && !this.#failed && ended));
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
    // v2: the counter of the call's order, which is the order of the frames.
    const counter = this.#sent++;
    const upgradeSeq = this.#upgradeSeq;
    this.#queued += message.size;
    const read = typeof message.bytes === 'function' ? message.bytes() : message.bytes;
    const sealed = Promise.resolve(read).then((bytes) => {
      const plain = new Uint8Array(1 + bytes.length);
      plain[0] = message.type;
      plain.set(bytes, 1);
      return session.version === 2
        ? sealMessage(session.c2s, webSocketAAD(session.id, upgradeSeq, 'c2s', counter), plain)
        : sealEnvelope(session.key, plain);
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
    if (!socket) return; // the session is being renewed or the opening sealed: #abort follows
    if (wasConnecting) {
      socket.close(...args);
      return;
    }
    // v2: the end message goes last, with the next counter, then the close frame.
    const session = this.#session;
    const end = session.version === 2 ? this.#sent++ : -1;
    if (end >= 0) session.seals++;
    this.#sending = this.#sending.then(async () => {
      if (end >= 0 && !this.#failed && socket.readyState === WS_OPEN) {
        let sealed = null;
        try {
          sealed = await sealMessage(session.c2s, webSocketAAD(session.id, this.#upgradeSeq, 'c2s', end),
            new Uint8Array([WS_TYPE_END]));
        } catch { /* the close frame goes all the same */ }
        if (sealed && !this.#failed && socket.readyState === WS_OPEN) socket.send(sealed);
      }
      if (socket.readyState < WS_CLOSING) socket.close(...args);
    });
  }

  /** The URL, resolved, without the e2e_* parameters. */
  get url() { return this.#url; }
  get readyState() { return this.#readyState; }
  get protocol() { return this.#socket ? this.#socket.protocol : ''; }
  get extensions() { return this.#socket ? this.#socket.extensions : ''; }
  /**
   * Bytes given to send() and not sent yet: those being sealed, plus the
   * underlying socket's (sealed messages: v2 34 bytes more per message of
   * up to 16 KiB, v1 envelopes 29).
   */
  get bufferedAmount() {
    return this.#queued + this.#discarded + (this.#socket ? this.#socket.bufferedAmount : 0);
  }
  get binaryType() { return this.#binaryType; }
  set binaryType(value) {
    if (value === 'blob' || value === 'arraybuffer') this.#binaryType = value;
  }
}

defineConstants(ZeqE2EWebSocket, [['CONNECTING', WS_CONNECTING], ['OPEN', WS_OPEN], ['CLOSING', WS_CLOSING],
  ['CLOSED', WS_CLOSED]]);
defineEventHandlers(ZeqE2EWebSocket, ['open', 'message', 'error', 'close']);

/**
 * Opens a WebSocket whose messages travel encrypted under the default
 * session (protocol section 16): same interface as WebSocket. It performs no
 * handshake of its own; throws ZeqE2EError e2e_no_session before a
 * successful zeqE2EHandshake.
 */
export function zeqE2EWebSocket(url, protocols) {
  return new ZeqE2EWebSocket(url, protocols);
}

// ---------------------------------------------------------------------------
// Server-Sent Events (the HTML standard's "Server-sent events") over
// zeqE2EFetch: the same interface as EventSource, the event stream of an
// encrypted answer read as it is opened, record by record.

const ES_CONNECTING = 0;
const ES_OPEN = 1;
const ES_CLOSED = 2;
/** The reconnection time until the stream sets one with `retry:` (browsers' default too). */
const ES_DEFAULT_RETRY_MS = 3000;
/** The longest delay setTimeout keeps (a longer one would fire at once). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * The event stream format (HTML, "Parsing an event stream" and
 * "Interpreting an event stream"), fed decoded text in pieces of any size:
 * lines end in CRLF, LF or CR (also split between pieces), a blank line
 * dispatches the event, `:` starts a comment; fields `event`, `data` (one
 * line more each time), `id` (ignored when it holds a NUL) and `retry`
 * (ASCII digits only); other fields are ignored. `on` receives
 * lastEventId(id) at every dispatch, event(type, data) for each event with
 * data, retry(ms). What the stream holds after its last blank line is
 * never dispatched.
 */
class EventStreamParser {
  constructor(lastEventId, on) {
    this.on = on;
    this.line = '';
    /** the last character was a CR: an LF right after it ends no line */
    this.afterCR = false;
    this.data = '';
    this.type = '';
    // The last event ID buffer starts from the source's last event ID, as
    // browsers do, so that an event without `id` after a reconnection
    // keeps it.
    this.id = lastEventId;
  }

  feed(text) {
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 0x0a && c !== 0x0d) {
        this.afterCR = false;
        continue;
      }
      if (c === 0x0a && this.afterCR) {
        this.afterCR = false;
        start = i + 1;
        continue;
      }
      const line = this.line + text.slice(start, i);
      this.line = '';
      this.afterCR = c === 0x0d;
      start = i + 1;
      this.#line(line);
    }
    this.line += text.slice(start);
  }

  #line(line) {
    if (line === '') {
      this.#dispatch();
      return;
    }
    if (line[0] === ':') return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data += `${value}\n`;
    else if (field === 'id') {
      if (!value.includes('\0')) this.id = value;
    } else if (field === 'retry') {
      if (/^[0-9]+$/.test(value)) this.on.retry(Math.min(Number(value), MAX_TIMEOUT_MS));
    }
  }

  #dispatch() {
    this.on.lastEventId(this.id);
    if (this.data === '') {
      this.type = '';
      return;
    }
    const data = this.data.endsWith('\n') ? this.data.slice(0, -1) : this.data;
    const type = this.type || 'message';
    this.data = '';
    this.type = '';
    this.on.event(type, data);
  }
}

/** A header value of a string's UTF-8 bytes (fetch takes header values one byte per code unit). */
function utf8Header(text) {
  return String.fromCharCode(...encoder.encode(text));
}

/**
 * An EventSource whose event stream comes through zeqE2EFetch: encrypted
 * and verified where zeqE2EFetch encrypts (same origin as the session),
 * delivered record by record as the server seals what the application
 * flushes. See zeqE2EEventSource.
 */
export class ZeqE2EEventSource extends EventTarget {
  static CONNECTING = ES_CONNECTING;
  static OPEN = ES_OPEN;
  static CLOSED = ES_CLOSED;

  #url;
  #withCredentials;
  #readyState = ES_CONNECTING;
  #lastEventId = '';
  #retry = ES_DEFAULT_RETRY_MS;
  /** the AbortController of the connection in progress, null between connections */
  #connection = null;
  #timer = null;

  /**
   * @param {string | URL} url
   * @param {{ withCredentials?: boolean }} [options]
   */
  constructor(url, options = {}) {
    super();
    if (arguments.length === 0) {
      throw new TypeError("Failed to construct 'ZeqE2EEventSource': 1 argument required, but only 0 present.");
    }
    const resolved = resolveURL(url);
    if (!resolved) throw new DOMException(`Cannot open an EventSource to '${url}'. The URL is invalid.`, 'SyntaxError');
    this.#url = resolved.href;
    this.#withCredentials = Boolean(options && options.withCredentials);
    // Connects once the constructor has returned: listeners added now see
    // every event.
    Promise.resolve().then(() => this.#connect());
  }

  async #connect() {
    if (this.#readyState !== ES_CONNECTING) return;
    const connection = new AbortController();
    this.#connection = connection;
    const current = () => this.#connection === connection && this.#readyState !== ES_CLOSED;
    const headers = new Headers({ Accept: 'text/event-stream' });
    if (this.#lastEventId !== '') headers.set('Last-Event-ID', utf8Header(this.#lastEventId));
    let res;
    try {
      res = await zeqE2EFetch(this.#url, {
        headers, cache: 'no-store', credentials: this.#withCredentials ? 'include' : 'same-origin',
        signal: connection.signal,
      });
    } catch (e) {
      if (current()) this.#lost(e);
      return;
    }
    if (!current()) {
      if (res.body) res.body.cancel().catch(() => {});
      return;
    }
    if (res.status !== 200 || mediaType(res.headers.get('content-type')) !== 'text/event-stream' || !res.body) {
      // Not an event stream (204 included, which is how a server says stop).
      if (res.body) res.body.cancel().catch(() => {});
      this.#fail(undefined);
      return;
    }
    this.#readyState = ES_OPEN;
    this.dispatchEvent(new Event('open'));
    let origin;
    try { origin = new URL(res.url || this.#url).origin; } catch { origin = new URL(this.#url).origin; }
    const parser = new EventStreamParser(this.#lastEventId, {
      lastEventId: (id) => { if (current()) this.#lastEventId = id; },
      retry: (ms) => { if (current()) this.#retry = ms; },
      event: (type, data) => {
        if (current()) this.dispatchEvent(new MessageEvent(type, { data, origin, lastEventId: this.#lastEventId }));
      },
    });
    const reader = res.body.getReader();
    // UTF-8, one leading BOM dropped, invalid bytes as U+FFFD.
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (!current()) {
          reader.cancel().catch(() => {});
          return;
        }
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch (e) {
      if (current()) this.#lost(e);
      return;
    }
    // The stream ended: what followed its last blank line is dropped.
    if (current()) this.#reconnect(undefined);
  }

  /**
   * The connection failed: a network error or an answer cut short
   * (e2e_truncated) reconnects, as EventSource does after a network error;
   * anything the library refuses (an answer that does not verify,
   * unsealed, ...) closes it for good.
   */
  #lost(e) {
    const code = e instanceof ZeqE2EError ? e.code : null;
    if (e instanceof TypeError || code === 'e2e_truncated' || code === 'e2e_network') {
      this.#reconnect(code ? e : undefined);
    } else {
      this.#fail(e instanceof ZeqE2EError ? e : undefined);
    }
  }

  /** "Reestablish the connection": CONNECTING, error, and a new request after the reconnection time. */
  #reconnect(error) {
    if (this.#readyState === ES_CLOSED) return;
    this.#connection = null;
    this.#readyState = ES_CONNECTING;
    this.dispatchEvent(errorEvent(error));
    if (this.#readyState !== ES_CONNECTING || this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#connect();
    }, this.#retry);
  }

  /** "Fail the connection": CLOSED, error, no reconnection. */
  #fail(error) {
    if (this.#readyState === ES_CLOSED) return;
    this.#connection = null;
    this.#readyState = ES_CLOSED;
    this.dispatchEvent(errorEvent(error));
  }

  /** Closes the stream: no more events, no reconnection. */
  close() {
    this.#readyState = ES_CLOSED;
    if (this.#connection) this.#connection.abort();
    this.#connection = null;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** The URL, resolved. */
  get url() { return this.#url; }
  get withCredentials() { return this.#withCredentials; }
  get readyState() { return this.#readyState; }
  /** The last event ID string: the `id` of the last event dispatched (sent as Last-Event-ID on reconnection). */
  get lastEventId() { return this.#lastEventId; }
}

defineConstants(ZeqE2EEventSource, [['CONNECTING', ES_CONNECTING], ['OPEN', ES_OPEN], ['CLOSED', ES_CLOSED]]);
defineEventHandlers(ZeqE2EEventSource, ['open', 'message', 'error']);

/**
 * Opens an event stream (text/event-stream) with the interface of
 * EventSource through zeqE2EFetch: encrypted under the default session where
 * zeqE2EFetch encrypts, each event delivered as soon as its record has
 * verified. options: { withCredentials }.
 */
export function zeqE2EEventSource(url, options) {
  return new ZeqE2EEventSource(url, options);
}
