// The commands of zeq-e2e (get, post, ws; check in check.mjs) on top of
// zeq-e2e-client.js, which speaks the protocol: this file reads the command
// line's files, makes the library's handshake, sends through the library and
// turns what comes back into output and an exit status (exit.mjs).
import { readFileSync, readSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { createInterface } from 'node:readline';
import { zeqE2EHandshake, zeqE2EFetch, zeqE2EWebSocket } from '../zeq-e2e-client.js';
import { parseArgs, USAGE } from './args.mjs';
import { EXIT, CliError, explain, statusOfModuleError } from './exit.mjs';
import { createWire } from './wire.mjs';
import { webSocketClass } from './websocket.mjs';
import { check } from './check.mjs';

/** The package's version (package.json, which t/version.t keeps equal to the module's). */
export function version() {
  return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
}

function readOrFail(file, what) {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new CliError(EXIT.USAGE, `${what} ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
}

/** The secret of --psk-file: its bytes, less one trailing newline (as ZeqE2ESecret file: reads it). */
export function secretOf(file) {
  let bytes = readOrFail(file, '--psk-file');
  if (bytes.length && bytes[bytes.length - 1] === 0x0a) {
    bytes = bytes.subarray(0, bytes.length - 1);
    if (bytes.length && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
  }
  if (bytes.length === 0) throw new CliError(EXIT.USAGE, `--psk-file ${file} is empty`);
  return new Uint8Array(bytes);
}

/**
 * The public key of --server-key FILE as the library takes it (SPKI,
 * base64url): from a PEM public or private key (ZeqE2EServerKey's own file
 * will do), a JWK, or an SPKI already in base64url or base64.
 */
export function serverKeyOf(file) {
  const text = readOrFail(file, '--server-key').toString('utf8').trim();
  let key;
  try {
    if (text.startsWith('-----BEGIN')) key = createPublicKey(text);
    else if (text.startsWith('{')) key = createPublicKey({ key: JSON.parse(text), format: 'jwk' });
    else key = createPublicKey({ key: Buffer.from(text.replace(/\s+/g, ''), 'base64'), format: 'der', type: 'spki' });
  } catch (e) {
    throw new CliError(EXIT.USAGE, `--server-key ${file} is not a key (a PEM block, a JWK or an SPKI in base64url): ${e.message}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails.namedCurve !== 'prime256v1') {
    throw new CliError(EXIT.USAGE, `--server-key ${file} is not an EC P-256 key (ZeqE2EServerKey keys are)`);
  }
  return key.export({ format: 'der', type: 'spki' }).toString('base64url');
}

/** Writes to a stream and waits until it took the bytes. */
function put(stream, data) {
  return new Promise((resolve, reject) => stream.write(data, (e) => (e ? reject(e) : resolve())));
}

/** The body of --data: @FILE, - (stdin) or the text itself, with its default type. */
function dataOf(opts, stdin) {
  if (opts.data === undefined) return null;
  if (opts.data === '-') return { bytes: readAll(stdin), type: 'application/octet-stream' };
  if (opts.data.startsWith('@')) return { bytes: readOrFail(opts.data.slice(1), '--data'), type: 'application/octet-stream' };
  return { bytes: Buffer.from(opts.data, 'utf8'), type: 'text/plain;charset=UTF-8' };
}

function readAll(stdin) {
  const chunks = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n;
    try {
      n = readSync(stdin.fd, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      if (e.code === 'EOF') break;
      throw new CliError(EXIT.USAGE, `--data -: cannot read stdin: ${e.message}`);
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

/** The handshake options of the command line. */
function handshakeOptions(opts) {
  const options = {};
  if (opts.protocol !== undefined) options.protocol = opts.protocol;
  if (opts.pskFile !== undefined) options.secret = secretOf(opts.pskFile);
  if (opts.serverKeys.length) options.serverKey = opts.serverKeys.map(serverKeyOf);
  if (opts.handshakePath !== undefined) options.handshakePath = opts.handshakePath;
  return options;
}

/** The http(s) origin the session is made with (a ws: URL's too). */
function originOf(url) {
  const u = new URL(url);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  if (u.protocol === 'wss:') u.protocol = 'https:';
  return u.origin;
}

export function describeSession(info) {
  const parts = [`protocol ${info.version}`];
  if (info.psk) parts.push('pre-shared key mode');
  parts.push(info.signer ? `signed by the pinned key ${info.signer}` : info.version === 2 ? 'signature not checked (no --server-key)' : 'v1 handshakes are not signed');
  parts.push(`expires in ${Math.round((info.expiresAt - Date.now()) / 1000)} s`);
  return parts.join(', ');
}

async function request(opts, io, wire) {
  const options = handshakeOptions(opts);
  const data = dataOf(opts, io.stdin);
  const info = await zeqE2EHandshake(originOf(opts.url), options);
  wire.note(`session: ${describeSession(info)}`);
  const headers = new Headers(opts.headers);
  const init = { method: opts.command === 'post' ? 'POST' : 'GET', headers };
  if (data) {
    init.body = data.bytes;
    if (opts.type !== undefined) headers.set('content-type', opts.type);
    else if (!headers.has('content-type')) headers.set('content-type', data.type);
  }
  const res = await zeqE2EFetch(opts.url, init);
  if (res.zeqE2EError) {
    const text = await res.text();
    let message = '';
    try { message = JSON.parse(text).message || ''; } catch { /* the code is enough */ }
    await wire.settled();
    throw new CliError(statusOfModuleError(res.zeqE2EError),
      `the module refused the request: ${res.status} ${res.zeqE2EError}${message ? `: ${message}` : ''}`);
  }
  if (opts.include) {
    const lines = [`HTTP ${res.status} ${res.statusText}`, ...[...res.headers].map(([k, v]) => `${k}: ${v}`), '', ''];
    await put(io.stdout, lines.join('\r\n'));
  }
  if (res.body) {
    for await (const chunk of res.body) await put(io.stdout, chunk);
  }
  await wire.settled();
  if (res.status >= 400) throw new CliError(EXIT.HTTP, `${opts.url}: ${res.status} ${res.statusText}`);
  return EXIT.OK;
}

const CLEAN_CLOSES = new Set([1000, 1001, 1005]);
const PROTOCOL_CLOSES = new Set([1002, 1007, 1008, 4007, 4008]);

async function webSocket(opts, io, wire) {
  const options = handshakeOptions(opts);
  const info = await zeqE2EHandshake(originOf(opts.url), options);
  wire.note(`session: ${describeSession(info)}`);
  globalThis.WebSocket = webSocketClass({ headers: opts.headers, wire });
  const ws = zeqE2EWebSocket(opts.url);
  ws.binaryType = 'arraybuffer';
  let opened = false;
  let received = 0;
  let failure = null;
  let lines = null;
  let output = Promise.resolve();
  const closed = new Promise((resolve) => { ws.onclose = resolve; });
  ws.onerror = (ev) => { if (ev.error) failure = ev.error; };
  ws.onmessage = (ev) => {
    const data = typeof ev.data === 'string' ? `${ev.data}\n` : Buffer.from(ev.data);
    output = output.then(() => put(io.stdout, data));
    received++;
    if (opts.count && received === opts.count) ws.close(1000);
  };
  ws.onopen = () => {
    opened = true;
    lines = createInterface({ input: io.stdin, crlfDelay: Infinity });
    lines.on('line', (line) => { if (ws.readyState === ws.OPEN) ws.send(line); });
    lines.on('close', () => {
      if (!opts.count) setTimeout(() => { if (ws.readyState === ws.OPEN) ws.close(1000); }, opts.wait * 1000).unref();
    });
  };
  const ev = await closed;
  if (lines) lines.close();
  await output;
  const opening = wire.exchanges.filter((e) => e.webSocket).pop();
  if (failure) throw new CliError(EXIT.PROTOCOL, `${failure.code || 'error'}: ${failure.message}`);
  if (CLEAN_CLOSES.has(ev.code) && ev.wasClean) return EXIT.OK;
  const how = `the WebSocket closed with ${ev.code}${ev.reason ? ` (${ev.reason})` : ''}`;
  if (!opened) {
    if (opening && opening.status) {
      const code = opening.refusal;
      throw new CliError(code ? statusOfModuleError(code) : opening.status >= 400 ? EXIT.HTTP : EXIT.PROTOCOL,
        `the WebSocket opening was refused: ${opening.status}${code ? ` ${code}` : ''}`);
    }
    throw new CliError(EXIT.NETWORK, `the WebSocket could not connect${opening && opening.error ? `: ${opening.error.code || opening.error.message}` : ''}`);
  }
  if (ev.code === 1006) throw new CliError(EXIT.NETWORK, `${how}: the connection was lost`);
  throw new CliError(PROTOCOL_CLOSES.has(ev.code) ? EXIT.PROTOCOL : EXIT.HTTP, how);
}

/**
 * Runs the command line argv; resolves to the exit status. io: { stdin,
 * stdout, stderr } streams; fetch: the fetch that reaches the network.
 */
export async function main(argv, io, nativeFetch = globalThis.fetch) {
  const fail = async (e) => {
    if (e && e.code === 'EPIPE') return EXIT.OK; // stdout's reader went away (see bin/zeq-e2e.mjs)
    const { status, message } = explain(e);
    await put(io.stderr, `zeq-e2e: ${message}\n`);
    return status;
  };
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    return fail(e);
  }
  if (opts.help) {
    await put(io.stdout, USAGE);
    return EXIT.OK;
  }
  if (opts.version) {
    await put(io.stdout, `zeq-e2e ${version()}\n`);
    return EXIT.OK;
  }
  const wire = createWire({
    verbose: Boolean(opts.verbose),
    saveDir: opts.saveWire || null,
    write: (line) => io.stderr.write(`${line}\n`),
    handshakePath: opts.handshakePath,
  });
  globalThis.fetch = opts.verbose || opts.saveWire || opts.command === 'check' ? wire.recordingFetch(nativeFetch) : nativeFetch;
  try {
    if (opts.command === 'check') {
      return await check(opts, io, wire, { origin: originOf(opts.url), handshakeOptions: () => handshakeOptions(opts), put });
    }
    if (opts.command === 'ws') return await webSocket(opts, io, wire);
    return await request(opts, io, wire);
  } catch (e) {
    await wire.settled();
    return fail(e);
  }
}
