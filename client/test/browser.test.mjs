// The demo page in headless Chromium (Debian's chromium, driven by
// playwright-core; no browser download), on a virtual host without any
// secret: the bootstrap snippet runs protocol v2 with no secret anywhere, the
// page shows the handshake's public keys and the decrypted answers, and at
// the network level (the DevTools protocol's view of each request and
// response, through Playwright) every body and every seal was a v2 message
// bound to its request or answer, which node:crypto opens with the keys it
// derives from the handshake seen on the network and the page's ECDH private
// key (captured where Web Crypto makes it: client/test/v2.mjs). Its
// WebSocket panel shows the ticks of /ws/pulse, and every frame on the
// network was a sealed message of type || message under its direction's key
// and counter. On a host that offers no protocol v2, the same page keeps
// working in plaintext.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';
import { startServer, TOP } from './server.mjs';
import { checkV2Exchange } from './wire.mjs';
import * as v2 from './v2.mjs';

const ARTIFACTS = join(TOP, 'build', 'artifacts');
const SAMPLE = readFileSync(join(TOP, 'demo', 'htdocs', 'sample.json'));

let server;
let browser;
let context;

before(async () => {
  server = await startServer('browser');
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launchChromium(server.dir, { viewport: { width: 1360, height: 900 } });
  context = browser.context;
  await context.addInitScript(v2.clientKeyCaptureScript());
});

after(async () => {
  if (browser) await browser.close();
  if (server) assert.deepEqual(await server.stopChecked(), [], 'unexpected error-log lines');
});

/** Loads the demo page from origin and records the network traffic. */
async function runDemo(origin) {
  const page = await context.newPage();
  const traffic = [];
  const sockets = [];
  page.on('websocket', (ws) => {
    const entry = { url: ws.url(), sent: [], received: [] };
    sockets.push(entry);
    ws.on('framesent', (f) => entry.sent.push(f.payload));
    ws.on('framereceived', (f) => entry.received.push(f.payload));
  });
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('requestfinished', async (request) => {
    const entry = { request, url: request.url(), method: request.method(), done: null };
    traffic.push(entry);
    entry.done = (async () => {
      const response = await request.response();
      entry.requestHeaders = await request.allHeaders();
      entry.requestBody = request.postDataBuffer();
      entry.status = response.status();
      entry.responseHeaders = await response.allHeaders();
      entry.responseBody = await response.body();
      // The form client/test/wire.mjs judges.
      entry.wire = {
        method: entry.method, url: entry.url, requestHeaders: new Headers(entry.requestHeaders),
        requestBody: entry.requestBody, status: entry.status, responseHeaders: new Headers(entry.responseHeaders),
        responseBody: entry.responseBody,
      };
    })().catch((e) => { entry.error = e; });
  });
  await page.goto(origin + '/');
  await page.waitForSelector('body[data-demo="done"]', { timeout: 30000 });
  await Promise.all(traffic.map((t) => t.done));
  const demo = await page.evaluate(() => JSON.parse(JSON.stringify(window.zeqDemo)));
  const captured = await page.evaluate(() => window.zeqTestKeys);
  return { page, traffic, sockets, demo, consoleErrors, captured };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits (at most 2.5 s from now) until the page's WebSocket panel has counted 3 ticks. */
async function threeTicks(page) {
  const started = Date.now();
  let ws;
  do {
    ws = await page.evaluate(() => JSON.parse(JSON.stringify(window.zeqDemo.ws)));
    if (ws.ticks >= 3) break;
    await sleep(50);
  } while (Date.now() - started < 2500);
  assert.ok(ws.ticks >= 3, `3 ticks within 2.5 s, got ${ws.ticks}: ${JSON.stringify(ws)}`);
  // Let the panel render the last ones.
  await sleep(100);
  return page.evaluate(() => JSON.parse(JSON.stringify(window.zeqDemo.ws)));
}

function onWire(traffic, path, method) {
  const found = traffic.filter((t) => new URL(t.url).pathname === path && t.method === method);
  assert.equal(found.length, 1, `one ${method} ${path} on the network`);
  assert.ifError(found[0].error);
  return found[0];
}

describe('the demo page in Chromium', () => {
  it('runs protocol v2 with no secret anywhere, shows the ECDH handshake, and seals every fetch and frame', async () => {
    const { page, traffic, sockets, demo, consoleErrors, captured } = await runDemo(server.urls.nosecret);
    try {
      assert.equal(demo.mode, 'encrypted', JSON.stringify(demo.error));
      assert.equal(demo.version, 2);
      assert.match(await page.textContent('[data-testid="status"]'), /^Encrypted \(protocol 2\): session /);

      // No secret anywhere: the host has none, the page fetched none, the
      // handshake asked for no pre-shared key mode.
      const paths = traffic.map((t) => new URL(t.url).pathname).sort();
      assert.deepEqual([...new Set(paths)], ['/', '/api/e2e/handshake', '/cgi-bin/echo.cgi', '/demo.css', '/demo.js',
        '/proxy/echo', '/sample.json', '/static/zeq-e2e-client.js'], 'nothing but the demo\'s own requests');
      const html = onWire(traffic, '/', 'GET').responseBody.toString() + onWire(traffic, '/demo.js', 'GET').responseBody.toString();
      assert.doesNotMatch(html, /secret\.cgi|\{ *secret|protocol: *1/, 'the page asks for no secret');

      // The script came from the module.
      const script = onWire(traffic, '/static/zeq-e2e-client.js', 'GET');
      assert.equal(script.status, 200);
      assert.match(script.responseHeaders['content-type'], /^text\/javascript/);

      // The handshake: a fresh P-256 key each side. node:crypto derives Z
      // from the page's captured private key and the server's public key,
      // and the keys from Z and the nonces.
      const hs = onWire(traffic, '/api/e2e/handshake', 'POST');
      const request = JSON.parse(hs.requestBody.toString());
      const answer = JSON.parse(hs.responseBody.toString());
      assert.deepEqual(Object.keys(request).sort(), ['clientKey', 'clientNonce', 'version']);
      assert.equal(request.version, 2);
      assert.equal(answer.version, 2);
      assert.equal(answer.sessionId, demo.session);
      const session = v2.keysFromHandshake(request, answer, captured);
      assert.equal(captured.length, 1, 'one key pair');
      assert.equal(captured[0].askedExtractable, false, 'asked non-extractable');

      // What the page shows of the handshake: the public keys on the wire.
      const shownRequest = await page.textContent('[data-testid="handshake-request"]');
      const shownAnswer = await page.textContent('[data-testid="handshake-answer"]');
      assert.ok(shownRequest.includes(request.clientKey), 'the page shows C');
      assert.ok(shownAnswer.includes(answer.serverKey), 'the page shows S');
      assert.match(await page.textContent('[data-testid="handshake-derived"]'),
        /^Both sides derived the same keys: the server verified this page's first request \(sequence number 0/);
      assert.equal(demo.keysAgree, true);
      const security = await page.textContent('[data-testid="security"]');
      assert.match(security, /learns nothing of any body/);
      assert.match(security, /can still do everything/);
      assert.match(security, /TLS/);
      assert.match(security, /serverKey/);

      // What the page shows: the decrypted answers of the three applications.
      const staticAnswer = await page.textContent('[data-testid="static-app-answer"]');
      assert.match(staticAnswer, /^200 OK\ncontent-type: application\/json\n/);
      assert.deepEqual(JSON.parse(staticAnswer.split('\n\n').slice(1).join('\n\n')), JSON.parse(SAMPLE));
      const results = Object.fromEntries(demo.results.map((r) => [r.id, r]));
      assert.equal(results.static.answer, SAMPLE.toString());

      const seqs = [];
      const w = onWire(traffic, '/sample.json', 'GET');
      const s0 = checkV2Exchange(w.wire, session);
      seqs.push(s0.seq);
      assert.equal(w.requestBody, null);
      assert.deepEqual(s0.response, SAMPLE);
      assert.equal(w.responseBody.length, v2.sealedLength(SAMPLE.length));
      assert.equal(w.responseBody.indexOf('static file'), -1);

      for (const [id, path, app] of [['cgi', '/cgi-bin/echo.cgi', 'cgi'], ['proxy', '/proxy/echo', null]]) {
        const r = results[id];
        assert.equal(r.status, 200, r.error);
        const shown = await page.textContent(`[data-testid="${id}-app-answer"]`);
        const echo = JSON.parse(shown.split('\n\n').slice(1).join('\n\n'));
        assert.deepEqual(echo, JSON.parse(r.answer));
        // The app received exactly the plaintext the page sent.
        assert.equal(echo.body, r.sent);
        assert.equal(echo.contentType, 'application/json');
        assert.equal(Number(echo.contentLength), Buffer.byteLength(r.sent));
        if (app) assert.equal(echo.app, app);
        const size = v2.sealedLength(Buffer.byteLength(r.sent));
        assert.match(await page.textContent(`[data-testid="${id}-wire-request"]`),
          new RegExp(`sealed message, ${size} bytes = 13 \\+ 20 × 1 \\+ ${Buffer.byteLength(r.sent)}`));

        // On the network: sealed both ways, bound to this request and answer.
        const e = onWire(traffic, path, 'POST');
        assert.equal(e.requestHeaders['x-e2e-content-type'], 'application/json');
        assert.equal(e.requestBody.indexOf('Hello from the browser'), -1);
        assert.equal(e.responseBody.indexOf('Hello from the browser'), -1);
        const x = checkV2Exchange(e.wire, session);
        seqs.push(x.seq);
        assert.equal(x.request.toString(), r.sent);
        assert.equal(x.response.toString(), r.answer);
      }
      assert.deepEqual(seqs, [0, 1, 2], 'numbered from 0 in the order sent');

      // The page's own wire column shows the same bytes as the network.
      const shownWire = await page.textContent('[data-testid="proxy-wire-answer"]');
      const head = onWire(traffic, '/proxy/echo', 'POST').responseBody.subarray(0, 17).toString('hex');
      assert.ok(shownWire.replace(/\s/g, '').includes(head), 'prefix and record header shown in the page');

      // The WebSocket panel: the echo of the page's message, then ticks.
      const ws = await threeTicks(page);
      assert.equal(ws.mode, 'encrypted');
      assert.equal(ws.state, 'open');
      assert.equal(ws.error, null);
      assert.equal(ws.sent.length, 1);
      assert.ok(ws.received.includes(ws.sent[0]), 'the backend echoed the page\'s message');
      const ticks = ws.received.filter((m) => m.startsWith('{"tick":')).map((m) => JSON.parse(m));
      ticks.forEach((t, i) => assert.equal(t.tick, ticks[0].tick + i));
      const shownTicks = await page.textContent('[data-testid="ws-app-answer"]');
      assert.ok((shownTicks.match(/\{"tick":\d+,"time":[\d.]+\}/g) || []).length >= 3, shownTicks);
      assert.match(await page.textContent('[data-testid="ws-app-request"]'), /^zeqE2EWebSocket\('\/ws\/pulse'\)\nopen\n/);

      // On the network: the opening numbered 3 and sealed; binary frames,
      // each a sealed message of 0x01 || the message under its direction's
      // key and its place, never plaintext.
      assert.equal(sockets.length, 1);
      const socket = sockets[0];
      const wsURL = new URL(socket.url);
      assert.equal(wsURL.pathname, '/ws/pulse');
      assert.equal(wsURL.searchParams.get('e2e_session'), answer.sessionId);
      assert.equal(wsURL.searchParams.get('e2e_seq'), '3');
      assert.equal(v2.openMessage(session.c2s, v2.requestAAD(answer.sessionId, 3, 'GET', '/ws/pulse'),
        v2.fromB64url(wsURL.searchParams.get('e2e_seal'))).length, 0, 'the opening\'s seal');
      assert.equal(socket.sent.length, 1);
      assert.ok(socket.received.length >= ws.count);
      const open = (frame, direction, i) => {
        assert.ok(Buffer.isBuffer(frame), `a binary frame: ${String(frame).slice(0, 60)}`);
        const plain = v2.openMessage(direction === 'c2s' ? session.c2s : session.s2c,
          v2.wsAAD(answer.sessionId, 3, direction, i), frame);
        assert.equal(plain[0], 0x01, 'a text message');
        assert.equal(frame.length, v2.sealedLength(plain.length));
        assert.equal(frame.indexOf(plain.subarray(1, 9)), -1, 'plaintext on the wire');
        return plain.subarray(1).toString();
      };
      assert.equal(open(socket.sent[0], 'c2s', 0), ws.sent[0]);
      assert.equal(socket.sent[0].indexOf('4111'), -1);
      assert.deepEqual(socket.received.slice(0, ws.received.length).map((f, i) => open(f, 's2c', i)), ws.received);
      // The page's wire column shows frames as the network saw them.
      const shownFrames = await page.textContent('[data-testid="ws-wire-answer"]');
      const networkHeads = socket.received.map((f) => f.subarray(0, 13).toString('hex'));
      const shownHeads = [...shownFrames.matchAll(/^(02[0-9a-f]{24}) [0-9a-f]{8} [0-9a-f]+/gm)].map((m) => m[1]);
      assert.ok(shownHeads.length >= 3, shownFrames);
      for (const h of shownHeads) assert.ok(networkHeads.includes(h), `shown frame ${h} was on the network`);
      assert.match(await page.textContent('[data-testid="ws-wire-request"]'),
        /^GET \/ws\/pulse\?e2e_session=[\w-]{12}…&e2e_seq=3&e2e_seal=[\w-]{12}…\nUpgrade: websocket\n\n→ binary frame, \d+ bytes = 34 \+ \d+\n/);
      assert.equal(await page.textContent('#demo-ws .wire-tag'), 'encrypted');

      assert.deepEqual(consoleErrors, []);
      await page.screenshot({ path: join(ARTIFACTS, 'demo.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });

  it('seals every body type, keeps Request objects and aborts, fails closed, retries after a restart', async () => {
    const { page, demo } = await runDemo(server.urls.nosecret);
    try {
      assert.equal(demo.mode, 'encrypted');
      assert.equal(demo.version, 2);
      const bodies = await page.evaluate(async () => {
        const echo = async (body, init = {}) => {
          const res = await fetch('/proxy/echo', { method: 'POST', body, ...init });
          const j = await res.json();
          return { type: j.contentType, length: j.bodyLength, body: j.body, ct: res.headers.get('content-type') };
        };
        const fd = new FormData();
        fd.append('field', 'value');
        fd.append('file', new File(['file body'], 'f.txt', { type: 'text/plain' }));
        const out = {
          string: await echo('a string'),
          params: await echo(new URLSearchParams({ q: 'a b' })),
          form: await echo(fd),
          blob: await echo(new Blob(['<p>blob</p>'], { type: 'text/html' })),
          buffer: await echo(new Uint8Array([104, 105]).buffer),
          view: await echo(new Uint8Array([0, 104, 105, 0]).subarray(1, 3)),
          stream: await echo(new ReadableStream({
            start(c) { c.enqueue(new TextEncoder().encode('streamed')); c.close(); },
          }), { headers: { 'Content-Type': 'text/plain' } }),
        };
        const req = new Request('/proxy/echo', { method: 'PUT', body: 'from a Request', headers: { 'X-Mine': 'yes' } });
        const rj = await (await fetch(req)).json();
        out.request = { method: rj.method, body: rj.body, mine: rj.headers['x-mine'] };
        const c = new AbortController();
        c.abort();
        out.abort = await fetch('/proxy/echo', { signal: c.signal }).then(() => 'resolved', (e) => e.name);
        out.downgrade = await fetch('/off/files/hello.txt').then(() => 'resolved', (e) => e.code);
        return out;
      });
      assert.deepEqual(bodies.string, { type: 'text/plain;charset=UTF-8', length: 8, body: 'a string', ct: 'application/json' });
      assert.equal(bodies.params.type, 'application/x-www-form-urlencoded;charset=UTF-8');
      assert.equal(bodies.params.body, 'q=a+b');
      assert.match(bodies.form.type, /^multipart\/form-data; ?boundary=/);
      assert.match(bodies.form.body, /name="file"; filename="f.txt"\r\nContent-Type: text\/plain\r\n\r\nfile body\r\n/);
      assert.ok(bodies.form.body.includes(bodies.form.type.split('boundary=')[1]));
      assert.equal(bodies.blob.type, 'text/html');
      assert.equal(bodies.blob.body, '<p>blob</p>');
      assert.deepEqual([bodies.buffer.type, bodies.buffer.body], ['application/octet-stream', 'hi']);
      assert.deepEqual([bodies.view.type, bodies.view.body], ['application/octet-stream', 'hi']);
      assert.deepEqual([bodies.stream.type, bodies.stream.body], ['text/plain', 'streamed']);
      assert.deepEqual(bodies.request, { method: 'PUT', body: 'from a Request', mine: 'yes' });
      assert.equal(bodies.abort, 'AbortError');
      assert.equal(bodies.downgrade, 'e2e_downgrade');

      // The server forgets every session; the page does not notice.
      const before = await page.evaluate(() => window.zeqDemo.session);
      await server.restart();
      const after = await page.evaluate(async () => {
        const res = await fetch('/cgi-bin/echo.cgi', { method: 'POST', body: 'after the restart' });
        const { zeqE2ESession } = await import('/static/zeq-e2e-client.js');
        return { status: res.status, body: (await res.json()).body, session: zeqE2ESession().sessionId };
      });
      assert.equal(after.status, 200);
      assert.equal(after.body, 'after the restart');
      assert.notEqual(after.session, before);
    } finally {
      await page.close();
    }
  });

  it('keeps working in plaintext where the host offers no protocol v2 (and never falls back to v1)', async () => {
    const { page, traffic, sockets, demo, consoleErrors } = await runDemo(server.urls.v1only);
    try {
      assert.equal(demo.mode, 'plaintext');
      assert.equal(demo.errorCode, 'e2e_version_unsupported');
      assert.match(await page.textContent('[data-testid="status"]'), /^Plaintext: .*e2e_version_unsupported/);
      const hs = onWire(traffic, '/api/e2e/handshake', 'POST');
      assert.equal(hs.status, 400);
      assert.equal(JSON.parse(hs.requestBody.toString()).version, 2);
      assert.equal(traffic.filter((t) => new URL(t.url).pathname === '/api/e2e/handshake').length, 1, 'no v1 handshake');
      assert.match(await page.textContent('[data-testid="handshake-derived"]'), /^No session/);

      const results = Object.fromEntries(demo.results.map((r) => [r.id, r]));
      assert.equal(results.static.status, 200);
      assert.equal(results.static.answer, SAMPLE.toString());
      for (const [id, path] of [['cgi', '/cgi-bin/echo.cgi'], ['proxy', '/proxy/echo']]) {
        const r = results[id];
        assert.equal(r.status, 200, r.error);
        assert.equal(JSON.parse(r.answer).body, r.sent);
        const w = onWire(traffic, path, 'POST');
        assert.equal(w.requestHeaders['x-e2e-session'], undefined);
        assert.equal(w.requestHeaders['content-type'], 'application/json');
        assert.equal(w.requestBody.toString(), r.sent);
        assert.equal(w.responseHeaders['content-type'], 'application/json');
        assert.match(await page.textContent(`[data-testid="${id}-wire-request"]`), /plaintext, \d+ bytes/);
      }
      // The WebSocket: a plain one, text frames on the network.
      const ws = await threeTicks(page);
      assert.equal(ws.mode, 'plaintext');
      assert.ok(ws.received.includes(ws.sent[0]));
      assert.equal(sockets.length, 1);
      assert.equal(new URL(sockets[0].url).search, '');
      assert.equal(sockets[0].sent[0], ws.sent[0]);
      assert.ok(sockets[0].received.every((f) => typeof f === 'string'));
      assert.equal(await page.textContent('#demo-ws .wire-tag'), 'plaintext');
      assert.deepEqual(consoleErrors.filter((e) => !/status of 400/.test(e)), []);
      await page.screenshot({ path: join(ARTIFACTS, 'demo-plaintext.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });
});

describe('protocol v2 in Chromium\'s Web Crypto: signed handshakes, pre-shared keys, downgrades', () => {
  /** A blank page of a host, the library imported (a fresh copy per call of lib()). */
  async function blankPage(origin) {
    const page = await context.newPage();
    const seen = [];
    page.on('requestfinished', (r) => seen.push(r));
    await page.goto(`${origin}/files/blank.html`);
    return { page, seen };
  }

  /** The finished request for pathname: Playwright reports a request finished after the page may
   * already have read its answer, so a test that looks right after page.evaluate waits for it. */
  async function finished(seen, pathname) {
    for (let waited = 0; waited < 10000; waited += 20) {
      const r = seen.find((x) => new URL(x.url()).pathname === pathname);
      if (r) return r;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.fail(`no finished request for ${pathname} within 10 s (seen: ${seen.map((x) => x.url()).join(', ')})`);
  }

  /** Runs handshakes in the page: [{ ok, info | code, message }]. */
  const handshakes = (page, list) => page.evaluate(async (list) => {
    const out = [];
    let n = 0;
    for (const options of list) {
      const lib = await import(`/static/zeq-e2e-client.js?copy=${++n}`);
      try {
        const info = await lib.zeqE2EHandshake(location.origin, options);
        const res = await lib.zeqE2EFetch('/files/hello.txt');
        out.push({ ok: true, info, status: res.status, text: await res.text() });
      } catch (e) {
        out.push({ ok: false, code: e.code || e.name, message: e.message, session: lib.zeqE2ESession() });
      }
    }
    return out;
  }, list);

  it('verifies the server\'s signature with the pinned key (SPKI, JWK, a rotation list) and refuses others', async () => {
    const [k0, k1] = server.serverKeys;
    const { page } = await blankPage(server.urls.signed);
    try {
      const out = await handshakes(page, [{ serverKey: k0.spkiB64url }, { serverKey: k0.jwk },
        { serverKey: [k1.spkiB64url, k0.spkiB64url] }, { serverKey: k1.spkiB64url }]);
      for (const r of out.slice(0, 3)) {
        assert.equal(r.ok, true, r.message);
        assert.equal(r.info.signer, k0.signer);
        assert.equal(r.text, 'hello from a static file\n');
      }
      assert.deepEqual([out[3].ok, out[3].code, out[3].session], [false, 'e2e_bad_signature', null]);
      assert.match(out[3].message, /not by a pinned key/);
    } finally {
      await page.close();
    }
  });

  it('refuses an unsigned answer, a flipped signature bit, and a v1 answer to a v2 handshake (page.route)', async () => {
    const k0 = server.serverKeys[0];
    const { page } = await blankPage(server.urls.signed);
    try {
      let edit = null;
      await page.route('**/api/e2e/handshake', async (route) => {
        const response = await route.fetch();
        const answer = await response.json();
        await route.fulfill({ response, json: edit(answer, route.request().postDataJSON()) });
      });
      edit = (a) => { delete a.signature; delete a.signer; return a; };
      const [unsigned] = await handshakes(page, [{ serverKey: k0.spkiB64url }]);
      edit = (a) => {
        const sig = v2.fromB64url(a.signature);
        sig[40] ^= 0x20;
        return { ...a, signature: v2.b64url(sig) };
      };
      const [flipped] = await handshakes(page, [{ serverKey: k0.spkiB64url }]);
      edit = (a, request) => ({ version: 1, sessionId: a.sessionId, serverNonce: a.serverNonce, expiresIn: 3600,
        clientNonceWas: request.clientNonce });
      const [downgraded, downgradedPinned] = await handshakes(page, [{}, { serverKey: k0.spkiB64url }]);
      assert.deepEqual([unsigned.ok, unsigned.code], [false, 'e2e_bad_signature']);
      assert.match(unsigned.message, /not signed/);
      assert.deepEqual([flipped.ok, flipped.code], [false, 'e2e_bad_signature']);
      assert.match(flipped.message, /does not verify/);
      assert.deepEqual([downgraded.ok, downgraded.code, downgraded.session], [false, 'e2e_downgrade', null]);
      assert.deepEqual([downgradedPinned.ok, downgradedPinned.code], [false, 'e2e_downgrade']);
    } finally {
      await page.close();
    }
  });

  it('pre-shared key mode: "psk": true, keys that only the secret\'s holder derives', async () => {
    const { page, seen } = await blankPage(server.urls.main);
    try {
      // The GET's exchange is taken through a route (route.fetch, then the same answer handed to
      // the page): Chromium may end a fetch the page read whole with loadingFailed, so that its
      // requestfinished never comes.
      const gets = [];
      await page.route('**/files/hello.txt', async (route) => {
        const response = await route.fetch();
        const body = await response.body();
        gets.push({ request: route.request(), response, body });
        await route.fulfill({ response, body });
      });
      const [r] = await handshakes(page, [{ secret: server.secret }]);
      assert.equal(r.ok, true, r.message);
      assert.equal(r.info.psk, true);
      assert.equal(r.text, 'hello from a static file\n');
      const hs = await finished(seen, '/api/e2e/handshake');
      const request = JSON.parse(hs.postDataBuffer().toString());
      const answer = JSON.parse((await (await hs.response()).body()).toString());
      assert.equal(request.psk, true);
      const captured = await page.evaluate(() => window.zeqTestKeys);
      const session = v2.keysFromHandshake(request, answer, captured, { secret: server.secret });
      assert.equal(gets.length, 1, 'one GET of /files/hello.txt went through the route');
      const [get] = gets;
      const entry = {
        method: 'GET', url: get.request.url(), requestHeaders: new Headers(await get.request.allHeaders()),
        requestBody: null, status: get.response.status(), responseHeaders: new Headers(get.response.headers()),
        responseBody: get.body,
      };
      assert.equal(checkV2Exchange(entry, session).response.toString(), 'hello from a static file\n');
      const plain = { ...session, ...v2.sessionKeys(session.z, request.clientNonce, answer.serverNonce) };
      assert.throws(() => checkV2Exchange(entry, plain), 'without the PSK the keys differ');
    } finally {
      await page.close();
    }
  });
});

