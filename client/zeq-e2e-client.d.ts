/**
 * zeq-e2e-client: the browser half of mod_zeq_e2e (docs/PROTOCOL.md).
 *
 * {@link zeqE2EHandshake} speaks protocol version 2 by default: an ECDH
 * (P-256) key agreement with HKDF-SHA256, so the page holds no secret, and
 * one key per direction. After it, every request to the handshake's origin
 * made with {@link zeqE2EFetch} (or with `fetch` once {@link zeqE2EWrap} has
 * run) carries the next sequence number (`X-E2E-Seq`), sends its body as a
 * sealed message bound to its method, target, number and type (a request
 * without a body sends the seal of the empty message in `X-E2E-Seal`), and
 * asks for a sealed answer, which is verified (bound to the request and its
 * status) and opened before the application sees it. Before a handshake, and
 * for every other origin, requests go to the native `fetch` untouched.
 * Protocol version 1 (`{ protocol: 1, secret }`) seals bodies in AES-256-GCM
 * envelopes under a key derived from a shared secret.
 *
 * Fail closed: once a session exists, an answer to a sealed request that is
 * not sealed, or does not verify, is never handed to the application, except
 *  - module errors: plaintext JSON `{"error": "e2e_...", "message": ...}` with
 *    a 4xx/5xx status, which the server answers before the application runs.
 *    They resolve as a `Response` with that status and body and a
 *    `zeqE2EError` property naming the code. `401 e2e_session_invalid` never
 *    reaches the application: the library performs one new handshake (shared
 *    by concurrent requests) and retries once; `400 e2e_replayed` is retried
 *    once with a new number.
 *  - v1 only: answers without a body (HEAD, 1xx, 204, 205, 304); in v2 they
 *    must carry a seal that verifies.
 * Anything else (a plaintext 2xx, a plaintext 404 page of a location where
 * the server does not encrypt, a cross-origin redirect) rejects with a
 * {@link ZeqE2EError} whose code is `e2e_downgrade`, a sealed answer or seal
 * that does not verify with `e2e_bad_envelope`.
 *
 * v2 answers stream: the `Response` resolves once the answer's first record
 * has verified (which authenticates its status and type), and its body is
 * opened record by record as it arrives, so `response.body.getReader()`
 * gives each record's plaintext when it is there (progress, Server-Sent
 * Events), with the library holding about one record. A record that does
 * not verify, or bytes after the final record, error the body with
 * `e2e_bad_envelope`; a body that ends before its final record (the
 * connection failed, or closed cleanly, in the middle) errors with
 * `e2e_truncated`, never as a shorter body: `text()`, `json()`,
 * `arrayBuffer()`, `blob()` and `formData()` reject with that
 * {@link ZeqE2EError}.
 *
 * {@link zeqE2EEventSource} is `EventSource` over {@link zeqE2EFetch}.
 *
 * {@link zeqE2EWebSocket} opens a WebSocket under the same session: every
 * message, both ways, is one binary frame with a sealed message (v2: bound
 * to the socket, its direction and its place, and each side's last message
 * is a sealed end message); a server frame that does not verify closes the
 * socket without being delivered.
 *
 * @packageDocumentation
 */

/** `application/x-zeq-e2e`: the outer Content-Type of sealed bodies. */
export declare const ZEQ_E2E_MEDIA_TYPE: 'application/x-zeq-e2e';

/** 2: the protocol version {@link zeqE2EHandshake} speaks unless told otherwise. */
export declare const ZEQ_E2E_PROTOCOL: 2;

/** 16384: the plaintext bytes per record of the v2 sealed messages this library sends. */
export declare const ZEQ_E2E_RECORD_SIZE: 16384;

/** 28: a v1 envelope (iv ‖ tag ‖ ciphertext) is this much longer than its plaintext. */
export declare const ZEQ_E2E_ENVELOPE_OVERHEAD: 28;

/** Error codes the server sends (PROTOCOL.md sections 10 and 18.10). */
export type ZeqE2EServerErrorCode =
  | 'e2e_bad_handshake'
  | 'e2e_method_not_allowed'
  | 'e2e_unavailable'
  | 'e2e_session_invalid'
  | 'e2e_decrypt_failed'
  | 'e2e_body_too_large'
  | 'e2e_required'
  | 'e2e_bad_request'
  | 'e2e_encrypt_failed'
  | 'e2e_replayed'
  | 'e2e_version_unsupported'
  | 'e2e_psk_required';

/** Error codes of the library itself. */
export type ZeqE2EClientErrorCode =
  /** the handshake could not reach the server (`cause` holds the fetch error) */
  | 'e2e_network'
  /** the handshake answer is not an answer of the protocol version asked for */
  | 'e2e_bad_handshake_answer'
  /** the handshake got a non-200 answer that is not a module error (e.g. a 404 page) */
  | 'e2e_handshake_failed'
  /** a server key is pinned and the answer is not signed, signed by another key, or the signature does not verify */
  | 'e2e_bad_signature'
  /** a v2 handshake got a v1 answer (without `allowV1`), or a sealed request an unsealed answer that is not a module error */
  | 'e2e_downgrade'
  /** an answer's sealed body or seal did not verify, or a v2 answer without a body came without its seal */
  | 'e2e_bad_envelope'
  /**
   * a v2 answer ended before its final record: the connection failed or
   * closed in the middle (the server cuts an answer whose application failed
   * once it had begun); what came of it is not the whole answer
   */
  | 'e2e_truncated'
  /** a v2 request other than GET or HEAD was redirected (the browser re-sent it with the seal of the old target) */
  | 'e2e_redirect'
  /** no Web Crypto, no WebSocket, an unknown X-E2E-Content-Encoding, a Content-Encoding on a request body */
  | 'e2e_unsupported'
  /** zeqE2EWebSocket before a successful handshake */
  | 'e2e_no_session'
  /** zeqE2EWebSocket to an origin other than the session's */
  | 'e2e_cross_origin';

/** What this library rejects with (besides the TypeErrors and AbortErrors of fetch). */
export declare class ZeqE2EError extends Error {
  constructor(code: string, message: string, options?: { status?: number; cause?: unknown });
  readonly name: 'ZeqE2EError';
  /** The server's error code or the library's. */
  readonly code: ZeqE2EServerErrorCode | ZeqE2EClientErrorCode | string;
  /** The HTTP status that caused the error, 0 when there was none. */
  readonly status: number;
  readonly cause?: unknown;
}

/**
 * A server's ECDSA P-256 public key, to pin: its DER SubjectPublicKeyInfo in
 * base64url (base64 and a PEM `PUBLIC KEY` block are accepted too), or a
 * public JWK (`kty` `EC`, `crv` `P-256`, `x`, `y`).
 */
export type ZeqE2EServerKey = string | JsonWebKey;

/** A secret as configured with `ZeqE2ESecret` (a string is used as its UTF-8 bytes). */
export type ZeqE2ESecret = string | ArrayBuffer | ArrayBufferView;

interface ZeqE2ECommonOptions {
  /** The handshake path (`ZeqE2EHandshakePath`), default `/api/e2e/handshake`. */
  handshakePath?: string;
}

/** Protocol version 2 (the default), plain or signed. */
export interface ZeqE2EV2Options extends ZeqE2ECommonOptions {
  protocol?: 2;
  /**
   * Pre-shared key mode: the virtual host's secret. The key agreement then
   * also depends on PBKDF2-HMAC-SHA256(secret, "zeq-e2e/2 psk"), computed
   * once: a party without the secret derives other keys.
   */
  secret?: ZeqE2ESecret;
  /**
   * The server's signing key (`ZeqE2EServerKey`), or several (rotation): an
   * answer that is not signed by one of them over this handshake is refused
   * (`e2e_bad_signature`). This is what stops an active attacker on the
   * handshake.
   */
  serverKey?: ZeqE2EServerKey | readonly ZeqE2EServerKey[];
  allowV1?: false;
}

/**
 * Protocol version 2, and version 1 where the server offers only that: a v1
 * answer, or `400 e2e_version_unsupported`, gives a v1 session under the
 * secret (which a v2 handshake uses in pre-shared key mode). Never with
 * `serverKey`: v1 handshakes are not signed (a TypeError says so).
 */
export interface ZeqE2EV2OrV1Options extends ZeqE2ECommonOptions {
  protocol?: 2;
  secret: ZeqE2ESecret;
  allowV1: true;
  serverKey?: undefined;
}

/** Protocol version 1: the key derives from the shared secret (PBKDF2 over the nonces). */
export interface ZeqE2EV1Options extends ZeqE2ECommonOptions {
  protocol: 1;
  secret: ZeqE2ESecret;
  serverKey?: undefined;
  allowV1?: undefined;
}

export type ZeqE2EHandshakeOptions = ZeqE2EV2Options | ZeqE2EV2OrV1Options | ZeqE2EV1Options;

export interface ZeqE2ESessionInfo {
  /** The opaque session id sent as `X-E2E-Session`. */
  sessionId: string;
  /** When the session expires, in milliseconds since the epoch (like `Date.now()`). */
  expiresAt: number;
  /** The session's protocol version. */
  version: 1 | 2;
  /** Whether the v2 session was agreed in pre-shared key mode. */
  psk: boolean;
  /** The pinned key (base64url SHA-256 of its SPKI) whose signature was verified, or null. */
  signer: string | null;
}

/**
 * Performs the handshake with `origin` (default: the page's origin), derives
 * the session keys (non-extractable AES-GCM `CryptoKey`s) and keeps them as
 * the default session: from then on requests to that origin are sealed. What
 * renewals need is kept (the PSK, the pinned keys; the secret for v1) to
 * renew the session before it expires and after the server forgot it.
 *
 * Rejects with a {@link ZeqE2EError}: the server's code (`e2e_unavailable`
 * for pre-shared key mode or v1 where the virtual host has no secret,
 * `e2e_version_unsupported`, `e2e_psk_required`, ...) or `e2e_network`,
 * `e2e_handshake_failed`, `e2e_bad_handshake_answer`, `e2e_bad_signature`,
 * `e2e_downgrade`; with a TypeError for options that do not fit together
 * (protocol 1 or `allowV1` without a secret, `serverKey` with either). A
 * previous session, if any, stays in use.
 */
export declare function zeqE2EHandshake(
  origin?: string | URL | null,
  options?: ZeqE2EHandshakeOptions,
): Promise<ZeqE2ESessionInfo>;

/** The default session and its origin, or null before a successful handshake. */
export declare function zeqE2ESession(): (ZeqE2ESessionInfo & { origin: string }) | null;

/**
 * `fetch` with end-to-end encryption: same signature, and a genuine
 * `Response` with the original status, statusText and headers, whose
 * Content-Type is the application's own (`X-E2E-*` headers removed,
 * Content-Length that of the plaintext where it is known: v1, an answer of
 * one record, an answer the server sent with its length; none for a
 * streamed one or one the library decompresses).
 *
 * v2 answers resolve once their first record has verified and stream the
 * rest (see the package documentation): the body errors with
 * `e2e_truncated` if it ends before its final record and with
 * `e2e_bad_envelope` at a record that does not verify (nothing of that
 * record is delivered, what verified before it was). v1 answers are opened
 * whole before they resolve.
 *
 * v2: every request carries the session's next sequence number, one more
 * for each request and each retry, never reused; the body is sealed bound to
 * the method and the request-target as `fetch` sends it (the URL's path and
 * query; a lone `?` without a query is dropped from the URL). A redirected
 * GET or HEAD is sent again, with a new number, to where it was redirected;
 * other methods reject with `e2e_redirect` (the application ran the first
 * request).
 *
 * Any body is sealed: string, URLSearchParams, FormData (its multipart
 * boundary kept), Blob (its type), ArrayBuffer, typed arrays, DataView,
 * ReadableStream (read to the end first); also the body of a `Request`. Its
 * media type travels in `X-E2E-Content-Type` (an explicit Content-Type
 * header wins; bytes without any type are sent as
 * `application/octet-stream`). `signal`, `credentials`, `redirect`, `cache`
 * and the rest of `init` keep their meaning.
 *
 * Rejects with {@link ZeqE2EError} `e2e_downgrade`, `e2e_bad_envelope` or
 * `e2e_redirect` (fail closed, see the package documentation); module errors
 * resolve as a `Response` whose `zeqE2EError` property names the code (a v2
 * module error to a HEAD has no body to name it: no property).
 */
export declare function zeqE2EFetch(
  input: RequestInfo | URL,
  init?: RequestInit,
): Promise<Response & { zeqE2EError?: ZeqE2EServerErrorCode }>;

/** Replaces `globalThis.fetch` with {@link zeqE2EFetch}. Wrapping twice is harmless. */
export declare function zeqE2EWrap(): void;

/** Restores the `fetch` that {@link zeqE2EWrap} replaced. Harmless when not wrapped. */
export declare function zeqE2EUnwrap(): void;

/** 4008: the close code the library sends when it refuses a server frame (RFC 6455's 1008, which `close()` cannot send); v2: also one out of its place. */
export declare const ZEQ_E2E_WS_CLOSE_POLICY: 4008;

/** 4007: the close code the library sends for a text message that is not UTF-8 (RFC 6455's 1007). */
export declare const ZEQ_E2E_WS_CLOSE_BAD_TEXT: 4007;

/** The `error` event of a {@link ZeqE2EWebSocket} or a {@link ZeqE2EEventSource}. */
export interface ZeqE2EWebSocketErrorEvent extends Event {
  /**
   * Set when the library failed the socket: a {@link ZeqE2EError} whose code
   * is `e2e_bad_envelope` for a refused server frame. Absent for the
   * browser's own errors (a refused upgrade, a lost connection).
   */
  readonly error?: ZeqE2EError;
}

export interface ZeqE2EWebSocketEventMap {
  open: Event;
  message: MessageEvent<string | Blob | ArrayBuffer>;
  error: ZeqE2EWebSocketErrorEvent;
  close: CloseEvent;
}

/**
 * A WebSocket whose messages travel encrypted under the default session
 * (protocol sections 16 and 18.11). Same interface as `WebSocket`; see
 * {@link zeqE2EWebSocket}.
 */
export declare class ZeqE2EWebSocket extends EventTarget {
  constructor(url: string | URL, protocols?: string | string[]);
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;

  /** The resolved `ws:`/`wss:` URL, without the `e2e_session`, `e2e_seq` and `e2e_seal` parameters. */
  readonly url: string;
  readonly readyState: 0 | 1 | 2 | 3;
  /** The subprotocol the server chose. */
  readonly protocol: string;
  /** Always `''`: the server negotiates no extension on an encrypted socket. */
  readonly extensions: string;
  /**
   * Bytes given to `send()` and not yet sent: those being sealed (counted as
   * the message's bytes) plus the browser's own buffer (sealed messages: v2
   * 1 + 13 + 20 bytes more per 16 KiB, v1 29 bytes more per message).
   */
  readonly bufferedAmount: number;
  /** How binary messages are delivered: `'blob'` (default) or `'arraybuffer'`. */
  binaryType: 'blob' | 'arraybuffer';

  onopen: ((this: ZeqE2EWebSocket, ev: Event) => any) | null;
  onmessage: ((this: ZeqE2EWebSocket, ev: MessageEvent<string | Blob | ArrayBuffer>) => any) | null;
  onerror: ((this: ZeqE2EWebSocket, ev: ZeqE2EWebSocketErrorEvent) => any) | null;
  onclose: ((this: ZeqE2EWebSocket, ev: CloseEvent) => any) | null;

  /**
   * Seals a message into one binary frame: a string as a text message (its
   * UTF-8 bytes), an `ArrayBuffer`, typed array, `DataView` or `Blob` as a
   * binary message. Messages leave in the order of the calls. Throws
   * `InvalidStateError` while CONNECTING; after `close()` the data is
   * counted in `bufferedAmount` and dropped, as by `WebSocket`.
   */
  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void;

  /**
   * Closes the socket once the messages already given to `send()` have
   * left. `code`: 1000 or 3000-4999 (else `InvalidAccessError`); `reason`:
   * at most 123 bytes of UTF-8 (else `SyntaxError`).
   */
  close(code?: number, reason?: string): void;

  addEventListener<K extends keyof ZeqE2EWebSocketEventMap>(
    type: K,
    listener: (this: ZeqE2EWebSocket, ev: ZeqE2EWebSocketEventMap[K]) => any,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof ZeqE2EWebSocketEventMap>(
    type: K,
    listener: (this: ZeqE2EWebSocket, ev: ZeqE2EWebSocketEventMap[K]) => any,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions): void;
}

/**
 * Opens a WebSocket whose messages travel encrypted under the default
 * session of {@link zeqE2EHandshake} (protocol sections 16 and 18.11).
 *
 * `url` may be relative (resolved against the page when it is on the
 * session's origin, else against that origin), `http(s):` (turned into
 * `ws(s):`) or `ws(s):`; it must be on the session's origin. The socket is
 * opened with `e2e_session=<sessionId>` added to its query; v2 also
 * `e2e_seq` (the session's next sequence number) and `e2e_seal` (the seal of
 * the opening as a GET of the URL without the three), so the opening itself
 * is asynchronous. There is no handshake of its own: without a session it
 * throws `e2e_no_session`; a session close to its expiry is renewed first,
 * as for {@link zeqE2EFetch}.
 *
 * Every message, both ways, travels as one binary frame carrying a sealed
 * message (v1: an envelope) of a type byte (0x01 text, 0x02 binary) and the
 * message; v2 binds it to the socket, its direction and its number in that
 * direction (from 0), so a message out of its place does not verify. In v2
 * `close()` sends the library's end message (type 0x03 alone, the next
 * number) before the close frame; a close frame from the server without its
 * end message first gives a `close` event with `wasClean` false (its last
 * messages may have been dropped), unless the page had called `close()`
 * (the browser drops what arrives after it); a message after the server's
 * end message is refused like one that does not verify (4008). Message
 * events deliver a string for text, a `Blob` or `ArrayBuffer` (per
 * `binaryType`) for binary, in the order the frames arrived. A server frame
 * that is not a binary frame with a message that verifies (under its
 * expected counter) and has a known type, or
 * a text message that is not UTF-8, is never delivered: the library closes
 * the socket with 4008 (4007 for the UTF-8 case), fires `error` (its
 * `error` property a {@link ZeqE2EError} `e2e_bad_envelope`), then `close`
 * with `wasClean` false. The server's own close codes (1008, 1009, ...)
 * arrive in the `close` event.
 *
 * Throws like `new WebSocket` (`SyntaxError` for a bad URL or protocol
 * list) and {@link ZeqE2EError} `e2e_no_session`, `e2e_cross_origin` or
 * `e2e_unsupported` (no `WebSocket` or Web Crypto in this environment).
 */
export declare function zeqE2EWebSocket(url: string | URL, protocols?: string | string[]): ZeqE2EWebSocket;

/** The events of a {@link ZeqE2EEventSource} (named events are `MessageEvent<string>`s of their name). */
export interface ZeqE2EEventSourceEventMap {
  open: Event;
  message: MessageEvent<string>;
  error: ZeqE2EWebSocketErrorEvent;
}

/** The options of {@link zeqE2EEventSource}, as `EventSource`'s. */
export interface ZeqE2EEventSourceInit {
  /** `credentials: 'include'` (cookies also to another origin); default false: `'same-origin'`. */
  withCredentials?: boolean;
}

/** `EventSource` over {@link zeqE2EFetch}; see {@link zeqE2EEventSource}. */
export declare class ZeqE2EEventSource extends EventTarget {
  constructor(url: string | URL, options?: ZeqE2EEventSourceInit);
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSED: 2;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSED: 2;

  /** The resolved URL. */
  readonly url: string;
  readonly withCredentials: boolean;
  readonly readyState: 0 | 1 | 2;
  /**
   * Not in `EventSource`: the last event ID string (set by the `id` fields
   * of the events dispatched so far), which a reconnection sends as
   * `Last-Event-ID`; each `MessageEvent` carries it as `lastEventId`.
   */
  readonly lastEventId: string;

  onopen: ((this: ZeqE2EEventSource, ev: Event) => any) | null;
  onmessage: ((this: ZeqE2EEventSource, ev: MessageEvent<string>) => any) | null;
  onerror: ((this: ZeqE2EEventSource, ev: ZeqE2EWebSocketErrorEvent) => any) | null;

  /** Stops the stream: no more events, no reconnection. */
  close(): void;

  addEventListener<K extends keyof ZeqE2EEventSourceEventMap>(
    type: K,
    listener: (this: ZeqE2EEventSource, ev: ZeqE2EEventSourceEventMap[K]) => any,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** A named event (`event: NAME` in the stream): a `MessageEvent<string>` of that type. */
  addEventListener(type: string, listener: (this: ZeqE2EEventSource, ev: MessageEvent<string>) => any,
    options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof ZeqE2EEventSourceEventMap>(
    type: K,
    listener: (this: ZeqE2EEventSource, ev: ZeqE2EEventSourceEventMap[K]) => any,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: (this: ZeqE2EEventSource, ev: MessageEvent<string>) => any,
    options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions): void;
}

/**
 * Opens a Server-Sent Events stream with the interface of `EventSource`,
 * through {@link zeqE2EFetch}: where that encrypts (the session's origin,
 * after a handshake) the request is sealed and the event stream comes
 * sealed, each record opened and its events dispatched as soon as it
 * arrives; elsewhere it is a plain `fetch`, as with {@link zeqE2EFetch}.
 *
 * As `EventSource` (the HTML standard): a `GET` with `Accept:
 * text/event-stream` and `cache: 'no-store'`; `open` once a `200` answer of
 * type `text/event-stream` came (v2: its first record verified); the stream
 * read as UTF-8 (one leading BOM dropped) in lines ending in CRLF, LF or CR;
 * `data` fields joined with LF, `event` naming the event (`message` by
 * default), `id` (ignored when it holds a NUL) setting `lastEventId`,
 * `retry` (ASCII digits) the reconnection time (3 s by default), comments
 * ignored, an event not ended by a blank line never dispatched. When the
 * stream ends, the connection fails (a network error) or the answer is cut
 * short (`e2e_truncated`, as the event's `error`): `readyState` CONNECTING,
 * `error`, and a new request after the reconnection time, with
 * `Last-Event-ID`. Another status (`204` is how a server says stop), another
 * type, or an answer the library refuses (`e2e_bad_envelope`,
 * `e2e_downgrade`, ..., as the event's `error`): `readyState` CLOSED and
 * `error`, no reconnection.
 *
 * Throws `SyntaxError` for a URL that does not resolve.
 */
export declare function zeqE2EEventSource(url: string | URL, options?: ZeqE2EEventSourceInit): ZeqE2EEventSource;
