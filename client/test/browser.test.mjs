// The demo page in headless Chromium (Debian's chromium, driven by
// playwright-core; no browser download): the bootstrap snippet runs, the page
// shows the decrypted answers, and at the network level (the DevTools
// protocol's view of each request and response, through Playwright) every
// body was an envelope, which node:crypto opens with the key derived from the
// handshake seen on the network. Its WebSocket panel shows the ticks of
// /ws/pulse, and every frame on the network was an envelope of type ||
// message, which node:crypto opens. On a host without a secret, the same page
// keeps working in plaintext.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';
import { startServer, openNode, deriveKeyNode, TOP } from './server.mjs';

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
    })().catch((e) => { entry.error = e; });
  });
  await page.goto(origin + '/');
  await page.waitForSelector('body[data-demo="done"]', { timeout: 30000 });
  await Promise.all(traffic.map((t) => t.done));
  const demo = await page.evaluate(() => JSON.parse(JSON.stringify(window.zeqDemo)));
  return { page, traffic, sockets, demo, consoleErrors };
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
  it('encrypts every fetch of the page where the host has a secret', async () => {
    const { page, traffic, sockets, demo, consoleErrors } = await runDemo(server.urls.main);
    try {
      assert.equal(demo.mode, 'encrypted', JSON.stringify(demo.error));
      assert.match(await page.textContent('[data-testid="status"]'), /^Encrypted: session /);

      // The script came from the module.
      const script = onWire(traffic, '/static/zeq-e2e-client.js', 'GET');
      assert.equal(script.status, 200);
      assert.match(script.responseHeaders['content-type'], /^text\/javascript/);

      // The session key, derived with node:crypto from the handshake on the network.
      const hs = onWire(traffic, '/api/e2e/handshake', 'POST');
      const { clientNonce } = JSON.parse(hs.requestBody.toString());
      const answer = JSON.parse(hs.responseBody.toString());
      assert.equal(answer.sessionId, demo.session);
      const key = deriveKeyNode(server.secret, clientNonce, answer.serverNonce);

      // What the page shows: the decrypted answers of the three applications.
      const staticAnswer = await page.textContent('[data-testid="static-app-answer"]');
      assert.match(staticAnswer, /^200 OK\ncontent-type: application\/json\n/);
      assert.deepEqual(JSON.parse(staticAnswer.split('\n\n').slice(1).join('\n\n')), JSON.parse(SAMPLE));
      const results = Object.fromEntries(demo.results.map((r) => [r.id, r]));
      assert.equal(results.static.answer, SAMPLE.toString());

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
        assert.match(await page.textContent(`[data-testid="${id}-wire-request"]`),
          new RegExp(`envelope, ${Buffer.byteLength(r.sent) + 28} bytes`));

        // On the network: envelopes both ways, 28 bytes longer than the plaintext.
        const w = onWire(traffic, path, 'POST');
        assert.equal(w.requestHeaders['content-type'], 'application/x-zeq-e2e');
        assert.equal(w.requestHeaders['x-e2e-content-type'], 'application/json');
        assert.equal(w.requestHeaders['x-e2e-session'], answer.sessionId);
        assert.equal(w.requestBody.length, Buffer.byteLength(r.sent) + 28);
        assert.equal(w.requestBody.indexOf('Hello from the browser'), -1);
        assert.equal(openNode(key, w.requestBody).toString(), r.sent);
        assert.equal(w.responseHeaders['content-type'], 'application/x-zeq-e2e');
        assert.equal(w.responseHeaders['x-e2e-content-type'], 'application/json');
        assert.equal(w.responseBody.length, Buffer.byteLength(r.answer) + 28);
        assert.equal(w.responseBody.indexOf('Hello from the browser'), -1);
        assert.equal(openNode(key, w.responseBody).toString(), r.answer);
      }

      const w = onWire(traffic, '/sample.json', 'GET');
      assert.equal(w.requestHeaders['x-e2e-session'], answer.sessionId);
      assert.match(w.requestHeaders.accept, /application\/x-zeq-e2e/);
      assert.equal(w.responseHeaders['content-type'], 'application/x-zeq-e2e');
      assert.equal(w.responseBody.length, SAMPLE.length + 28);
      assert.equal(w.responseBody.indexOf('static file'), -1);
      assert.deepEqual(openNode(key, w.responseBody), SAMPLE);

      // The page's own wire column shows the same bytes as the network.
      const shownWire = await page.textContent('[data-testid="proxy-wire-answer"]');
      const hex = onWire(traffic, '/proxy/echo', 'POST').responseBody.subarray(0, 28).toString('hex');
      assert.ok(shownWire.replace(/\s/g, '').includes(hex), 'iv and tag shown in the page');

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

      // On the network: binary frames of 29 + n bytes, the session's
      // envelopes of 0x01 || the messages the page shows, never plaintext.
      assert.equal(sockets.length, 1);
      const socket = sockets[0];
      const wsURL = new URL(socket.url);
      assert.equal(wsURL.pathname, '/ws/pulse');
      assert.equal(wsURL.searchParams.get('e2e_session'), answer.sessionId);
      assert.equal(socket.sent.length, 1);
      assert.ok(socket.received.length >= ws.count);
      const open = (frame) => {
        assert.ok(Buffer.isBuffer(frame), `a binary frame: ${String(frame).slice(0, 60)}`);
        const plain = openNode(key, frame);
        assert.equal(plain[0], 0x01, 'a text message');
        assert.equal(frame.length, 29 + plain.length - 1);
        assert.equal(frame.indexOf(plain.subarray(1, 9)), -1, 'plaintext on the wire');
        return plain.subarray(1).toString();
      };
      assert.equal(open(socket.sent[0]), ws.sent[0]);
      assert.equal(socket.sent[0].indexOf('4111'), -1);
      assert.deepEqual(socket.received.slice(0, ws.received.length).map(open), ws.received);
      // The page's wire column shows frames as the network saw them.
      const shownFrames = await page.textContent('[data-testid="ws-wire-answer"]');
      const networkHeads = socket.received.map((f) => f.subarray(0, 28).toString('hex'));
      const shownHeads = [...shownFrames.matchAll(/^([0-9a-f]{24}) ([0-9a-f]{32}) [0-9a-f]+/gm)].map((m) => m[1] + m[2]);
      assert.ok(shownHeads.length >= 3, shownFrames);
      for (const h of shownHeads) assert.ok(networkHeads.includes(h), `shown frame ${h} was on the network`);
      assert.match(await page.textContent('[data-testid="ws-wire-request"]'),
        /^GET \/ws\/pulse\?e2e_session=[\w-]{12}…\nUpgrade: websocket\n\n→ binary frame, \d+ bytes = 29 \+ \d+\n/);
      assert.equal(await page.textContent('#demo-ws .wire-tag'), 'encrypted');

      assert.deepEqual(consoleErrors, []);
      await page.screenshot({ path: join(ARTIFACTS, 'demo.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });

  it('seals every body type, keeps Request objects and aborts, fails closed, retries after a restart', async () => {
    const { page, demo } = await runDemo(server.urls.main);
    try {
      assert.equal(demo.mode, 'encrypted');
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

  it('keeps working in plaintext where the host has no secret', async () => {
    const { page, traffic, sockets, demo, consoleErrors } = await runDemo(server.urls.nosecret);
    try {
      assert.equal(demo.mode, 'plaintext');
      assert.equal(demo.errorCode, 'e2e_unavailable');
      assert.match(await page.textContent('[data-testid="status"]'), /^Plaintext: .*e2e_unavailable/);
      const hs = onWire(traffic, '/api/e2e/handshake', 'POST');
      assert.equal(hs.status, 503);

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
      assert.deepEqual(consoleErrors.filter((e) => !/503/.test(e)), []);
      await page.screenshot({ path: join(ARTIFACTS, 'demo-plaintext.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });
});
