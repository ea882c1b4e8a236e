// The command-line client's view of the wire: a fetch that records what the
// library sends through it and what comes back (the library sends through
// globalThis.fetch), and the reports of the WebSocket (websocket.mjs). It
// prints the exchange for -v, writes it into a directory for --save-wire,
// and keeps the handshakes for `check`. It reads only the framing of sealed
// messages (record lengths and flags, PROTOCOL.md 18.5), never a key.
import { mkdirSync, writeFileSync, createWriteStream } from 'node:fs';
import { join } from 'node:path';

const MEDIA_TYPE = 'application/x-zeq-e2e';
const NONCE_BASE = 12;
const RECORD_HEADER = 4;
const TAG = 16;
/** A v1 envelope: iv (12) || tag (16) || ciphertext. */
const ENVELOPE_OVERHEAD = 28;
/** Handshake bodies are small (the module takes at most 4 KiB); more is not kept. */
const HANDSHAKE_MAX = 65536;

/** "AbCdEf… (43 characters)": a session id as -v shows it. */
export function abbreviate(id) {
  return id.length > 8 ? `${id.slice(0, 6)}… (${id.length} characters)` : id;
}

/**
 * Reads the framing of a sealed message (18.5) as it arrives: 0x02, the
 * nonce_base, then records of a 4-byte header (final flag, length), the
 * ciphertext and the tag. feed() takes chunks; summary() says what came.
 */
export function recordScanner() {
  let state = 'prefix';
  let need = 1 + NONCE_BASE;
  let header = [];
  let remaining = 0;
  let final = false;
  let bad = null;
  let bytes = 0;
  const records = [];
  return {
    feed(chunk) {
      bytes += chunk.length;
      let i = 0;
      while (i < chunk.length && !bad) {
        if (state === 'prefix') {
          if (need === 1 + NONCE_BASE && chunk[i] !== 0x02) {
            bad = `begins with 0x${chunk[i].toString(16).padStart(2, '0')}, not 0x02`;
            break;
          }
          const take = Math.min(need, chunk.length - i);
          need -= take;
          i += take;
          if (need === 0) state = 'header';
        } else if (state === 'header') {
          header.push(chunk[i++]);
          if (header.length === RECORD_HEADER) {
            final = (header[0] & 0x80) !== 0;
            const length = (header[1] << 16) | (header[2] << 8) | header[3];
            if (header[0] & 0x7f) bad = 'a record header with reserved bits set';
            records.push({ length, final });
            remaining = length + TAG;
            header = [];
            state = 'body';
          }
        } else if (state === 'body') {
          const take = Math.min(remaining, chunk.length - i);
          remaining -= take;
          i += take;
          if (remaining === 0) state = final ? 'after' : 'header';
        } else {
          bad = 'bytes after the final record';
        }
      }
    },
    summary() {
      return { bytes, records, complete: state === 'after' && !bad, bad };
    },
  };
}

/** "sealed message, 3 records: 2 × 16384 bytes, 100 bytes (final)": a scanner's summary in words. */
export function describeSealed(s) {
  if (s.bad) return `not a sealed message (${s.bad})`;
  const runs = [];
  for (const r of s.records) {
    const last = runs[runs.length - 1];
    const text = `${r.length} bytes${r.final ? ' (final)' : ''}`;
    if (last && last.text === text) last.count++;
    else runs.push({ text, count: 1 });
  }
  const list = runs.map((r) => (r.count > 1 ? `${r.count} × ${r.text}` : r.text)).join(', ');
  const n = s.records.length;
  const end = s.complete ? '' : '; no final record: cut short';
  return `sealed message, ${n} record${n === 1 ? '' : 's'}${n ? `: ${list}` : ''}${end}`;
}

function sealedOf(bytes) {
  const scanner = recordScanner();
  scanner.feed(bytes);
  return scanner.summary();
}

function fromBase64url(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  return Buffer.from(text, 'base64url');
}

/**
 * The recorder: createWire({ verbose, saveDir, write, handshakePath }).
 * `write` takes the lines -v prints (stderr).
 */
export function createWire({ verbose = false, saveDir = null, write = () => {}, handshakePath = '/api/e2e/handshake' } = {}) {
  let count = 0;
  let label = null;
  let previous = Promise.resolve();
  const handshakes = [];
  const exchanges = [];
  /** v2 or v1, by session id (from the handshake answers). */
  const versions = new Map();
  const say = (line) => { if (verbose) write(line); };
  if (saveDir) mkdirSync(saveDir, { recursive: true });
  const save = (n, name, data) => { if (saveDir) writeFileSync(join(saveDir, `${n}.${name}`), data); };

  function headerLines(prefix, headers) {
    for (const [name, value] of headers) {
      const lower = name.toLowerCase();
      if (lower === 'x-e2e-session') {
        say(`${prefix} ${lower}: ${abbreviate(value)}`);
      } else if (lower === 'x-e2e-seal') {
        const bytes = fromBase64url(value);
        say(`${prefix} ${lower}: ${value.slice(0, 10)}… (${value.length} characters: ` +
          `${bytes ? `${bytes.length} bytes, ${describeSealed(sealedOf(bytes))}` : 'not base64url'})`);
      } else {
        say(`${prefix} ${lower}: ${value}`);
      }
    }
  }

  function showJSON(prefix, text) {
    let json;
    try { json = JSON.parse(text); } catch { say(`${prefix} ${text.slice(0, 200)}`); return null; }
    const shown = { ...json };
    if (typeof shown.sessionId === 'string') shown.sessionId = abbreviate(shown.sessionId);
    say(`${prefix} ${JSON.stringify(shown)}`);
    return json;
  }

  /** How a body is framed: a v2 sealed message, a v1 envelope, or plaintext. */
  function bodyKind(type, session, v2) {
    if ((type || '').split(';')[0].trim().toLowerCase() !== MEDIA_TYPE) return 'plaintext';
    if (v2 || (session && versions.get(session) === 2)) return 'sealed';
    return 'envelope';
  }

  function describeBody(kind, size, scanner) {
    if (kind === 'sealed') return `${size} bytes, ${describeSealed(scanner.summary())}`;
    if (kind === 'envelope') {
      return size >= ENVELOPE_OVERHEAD
        ? `${size} bytes, a v1 envelope: iv 12 + tag 16 + ${size - ENVELOPE_OVERHEAD} ciphertext bytes`
        : `${size} bytes, too short for a v1 envelope`;
    }
    return `${size} bytes of plaintext`;
  }

  async function recordResponse(n, entry, res, handshake) {
    say(`< ${res.status} ${res.statusText}${res.redirected ? ` (after a redirect to ${res.url})` : ''}`);
    headerLines('<', res.headers);
    const headLines = [`${res.status} ${res.statusText}`, ...[...res.headers].map(([k, v]) => `${k}: ${v}`)];
    save(n, 'response-headers', `${headLines.join('\n')}\n`);
    entry.status = res.status;
    entry.responseHeaders = new Headers(res.headers);
    if (res.body === null) {
      say('< (no body)');
      return;
    }
    const kind = bodyKind(res.headers.get('content-type'), entry.session, entry.v2);
    const scanner = recordScanner();
    const file = saveDir ? createWriteStream(join(saveDir, `${n}.response-body`)) : null;
    const kept = [];
    let size = 0;
    const reader = res.clone().body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.length;
        if (kind === 'sealed') scanner.feed(value);
        if (file) file.write(value);
        if (handshake && size <= HANDSHAKE_MAX) kept.push(Buffer.from(value));
      }
    } catch (e) {
      say(`< body: cut after ${size} bytes (${e && e.message})`);
    } finally {
      if (file) await new Promise((r) => file.end(r));
    }
    entry.responseSize = size;
    entry.responseKind = kind;
    if (kind === 'sealed') entry.responseSealed = scanner.summary();
    if (handshake) {
      const text = Buffer.concat(kept).toString('utf8');
      handshake.answer = showJSON('<', text);
      if (handshake.answer && res.status === 200 && typeof handshake.answer.sessionId === 'string') {
        versions.set(handshake.answer.sessionId, handshake.answer.version);
      }
    } else {
      say(`< body: ${describeBody(kind, size, scanner)}`);
    }
  }

  /** A fetch that records each request and its answer, then hands them on. */
  function recordingFetch(nativeFetch) {
    return async function fetch(input, init) {
      const request = input instanceof Request && init === undefined ? input : new Request(input, init);
      const body = request.body === null ? null : Buffer.from(await request.clone().arrayBuffer());
      await previous;
      const n = ++count;
      const url = new URL(request.url);
      const isHandshake = request.method === 'POST' && url.pathname === handshakePath;
      const session = request.headers.get('x-e2e-session');
      const entry = { n, label, method: request.method, url: request.url, requestHeaders: new Headers(request.headers),
        requestBody: body, session, v2: request.headers.has('x-e2e-seq') };
      exchanges.push(entry);
      say(`* ${label ? `${label}: ` : ''}${isHandshake ? 'handshake, ' : ''}${request.method} ${request.url}`);
      say(`> ${request.method} ${url.pathname}${url.search}`);
      headerLines('>', request.headers);
      save(n, 'request-line', `${request.method} ${request.url}\n`);
      save(n, 'request-headers', [...request.headers].map(([k, v]) => `${k}: ${v}\n`).join(''));
      let handshake = null;
      if (body !== null) {
        save(n, 'request-body', body);
        if (isHandshake) {
          handshake = { n, label, request: showJSON('>', body.toString('utf8')) };
          handshakes.push(handshake);
        } else {
          const kind = bodyKind(request.headers.get('content-type'), session, entry.v2);
          const scanner = recordScanner();
          if (kind === 'sealed') scanner.feed(body);
          say(`> body: ${describeBody(kind, body.length, scanner)}`);
        }
      }
      let res;
      try {
        res = await nativeFetch(request);
      } catch (e) {
        say(`< (no answer: ${e && e.cause && e.cause.code ? e.cause.code : e && e.message})`);
        throw e;
      }
      if (handshake) handshake.status = res.status;
      const done = recordResponse(n, entry, res, handshake);
      previous = done.catch(() => {});
      if (handshake) await done;
      return res;
    };
  }

  /** What websocket.mjs reports of one opening and its frames. */
  function webSocketOpening(href, headers) {
    const n = ++count;
    const url = new URL(href);
    const entry = { n, label, method: 'GET', url: href, webSocket: true, status: 0, refusal: null, frames: [] };
    exchanges.push(entry);
    const shownURL = new URL(href);
    const id = shownURL.searchParams.get('e2e_session');
    const v2 = shownURL.searchParams.has('e2e_seq');
    say(`* ${label ? `${label}: ` : ''}WebSocket opening, GET ${href.replace(/e2e_session=[^&]*/, `e2e_session=${id ? `${id.slice(0, 6)}…` : ''}`)}`);
    say(`> GET ${url.pathname}${url.search.replace(/e2e_session=[^&]*/, 'e2e_session=…')}`);
    if (v2) {
      const seal = fromBase64url(shownURL.searchParams.get('e2e_seal') || '');
      say(`> e2e_seq=${shownURL.searchParams.get('e2e_seq')}, e2e_seal: ${seal ? `${seal.length} bytes, ${describeSealed(sealedOf(seal))}` : 'missing'}`);
    }
    headerLines('>', Object.entries(headers));
    save(n, 'request-line', `GET ${href}\n`);
    save(n, 'request-headers', Object.entries(headers).map(([k, v]) => `${k}: ${v}\n`).join(''));
    const counters = { in: 0, out: 0 };
    const kind = v2 ? 'sealed' : 'envelope';
    return {
      answered(status, statusText, rawHeaders, body) {
        entry.status = status;
        say(`< ${status} ${statusText}`);
        const pairs = [];
        for (let i = 0; i + 1 < rawHeaders.length; i += 2) pairs.push([rawHeaders[i], rawHeaders[i + 1]]);
        headerLines('<', pairs);
        save(n, 'response-headers', `${status} ${statusText}\n${pairs.map(([k, v]) => `${k}: ${v}`).join('\n')}\n`);
        if (body) {
          save(n, 'response-body', body);
          let json = null;
          try { json = JSON.parse(body.toString('utf8')); } catch { /* not a module error */ }
          entry.refusal = json && typeof json.error === 'string' ? json.error : null;
          say(`< body: ${body.toString('utf8').slice(0, 300)}`);
        }
      },
      frame(direction, type, bytes) {
        const k = counters[direction]++;
        entry.frames.push({ direction, type, size: bytes.length });
        save(n, `${direction}-${k}`, Buffer.from(bytes));
        const scanner = recordScanner();
        if (kind === 'sealed') scanner.feed(bytes);
        say(`${direction === 'out' ? '>' : '<'} frame ${k}: ${type}, ` +
          `${type === 'binary' ? describeBody(kind, bytes.length, scanner) : `${bytes.length} bytes of text`}`);
      },
      closeFrame(direction, code, reason) {
        entry.close = entry.close || {};
        entry.close[direction] = { code, reason };
        say(`${direction === 'out' ? '>' : '<'} close frame: ${code}${reason ? ` ${reason}` : ''}`);
      },
      note(text) { say(`* ${text}`); },
      failed(e) {
        entry.error = e;
        say(`< (no answer: ${e && e.code ? e.code : e && e.message})`);
      },
    };
  }

  return {
    handshakes,
    exchanges,
    recordingFetch,
    webSocketOpening,
    /** Names the exchanges that follow (`check`'s probes). */
    label(text) { label = text; },
    note(text) { say(`* ${text}`); },
    /** Resolves once every answer seen has been read to its end. */
    settled() { return previous; },
  };
}
