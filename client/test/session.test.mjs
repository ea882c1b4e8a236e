// Sessions, in protocol v2 (the default) and v1: renewal before expiresAt
// on a host with ZeqE2ESessionTTL 2, transparent retry after the server
// forgot every session (a graceful restart empties shmcb), one shared
// handshake for concurrent requests, every retry sealed anew (v2: with a new
// sequence number, from 0 in the new session), one retry only, and the
// plaintext fallback where the host offers no encryption the page can use.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { installWireTap, checkExchange } from './wire.mjs';

let instances = 0;
const freshLibrary = () => import(`../zeq-e2e-client.js?session-instance=${++instances}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const isHandshake = (e) => new URL(e.url).pathname === '/api/e2e/handshake';

let server;
let wire;

before(async () => {
  server = await startServer('session');
  wire = installWireTap();
});

after(async () => {
  wire && wire.restore();
  if (server) assert.deepEqual(await server.stopChecked(), [], 'unexpected error-log lines');
});

const MODES = [
  { name: 'protocol 2', version: 2, options: () => ({}), plain: 'v1only' },
  { name: 'protocol 1', version: 1, options: () => ({ protocol: 1, secret: server.secret }), plain: 'nosecret' },
];

for (const mode of MODES) {
  describe(mode.name, () => suite(mode));
}

function suite(mode) {
  describe('renewal', () => {
    it('renews a short session before it expires, without a 401', async () => {
      const lib = await freshLibrary();
      const start = wire.log.length;
      const first = await lib.zeqE2EHandshake(server.urls.short, mode.options());
      assert.ok(first.expiresAt - Date.now() <= 2000 && first.expiresAt - Date.now() > 1000, 'expiresIn 2');

      const post = async (body) => {
        const res = await lib.zeqE2EFetch(server.urls.short + '/cgi-bin/echo.cgi', { method: 'POST', body });
        assert.equal(res.status, 200);
        assert.equal((await res.json()).body, body);
      };
      await post('while fresh');
      assert.equal(lib.zeqE2ESession().sessionId, first.sessionId);

      // Close to expiresAt (the margin is a fifth of the TTL): renewed first.
      await sleep(first.expiresAt - Date.now() - 250);
      assert.ok(Date.now() < first.expiresAt, 'the old session still lives');
      await post('close to the expiry');
      const second = lib.zeqE2ESession();
      assert.notEqual(second.sessionId, first.sessionId);
      assert.ok(second.expiresAt > first.expiresAt);

      // Long after the expiry: renewed first as well.
      await sleep(second.expiresAt - Date.now() + 500);
      await post('after the expiry');
      const third = lib.zeqE2ESession();
      assert.notEqual(third.sessionId, second.sessionId);

      const seen = wire.log.slice(start);
      assert.equal(seen.filter(isHandshake).length, 3, 'one handshake, two renewals');
      assert.deepEqual(seen.filter((e) => e.status === 401), [], 'never a 401');
      // Each request went with the session of the handshake just before it.
      const sessions = wire.sessions(server.secret);
      let current = null;
      for (const e of seen) {
        if (isHandshake(e)) {
          current = JSON.parse(e.responseBody.toString()).sessionId;
          assert.equal(sessions.get(current).version, mode.version);
        } else {
          assert.equal(e.requestHeaders.get('x-e2e-session'), current);
          checkExchange(e, sessions.get(current));
        }
      }
    });
  });

  describe('the server forgets its sessions', () => {
    it('retries transparently, with one handshake shared by concurrent requests', async () => {
      const lib = await freshLibrary();
      await lib.zeqE2EHandshake(server.urls.main, mode.options());
      const before = lib.zeqE2ESession();
      const ok = await lib.zeqE2EFetch(server.urls.main + '/proxy/echo', { method: 'POST', body: 'before' });
      assert.equal((await ok.json()).body, 'before');

      await server.restart();
      const start = wire.log.length;

      const bodies = ['one', 'two', 'three', 'four', 'five'].map((w) => `${w} after the restart`);
      const answers = await Promise.all(bodies.map((body, i) => lib.zeqE2EFetch(
        server.urls.main + (i % 2 ? '/proxy/echo' : '/cgi-bin/echo.cgi'), { method: 'POST', body })));
      for (const [i, res] of answers.entries()) {
        assert.equal(res.status, 200);
        assert.equal((await res.json()).body, bodies[i]);
      }
      const after = lib.zeqE2ESession();
      assert.notEqual(after.sessionId, before.sessionId);

      const seen = wire.log.slice(start);
      const handshakes = seen.filter(isHandshake);
      assert.equal(handshakes.length, 1, 'one new handshake for all five');
      const refused = seen.filter((e) => e.status === 401);
      assert.equal(refused.length, 5);
      for (const e of refused) {
        assert.equal(e.requestHeaders.get('x-e2e-session'), before.sessionId);
        assert.equal(JSON.parse(e.responseBody.toString()).error, 'e2e_session_invalid');
      }
      // The retries were sealed anew under the new session's key.
      const sessions = wire.sessions(server.secret);
      const retried = seen.filter((e) => !isHandshake(e) && e.status === 200);
      assert.equal(retried.length, 5);
      const plain = retried.map((e) => {
        assert.equal(e.requestHeaders.get('x-e2e-session'), after.sessionId);
        return checkExchange(e, sessions.get(after.sessionId)).request.toString();
      });
      assert.deepEqual(plain.sort(), [...bodies].sort());
      // Fresh ivs (v2: nonce_base): no envelope was sent twice.
      const ivs = seen.filter((e) => e.requestBody)
        .map((e) => e.requestBody.subarray(mode.version === 2 ? 1 : 0, mode.version === 2 ? 13 : 12).toString('hex'));
      assert.equal(new Set(ivs).size, ivs.length);
      if (mode.version === 2) {
        // Numbers 1 to 5 of the old session were refused; the retries are
        // numbers 0 to 4 of the new one.
        const nums = (list) => list.map((e) => Number(e.requestHeaders.get('x-e2e-seq'))).sort((a, b) => a - b);
        assert.deepEqual(nums(refused), [1, 2, 3, 4, 5]);
        assert.deepEqual(nums(retried), [0, 1, 2, 3, 4]);
      }
    });

    it('also for a GET without a body', async () => {
      const lib = await freshLibrary();
      await lib.zeqE2EHandshake(server.urls.main, mode.options());
      await server.restart();
      const res = await lib.zeqE2EFetch(server.urls.main + '/proxy/echo');
      assert.equal(res.status, 200);
      assert.equal((await res.json()).method, 'GET');
    });

    it('retries once only', async () => {
      const lib = await freshLibrary();
      await lib.zeqE2EHandshake(server.urls.main, mode.options());
      const tap = globalThis.fetch;
      let handshakes = 0;
      let refused = 0;
      // A server that forgets every session at once.
      globalThis.fetch = async (input, init) => {
        const req = new Request(input, init);
        if (new URL(req.url).pathname === '/api/e2e/handshake') {
          handshakes++;
          return tap(req);
        }
        refused++;
        return new Response('{"error":"e2e_session_invalid","message":"gone"}',
          { status: 401, headers: { 'Content-Type': 'application/json' } });
      };
      try {
        const res = await lib.zeqE2EFetch(server.urls.main + '/proxy/echo', { method: 'POST', body: 'x' });
        assert.equal(res.status, 401);
        assert.equal(res.zeqE2EError, 'e2e_session_invalid');
        assert.equal(handshakes, 1);
        assert.equal(refused, 2);
      } finally {
        globalThis.fetch = tap;
      }
    });

    it('rejects when the new handshake fails, and does not send the body in plaintext', async () => {
      const lib = await freshLibrary();
      await lib.zeqE2EHandshake(server.urls.main, mode.options());
      await server.restart();
      const tap = globalThis.fetch;
      const sent = [];
      globalThis.fetch = async (input, init) => {
        const req = new Request(input, init);
        sent.push(req);
        if (new URL(req.url).pathname === '/api/e2e/handshake') {
          return new Response('{"error":"e2e_unavailable","message":"no"}',
            { status: 503, headers: { 'Content-Type': 'application/json' } });
        }
        return tap(req);
      };
      try {
        await assert.rejects(lib.zeqE2EFetch(server.urls.main + '/proxy/echo', { method: 'POST', body: 'x' }),
          (e) => e.code === 'e2e_unavailable' && e.status === 503);
        assert.equal(sent.length, 2, 'the refused request and the handshake');
        assert.equal(sent[0].headers.get('content-type'), 'application/x-zeq-e2e');
      } finally {
        globalThis.fetch = tap;
      }
    });
  });

  describe(`a host without ${mode.version === 2 ? 'protocol 2' : 'a secret'}`, () => {
    it(`keeps working in plaintext after the handshake got ${mode.version === 2 ? '400 e2e_version_unsupported' : '503'}`, async () => {
      const lib = await freshLibrary();
      let failed = null;
      // The bootstrap snippet, as a page would run it.
      try { await lib.zeqE2EHandshake(server.urls[mode.plain], mode.options()); lib.zeqE2EWrap(); } catch (e) { failed = e; }
      assert.equal(failed && failed.code, mode.version === 2 ? 'e2e_version_unsupported' : 'e2e_unavailable');
      assert.equal(globalThis.fetch, wire.tap, 'not wrapped');
      assert.equal(lib.zeqE2ESession(), null);
      const res = await lib.zeqE2EFetch(server.urls[mode.plain] + '/proxy/echo', { method: 'POST', body: '{"plain":1}', headers: { 'Content-Type': 'application/json' } });
      const echo = await res.json();
      assert.equal(echo.body, '{"plain":1}');
      assert.equal(echo.contentType, 'application/json');
      const e = wire.log[wire.log.length - 1];
      assert.equal(e.requestHeaders.get('x-e2e-session'), null);
      assert.equal(e.responseHeaders.get('content-type'), 'application/json');
    });
  });
}
