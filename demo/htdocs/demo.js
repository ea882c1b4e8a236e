// The demo page of mod_zeq_e2e: runs the bootstrap snippet (protocol v2, no
// secret), shows the handshake's public keys, then three requests and a
// WebSocket, and shows for each what the application received and answered
// (plaintext) beside what crossed the wire (sealed messages).
import { zeqE2EHandshake, zeqE2EWrap, zeqE2ESession, zeqE2EWebSocket } from '/static/zeq-e2e-client.js';

// --- The wire tap (demo only) ----------------------------------------------
// Installed before the snippet, so zeqE2EWrap wraps it: the library then
// sends through it, and it sees the bytes handed to the browser's network
// stack and what came back, before decryption.
const wireLog = [];
const networkFetch = window.fetch;
window.fetch = async function wireTap(input, init) {
  let req = new Request(input, init);
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  const requestBody = hasBody ? new Uint8Array(await req.clone().arrayBuffer()) : null;
  // Send the bytes read (a clone turns the body into a stream otherwise).
  if (hasBody) req = new Request(req, { body: requestBody });
  const entry = { method: req.method, url: req.url, requestHeaders: req.headers, requestBody };
  wireLog.push(entry);
  const res = await networkFetch.call(window, req);
  entry.status = res.status;
  entry.responseHeaders = res.headers;
  entry.responseBody = new Uint8Array(await res.clone().arrayBuffer());
  return res;
};

// The same for WebSockets: zeqE2EWebSocket opens its socket with the
// WebSocket it finds, so this subclass sees every frame's payload as the
// browser sends and receives it (before decryption).
const wsWire = { url: null, sent: [], received: [], receivedCount: 0 };
const KEEP_FRAMES = 200;
const frameBytes = (data) => (typeof data === 'string' ? data : new Uint8Array(data.slice(0)));
const NetworkWebSocket = window.WebSocket;
window.WebSocket = class WireTapWebSocket extends NetworkWebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    wsWire.url = this.url;
    this.addEventListener('message', (ev) => {
      wsWire.received.push(frameBytes(ev.data));
      wsWire.receivedCount++;
      if (wsWire.received.length > KEEP_FRAMES) wsWire.received.shift();
    });
  }

  send(data) {
    wsWire.sent.push(frameBytes(data));
    if (wsWire.sent.length > KEEP_FRAMES) wsWire.sent.shift();
    super.send(data);
  }
};

const $ = (sel, root = document) => root.querySelector(sel);
const decoder = new TextDecoder();
const state = { mode: 'pending', error: null, session: null, results: [] };
window.zeqDemo = state;

function setStatus(cls, text) {
  const el = $('#status');
  el.className = `status ${cls}`;
  el.textContent = text;
}

// --- Rendering -----------------------------------------------------------------

function hexSpan(cls, bytes) {
  const s = document.createElement('span');
  s.className = `hx ${cls}`;
  s.textContent = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return s;
}

const SHOW_CT = 24;
const RECORD = 16384;

/** The plaintext length of a sealed message of n bytes in 16 KiB records. */
function plainLength(n) {
  const x = n - 13;
  const records = Math.max(1, Math.ceil(x / (RECORD + 20)));
  return x - 20 * records;
}

/**
 * A sealed message in colours: 0x02 || nonce_base, then its first record
 * (header, ciphertext, and its tag when it is the only record).
 */
function appendSealed(box, bytes) {
  const n = plainLength(bytes.length);
  const records = Math.max(1, Math.ceil(n / RECORD));
  const first = Math.min(n, RECORD);
  box.append(hexSpan('iv', bytes.subarray(0, 13)), ' ', hexSpan('rh', bytes.subarray(13, 17)), ' ',
    hexSpan('ct', bytes.subarray(17, 17 + Math.min(first, SHOW_CT))));
  if (first > SHOW_CT) box.append('…');
  if (records === 1) box.append(' ', hexSpan('tag16', bytes.subarray(17 + first, 17 + first + 16)));
  else box.append(` (${records - 1} more records)`);
}

/** A body as it crossed the wire: a sealed message in colours, or plaintext. */
function renderWireBody(box, headers, bytes) {
  const type = (headers.get('content-type') || '').split(';')[0].trim();
  if (!bytes || (bytes.length === 0 && type !== 'application/x-zeq-e2e')) {
    box.append(headers.get('x-e2e-seal') ? '(no body: X-E2E-Seal seals the empty message)' : '(no body)');
    return;
  }
  if (type === 'application/x-zeq-e2e' && bytes.length >= 33 && bytes[0] === 0x02) {
    const n = plainLength(bytes.length);
    const records = Math.max(1, Math.ceil(n / RECORD));
    box.append(`sealed message, ${bytes.length} bytes = 13 + 20 × ${records} + ${n}\n`);
    appendSealed(box, bytes);
    return;
  }
  const text = decoder.decode(bytes.subarray(0, 400));
  box.append(`plaintext, ${bytes.length} bytes\n${text}${bytes.length > 400 ? '…' : ''}`);
}

function headerLines(headers, names) {
  return names.filter((n) => headers.get(n) !== null).map((n) => `${n}: ${headers.get(n)}`).join('\n');
}

function pretty(text, type) {
  if (/json/.test(type || '')) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch { /* as is */ }
  }
  return text;
}

function addPanel(id, title, what, labels) {
  const node = $('#demo-template').content.firstElementChild.cloneNode(true);
  node.id = `demo-${id}`;
  node.dataset.testid = id;
  $('.demo-title', node).textContent = title;
  $('.demo-what', node).textContent = what;
  for (const cls of ['app-request', 'app-answer', 'wire-request', 'wire-answer']) {
    $(`.${cls}`, node).dataset.testid = `${id}-${cls}`;
  }
  if (labels) node.querySelectorAll('.label').forEach((el, i) => { el.textContent = labels[i]; });
  $('#demos').append(node);
  return node;
}

/** One request through the page's fetch (encrypted once wrapped). */
async function runDemo({ id, title, what, method, path, body, type }) {
  const panel = addPanel(id, title, what);
  const result = { id, method, path, sent: body ?? null };
  state.results.push(result);
  const appRequest = $('.app-request', panel);
  appRequest.textContent = `${method} ${path}` + (body !== undefined ? `\ncontent-type: ${type}\n\n${body}` : '');

  const mark = wireLog.length;
  try {
    const init = { method };
    if (body !== undefined) {
      init.body = body;
      init.headers = { 'Content-Type': type };
    }
    const res = await fetch(path, init);
    const text = await res.text();
    const ctype = res.headers.get('content-type');
    result.status = res.status;
    result.contentType = ctype;
    result.answer = text;
    $('.app-answer', panel).textContent =
      `${res.status} ${res.statusText}\ncontent-type: ${ctype}\n\n${pretty(text, ctype)}`;
  } catch (e) {
    result.error = `${e.name}: ${e.code || ''} ${e.message}`;
    $('.app-answer', panel).innerHTML = '';
    const err = document.createElement('span');
    err.className = 'error';
    err.textContent = result.error;
    $('.app-answer', panel).append(err);
  }

  const entry = wireLog.slice(mark).pop();
  if (!entry) return;
  const sealed = (entry.responseHeaders.get('content-type') || '').startsWith('application/x-zeq-e2e');
  const tag = $('.wire-tag', panel);
  tag.textContent = sealed ? 'encrypted' : 'plaintext';
  tag.classList.add(sealed ? 'sealed' : 'exposed');
  result.wire = {
    requestContentType: entry.requestHeaders.get('content-type'),
    requestInnerType: entry.requestHeaders.get('x-e2e-content-type'),
    requestLength: entry.requestBody ? entry.requestBody.length : 0,
    responseStatus: entry.status,
    responseContentType: entry.responseHeaders.get('content-type'),
    responseInnerType: entry.responseHeaders.get('x-e2e-content-type'),
    responseLength: entry.responseBody.length,
  };

  const wreq = $('.wire-request', panel);
  wreq.append(`${entry.method} ${new URL(entry.url).pathname}\n`);
  const reqHeaders = headerLines(entry.requestHeaders,
    ['content-type', 'x-e2e-content-type', 'x-e2e-session', 'x-e2e-seq', 'x-e2e-seal', 'accept']);
  if (reqHeaders) {
    const h = document.createElement('span');
    h.className = 'hdr';
    h.textContent = reqHeaders.replace(/(x-e2e-session: .{12}).*/, '$1…') + '\n\n';
    wreq.append(h);
  }
  result.wire.seq = entry.requestHeaders.get('x-e2e-seq');
  renderWireBody(wreq, entry.requestHeaders, entry.requestBody);

  const wres = $('.wire-answer', panel);
  wres.append(`${entry.status}\n`);
  const h = document.createElement('span');
  h.className = 'hdr';
  h.textContent = headerLines(entry.responseHeaders,
    ['content-type', 'x-e2e-content-type', 'x-e2e-content-encoding', 'x-e2e-seal', 'content-length']) + '\n\n';
  wres.append(h);
  renderWireBody(wres, entry.responseHeaders, entry.responseBody);
}

// --- The WebSocket ---------------------------------------------------------------

const SHOW_MESSAGES = 6;
const SHOW_FRAMES = 4;

/** One frame as it crossed the wire: a sealed message in colours, or a text frame. */
function renderFrame(box, arrow, frame) {
  if (typeof frame === 'string') {
    box.append(`${arrow} text frame, ${new TextEncoder().encode(frame).length} bytes\n${frame}\n`);
    return;
  }
  const n = plainLength(frame.length) - 1;
  box.append(`${arrow} binary frame, ${frame.length} bytes = 34 + ${n}\n`);
  appendSealed(box, frame);
  box.append('\n');
}

/**
 * Opens zeqE2EWebSocket('/ws/pulse') (a plain WebSocket without a session):
 * the backend pushes a tick every 100 ms and echoes what the page sends.
 * Resolves once the echo is back (or the socket failed).
 */
function runWebSocketDemo(encrypted) {
  const panel = addPanel('ws', 'A WebSocket to a proxied app',
    "zeqE2EWebSocket('/ws/pulse'): mod_proxy_http tunnels the socket to the backend, which sends a tick " +
    'every 100 ms and echoes what the page sends. The opening carries its sequence number and seal; the ' +
    'module seals each of the backend\'s messages into one binary frame, numbered in its direction, and ' +
    'opens the page\'s: the backend exchanges ordinary text messages.',
    ['Sent', 'Received', 'Frames sent', 'Frames received (the last ones)']);
  panel.classList.add('ws-demo');
  $('.app h3', panel).firstChild.textContent = 'What the page and the application exchanged ';
  const ws = { mode: encrypted ? 'encrypted' : 'plaintext', state: 'connecting', sent: [], received: [],
    count: 0, ticks: 0, close: null, error: null };
  state.ws = ws;
  const appRequest = $('.app-request', panel);
  const appAnswer = $('.app-answer', panel);
  const wireRequest = $('.wire-request', panel);
  const wireAnswer = $('.wire-answer', panel);
  const tag = $('.wire-tag', panel);
  const stop = document.createElement('button');
  stop.type = 'button';
  stop.className = 'ws-stop';
  stop.textContent = 'Close the socket';
  $('.demo-what', panel).append(' ', stop);

  const opening = encrypted ? "zeqE2EWebSocket('/ws/pulse')"
    : "new WebSocket('ws://…/ws/pulse')  (no session: plaintext)";
  const render = () => {
    appRequest.textContent = `${opening}\n${ws.state}` +
      (ws.close ? ` (code ${ws.close.code}${ws.close.reason ? `, ${ws.close.reason}` : ''})` : '') +
      (ws.error ? `: ${ws.error}` : '') + '\n\n' + ws.sent.map((m) => `send(${m})`).join('\n');
    appAnswer.textContent = `${ws.count} messages, ${ws.ticks} ticks\n\n` +
      ws.received.slice(-SHOW_MESSAGES).join('\n');

    wireRequest.textContent = '';
    if (wsWire.url) {
      const u = new URL(wsWire.url);
      const search = u.search.replace(/(e2e_session=.{12})[^&]*/, '$1…').replace(/(e2e_seal=.{12})[^&]*/, '$1…');
      wireRequest.append(`GET ${u.pathname}${search}\n` + 'Upgrade: websocket\n\n');
    }
    for (const f of wsWire.sent.slice(-2)) renderFrame(wireRequest, '→', f);
    wireAnswer.textContent = `${wsWire.receivedCount} frames\n\n`;
    for (const f of wsWire.received.slice(-SHOW_FRAMES)) renderFrame(wireAnswer, '←', f);
    const all = [...wsWire.sent, ...wsWire.received];
    if (all.length) {
      const sealed = all.every((f) => typeof f !== 'string');
      tag.textContent = sealed ? 'encrypted' : 'plaintext';
      tag.classList.toggle('sealed', sealed);
      tag.classList.toggle('exposed', !sealed);
    }
  };
  let pending = false;
  const update = () => {
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; render(); }, 40);
  };

  let socket;
  try {
    if (encrypted) {
      socket = zeqE2EWebSocket('/ws/pulse');
    } else {
      const url = new URL('/ws/pulse', window.location.href);
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      socket = new WebSocket(url.href);
    }
  } catch (e) {
    ws.state = 'not opened';
    ws.error = `${e.name}: ${e.code || ''} ${e.message}`;
    render();
    return Promise.resolve();
  }
  const hello = JSON.stringify({ hello: 'from the browser, over a WebSocket', card: '4111 1111 1111 1111' });
  stop.addEventListener('click', () => socket.close(1000, 'closed by the page'));
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 5000);
    const done = () => { clearTimeout(timer); resolve(); };
    socket.addEventListener('open', () => {
      ws.state = 'open';
      socket.send(hello);
      ws.sent.push(hello);
      update();
    });
    socket.addEventListener('message', (ev) => {
      const text = typeof ev.data === 'string' ? ev.data : `(${ev.data.size ?? ev.data.byteLength} bytes)`;
      ws.count++;
      if (/^\{"tick":/.test(text)) ws.ticks++;
      ws.received.push(text);
      if (ws.received.length > KEEP_FRAMES) ws.received.shift();
      if (text === hello) done();
      update();
    });
    socket.addEventListener('error', (ev) => {
      ws.error = ev.error ? `${ev.error.code}: ${ev.error.message}` : 'the connection failed';
      update();
    });
    socket.addEventListener('close', (ev) => {
      ws.state = 'closed';
      ws.close = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean };
      stop.disabled = true;
      update();
      done();
    });
    render();
  });
}

// --- The page ------------------------------------------------------------------

// The bootstrap snippet, unchanged.
try { await zeqE2EHandshake(window.location.origin); zeqE2EWrap(); }
catch (e) { /* plaintext continues to work */ state.error = e; }

/** The handshake as it crossed the wire (public values only). */
function showHandshake() {
  const entry = wireLog.find((e) => new URL(e.url).pathname === '/api/e2e/handshake');
  const req = $('[data-testid="handshake-request"]');
  const ans = $('[data-testid="handshake-answer"]');
  if (!entry) return;
  let request = null;
  let answer = null;
  try { request = JSON.parse(decoder.decode(entry.requestBody)); } catch { /* shown as text */ }
  try { answer = JSON.parse(decoder.decode(entry.responseBody)); } catch { /* shown as text */ }
  state.handshake = { request, answer, status: entry.status };
  const line = (k, v) => `${k}: ${v}\n`;
  req.textContent = request
    ? line('version', request.version) + line('clientNonce', request.clientNonce) +
      line('clientKey (C, the browser\'s public key)', request.clientKey) +
      (request.psk ? line('psk', true) : '')
    : decoder.decode(entry.requestBody);
  ans.textContent = `${entry.status}\n` + (answer && entry.status === 200
    ? line('version', answer.version) + line('sessionId', answer.sessionId) + line('serverNonce', answer.serverNonce) +
      line('serverKey (S, the server\'s public key)', answer.serverKey) + line('expiresIn', answer.expiresIn) +
      (answer.signature ? line('signature', answer.signature) + line('signer', answer.signer) : '')
    : decoder.decode(entry.responseBody));
}
showHandshake();

const session = zeqE2ESession();
if (session) {
  state.mode = 'encrypted';
  state.session = session.sessionId;
  state.version = session.version;
  setStatus('encrypted', `Encrypted (protocol ${session.version}): session ${session.sessionId.slice(0, 10)}…, ` +
    `expires ${new Date(session.expiresAt).toLocaleTimeString()} (renewed before that)`);
} else {
  state.mode = 'plaintext';
  const why = state.error ? (state.error.code || state.error.message) : 'no session';
  state.errorCode = state.error && state.error.code;
  setStatus('plaintext', `Plaintext: no encryption here (${why}); the page keeps working`);
  $('[data-testid="handshake-derived"]').textContent =
    `No session: the server answered ${why}, so no keys were derived and the page sends plaintext.`;
}

const message = {
  message: 'Hello from the browser',
  card: '4111 1111 1111 1111',
  note: 'only the browser and the application read this',
};
await runDemo({
  id: 'static',
  title: 'GET a static file',
  what: 'GET /sample.json: no body, so the request carries the seal of the empty message (X-E2E-Seal); ' +
    'Apache\'s static file handler answers, the module seals the file.',
  method: 'GET',
  path: '/sample.json',
});
if (session) {
  const first = state.results[0];
  const derived = $('[data-testid="handshake-derived"]');
  if (first && first.status === 200 && !first.error) {
    state.keysAgree = true;
    derived.textContent = `Both sides derived the same keys: the server verified this page's first request ` +
      `(sequence number ${first.wire && first.wire.seq}, sealed under k_c2s) and this page opened the server's ` +
      'answer (sealed under k_s2c). Neither Z nor the keys ever crossed the wire.';
  } else {
    state.keysAgree = false;
    derived.textContent = `The first sealed request did not come back verified: ${first && (first.error || first.status)}.`;
  }
}
await runDemo({
  id: 'cgi',
  title: 'POST to a CGI app',
  what: 'POST /cgi-bin/echo.cgi: the CGI script reads plaintext from stdin and answers what it received.',
  method: 'POST',
  path: '/cgi-bin/echo.cgi',
  body: JSON.stringify({ ...message, to: 'cgi' }),
  type: 'application/json',
});
await runDemo({
  id: 'proxy',
  title: 'POST to a proxied app',
  what: 'POST /proxy/echo: mod_proxy_http hands the plaintext to a backend server, which answers what it received.',
  method: 'POST',
  path: '/proxy/echo',
  body: JSON.stringify({ ...message, to: 'proxy' }),
  type: 'application/json',
});
await runWebSocketDemo(state.mode === 'encrypted');

document.body.dataset.demo = 'done';
