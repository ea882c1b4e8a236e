// Protocol v2 on the wire, against a real Apache on a host without any
// secret: sequence numbers (from 0, one more per request, distinct across
// concurrent requests and retries), request-targets as Apache read them,
// seals of bodiless requests and answers (HEAD, 204, 304), answers bound to
// their request, status, type and encoding (tampered ones refused), the
// replay retry and redirects. node:crypto judges (client/test/wire.mjs);
// Apache's own log says which request line came with which number.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, FILES } from './server.mjs';
import { installWireTap, checkV2Exchange, isHandshake, targetOf, assertRequestLine, until } from './wire.mjs';
import * as v2 from './v2.mjs';

let instances = 0;
const freshLibrary = () => import(`../zeq-e2e-client.js?sealing-instance=${++instances}`);

let server;
let wire;
let origin;
/** fetch without the tap: node:crypto's own requests stay off the library's wire log. */
let netFetch;

before(async () => {
  server = await startServer('sealing');
  netFetch = globalThis.fetch;
  wire = installWireTap();
  origin = server.urls.nosecret;
});

after(async () => {
  wire && wire.restore();
  if (server) {
    assert.deepEqual(await server.stopChecked([
      // the HEAD of an nph- script, refused on purpose
      /ZEQ40013: refusing nph- CGI script \S*\/t-cgi\/nph-x\.cgi /,
    ]), [], 'unexpected error-log lines');
  }
});

/** A library with a fresh v2 session; resolves to { lib, session (node:crypto's keys), from }. */
async function fresh() {
  const lib = await freshLibrary();
  const from = wire.log.length;
  const info = await lib.zeqE2EHandshake(origin);
  const session = wire.sessions().get(info.sessionId);
  assert.ok(session, 'the handshake was on the wire');
  return { lib, session, from: from + 1 };
}

const entriesSince = (from) => wire.log.slice(from).filter((e) => !isHandshake(e));

async function withMiddle(edit, f) {
  const tap = globalThis.fetch;
  globalThis.fetch = (input, init) => edit(new Request(input, init), (r) => tap(r));
  try {
    return await f();
  } finally {
    globalThis.fetch = tap;
  }
}

/** A copy of a response with headers (and optionally status, body) changed. */
async function edited(res, { status = res.status, headers = {}, body } = {}) {
  const h = new Headers(res.headers);
  for (const [k, v] of Object.entries(headers)) {
    if (v === null) h.delete(k);
    else h.set(k, v);
  }
  const b = body !== undefined ? body : ([204, 304].includes(res.status) ? null : await res.arrayBuffer());
  return new Response([204, 304].includes(status) ? null : b, { status, statusText: res.statusText, headers: h });
}

describe('sequence numbers', () => {
  it('start at 0 and count every request, with or without a body, in the order sent', async () => {
    const { lib, session, from } = await fresh();
    const calls = [
      ['GET', '/files/hello.txt'], ['POST', '/cgi-bin/echo.cgi', 'one'], ['HEAD', '/files/hello.txt'],
      ['PUT', '/proxy/echo', 'two'], ['DELETE', '/proxy/echo'], ['OPTIONS', '/files/hello.txt'],
      ['POST', '/cgi-bin/echo.cgi'], ['GET', '/proxy/status/204'],
    ];
    for (const [method, path, body] of calls) {
      const res = await lib.zeqE2EFetch(origin + path, { method, body });
      await res.arrayBuffer();
    }
    const seen = entriesSince(from);
    assert.equal(seen.length, calls.length);
    for (const [i, e] of seen.entries()) {
      const { seq, request } = checkV2Exchange(e, session);
      assert.equal(seq, i, `request ${i} (${e.method} ${targetOf(e.url)}) has number ${i}`);
      assert.equal(e.method, calls[i][0]);
      if (calls[i][2] !== undefined) assert.equal(request.toString(), calls[i][2]);
      else assert.equal(e.requestBody, null, `${e.method} without a body sends none, only its seal`);
      await assertRequestLine(server, session.sessionId, seq, e.method, targetOf(e.url));
    }
  });

  it('are distinct across concurrent requests, and all of them are accepted', async () => {
    const { lib, session, from } = await fresh();
    const n = 40;
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => (i % 2
      ? lib.zeqE2EFetch(`${origin}/cgi-bin/echo.cgi?i=${i}`, { method: 'POST', body: `body ${i}` }).then((r) => r.json())
      : lib.zeqE2EFetch(`${origin}/files/hello.txt?i=${i}`).then((r) => r.text()))));
    answers.forEach((a, i) => assert.deepEqual(a, i % 2 ? { ...a, body: `body ${i}` } : FILES['hello.txt'].toString()));
    const seqs = entriesSince(from).map((e) => {
      assert.equal(e.status, 200, `${e.method} ${e.url}`);
      return checkV2Exchange(e, session).seq;
    });
    assert.deepEqual([...seqs].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i), 'each of 0..39 once');
  });

  it('start at 0 again after a new handshake', async () => {
    const { lib } = await fresh();
    await (await lib.zeqE2EFetch(origin + '/files/hello.txt')).text();
    const from = wire.log.length;
    const info = await lib.zeqE2EHandshake(origin);
    await (await lib.zeqE2EFetch(origin + '/files/hello.txt')).text();
    const [e] = entriesSince(from);
    assert.equal(checkV2Exchange(e, wire.sessions().get(info.sessionId)).seq, 0);
  });

  it('a number the server has seen (400 e2e_replayed) is retried once with the next one', async () => {
    const { lib, session, from } = await fresh();
    await (await lib.zeqE2EFetch(origin + '/files/hello.txt')).text();
    // node:crypto sends number 1 of the library's session first.
    const own = { ...session, seq: 1, origin };
    const mine = await v2.nodeRequest(own, 'GET', '/files/data.json', { fetchImpl: netFetch });
    assert.equal(mine.status, 200);
    const res = await lib.zeqE2EFetch(origin + '/cgi-bin/echo.cgi', { method: 'POST', body: 'after a replay' });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).body, 'after a replay');
    const seen = entriesSince(from);
    assert.deepEqual(seen.map((e) => [e.requestHeaders.get('x-e2e-seq'), e.status]), [['0', 200], ['1', 400], ['2', 200]]);
    assert.equal(checkV2Exchange(seen[1], session).moduleError.error, 'e2e_replayed');
    assert.equal(checkV2Exchange(seen[2], session).request.toString(), 'after a replay', 'sealed anew for number 2');
  });

  it('retries a replay once only: the second 400 e2e_replayed is the answer', async () => {
    const { lib, from } = await fresh();
    const res = await withMiddle(async (req) => {
      void req;
      return new Response('{"error":"e2e_replayed","message":"seen"}', { status: 400, headers: { 'Content-Type': 'application/json' } });
    }, () => lib.zeqE2EFetch(origin + '/files/hello.txt'));
    assert.equal(res.status, 400);
    assert.equal(res.zeqE2EError, 'e2e_replayed');
    assert.equal(wire.log.length, from, 'the forged answers never reached the network');
  });
});

describe('request-targets', () => {
  it('are sealed as fetch sends them and as Apache reads them', async () => {
    const { lib, session, from } = await fresh();
    const urls = [
      "/cgi-bin/echo.cgi/a b/c'd/%7e~/é?q='x y'&r=%zz^`{}|&s=é&t=a+b#fragment",
      '/files/hello.txt?',
      '/files/./sub/../hello.txt?#x',
      '/files/hello.txt?a=%41&&b',
      'files/hello.txt',
    ];
    for (const u of urls) {
      const res = await lib.zeqE2EFetch(u.startsWith('/') ? origin + u : u);
      assert.ok(res.status === 200 || res.status === 404, `${u}: ${res.status}`);
      await res.arrayBuffer();
    }
    const seen = entriesSince(from);
    assert.equal(seen.length, urls.length);
    for (const e of seen) {
      const { seq } = checkV2Exchange(e, session);
      assert.doesNotMatch(e.url, /#|\?$/, 'no fragment, no lone ? on the wire');
      const line = await assertRequestLine(server, session.sessionId, seq, 'GET', targetOf(e.url));
      assert.notEqual(line.status, 400, `Apache verified ${line.target}`);
    }
    assert.equal(new URL(seen[1].url).pathname + new URL(seen[1].url).search, '/files/hello.txt');
    assert.equal(targetOf(seen[4].url), '/files/hello.txt', 'relative to the origin outside a page');
  });

  it('methods are sealed as fetch sends them: the six standard ones uppercased, others as given', async () => {
    const { lib, session, from } = await fresh();
    for (const method of ['post', 'Put', 'PATCH', 'pAtCh']) {
      await (await lib.zeqE2EFetch(origin + '/proxy/echo', { method, body: 'x' })).arrayBuffer();
    }
    const seen = entriesSince(from);
    assert.deepEqual(seen.map((e) => e.method), ['POST', 'PUT', 'PATCH', 'pAtCh']);
    for (const e of seen) {
      const { seq } = checkV2Exchange(e, session);
      await assertRequestLine(server, session.sessionId, seq, e.method, '/proxy/echo');
    }
  });
});

describe('answers without a body', () => {
  it('HEAD, 204 and 304 resolve after their X-E2E-Seal verified', async () => {
    const { lib, session, from } = await fresh();
    const head = await lib.zeqE2EFetch(origin + '/files/hello.txt', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-type'), 'text/plain');
    assert.equal(head.headers.get('content-length'), String(FILES['hello.txt'].length), 'the plaintext\'s length');
    assert.equal(head.headers.get('x-e2e-seal'), null, 'the seal is not shown to the page');
    const missing = await lib.zeqE2EFetch(origin + '/files/no-such-file', { method: 'HEAD' });
    assert.equal(missing.status, 404);
    const none = await lib.zeqE2EFetch(origin + '/proxy/status/204');
    assert.equal(none.status, 204);
    const not = await lib.zeqE2EFetch(origin + '/proxy/status/304');
    assert.equal(not.status, 304);
    // Not modified since now (the file is older): 304.
    const since = new Date().toUTCString();
    const cond = await lib.zeqE2EFetch(origin + '/files/hello.txt', { headers: { 'If-Modified-Since': since } });
    assert.equal(cond.status, 304);
    const seen = entriesSince(from);
    assert.deepEqual(seen.map((e) => e.status), [200, 404, 204, 304, 304]);
    for (const e of seen) checkV2Exchange(e, session);
    assert.equal(seen[1].responseHeaders.get('x-e2e-content-type'), 'text/html; charset=iso-8859-1',
      'the seal of the 404 page is bound to its type');
  });

  const tamper = {
    'a flipped bit': (res) => {
      const s = v2.fromB64url(res.headers.get('x-e2e-seal'));
      s[s.length - 1] ^= 1;
      return { headers: { 'x-e2e-seal': v2.b64url(s) } };
    },
    'no seal': () => ({ headers: { 'x-e2e-seal': null } }),
    'a seal that is not base64url': () => ({ headers: { 'x-e2e-seal': 'not+base64/url=' } }),
    'another status': (res) => ({ status: res.status === 204 ? 205 : 201 }),
    'another X-E2E-Content-Type': () => ({ headers: { 'x-e2e-content-type': 'text/html' } }),
    'an X-E2E-Content-Encoding added': () => ({ headers: { 'x-e2e-content-encoding': 'identity' } }),
  };
  for (const [name, change] of Object.entries(tamper)) {
    it(`refuses the answer with ${name} (HEAD and 204)`, async () => {
      const { lib } = await fresh();
      for (const [path, method] of [['/files/hello.txt', 'HEAD'], ['/proxy/status/204', 'GET']]) {
        await assert.rejects(withMiddle(async (req, send) => {
          const res = await send(req);
          return edited(res, change(res));
        }, () => lib.zeqE2EFetch(origin + path, { method })), (e) => {
          assert.equal(e.code, 'e2e_bad_envelope', `${method} ${path}: ${e.message}`);
          return true;
        });
      }
    });
  }

  it('refuses the seal of another answer (of the same session)', async () => {
    const { lib } = await fresh();
    let earlier = null;
    await withMiddle(async (req, send) => {
      const res = await send(req);
      earlier = res.headers.get('x-e2e-seal');
      return res;
    }, () => lib.zeqE2EFetch(origin + '/proxy/status/204'));
    assert.ok(earlier);
    await assert.rejects(withMiddle(async (req, send) => edited(await send(req), { headers: { 'x-e2e-seal': earlier } }),
      () => lib.zeqE2EFetch(origin + '/proxy/status/204')), (e) => e.code === 'e2e_bad_envelope');
  });

  it('a module error to a HEAD has no body and no seal: it resolves as it came', async () => {
    const { lib } = await fresh();
    const res = await lib.zeqE2EFetch(origin + '/t-cgi/nph-x.cgi', { method: 'HEAD' });
    assert.equal(res.status, 500);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.equal(await res.text(), '');
  });
});

describe('sealed answers', () => {
  /** The answer of the middle, given the real one and the earlier one of the same session. */
  async function refusedWith(edit, { path = '/cgi-bin/echo.cgi', init = { method: 'POST', body: 'x' }, why = /did not verify/ } = {}) {
    const { lib } = await fresh();
    let previous = null;
    await withMiddle(async (req, send) => {
      const res = await send(req);
      previous = { status: res.status, headers: new Headers(res.headers), body: Buffer.from(await res.clone().arrayBuffer()) };
      return res;
    }, async () => (await lib.zeqE2EFetch(origin + path, init)).arrayBuffer());
    await assert.rejects(withMiddle(async (req, send) => {
      const body = req.body ? Buffer.from(await req.clone().arrayBuffer()) : null;
      return edit(await send(req), previous, body);
    }, () => lib.zeqE2EFetch(origin + path, init)), (e) => {
      assert.equal(e.code, 'e2e_bad_envelope', e.message);
      assert.match(e.message, why);
      return true;
    });
  }

  it('refuses a flipped bit in the body', () => refusedWith(async (res) => {
    const b = Buffer.from(await res.arrayBuffer());
    b[20] ^= 0x10;
    return edited(res, { body: b });
  }));
  it('refuses the answer of an earlier request of the session', () => refusedWith(async (res, previous) => edited(res, { body: previous.body })));
  it('refuses another status', () => refusedWith(async (res) => edited(res, { status: 202 })));
  it('refuses another X-E2E-Content-Type', () => refusedWith(async (res) => edited(res, { headers: { 'x-e2e-content-type': 'text/html' } })));
  it('refuses an X-E2E-Content-Encoding added', () => refusedWith(async (res) => edited(res, { headers: { 'x-e2e-content-encoding': 'gzip' } })));
  it('refuses the request\'s own sealed body reflected as the answer', () => refusedWith(async (res, previous, body) => edited(res, { body })));
  it('a body cut after its first record: the answer resolves, its body rejects with e2e_truncated', async () => {
    const { lib } = await fresh();
    const res = await withMiddle(async (req, send) => {
      const r = await send(req);
      const b = Buffer.from(await r.arrayBuffer());
      return edited(r, { body: b.subarray(0, 13 + 4 + 16384 + 16), headers: { 'content-length': null } });
    }, () => lib.zeqE2EFetch(origin + '/files/bytes.bin'));
    assert.equal(res.status, 200, 'the first record verified: status and type are authenticated');
    await assert.rejects(res.arrayBuffer(), (e) => {
      assert.equal(e.code, 'e2e_truncated', e.message);
      assert.match(e.message, /the answer ends before its final record/);
      return true;
    });
  });
  it('refuses a v1 envelope where a sealed message belongs', () => refusedWith(async (res) => {
    const b = Buffer.from(await res.arrayBuffer());
    return edited(res, { body: b.subarray(1) });
  }, { why: /starts with 0x[0-9a-f]{2}, not 0x02/ }));

  it('refuses an unsealed 200 (e2e_downgrade), resolves a module error', async () => {
    const { lib } = await fresh();
    await assert.rejects(withMiddle(async () => new Response('{"plain":true}', { headers: { 'Content-Type': 'application/json' } }),
      () => lib.zeqE2EFetch(origin + '/files/hello.txt')), (e) => e.code === 'e2e_downgrade' && e.status === 200);
    const res = await lib.zeqE2EFetch(origin + '/limits/cgi-bin/echo.cgi', { method: 'POST', body: 'x'.repeat(2000) });
    assert.equal(res.status, 413);
    assert.equal(res.zeqE2EError, 'e2e_body_too_large');
  });
});

describe('redirects', () => {
  it('a redirected GET is sent again, with a new number, to where it was redirected', async () => {
    const { lib, session, from } = await fresh();
    const res = await lib.zeqE2EFetch(origin + '/t-cgi/redirect.cgi');
    assert.equal(res.status, 200);
    assert.equal(res.redirected, true);
    assert.equal(res.url, origin + '/files/hello.txt');
    assert.equal(await res.text(), FILES['hello.txt'].toString());
    const seen = entriesSince(from);
    assert.deepEqual(seen.map((e) => [targetOf(e.url), e.requestHeaders.get('x-e2e-seq')]),
      [['/t-cgi/redirect.cgi', '0'], ['/files/hello.txt', '1']]);
    checkV2Exchange(seen[1], session);
    // What Apache saw: the 302, the browser's re-sent number 0 refused at the
    // new target (it did not run), number 1 there.
    await assertRequestLine(server, session.sessionId, 1, 'GET', '/files/hello.txt');
    const lines = await until(`Apache's three log lines of ${session.sessionId}`, () => {
      const mine = server.requestLines().filter((l) => l.session === session.sessionId);
      return mine.length >= 3 ? mine : null;
    });
    // Sorted: Apache logs a request when it ends, and the CGI request's
    // line can come after the browser's next request has been answered.
    const sorted = (rows) => rows.map((r) => JSON.stringify(r)).sort();
    assert.deepEqual(sorted(lines.map((l) => [l.seq, l.status, l.target])),
      sorted([['0', 302, '/t-cgi/redirect.cgi'], ['0', 400, '/files/hello.txt'], ['1', 200, '/files/hello.txt']]));
  });

  it('a redirected POST rejects with e2e_redirect: the application ran, the library does not guess the method', async () => {
    const { lib } = await fresh();
    await assert.rejects(lib.zeqE2EFetch(origin + '/t-cgi/redirect.cgi', { method: 'POST', body: 'once' }), (e) => {
      assert.equal(e.code, 'e2e_redirect');
      assert.match(e.message, /redirected to .*\/files\/hello\.txt/);
      return true;
    });
  });

  it('redirect: "manual" resolves the sealed 302 itself', async () => {
    const { lib, session, from } = await fresh();
    const res = await lib.zeqE2EFetch(origin + '/t-cgi/redirect.cgi', { redirect: 'manual' });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('location'), '/files/hello.txt');
    assert.equal(await res.text(), 'moved\n');
    assert.equal(checkV2Exchange(entriesSince(from)[0], session).response.toString(), 'moved\n');
  });
});
