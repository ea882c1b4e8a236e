/**
 * zeq-e2e-client: the browser half of mod_zeq_e2e (protocol v1).
 *
 * After a successful {@link zeqE2EHandshake}, every request to the
 * handshake's origin made with {@link zeqE2EFetch} (or with `fetch` once
 * {@link zeqE2EWrap} has run) sends its body as an AES-256-GCM envelope and
 * asks for an encrypted answer, which is opened before the application sees
 * it. Before a handshake, and for every other origin, requests go to the
 * native `fetch` untouched.
 *
 * Fail closed: once a session exists, an answer to an encrypted request that
 * is not an envelope is never handed to the application, except
 *  - answers without a body (HEAD, 1xx, 204, 205, 304; 3xx lose their body),
 *  - module errors: plaintext JSON `{"error": "e2e_...", "message": ...}` with
 *    a 4xx/5xx status, which the server answers before the application runs.
 *    They resolve as a `Response` with that status and body and a
 *    `zeqE2EError` property naming the code. `401 e2e_session_invalid` never
 *    reaches the application: the library performs one new handshake (shared
 *    by concurrent requests) and retries once.
 * Anything else (a plaintext 2xx, a plaintext 404 page of a location where
 * the server does not encrypt, a cross-origin redirect) rejects with a
 * {@link ZeqE2EError} whose code is `e2e_downgrade`.
 *
 * {@link zeqE2EWebSocket} opens a WebSocket under the same session: every
 * message, both ways, is one binary frame with an envelope; a server frame
 * that is not one closes the socket without being delivered.
 *
 * @packageDocumentation
 */

/** `application/x-zeq-e2e`: the outer Content-Type of encrypted bodies. */
export declare const ZEQ_E2E_MEDIA_TYPE: 'application/x-zeq-e2e';

/** 28: an envelope (iv ‖ tag ‖ ciphertext) is this much longer than its plaintext. */
export declare const ZEQ_E2E_ENVELOPE_OVERHEAD: 28;

/** Error codes the server sends (protocol v1, section 10). */
export type ZeqE2EServerErrorCode =
  | 'e2e_bad_handshake'
  | 'e2e_method_not_allowed'
  | 'e2e_unavailable'
  | 'e2e_session_invalid'
  | 'e2e_decrypt_failed'
  | 'e2e_body_too_large'
  | 'e2e_required'
  | 'e2e_encrypt_failed';

/** Error codes of the library itself. */
export type ZeqE2EClientErrorCode =
  /** the handshake could not reach the server (`cause` holds the fetch error) */
  | 'e2e_network'
  /** the handshake answer is not a protocol v1 answer */
  | 'e2e_bad_handshake_answer'
  /** the handshake got a non-200 answer that is not a module error (e.g. a 404 page) */
  | 'e2e_handshake_failed'
  /** an encrypted request got a plaintext answer that is not a module error */
  | 'e2e_downgrade'
  /** an answer's envelope did not verify (wrong key or altered bytes) */
  | 'e2e_bad_envelope'
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

export interface ZeqE2EHandshakeOptions {
  /**
   * The shared secret of protocol v1, exactly as configured with
   * `ZeqE2ESecret` (a string is used as its UTF-8 bytes).
   */
  secret: string | ArrayBuffer | ArrayBufferView;
  /** The handshake path (`ZeqE2EHandshakePath`), default `/api/e2e/handshake`. */
  handshakePath?: string;
}

export interface ZeqE2ESessionInfo {
  /** The opaque session id sent as `X-E2E-Session`. */
  sessionId: string;
  /** When the session expires, in milliseconds since the epoch (like `Date.now()`). */
  expiresAt: number;
}

/**
 * Performs the handshake with `origin` (default: the page's origin), derives
 * the session key (a non-extractable AES-GCM `CryptoKey`) and keeps it as the
 * default session: from then on requests to that origin are encrypted. The
 * secret is kept to renew the session before it expires and after the server
 * forgot it.
 *
 * Rejects with a {@link ZeqE2EError}: the server's code (`e2e_unavailable`
 * when the virtual host has no secret, ...) or `e2e_network`,
 * `e2e_handshake_failed`, `e2e_bad_handshake_answer`. A previous session, if
 * any, stays in use.
 */
export declare function zeqE2EHandshake(
  origin: string | URL | null | undefined,
  options: ZeqE2EHandshakeOptions,
): Promise<ZeqE2ESessionInfo>;

/** The default session, or null before a successful handshake. */
export declare function zeqE2ESession(): (ZeqE2ESessionInfo & { origin: string }) | null;

/**
 * `fetch` with end-to-end encryption: same signature, and a genuine
 * `Response` with the original status, statusText and headers, whose
 * Content-Type is the application's own (`X-E2E-*` headers removed,
 * Content-Length that of the plaintext).
 *
 * Any body is sealed: string, URLSearchParams, FormData (its multipart
 * boundary kept), Blob (its type), ArrayBuffer, typed arrays, DataView,
 * ReadableStream (read to the end first); also the body of a `Request`. Its
 * media type travels in `X-E2E-Content-Type` (an explicit Content-Type
 * header wins; bytes without any type are sent as
 * `application/octet-stream`). `signal`, `credentials`, `redirect`, `cache`
 * and the rest of `init` keep their meaning.
 *
 * Rejects with {@link ZeqE2EError} `e2e_downgrade` or `e2e_bad_envelope`
 * (fail closed, see the package documentation); module errors resolve as a
 * `Response` whose `zeqE2EError` property names the code.
 */
export declare function zeqE2EFetch(
  input: RequestInfo | URL,
  init?: RequestInit,
): Promise<Response & { zeqE2EError?: ZeqE2EServerErrorCode }>;

/** Replaces `globalThis.fetch` with {@link zeqE2EFetch}. Wrapping twice is harmless. */
export declare function zeqE2EWrap(): void;

/** Restores the `fetch` that {@link zeqE2EWrap} replaced. Harmless when not wrapped. */
export declare function zeqE2EUnwrap(): void;

/** 4008: the close code the library sends when it refuses a server frame (RFC 6455's 1008, which `close()` cannot send). */
export declare const ZEQ_E2E_WS_CLOSE_POLICY: 4008;

/** 4007: the close code the library sends for a text message that is not UTF-8 (RFC 6455's 1007). */
export declare const ZEQ_E2E_WS_CLOSE_BAD_TEXT: 4007;

/** The `error` event of a {@link ZeqE2EWebSocket}. */
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
 * (protocol section 16). Same interface as `WebSocket`; see
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

  /** The resolved `ws:`/`wss:` URL, without the `e2e_session` parameter. */
  readonly url: string;
  readonly readyState: 0 | 1 | 2 | 3;
  /** The subprotocol the server chose. */
  readonly protocol: string;
  /** Always `''`: the server negotiates no extension on an encrypted socket. */
  readonly extensions: string;
  /**
   * Bytes given to `send()` and not yet sent: those being sealed (counted as
   * the message's bytes) plus the browser's own buffer (envelopes, 29 bytes
   * more per message).
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
 * session of {@link zeqE2EHandshake} (protocol section 16).
 *
 * `url` may be relative (resolved against the page when it is on the
 * session's origin, else against that origin), `http(s):` (turned into
 * `ws(s):`) or `ws(s):`; it must be on the session's origin. The socket is
 * opened with `e2e_session=<sessionId>` added to its query. There is no
 * handshake of its own: without a session it throws `e2e_no_session`; a
 * session close to its expiry is renewed first, as for {@link zeqE2EFetch}.
 *
 * Every message, both ways, travels as one binary frame carrying an
 * envelope of a type byte (0x01 text, 0x02 binary) and the message. Message
 * events deliver a string for text, a `Blob` or `ArrayBuffer` (per
 * `binaryType`) for binary, in the order the frames arrived. A server frame
 * that is not a binary frame with a verifying envelope of a known type, or
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
