// zeqE2EFetch against a real Apache with mod_zeq_e2e, once in protocol v2
// (the default, on a host without any secret) and once in protocol v1
// ({ protocol: 1, secret }): bodies, Request objects, responses, abort,
// cross-origin pass-through, wrap/unwrap, fail-closed and module errors, the
// script the module serves. Every message that crossed the wire is checked
// again here with node:crypto (client/test/wire.mjs: v2 sealed messages and
// seals bound to each request and answer, v1 envelopes), an implementation
// independent of the library's Web Crypto code.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { startServer, FILES, CLIENT_JS } from './server.mjs';
import { installWireTap, checkExchange, sealedSize } from './wire.mjs';

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
let instances = 0;
/** A fresh copy of the library (its own default session). */
const freshLibrary = () => import(`../zeq-e2e-client.js?instance=${++instances}`);

let server;
let wire;

before(async () => {
  server = await startServer('fetch');
  wire = installWireTap();
});

after(async () => {
  wire && wire.restore();
  if (server) {
    const unexpected = await server.stopChecked([
      // the module-error tests provoke these on purpose
      /ZEQ50001: response not sent: the body is over ZeqE2EMaxResponseBody/,
      // ... and the nph- script refused in an encrypted exchange
      /ZEQ40013: refusing nph- CGI script \S*\/t-cgi\/nph-x\.cgi /,
    ]);
    assert.deepEqual(unexpected, [], 'unexpected error-log lines');
  }
});

/** The last wire entry for a URL path (and method). */
function lastEntry(path, method) {
  for (let i = wire.log.length - 1; i >= 0; i--) {
    const e = wire.log[i];
    if (new URL(e.url).pathname + new URL(e.url).search === path && (!method || e.method === method)) return e;
  }
  throw new Error(`no request to ${path} on the wire`);
}

/**
 * Asserts that the request and the response of a wire entry were sealed
 * (v2: bound to it) under the keys node:crypto derives from the handshake
 * seen on the wire; returns { request, response } plaintexts.
 */
function assertEnvelopes(entry) {
  const sid = entry.requestHeaders.get('x-e2e-session');
  assert.ok(sid, 'X-E2E-Session was sent');
  const session = wire.sessions(server.secret).get(sid);
  assert.ok(session, 'the session comes from a handshake seen on the wire');
  const { request, response } = checkExchange(entry, session);
  return { request, response };
}

function assertNoPlaintext(entry, plain) {
  if (plain.length >= 8) {
    if (entry.requestBody) assert.equal(entry.requestBody.indexOf(plain), -1, 'plaintext on the wire');
    if (entry.responseBody) assert.equal(entry.responseBody.indexOf(plain), -1, 'plaintext on the wire');
  }
}

const MODES = [
  { name: 'protocol 2 (no secret anywhere)', version: 2, host: 'nosecret', other: 'main', options: () => ({}) },
  { name: 'protocol 1 ({ protocol: 1, secret })', version: 1, host: 'main', other: 'nosecret',
    options: () => ({ protocol: 1, secret: server.secret }) },
];

for (const mode of MODES) {
  describe(mode.name, () => suite(mode));
}

function suite(mode) {
  const o = () => server.urls[mode.host];
  const other = () => server.urls[mode.other];
  /** Tests of protocol 1 only (its secret). */
  const v1it = mode.version === 1 ? it : () => {};
  let lib;

  before(async () => {
    lib = await freshLibrary();
    await lib.zeqE2EHandshake(o(), mode.options());
  });

  describe('handshake', () => {
    it('resolves to the session and keeps it as the default', async () => {
      const l = await freshLibrary();
      assert.equal(l.zeqE2ESession(), null);
      const t0 = Date.now();
      const s = await l.zeqE2EHandshake(o() + '/some/page?x=1', mode.options());
      assert.equal(s.version, mode.version);
      assert.equal(s.psk, false);
      assert.equal(s.signer, null);
      assert.match(s.sessionId, /^[A-Za-z0-9_-]{1,128}$/);
      assert.ok(Math.abs(s.expiresAt - (t0 + 3600 * 1000)) < 5000, 'expiresAt = now + expiresIn');
      assert.deepEqual(l.zeqE2ESession(), { ...s, origin: o() });
      const hs = lastEntry('/api/e2e/handshake', 'POST');
      assert.equal(hs.requestHeaders.get('content-type'), 'application/json');
      const body = JSON.parse(hs.requestBody.toString());
      assert.match(body.clientNonce, /^[0-9a-f]{64}$/);
      assert.deepEqual(Object.keys(body).sort(), mode.version === 2 ? ['clientKey', 'clientNonce', 'version'] : ['clientNonce']);
      assert.equal(JSON.parse(hs.responseBody.toString()).version, mode.version);
      // The key it derived is the one node:crypto derives from the wire.
      const res = await l.zeqE2EFetch(o() + '/files/hello.txt');
      assert.equal(await res.text(), FILES['hello.txt'].toString());
      const { response } = assertEnvelopes(lastEntry('/files/hello.txt'));
      assert.deepEqual(response, FILES['hello.txt']);
    });

    v1it('accepts the secret as bytes', async () => {
      const l = await freshLibrary();
      await l.zeqE2EHandshake(o(), { protocol: 1, secret: new TextEncoder().encode(server.secret) });
      const res = await l.zeqE2EFetch(o() + '/files/hello.txt');
      assert.equal(await res.text(), FILES['hello.txt'].toString());
    });

    v1it('rejects with e2e_unavailable where the host has no secret, and fetch stays plaintext', async () => {
      const l = await freshLibrary();
      await assert.rejects(l.zeqE2EHandshake(server.urls.nosecret, { protocol: 1, secret: server.secret }),
        (e) => e instanceof l.ZeqE2EError && e.code === 'e2e_unavailable' && e.status === 503);
      assert.equal(l.zeqE2ESession(), null);
      const res = await l.zeqE2EFetch(server.urls.nosecret + '/cgi-bin/echo.cgi', { method: 'POST', body: 'plain' });
      const echo = await res.json();
      assert.equal(echo.body, 'plain');
      assert.equal(echo.contentType, 'text/plain;charset=UTF-8');
      const e = lastEntry('/cgi-bin/echo.cgi', 'POST');
      assert.equal(e.requestHeaders.get('x-e2e-session'), null);
      assert.equal(e.requestBody.toString(), 'plain');
    });

    it('rejects with e2e_handshake_failed when the path answers no protocol error', async () => {
      const l = await freshLibrary();
      await assert.rejects(
        l.zeqE2EHandshake(o(), { ...mode.options(), handshakePath: '/no/such/handshake' }),
        (e) => e.code === 'e2e_handshake_failed' && e.status === 404);
      assert.equal(lastEntry('/no/such/handshake').method, 'POST');
    });

    it('rejects with e2e_network when the server cannot be reached', async () => {
      const l = await freshLibrary();
      await assert.rejects(l.zeqE2EHandshake('http://127.0.0.1:1', { protocol: 1, secret: 'x' }),
        (e) => e.code === 'e2e_network' && e.cause !== undefined);
    });

    v1it('protocol 1 needs a secret', async () => {
      const l = await freshLibrary();
      await assert.rejects(l.zeqE2EHandshake(o(), { protocol: 1 }), TypeError);
    });
  });

  describe('request bodies', () => {
    const apps = { cgi: '/cgi-bin/echo.cgi', proxy: '/proxy/echo' };
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 11)) & 0xff;
    const bytes = Buffer.from([0, 1, 2, 254, 255, 0x7b, 0x22, 10, 13, 0]);

    const cases = [
      ['a string', () => 'héllo, wörld: a string body', 'text/plain;charset=UTF-8',
        Buffer.from('héllo, wörld: a string body')],
      ['a string with an explicit Content-Type', () => '{"hello":"world"}', 'application/json',
        Buffer.from('{"hello":"world"}'), { 'Content-Type': 'application/json' }],
      ['an empty string', () => '', 'text/plain;charset=UTF-8', Buffer.alloc(0)],
      ['URLSearchParams', () => new URLSearchParams({ a: '1', b: 'x y&z' }),
        'application/x-www-form-urlencoded;charset=UTF-8', Buffer.from('a=1&b=x+y%26z')],
      ['a Blob with a type', () => new Blob([bytes], { type: 'image/png' }), 'image/png', bytes],
      ['a Blob without a type', () => new Blob([bytes]), 'application/octet-stream', bytes],
      ['an ArrayBuffer', () => Uint8Array.from(bytes).buffer, 'application/octet-stream', bytes],
      ['a Uint8Array view with an offset', () => {
        const b = new Uint8Array(bytes.length + 6);
        b.set(bytes, 3);
        return b.subarray(3, 3 + bytes.length);
      }, 'application/octet-stream', bytes],
      ['an Int16Array', () => new Int16Array([1, -1, 256]), 'application/octet-stream',
        Buffer.from(new Int16Array([1, -1, 256]).buffer)],
      ['a DataView', () => {
        const b = Uint8Array.from(bytes);
        return new DataView(b.buffer, 2, 5);
      }, 'application/octet-stream', bytes.subarray(2, 7)],
      ['a ReadableStream', () => new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode('chunk one, '));
          c.enqueue(new TextEncoder().encode('chunk two'));
          c.close();
        },
      }), 'application/x-ndjson', Buffer.from('chunk one, chunk two'), { 'Content-Type': 'application/x-ndjson' }],
      ['3 MiB of bytes', () => big, 'application/octet-stream', big],
    ];

    for (const [app, path] of Object.entries(apps)) {
      for (const [name, make, type, plain, headers] of cases) {
        it(`seals ${name} for the ${app} app`, async () => {
          const res = await lib.zeqE2EFetch(o() + path, { method: 'POST', body: make(), headers });
          assert.equal(res.status, 200);
          assert.equal(res.headers.get('content-type'), 'application/json');
          assert.equal(res.headers.get('x-e2e-content-type'), null);
          const text = await res.text();
          const echo = JSON.parse(text);
          assert.equal(echo.contentType, type);
          assert.equal(echo.bodyLength, plain.length);
          assert.equal(echo.bodySha256, sha256(plain));
          assert.equal(Number(echo.contentLength), plain.length);
          const entry = lastEntry(path, 'POST');
          assert.equal(entry.requestHeaders.get('x-e2e-content-type'), type);
          const { request, response } = assertEnvelopes(entry);
          assert.deepEqual(request, plain);
          assert.equal(response.toString('utf8'), text);
          assertNoPlaintext(entry, plain);
        });
      }

      it(`seals FormData with its multipart boundary for the ${app} app`, async () => {
        // The proxied echo app escapes bytes above 127 as \u00XX, the CGI does not.
        const bodyOf = (echo) => (app === 'proxy' ? Buffer.from(echo.body, 'latin1').toString('utf8') : echo.body);
        const fd = new FormData();
        fd.append('field', 'value ü');
        fd.append('upload', new Blob(['file contents\n'], { type: 'text/plain' }), 'a.txt');
        const res = await lib.zeqE2EFetch(o() + path, { method: 'POST', body: fd });
        const echo = await res.json();
        const m = /^multipart\/form-data; ?boundary=(.+)$/.exec(echo.contentType);
        assert.ok(m, echo.contentType);
        const body = bodyOf(echo);
        assert.ok(body.includes(`--${m[1]}`), 'the boundary of the header is the body\'s');
        assert.match(body, /name="field"\r\n\r\nvalue ü\r\n/);
        assert.match(body, /name="upload"; filename="a.txt"\r\nContent-Type: text\/plain\r\n\r\nfile contents\n\r\n/);
        const entry = lastEntry(path, 'POST');
        assert.equal(entry.requestHeaders.get('x-e2e-content-type'), echo.contentType);
        const { request } = assertEnvelopes(entry);
        assert.equal(request.toString('utf8'), body);
      });
    }

    it('sends PUT with its method', async () => {
      const res = await lib.zeqE2EFetch(o() + '/proxy/echo', { method: 'put', body: 'put body' });
      const echo = await res.json();
      assert.equal(echo.method, 'PUT');
      assert.equal(echo.body, 'put body');
    });

    it('refuses a Content-Encoding on a request body', async () => {
      await assert.rejects(
        lib.zeqE2EFetch(o() + '/proxy/echo',
          { method: 'POST', body: 'x', headers: { 'Content-Encoding': 'gzip' } }),
        (e) => e.code === 'e2e_unsupported');
    });
  });

  describe('Request objects', () => {
    it('keeps method, headers and body of a Request', async () => {
      const req = new Request(o() + '/proxy/echo', {
        method: 'POST', body: '{"from":"request"}',
        headers: { 'Content-Type': 'application/json', 'X-Custom': 'kept' },
      });
      const res = await lib.zeqE2EFetch(req);
      const echo = await res.json();
      assert.equal(echo.method, 'POST');
      assert.equal(echo.body, '{"from":"request"}');
      assert.equal(echo.contentType, 'application/json');
      assert.equal(echo.headers['x-custom'], 'kept');
      assert.equal(echo.headers['x-e2e-session'], undefined, 'the module removes the session id');
      const { request } = assertEnvelopes(lastEntry('/proxy/echo', 'POST'));
      assert.equal(request.toString(), '{"from":"request"}');
    });

    it('seals a Request carrying FormData', async () => {
      const fd = new FormData();
      fd.append('k', 'v');
      const res = await lib.zeqE2EFetch(new Request(o() + '/cgi-bin/echo.cgi', { method: 'POST', body: fd }));
      const echo = await res.json();
      assert.match(echo.contentType, /^multipart\/form-data; ?boundary=/);
      assert.match(echo.body, /name="k"\r\n\r\nv\r\n/);
    });

    it('lets init override a Request, as fetch does', async () => {
      const req = new Request(o() + '/proxy/echo', { method: 'POST', body: 'original', headers: { 'X-A': '1' } });
      const res = await lib.zeqE2EFetch(req, { method: 'PUT', body: 'override', headers: { 'X-B': '2' } });
      const echo = await res.json();
      assert.equal(echo.method, 'PUT');
      assert.equal(echo.body, 'override');
      assert.equal(echo.headers['x-a'], undefined);
      assert.equal(echo.headers['x-b'], '2');
    });

    it('sends a GET Request without a body but with the session', async () => {
      const res = await lib.zeqE2EFetch(new Request(o() + '/files/data.json'));
      assert.deepEqual(await res.json(), JSON.parse(FILES['data.json']));
      const entry = lastEntry('/files/data.json', 'GET');
      assert.equal(entry.requestBody, null);
      assertEnvelopes(entry);
    });

    it('resolves relative URLs against the handshake origin outside a page', async () => {
      const res = await lib.zeqE2EFetch('/files/hello.txt');
      assert.equal(await res.text(), FILES['hello.txt'].toString());
    });

    it('follows redirects with every hop encrypted', async () => {
      const res = await lib.zeqE2EFetch(o() + '/t-cgi/redirect.cgi');
      assert.equal(res.status, 200);
      assert.equal(res.redirected, true);
      assert.equal(res.url, o() + '/files/hello.txt');
      assert.equal(await res.text(), FILES['hello.txt'].toString());
    });

    it('keeps redirect: "manual" and "error"', async () => {
      const res = await lib.zeqE2EFetch(o() + '/t-cgi/redirect.cgi', { redirect: 'manual' });
      assert.ok(res.status === 302 || res.type === 'opaqueredirect', `status ${res.status}`);
      if (res.status === 302) assert.equal(res.headers.get('location'), '/files/hello.txt');
      await assert.rejects(lib.zeqE2EFetch(o() + '/t-cgi/redirect.cgi', { redirect: 'error' }), TypeError);
    });

    it('passes credentials and cache through', async () => {
      const res = await lib.zeqE2EFetch(o() + '/files/hello.txt', { credentials: 'include', cache: 'no-store' });
      assert.equal(res.status, 200);
    });
  });

  describe('responses', () => {
    it('opens a static text file into a genuine Response', async () => {
      const res = await lib.zeqE2EFetch(o() + '/files/hello.txt');
      assert.ok(res instanceof Response);
      assert.equal(res.status, 200);
      assert.equal(res.statusText, 'OK');
      assert.equal(res.ok, true);
      assert.equal(res.url, o() + '/files/hello.txt');
      assert.equal(res.headers.get('content-type'), 'text/plain');
      assert.equal(res.headers.get('content-length'), String(FILES['hello.txt'].length));
      assert.equal(res.headers.get('x-e2e-content-type'), null);
      assert.equal(res.headers.get('cache-control'), 'no-store, private');
      const blob = await res.blob();
      assert.equal(blob.type, 'text/plain');
      assert.equal(await blob.text(), FILES['hello.txt'].toString());
      const entry = lastEntry('/files/hello.txt');
      assertEnvelopes(entry);
      assertNoPlaintext(entry, FILES['hello.txt']);
    });

    it('opens binary and empty files', async () => {
      const bin = await lib.zeqE2EFetch(o() + '/files/bytes.bin');
      assert.deepEqual(Buffer.from(await bin.arrayBuffer()), FILES['bytes.bin']);
      const empty = await lib.zeqE2EFetch(o() + '/files/empty.txt');
      assert.equal(await empty.text(), '');
      assert.equal(lastEntry('/files/empty.txt').responseBody.length, sealedSize(mode.version, 0));
    });

    it('opens a JSON file with non-ASCII text', async () => {
      const res = await lib.zeqE2EFetch(o() + '/files/data.json');
      assert.deepEqual(await res.json(), JSON.parse(FILES['data.json']));
    });

    it('opens Apache\'s own 404 page', async () => {
      const res = await lib.zeqE2EFetch(o() + '/files/no-such-file');
      assert.equal(res.status, 404);
      assert.equal(res.ok, false);
      assert.match(res.headers.get('content-type'), /^text\/html/);
      assert.match(await res.text(), /Not Found/);
      assertEnvelopes(lastEntry('/files/no-such-file'));
    });

    it('answers HEAD without a body and with the plaintext length', async () => {
      const res = await lib.zeqE2EFetch(o() + '/files/hello.txt', { method: 'HEAD' });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'text/plain');
      assert.equal(res.headers.get('content-length'), String(FILES['hello.txt'].length));
      assert.equal(await res.text(), '');
    });

    it('undoes X-E2E-Content-Encoding: gzip after opening', async () => {
      const res = await lib.zeqE2EFetch(o() + '/proxy/gzip');
      const entry = lastEntry('/proxy/gzip');
      assert.equal(entry.responseHeaders.get('x-e2e-content-encoding'), 'gzip');
      assert.equal(entry.responseHeaders.get('content-encoding'), null);
      assert.equal(res.headers.get('x-e2e-content-encoding'), null);
      const j = await res.json();
      assert.equal(j.compressed, true);
      assert.equal(j.text, 'zeq '.repeat(64));
    });

    it('passes a 204 through without a body', async () => {
      const res = await lib.zeqE2EFetch(o() + '/proxy/status/204');
      assert.equal(res.status, 204);
      assert.equal(await res.text(), '');
    });

    it('opens bytes from the proxied app identical to the plaintext ones', async () => {
      const plain = Buffer.from(await (await wire.tap(o() + '/proxy/bytes?n=100000')).arrayBuffer());
      assert.equal(plain.length, 100000);
      const res = await lib.zeqE2EFetch(o() + '/proxy/bytes?n=100000');
      assert.equal(res.headers.get('content-type'), 'application/octet-stream');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), plain);
    });
  });

  describe('abort', () => {
    it('rejects at once with an aborted signal and sends nothing', async () => {
      const before = wire.log.length;
      const c = new AbortController();
      c.abort();
      await assert.rejects(lib.zeqE2EFetch(o() + '/proxy/echo', { method: 'POST', body: 'x', signal: c.signal }),
        (e) => e.name === 'AbortError');
      assert.equal(wire.log.length, before);
    });

    it('aborts a request in flight', async () => {
      const c = new AbortController();
      const t0 = Date.now();
      setTimeout(() => c.abort(), 300);
      await assert.rejects(lib.zeqE2EFetch(o() + '/t-cgi/slow.cgi?3', { method: 'POST', body: 'x', signal: c.signal }),
        (e) => e.name === 'AbortError');
      assert.ok(Date.now() - t0 < 2500, 'rejected before the answer came');
    });

    it('aborts through the signal of a Request object', async () => {
      const c = new AbortController();
      setTimeout(() => c.abort(), 300);
      const req = new Request(o() + '/t-cgi/slow.cgi?3', { signal: c.signal });
      await assert.rejects(lib.zeqE2EFetch(req), (e) => e.name === 'AbortError');
    });
  });

  describe('cross-origin requests', () => {
    it('go to fetch untouched', async () => {
      const res = await lib.zeqE2EFetch(other() + '/cgi-bin/echo.cgi', {
        method: 'POST', body: 'to another origin', headers: { Accept: 'application/json' },
      });
      assert.equal(res.status, 200);
      const echo = await res.json();
      assert.equal(echo.body, 'to another origin');
      assert.equal(echo.contentType, 'text/plain;charset=UTF-8');
      const entry = lastEntry('/cgi-bin/echo.cgi', 'POST');
      assert.equal(new URL(entry.url).origin, other());
      assert.equal(entry.requestHeaders.get('x-e2e-session'), null);
      assert.equal(entry.requestHeaders.get('accept'), 'application/json');
      assert.equal(entry.requestHeaders.get('content-type'), 'text/plain;charset=UTF-8');
      assert.equal(entry.requestBody.toString(), 'to another origin');
    });

    it('count the port: the same host on another port is another origin', async () => {
      const res = await lib.zeqE2EFetch(server.urls.short + '/files/hello.txt');
      assert.equal(res.headers.get('content-type'), 'text/plain');
      assert.equal(lastEntry('/files/hello.txt').requestHeaders.get('x-e2e-session'), null);
    });
  });

  describe('wrap and unwrap', () => {
    it('replaces globalThis.fetch, twice harmlessly, and restores it', async () => {
      const tap = globalThis.fetch;
      assert.equal(tap, wire.tap);
      lib.zeqE2EWrap();
      lib.zeqE2EWrap();
      try {
        assert.equal(globalThis.fetch, lib.zeqE2EFetch);
        const res = await fetch(o() + '/cgi-bin/echo.cgi', { method: 'POST', body: '{"wrapped":true}', headers: { 'Content-Type': 'application/json' } });
        const echo = await res.json();
        assert.equal(echo.body, '{"wrapped":true}');
        const { request } = assertEnvelopes(lastEntry('/cgi-bin/echo.cgi', 'POST'));
        assert.equal(request.toString(), '{"wrapped":true}');
      } finally {
        lib.zeqE2EUnwrap();
      }
      assert.equal(globalThis.fetch, tap);
      lib.zeqE2EUnwrap();
      assert.equal(globalThis.fetch, tap);
      // And again.
      lib.zeqE2EWrap();
      assert.equal(globalThis.fetch, lib.zeqE2EFetch);
      lib.zeqE2EUnwrap();
      assert.equal(globalThis.fetch, tap);
    });
  });

  describe('fail closed', () => {
    it('rejects a plaintext 2xx answer to an encrypted POST (ZeqE2E Off there)', async () => {
      await assert.rejects(
        lib.zeqE2EFetch(o() + '/off/cgi-bin/echo.cgi', { method: 'POST', body: 'secret stuff' }),
        (e) => e instanceof lib.ZeqE2EError && e.code === 'e2e_downgrade' && e.status === 200);
      // What the app would have got: the CGI saw the envelope, not the plaintext.
      const entry = lastEntry('/off/cgi-bin/echo.cgi', 'POST');
      const echo = JSON.parse(entry.responseBody.toString());
      assert.equal(echo.contentType, 'application/x-zeq-e2e');
      assert.equal(echo.bodyLength, sealedSize(mode.version, 'secret stuff'.length));
    });

    it('rejects plaintext answers to encrypted GETs', async () => {
      await assert.rejects(lib.zeqE2EFetch(o() + '/off/files/hello.txt'), (e) => e.code === 'e2e_downgrade');
      await assert.rejects(lib.zeqE2EFetch(o() + '/off/proxy/echo'), (e) => e.code === 'e2e_downgrade');
      await assert.rejects(lib.zeqE2EFetch(o() + '/off/files/no-such-file'),
        (e) => e.code === 'e2e_downgrade' && e.status === 404);
    });

    it('rejects an envelope that does not verify', async () => {
      const tap = globalThis.fetch;
      globalThis.fetch = async (input, init) => {
        const res = await tap(input, init);
        if (res.headers.get('content-type') !== 'application/x-zeq-e2e') return res;
        const body = new Uint8Array(await res.arrayBuffer());
        body[body.length - 1] ^= 1;
        return new Response(body, { status: res.status, headers: res.headers });
      };
      try {
        await assert.rejects(lib.zeqE2EFetch(o() + '/files/hello.txt'), (e) => e.code === 'e2e_bad_envelope');
      } finally {
        globalThis.fetch = tap;
      }
    });

    it('rejects an envelope sealed under another session', async () => {
      const other = await freshLibrary();
      await other.zeqE2EHandshake(o(), mode.options());
      await (await other.zeqE2EFetch(o() + '/files/hello.txt')).text();
      const foreign = lastEntry('/files/hello.txt');
      const tap = globalThis.fetch;
      // Answer with a genuine envelope of the other session.
      globalThis.fetch = async () => new Response(foreign.responseBody, { status: 200, headers: foreign.responseHeaders });
      try {
        await assert.rejects(lib.zeqE2EFetch(o() + '/files/hello.txt'), (e) => e.code === 'e2e_bad_envelope');
      } finally {
        globalThis.fetch = tap;
      }
    });
  });

  describe('module errors', () => {
    it('resolve as a Response with the status and the code (413)', async () => {
      const res = await lib.zeqE2EFetch(o() + '/limits/cgi-bin/echo.cgi', { method: 'POST', body: 'x'.repeat(2000) });
      assert.equal(res.status, 413);
      assert.equal(res.zeqE2EError, 'e2e_body_too_large');
      assert.equal(res.headers.get('content-type'), 'application/json');
      assert.equal((await res.json()).error, 'e2e_body_too_large');
    });

    it('resolve as a Response with the status and the code (500 e2e_encrypt_failed)', async () => {
      // An nph- script would write its plaintext straight to the client.
      const res = await lib.zeqE2EFetch(o() + '/t-cgi/nph-x.cgi');
      assert.equal(res.status, 500);
      assert.equal(res.zeqE2EError, 'e2e_encrypt_failed');
      // never the plaintext
      const body = await res.text();
      assert.equal(body.indexOf('NPH-PLAINTEXT'), -1);
    });

    if (mode.version === 1) {
      it('v1: an answer over ZeqE2EMaxResponseBody is 500 e2e_encrypt_failed, never its plaintext', async () => {
        const res = await lib.zeqE2EFetch(o() + '/limits/files/bytes.bin');
        assert.equal(res.status, 500);
        assert.equal(res.zeqE2EError, 'e2e_encrypt_failed');
        // never the plaintext
        const body = await res.text();
        assert.ok(body.length < 1000);
      });
    } else {
      it('ZeqE2EMaxResponseBody does not limit a v2 answer: it streams whole', async () => {
        const res = await lib.zeqE2EFetch(o() + '/limits/files/bytes.bin');
        assert.equal(res.status, 200);
        assert.equal(res.zeqE2EError, undefined);
        assert.equal(res.headers.get('content-length'), String(FILES['bytes.bin'].length));
        assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(FILES['bytes.bin']));
        assertEnvelopes(lastEntry('/limits/files/bytes.bin'));
      });
    }

    it('ZeqE2ERequire On: plain fetch gets 403, zeqE2EFetch gets through', async () => {
      const plain = await wire.tap(o() + '/required/cgi-bin/echo.cgi', { method: 'POST', body: 'x' });
      assert.equal(plain.status, 403);
      assert.equal((await plain.json()).error, 'e2e_required');
      const res = await lib.zeqE2EFetch(o() + '/required/cgi-bin/echo.cgi', { method: 'POST', body: 'required' });
      assert.equal(res.status, 200);
      assert.equal((await res.json()).body, 'required');
      const get = await lib.zeqE2EFetch(o() + '/required/files/hello.txt');
      assert.equal(await get.text(), FILES['hello.txt'].toString());
    });
  });

  describe('the script the module serves', () => {
    it('is client/zeq-e2e-client.js, as text/javascript with an ETag and 304s', async () => {
      const url = o() + '/static/zeq-e2e-client.js';
      const res = await wire.tap(url);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type'), /^text\/javascript\b/);
      const etag = res.headers.get('etag');
      assert.ok(etag, 'an ETag');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), readFileSync(CLIENT_JS));
      const again = await wire.tap(url, { headers: { 'If-None-Match': etag } });
      assert.equal(again.status, 304);
      assert.equal(await again.text(), '');
    });

    it('is importable as an ES module with the documented exports', async () => {
      const src = await (await wire.tap(o() + '/static/zeq-e2e-client.js')).text();
      const mod = await import(`data:text/javascript;base64,${Buffer.from(src).toString('base64')}`);
      for (const name of ['zeqE2EHandshake', 'zeqE2EFetch', 'zeqE2EWrap', 'zeqE2EUnwrap', 'zeqE2ESession']) {
        assert.equal(typeof mod[name], 'function', name);
      }
    });
  });
}
