// The exit statuses of zeq-e2e, and which one an error or an answer gives.

export const EXIT = Object.freeze({
  /** the request was sealed, its answer verified, status below 400 (ws: closed with 1000, 1001 or 1005) */
  OK: 0,
  /** the command line: an unknown command or option, a missing value, a file that cannot be read */
  USAGE: 1,
  /** the network: no connection, a lost connection, --max-time passed */
  NETWORK: 2,
  /** the protocol: no session (handshake refused or malformed, a pinned key that did not sign, a
   *  downgrade), an answer that does not verify or is not sealed, the server could not verify the
   *  request (e2e_decrypt_failed, e2e_replayed, ...), a WebSocket closed for a bad message */
  PROTOCOL: 3,
  /** an HTTP error status (400 and above) that verified, or a refusal of the module that is not a
   *  protocol failure (413 e2e_body_too_large, 403 e2e_required); a WebSocket closed with another code
   *  (1009, 1011, ...) or whose opening was refused so */
  HTTP: 4,
});

/** Module error codes (PROTOCOL.md 10, 18.10) that say the protocol failed, not the request. */
const PROTOCOL_CODES = new Set([
  'e2e_bad_handshake', 'e2e_unavailable', 'e2e_session_invalid', 'e2e_decrypt_failed', 'e2e_bad_request',
  'e2e_encrypt_failed', 'e2e_replayed', 'e2e_version_unsupported', 'e2e_psk_required',
]);

/** An error of the command line (a usage error) or one already explained. */
export class CliError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The exit status of a module error code answered to a sealed request. */
export function statusOfModuleError(code) {
  return PROTOCOL_CODES.has(code) ? EXIT.PROTOCOL : EXIT.HTTP;
}

const NETWORK_CODES = /^(E[A-Z]+|UND_ERR_[A-Z_]+|ERR_SSL_[A-Z_]+|CERT_[A-Z_]+|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_[A-Z_]+)$/;

/** The code of a network failure under a fetch TypeError ("fetch failed"), or null. */
function networkCause(e) {
  for (let c = e && e.cause, i = 0; c && i < 4; c = c.cause, i++) {
    if (typeof c.code === 'string' && NETWORK_CODES.test(c.code)) return c.code;
  }
  return null;
}

/** What lies under a network failure, in words: its code, or its innermost message. */
function networkDetail(e) {
  const code = networkCause(e);
  if (code) return ` (${code})`;
  let c = e && e.cause;
  for (let i = 0; c && c.cause && i < 4; i++) c = c.cause;
  return c && c.message && c.message !== e.message ? ` (${c.message})` : '';
}

/** { status, message } for anything a command threw. */
export function explain(e) {
  if (e instanceof CliError) return { status: e.status, message: e.message };
  if (e && e.name === 'ZeqE2EError') {
    if (e.code === 'e2e_network') {
      return { status: EXIT.NETWORK, message: `${e.message}${networkDetail(e.cause)}` };
    }
    return { status: EXIT.PROTOCOL, message: `${e.code}: ${e.message}` };
  }
  if (e && (e.name === 'AbortError' || e.name === 'TimeoutError')) return { status: EXIT.NETWORK, message: e.message };
  const cause = networkCause(e);
  if (cause || (e instanceof TypeError && e.message === 'fetch failed')) {
    return { status: EXIT.NETWORK, message: `${e.message}${networkDetail(e)}` };
  }
  if (e instanceof TypeError) return { status: EXIT.USAGE, message: e.message };
  return { status: EXIT.PROTOCOL, message: e && e.message ? e.message : String(e) };
}
