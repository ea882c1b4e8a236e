// The command-line client, zeq-e2e (client/bin/zeq-e2e.mjs), run as a
// subprocess against a real Apache with the module (server.mjs): every
// command and option and the exit statuses of client/README.md. What the
// application received is what the echo applications report; what went over
// the wire is what --save-wire wrote, judged with node:crypto (v2.mjs) from
// the keys a preload records (cli-keys.mjs); what the server saw is its log of
// request lines. An attacker's proxy in this process changes answers on the
// way (a flipped bit, a plaintext answer, an unsigned handshake answer).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, FILES, freePort } from './server.mjs';
import { runCli, shown, KEY_CAPTURE } from './cli-run.mjs';
import * as v2 from './v2.mjs';

const PACKAGE = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const sha256 = (b) => createHash('sha256').update(b).digest('hex');

let server;
let tmp;
let n = 0;
const scratch = (name) => join(tmp, `${++n}-${name}`);
const file = (name, data) => { const p = scratch(name); writeFileSync(p, data); return p; };
const url = (host, path) => server.urls[host] + path;

before(async () => {
  server = await startServer('cli');
  tmp = mkdtempSync(join(tmpdir(), 'zeq-e2e-cli-test-'));
});

after(async () => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  // Expected: the slow script the --max-time test leaves behind, which
  // mod_cgid ends after its Timeout when the suite runs that long.
  if (server) {
    assert.deepEqual(await server.stopChecked([/Script timed out before returning headers: slow\.cgi/]), [],
      'unexpected error-log lines');
  }
});

/** Runs zeq-e2e; asserts its exit status; returns the result. */
async function cli(args, status, options = {}) {
  const r = await runCli(args, options);
  assert.equal(r.status, status, shown(args, r));
  return r;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The request lines the server logged since `from` (server.requestLines()),
 * once there are `count` of them (Apache logs a request after its answer
 * went out) and a moment passed for any more.
 */
/**
 * Where the next test's lines begin: the number of lines once none has been
 * added for half a second (Apache logs a request when it ends, so a line of
 * an earlier test can still be on its way).
 */
async function mark() {
  let n = server.requestLines().length;
  for (let quiet = 0; quiet < 500; quiet += 50) {
    await sleep(50);
    const now = server.requestLines().length;
    if (now !== n) { n = now; quiet = -50; }
  }
  return n;
}

async function linesSince(from, count = 0) {
  for (let i = 0; i < 200 && server.requestLines().length - from < count; i++) await sleep(50);
  await sleep(200);
  return server.requestLines().slice(from);
}

/** The files --save-wire wrote: { 'N.name': Buffer }. */
function saved(dir) {
  return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
}

/** Header lines as --save-wire writes them, as a Headers object. */
function headersOf(text) {
  const h = new Headers();
  for (const line of text.toString('utf8').split('\n').filter(Boolean)) {
    const i = line.indexOf(':');
    if (i > 0) h.append(line.slice(0, i), line.slice(i + 1).trim());
  }
  return h;
}

// ---------------------------------------------------------------------------

describe('the command line', () => {
  it('--help lists every command, option and exit status; --version is the package\'s', async () => {
    const help = await cli(['--help'], 0);
    for (const word of ['get URL', 'post URL', 'ws URL', 'check URL', '--protocol', '--psk-file', '--server-key',
      '--header', '--data', '--type', '--include', '--verbose', '--save-wire', '--json', '--count', '--wait',
      '--max-time', 'Exit status', '  0  ', '  1  ', '  2  ', '  3  ', '  4  ']) {
      assert.ok(help.text.includes(word), `--help mentions ${word}`);
    }
    const version = await cli(['-V'], 0);
    assert.equal(version.text, `zeq-e2e ${PACKAGE.version}\n`);
  });

  const usage = [
    [[], /no command/],
    [['fetch', 'http://127.0.0.1/'], /unknown command "fetch"/],
    [['get'], /get needs a URL/],
    [['get', 'not a url'], /is not a URL/],
    [['get', 'ftp://127.0.0.1/'], /takes http: or https: URLs/],
    [['get', 'http://127.0.0.1/', '--nope'], /unknown option --nope/],
    [['get', 'http://127.0.0.1/', '--protocol', '3'], /--protocol is 1 or 2/],
    [['get', 'http://127.0.0.1/', '--protocol', '1'], /--protocol 1 needs --psk-file/],
    [['get', 'http://127.0.0.1/', '--data', 'x'], /--data is not an option of get/],
    [['check', 'http://127.0.0.1/', '-i'], /--include is not an option of check/],
    [['ws', 'http://127.0.0.1/', '--count', '0'], /--count takes a number/],
    [['get', 'http://127.0.0.1/', '-H', 'no colon'], /-H takes 'Name: value'/],
    [['get', 'http://127.0.0.1/', '--max-time'], /--max-time needs a value/],
    [['get', 'http://127.0.0.1/', 'extra'], /unexpected argument "extra"/],
  ];
  for (const [args, message] of usage) {
    it(`exit status 1: zeq-e2e ${args.join(' ') || '(nothing)'}`, async () => {
      const r = await cli(args, 1);
      assert.match(r.stderr, message);
      assert.equal(r.stdout.length, 0);
    });
  }

  it('exit status 1 for files it cannot use, before anything is sent', async () => {
    const from = await mark();
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsa = file('rsa.pem', privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const cases = [
      [['get', url('main', '/files/hello.txt'), '--psk-file', scratch('missing')], /--psk-file .*: no such file/],
      [['get', url('main', '/files/hello.txt'), '--psk-file', file('empty', '\n')], /is empty/],
      [['get', url('signed', '/files/hello.txt'), '--server-key', file('junk.pem', 'not a key\n')], /is not a key/],
      [['get', url('signed', '/files/hello.txt'), '--server-key', rsa], /is not an EC P-256 key/],
      [['post', url('main', '/cgi-bin/echo.cgi'), '--data', `@${scratch('missing')}`], /--data .*: no such file/],
    ];
    for (const [args, message] of cases) assert.match((await cli(args, 1)).stderr, message);
    assert.deepEqual(await linesSince(from), [], 'no request reached the server');
  });
});

describe('get', () => {
  it('a static file, sealed both ways: the file on stdout, exit status 0', async () => {
    const from = await mark();
    const r = await cli(['get', url('nosecret', '/files/hello.txt')], 0);
    assert.equal(r.text, FILES['hello.txt'].toString());
    assert.equal(r.stderr, '');
    const lines = await linesSince(from, 2);
    assert.deepEqual(lines.map((l) => `${l.method} ${l.target} ${l.status} ${l.seq}`),
      ['POST /api/e2e/handshake 200 -', 'GET /files/hello.txt 200 0'], 'a handshake, then the GET with X-E2E-Seq 0');
    assert.match(lines[1].session, /^[A-Za-z0-9_-]+$/, 'the GET carried X-E2E-Session');
  });

  it('300,000 bytes in 19 records: the same bytes on stdout', async () => {
    const r = await cli(['get', url('nosecret', '/files/bytes.bin')], 0);
    assert.equal(r.stdout.length, FILES['bytes.bin'].length);
    assert.ok(r.stdout.equals(FILES['bytes.bin']), 'stdout is the file');
  });

  it('-i: the status and the headers as the application sent them, then the body', async () => {
    const r = await cli(['get', '-i', url('nosecret', '/files/hello.txt')], 0);
    const [head, body] = [r.text.slice(0, r.text.indexOf('\r\n\r\n')), r.text.slice(r.text.indexOf('\r\n\r\n') + 4)];
    const lines = head.split('\r\n');
    assert.equal(lines[0], 'HTTP 200 OK');
    const h = headersOf(lines.slice(1).join('\n'));
    assert.equal(h.get('content-type'), 'text/plain', 'the inner type, not application/x-zeq-e2e');
    assert.equal(h.get('content-length'), String(FILES['hello.txt'].length), 'the plaintext length');
    assert.equal([...h.keys()].filter((k) => k.startsWith('x-e2e-')).length, 0, 'no X-E2E-* header');
    assert.equal(body, FILES['hello.txt'].toString());
  });

  it('-H: headers reach the application', async () => {
    const r = await cli(['get', url('nosecret', '/proxy/echo'), '-H', 'X-Zeq-Test: one two', '-H', 'Accept-Language: de'], 0);
    const seen = JSON.parse(r.text);
    assert.equal(seen.headers['x-zeq-test'], 'one two');
    assert.equal(seen.headers['accept-language'], 'de');
    assert.equal(seen.headers['x-e2e-session'], undefined, 'the module took the protocol\'s headers away');
  });

  it('a sealed 404: its page on stdout, exit status 4', async () => {
    const r = await cli(['get', url('nosecret', '/files/none.txt')], 4);
    assert.match(r.text, /Not Found/);
    assert.match(r.stderr, /404 Not Found/);
  });

  it('where the module does not encrypt (ZeqE2E Off): nothing on stdout, exit status 3 (e2e_downgrade)', async () => {
    const r = await cli(['get', url('nosecret', '/off/files/hello.txt')], 3);
    assert.equal(r.stdout.length, 0);
    assert.match(r.stderr, /e2e_downgrade/);
  });

  it('no server on the port: exit status 2', async () => {
    const port = await freePort();
    const r = await cli(['get', `http://127.0.0.1:${port}/`], 2);
    assert.match(r.stderr, /ECONNREFUSED/);
  });

  it('--max-time: exit status 2 when the answer takes longer', async () => {
    // 3 s: the script ends long before the server's Timeout (30 s), which
    // would log "Script timed out" if the rest of this file took that long
    // (as it can under make test SANITIZE=1).
    const r = await cli(['get', url('nosecret', '/t-cgi/slow.cgi?3'), '--max-time', '1'], 2);
    assert.match(r.stderr, /--max-time 1 s passed/);
    assert.equal(r.stdout.length, 0);
  });
});

describe('post', () => {
  it('--data TEXT: sealed as text/plain;charset=UTF-8, read by the CGI script as plaintext', async () => {
    const r = await cli(['post', url('nosecret', '/cgi-bin/echo.cgi'), '--data', 'grüße, zeq-e2e'], 0);
    const seen = JSON.parse(r.text);
    assert.equal(seen.method, 'POST');
    assert.equal(seen.body, 'grüße, zeq-e2e');
    assert.equal(seen.contentType, 'text/plain;charset=UTF-8');
    assert.equal(seen.contentLength, String(Buffer.byteLength('grüße, zeq-e2e')));
  });

  it('--data @FILE --type: the file\'s bytes with that type (40,000 bytes, 3 records)', async () => {
    const bytes = randomBytes(40000);
    const r = await cli(['post', url('nosecret', '/cgi-bin/echo.cgi'), '-d', `@${file('body.bin', bytes)}`, '-t', 'application/x-test'], 0);
    const seen = JSON.parse(r.text);
    assert.equal(`${seen.bodyLength} ${seen.bodySha256}`, `${bytes.length} ${sha256(bytes)}`);
    assert.equal(seen.contentType, 'application/x-test');
  });

  it('--data -: stdin\'s bytes, as application/octet-stream unless -H says otherwise', async () => {
    const bytes = randomBytes(70000);
    let seen = JSON.parse((await cli(['post', url('nosecret', '/proxy/echo'), '--data', '-'], 0, { input: bytes })).text);
    assert.equal(`${seen.bodyLength} ${seen.bodySha256}`, `${bytes.length} ${sha256(bytes)}`);
    assert.equal(seen.headers['content-type'], 'application/octet-stream');
    seen = JSON.parse((await cli(['post', url('nosecret', '/proxy/echo'), '--data', '-', '-H', 'Content-Type: application/json'],
      0, { input: '{"a":1}' })).text);
    assert.equal(seen.headers['content-type'], 'application/json');
    assert.equal(seen.body, '{"a":1}');
  });

  it('a POST without --data: sealed as a bodiless request (X-E2E-Seal)', async () => {
    const seen = JSON.parse((await cli(['post', url('nosecret', '/cgi-bin/echo.cgi')], 0)).text);
    assert.equal(`${seen.method} ${seen.bodyLength}`, 'POST 0');
  });

  it('over ZeqE2EMaxRequestBody: 413 e2e_body_too_large, exit status 4, the script did not answer', async () => {
    const r = await cli(['post', url('nosecret', '/limits/cgi-bin/echo.cgi'), '--data', 'x'.repeat(5000)], 4);
    assert.match(r.stderr, /413 e2e_body_too_large/);
    assert.equal(r.stdout.length, 0);
  });
});

describe('--psk-file and --protocol', () => {
  const secretFile = (text) => file('secret', text);

  it('pre-shared key mode where the host requires it; without the secret, exit status 3 (e2e_psk_required)', async () => {
    const args = ['post', url('psk', '/cgi-bin/echo.cgi'), '--data', 'under the PSK'];
    assert.match((await cli(args, 3)).stderr, /e2e_psk_required/);
    const r = await cli([...args, '--psk-file', join(server.dir, 'secret')], 0);
    assert.equal(JSON.parse(r.text).body, 'under the PSK');
  });

  it('the secret file: one trailing newline (or CRLF) is not part of the secret, a second one is', async () => {
    const get = (f) => ['get', url('psk', '/files/hello.txt'), '--psk-file', f];
    await cli(get(secretFile(`${server.secret}\r\n`)), 0);
    await cli(get(secretFile(server.secret)), 0);
    const r = await cli(get(secretFile(`${server.secret}\n\n`)), 3);
    assert.match(r.stderr, /e2e_decrypt_failed/, 'another secret: the server cannot open the seal');
  });

  it('a wrong secret: the server refuses the first request (400 e2e_decrypt_failed), exit status 3', async () => {
    const r = await cli(['post', url('main', '/cgi-bin/echo.cgi'), '--data', 'x', '--psk-file', secretFile('not the secret')], 3);
    assert.match(r.stderr, /400 e2e_decrypt_failed/);
  });

  it('--protocol 1 where the host offers only protocol 1; protocol 2 there is exit status 3 (e2e_version_unsupported)', async () => {
    assert.match((await cli(['get', url('v1only', '/files/hello.txt')], 3)).stderr, /e2e_version_unsupported/);
    const from = await mark();
    const r = await cli(['post', url('v1only', '/cgi-bin/echo.cgi'), '--protocol', '1', '--psk-file', join(server.dir, 'secret'),
      '--data', 'version one'], 0);
    assert.equal(JSON.parse(r.text).body, 'version one');
    // Its own line (a line of an earlier test may still be written after
    // `from`: Apache logs a request when it ends).
    const posts = (await linesSince(from, 2)).filter((l) => l.method === 'POST' && l.target === '/cgi-bin/echo.cgi'
      && l.status === 200);
    assert.deepEqual(posts.map((l) => `${l.method} ${l.seq}`), ['POST -'], 'a v1 request carries no X-E2E-Seq');
  });
});

describe('--server-key (pinning)', () => {
  const get = (host, ...keys) => ['get', url(host, '/files/hello.txt'), ...keys.flatMap((k) => ['--server-key', k])];
  const keyFile = (name, text) => file(name, text);

  it('the server\'s key as its PEM private key, PEM public key, SPKI base64url or JWK: exit status 0', async () => {
    const [k1] = server.serverKeys;
    const forms = [
      join(server.dir, 'server-key-1.pem'),
      keyFile('pub.pem', k1.publicKey.export({ type: 'spki', format: 'pem' })),
      keyFile('spki.txt', `${v2.b64url(k1.spki)}\n`),
      keyFile('key.jwk', JSON.stringify(k1.publicKey.export({ format: 'jwk' }))),
    ];
    for (const f of forms) assert.equal((await cli(get('signed', f), 0)).text, FILES['hello.txt'].toString(), f);
  });

  it('a rotation list with the signing key second: exit status 0', async () => {
    await cli(get('signed', join(server.dir, 'server-key-2.pem'), join(server.dir, 'server-key-1.pem')), 0);
  });

  it('a pinned key that did not sign: exit status 3 (e2e_bad_signature), no request after the handshake', async () => {
    const other = v2.signingKey();
    const cases = [
      [join(server.dir, 'server-key-2.pem'), 'signed'], // in the server's list, but the first key signs
      [keyFile('other.pem', other.pem), 'signed'],
      [join(server.dir, 'server-key-1.pem'), 'nosecret'], // a host that does not sign
    ];
    for (const [key, host] of cases) {
      const from = await mark();
      const r = await cli(get(host, key), 3);
      assert.match(r.stderr, /e2e_bad_signature/);
      assert.equal(r.stdout.length, 0);
      assert.deepEqual((await linesSince(from, 1)).map((l) => l.target), ['/api/e2e/handshake'], 'nothing but the handshake was sent');
    }
  });
});

// An attacker between the client and Apache: forwards everything, and lets
// a test change the answers.
async function startAttacker(target) {
  let edit = null;
  const httpd = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (!['host', 'connection', 'content-length', 'keep-alive'].includes(k)) headers.set(k, String(v));
    }
    const body = Buffer.concat(chunks);
    const up = await fetch(target + req.url, { method: req.method, headers, body: body.length ? body : undefined, redirect: 'manual' });
    let answer = { status: up.status, headers: new Headers(up.headers), body: Buffer.from(await up.arrayBuffer()) };
    if (edit) answer = (await edit(req, answer)) || answer;
    for (const h of ['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'content-encoding']) answer.headers.delete(h);
    answer.headers.set('content-length', String(answer.body.length));
    res.writeHead(answer.status, Object.fromEntries(answer.headers));
    res.end(answer.body);
  });
  await new Promise((r) => httpd.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${httpd.address().port}`,
    set(f) { edit = f; },
    close: () => new Promise((r) => httpd.close(r)),
  };
}

describe('an attacker on the path', () => {
  let attacker;
  before(async () => { attacker = await startAttacker(server.urls.signed); });
  after(async () => { await attacker.close(); });
  const isHandshake = (req) => req.url === '/api/e2e/handshake';

  it('a sealed answer with one bit changed: nothing on stdout, exit status 3 (e2e_bad_envelope)', async () => {
    attacker.set((req, a) => {
      if (!isHandshake(req) && a.body.length > 20) a.body[20] ^= 0x01;
    });
    const r = await cli(['get', `${attacker.origin}/files/hello.txt`], 3);
    assert.equal(r.stdout.length, 0);
    assert.match(r.stderr, /e2e_bad_envelope/);
  });

  it('a plaintext answer instead of the sealed one: nothing on stdout, exit status 3 (e2e_downgrade)', async () => {
    attacker.set((req, a) => (isHandshake(req) ? a
      : { status: 200, headers: new Headers({ 'content-type': 'text/plain' }), body: Buffer.from('forged') }));
    const r = await cli(['get', `${attacker.origin}/files/hello.txt`], 3);
    assert.equal(r.stdout.length, 0);
    assert.match(r.stderr, /e2e_downgrade/);
  });

  it('its own key in the handshake answer: unnoticed without a pinned key, exit status 3 with one', async () => {
    attacker.set((req, a) => {
      if (!isHandshake(req)) return a;
      const answer = JSON.parse(a.body);
      answer.serverKey = v2.b64url(v2.ecdh().getPublicKey());
      return { ...a, body: Buffer.from(JSON.stringify(answer)) };
    });
    // Unpinned, the client takes the key and seals for it: Apache (which has
    // another key) cannot open the seal. An attacker who forwards his own
    // seal instead would read everything: only pinning stops that.
    assert.match((await cli(['get', `${attacker.origin}/files/hello.txt`], 3)).stderr, /e2e_decrypt_failed/);
    const r = await cli(['get', `${attacker.origin}/files/hello.txt`, '--server-key', join(server.dir, 'server-key-1.pem')], 3);
    assert.match(r.stderr, /e2e_bad_signature.*does not verify/);
  });

  it('a handshake answer stripped of its signature: exit status 3 with a pinned key', async () => {
    attacker.set((req, a) => {
      if (!isHandshake(req)) return a;
      const answer = JSON.parse(a.body);
      delete answer.signature;
      delete answer.signer;
      return { ...a, body: Buffer.from(JSON.stringify(answer)) };
    });
    const r = await cli(['get', `${attacker.origin}/files/hello.txt`, '--server-key', join(server.dir, 'server-key-1.pem')], 3);
    assert.match(r.stderr, /e2e_bad_signature: the handshake answer is not signed/);
    attacker.set(null);
  });
});

describe('-v and --save-wire: the wire', () => {
  it('a POST of 40,000 bytes: what -v shows and --save-wire keeps is what node:crypto opens, and replaying it fails', async () => {
    const marker = `zeq-cli-marker-${randomBytes(8).toString('hex')}`;
    const body = Buffer.concat([Buffer.from(marker), randomBytes(40000 - marker.length)]);
    const dir = scratch('wire');
    const keys = scratch('keys.json');
    const from = await mark();
    const r = await cli(['post', url('main', '/cgi-bin/echo.cgi'), '-v', '--save-wire', dir, '-d', `@${file('b', body)}`,
      '-t', 'application/x-marked'], 0, { nodeArgs: ['--import', KEY_CAPTURE], env: { ZEQ_CLI_TEST_KEYS: keys } });
    const seen = JSON.parse(r.text);
    assert.equal(seen.bodySha256, sha256(body));
    const w = saved(dir);
    assert.deepEqual(Object.keys(w).sort(), ['1.request-body', '1.request-headers', '1.request-line', '1.response-body',
      '1.response-headers', '2.request-body', '2.request-headers', '2.request-line', '2.response-body', '2.response-headers']);
    assert.equal(w['2.request-line'].toString(), `POST ${url('main', '/cgi-bin/echo.cgi')}\n`);

    // The keys, again, with node:crypto: the captured private key, the
    // handshake as saved.
    const session = v2.keysFromHandshake(JSON.parse(w['1.request-body']), JSON.parse(w['1.response-body']),
      JSON.parse(readFileSync(keys, 'utf8')));
    const sent = headersOf(w['2.request-headers']);
    assert.equal(sent.get('x-e2e-session'), session.sessionId);
    assert.equal(sent.get('x-e2e-seq'), '0');
    assert.equal(sent.get('x-e2e-content-type'), 'application/x-marked');
    const opened = v2.openMessageDetail(session.c2s,
      v2.requestAAD(session.sessionId, 0, 'POST', '/cgi-bin/echo.cgi', 'application/x-marked'), w['2.request-body']);
    assert.ok(opened.plaintext.equals(body), 'the saved request body opens to the file');
    assert.deepEqual(opened.records, [16384, 16384, 7232]);
    const answerDetail = v2.openMessageDetail(session.s2c, v2.responseAAD(session.sessionId, 0, 200, 'application/json'),
      w['2.response-body']);
    const answer = answerDetail.plaintext;
    assert.equal(answer.toString(), r.text, 'stdout is the saved answer, opened');
    for (const f of ['2.request-body', '2.response-body']) {
      assert.equal(w[f].indexOf(marker), -1, `no plaintext in ${f}`);
    }
    assert.deepEqual((await linesSince(from, 2)).map((l) => `${l.method} ${l.target} ${l.session === session.sessionId}`),
      ['POST /api/e2e/handshake false', 'POST /cgi-bin/echo.cgi true']);

    // -v: the handshake, the sealed request and its records, the answer.
    assert.match(r.stderr, /^\* handshake, POST http:\/\/127\.0\.0\.1:\d+\/api\/e2e\/handshake$/m);
    assert.match(r.stderr, /^> \{"version":2,"clientNonce":"[0-9a-f]{64}","clientKey":"[A-Za-z0-9_-]{87}"\}$/m);
    assert.match(r.stderr, /^> x-e2e-seq: 0$/m);
    assert.match(r.stderr, new RegExp(`^> body: ${v2.sealedLength(40000)} bytes, sealed message, 3 records: ` +
      '2 × 16384 bytes, 7232 bytes \\(final\\)$', 'm'));
    // (a CGI script's answer has no length: sealed as it comes, maybe with an empty final record)
    const records = answerDetail.records.map((len, i, all) => `${len} bytes${i === all.length - 1 ? ' (final)' : ''}`);
    assert.ok(r.stderr.includes(`\n< body: ${w['2.response-body'].length} bytes, sealed message, ` +
      `${records.length} record${records.length === 1 ? '' : 's'}: ${records.join(', ')}\n`), 'the answer\'s records');
    assert.equal(r.stderr.indexOf(session.sessionId), -1, '-v does not show the whole session id');
    assert.match(r.stderr, new RegExp(`^> x-e2e-session: ${session.sessionId.slice(0, 6)}… \\(43 characters\\)$`, 'm'));

    // The saved request, replayed as it was, and with a bit changed.
    const replay = (b) => fetch(url('main', '/cgi-bin/echo.cgi'), { method: 'POST', headers: sent, body: b });
    let res = await replay(w['2.request-body']);
    assert.equal(`${res.status} ${(await res.json()).error}`, '400 e2e_replayed');
    const flipped = Buffer.from(w['2.request-body']);
    flipped[20] ^= 0x01;
    res = await replay(flipped);
    assert.equal(`${res.status} ${(await res.json()).error}`, '400 e2e_decrypt_failed');
  });

  it('a GET: its seal in X-E2E-Seal, 33 bytes, one empty final record', async () => {
    const r = await cli(['get', '-v', url('nosecret', '/files/empty.txt')], 0);
    assert.equal(r.stdout.length, 0);
    assert.match(r.stderr, /^> x-e2e-seal: [A-Za-z0-9_-]{10}… \(44 characters: 33 bytes, sealed message, 1 record: 0 bytes \(final\)\)$/m);
    assert.match(r.stderr, /^< body: 33 bytes, sealed message, 1 record: 0 bytes \(final\)$/m);
    assert.match(r.stderr, /^\* session: protocol 2, signature not checked \(no --server-key\), expires in \d+ s$/m);
  });

  it('protocol 1: a v1 envelope', async () => {
    const r = await cli(['post', '-v', url('main', '/cgi-bin/echo.cgi'), '--protocol', '1', '--psk-file', join(server.dir, 'secret'),
      '-d', 'v1 body'], 0);
    assert.match(r.stderr, /^> body: 35 bytes, a v1 envelope: iv 12 \+ tag 16 \+ 7 ciphertext bytes$/m);
  });
});

describe('check', () => {
  const check = async (host, path, status, ...more) => {
    const r = await cli(['check', url(host, path), '--json', ...more], status);
    return { report: JSON.parse(r.text), r };
  };

  it('a host without a secret: protocol 2 only, unsigned, a sealed GET, plaintext answered where ZeqE2ERequire is off', async () => {
    const { report } = await check('nosecret', '/files/hello.txt', 0);
    assert.deepEqual(report.offers, { versions: [2], v2: true, v1: false, secret: false, psk: 'unavailable' });
    assert.deepEqual(report.signing, { signed: false, signer: null, verified: false });
    assert.deepEqual(report.session, { version: 2, psk: false, signer: null, lifetime: 3600 });
    assert.deepEqual({ ...report.sealed, sequence: 0 }, {
      verified: true, status: 200, moduleError: null, type: 'text/plain', bytes: FILES['hello.txt'].length,
      wireBytes: v2.sealedLength(FILES['hello.txt'].length), records: 1, largestRecord: FILES['hello.txt'].length,
      length: 'Content-Length', sequence: 0,
    });
    assert.deepEqual(report.plaintext, { status: 200, error: null, refused: false });
    assert.equal(report.limits.sessionLifetime, 3600);
    assert.equal(`${report.ok} ${report.result}`, 'true ok');
  });

  it('under ZeqE2ERequire On: the plaintext GET is refused (403 e2e_required), the sealed one answered', async () => {
    const { report } = await check('main', '/required/files/hello.txt', 0);
    assert.deepEqual(report.offers, { versions: [2, 1], v2: true, v1: true, secret: true, psk: 'available' });
    assert.deepEqual(report.plaintext, { status: 403, error: 'e2e_required', refused: true });
    assert.equal(report.sealed.status, 200);
  });

  it('a host with two signing keys: signed by the first; verified with --server-key; refused with another key', async () => {
    const [k1] = server.serverKeys;
    let { report } = await check('signed', '/files/hello.txt', 0);
    assert.deepEqual(report.signing, { signed: true, signer: k1.signer, verified: false });
    ({ report } = await check('signed', '/files/hello.txt', 0, '--server-key', join(server.dir, 'server-key-1.pem')));
    assert.deepEqual(report.signing, { signed: true, signer: k1.signer, verified: true });
    assert.equal(report.session.signer, k1.signer);
    const r = await check('signed', '/files/hello.txt', 3, '--server-key', join(server.dir, 'server-key-2.pem'));
    assert.equal(r.report.session, null);
    assert.equal(r.report.sealed, null, 'no sealed request without a session');
    assert.match(r.report.result, /e2e_bad_signature/);
  });

  it('a host of protocol 1 only: exit status 3 for protocol 2; with --protocol 1 and the secret, 0', async () => {
    let { report } = await check('v1only', '/files/hello.txt', 3);
    assert.deepEqual(report.offers, { versions: [1], v2: false, v1: true, secret: true, psk: null });
    assert.match(report.result, /e2e_version_unsupported/);
    ({ report } = await check('v1only', '/files/hello.txt', 0, '--protocol', '1', '--psk-file', join(server.dir, 'secret')));
    assert.equal(report.session.version, 1);
    assert.equal(`${report.sealed.status} ${report.sealed.verified}`, '200 true');
  });

  it('a host that requires the pre-shared key: exit status 3 without it, 0 with --psk-file', async () => {
    let { report } = await check('psk', '/files/hello.txt', 3);
    assert.equal(report.offers.psk, 'required');
    assert.match(report.result, /e2e_psk_required/);
    ({ report } = await check('psk', '/files/hello.txt', 0, '--psk-file', join(server.dir, 'secret')));
    assert.deepEqual({ ...report.session, lifetime: 0 }, { version: 2, psk: true, signer: null, lifetime: 0 });
  });

  it('no handshake at the path (a 404 page): exit status 3, and it says why', async () => {
    const { report } = await check('nosecret', '/files/hello.txt', 3, '--handshake-path', '/files/no-handshake');
    assert.deepEqual(report.offers.versions, []);
    assert.match(report.result, /^no handshake at \/files\/no-handshake \(.*404.*\): the module is not loaded, or ZeqE2E On does not apply/);
  });

  it('the session lifetime of ZeqE2ESessionTTL 2', async () => {
    const { report } = await check('short', '/files/hello.txt', 0);
    assert.equal(report.session.lifetime, 2);
  });

  it('where the module does not encrypt: exit status 3; a 404: exit status 4', async () => {
    let { report } = await check('nosecret', '/off/files/hello.txt', 3);
    assert.equal(report.sealed.verified, false);
    assert.match(report.result, /is not sealed/);
    ({ report } = await check('nosecret', '/files/none', 4));
    assert.equal(`${report.sealed.status} ${report.sealed.verified}`, '404 true');
  });

  it('the text report says the same', async () => {
    const r = await cli(['check', url('signed', '/required/files/hello.txt')], 0);
    const lines = r.text.split('\n');
    const row = (label) => (lines.find((l) => l.startsWith(label)) || '').slice(15);
    assert.equal(row('versions'), '2 offered');
    assert.equal(row('pre-shared key'), 'not available (the host has no secret)');
    assert.equal(row('signing'), `signed by ${server.serverKeys[0].signer}, not checked: pin the key with --server-key`);
    assert.equal(row('session'), 'protocol 2, lifetime 3600 s (ZeqE2ESessionTTL)');
    assert.equal(row('sealed GET'), `200, text/plain, 25 bytes in 1 record (${v2.sealedLength(25)} on the wire, Content-Length), verified`);
    assert.equal(row('plaintext GET'), '403 e2e_required: refused (ZeqE2ERequire On)');
    assert.equal(row('result'), 'ok: sealed requests and answers work at this URL');
  });

  it('no server: exit status 2', async () => {
    const r = await cli(['check', `http://127.0.0.1:${await freePort()}/`], 2);
    assert.equal(r.stdout.length, 0);
  });
});

describe('ws', () => {
  let conns = 0;
  const conn = () => `cli${++conns}`;
  const received = (id) => server.backendWebSocketEvents(id).filter((e) => e.ev === 'message');

  for (const [name, extra] of [['protocol 2', []], ['protocol 1', ['--protocol', '1', '--psk-file']]]) {
    it(`${name}: stdin's lines out as text messages, the echoes on stdout`, async () => {
      const id = conn();
      const args = ['ws', url('main', `/ws/echo?conn=${id}`), '--count', '3', ...extra];
      if (extra.length) args.push(join(server.dir, 'secret'));
      const r = await cli(args, 0, { input: 'one\nzwei drei\n\n' });
      assert.equal(r.text, 'one\nzwei drei\n\n');
      assert.deepEqual(received(id).map((m) => `${m.type} ${m.len}`), ['text 3', 'text 9', 'text 0'],
        'the application received the plaintext messages');
    });
  }

  it('a binary message on stdout as its bytes', async () => {
    const r = await cli(['ws', url('nosecret', '/ws/echo'), '--count', '1'], 0, { input: 'send-bytes 70000\n' });
    const expected = [];
    for (let i = 0; expected.length * 32 < 70000; i++) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(i);
      expected.push(createHash('sha256').update(Buffer.concat([Buffer.from('ws'), b])).digest());
    }
    assert.ok(r.stdout.equals(Buffer.concat(expected).subarray(0, 70000)), '70000 bytes of det_bytes(70000, "ws")');
  });

  it('--count with stdin at its end: the ticks of /ws/pulse, in order', async () => {
    const r = await cli(['ws', url('nosecret', '/ws/pulse'), '--count', '3'], 0, { input: '' });
    assert.deepEqual(r.text.trim().split('\n').map((l) => JSON.parse(l).tick), [1, 2, 3]);
  });

  it('without --count: stdin\'s end, then --wait seconds for answers, then a close with 1000', async () => {
    const id = conn();
    const r = await cli(['ws', url('nosecret', `/ws/echo?conn=${id}`), '--wait', '5'], 0, { input: 'last words\n' });
    assert.equal(r.text, 'last words\n');
    const close = server.backendWebSocketEvents(id).find((e) => e.ev === 'close');
    assert.equal(close && close.code, 1000, 'the application saw the close with 1000');
  });

  it('-v: the opening with its number and seal, each frame\'s sealed message', async () => {
    const r = await cli(['ws', '-v', url('nosecret', '/ws/echo'), '--count', '1'], 0, { input: 'hello\n' });
    assert.match(r.stderr, /^\* WebSocket opening, GET ws:\/\/127\.0\.0\.1:\d+\/ws\/echo\?e2e_session=[A-Za-z0-9_-]{6}…&e2e_seq=0&e2e_seal=[A-Za-z0-9_-]+$/m);
    assert.match(r.stderr, /^> e2e_seq=0, e2e_seal: 33 bytes, sealed message, 1 record: 0 bytes \(final\)$/m);
    assert.match(r.stderr, /^< 101 Switching Protocols$/m);
    // type byte + "hello": 6 bytes in one record, 13 + 20 + 6 on the wire
    assert.match(r.stderr, /^> frame 0: binary, 39 bytes, sealed message, 1 record: 6 bytes \(final\)$/m);
    assert.match(r.stderr, /^< frame 0: binary, 39 bytes, sealed message, 1 record: 6 bytes \(final\)$/m);
    assert.match(r.stderr, /^> close frame: 1000$/m);
  });

  it('protocol 1: the application\'s close (1001) ends it, exit status 0', async () => {
    const r = await cli(['ws', url('main', '/ws/echo'), '--protocol', '1', '--psk-file', join(server.dir, 'secret')], 0,
      { input: 'close-me\n' });
    assert.equal(r.text, '');
  });

  it('a message over ZeqE2EMaxMessage: the module closes with 1009, exit status 4', async () => {
    const id = conn();
    const r = await cli(['ws', url('nosecret', `/ws/small/echo?conn=${id}`), '--count', '1'], 4, { input: `${'x'.repeat(5000)}\n` });
    assert.match(r.stderr, /closed with 1009/);
    assert.deepEqual(received(id), [], 'nothing reached the application');
  });

  it('where the module does not encrypt: the echo of a sealed frame does not verify, exit status 3', async () => {
    const r = await cli(['ws', url('nosecret', '/off/ws/echo'), '--count', '1'], 3, { input: 'x\n' });
    assert.equal(r.stdout.length, 0);
    assert.match(r.stderr, /e2e_bad_envelope/);
  });

  it('under ZeqE2ERequire On: sealed, answered', async () => {
    const r = await cli(['ws', url('nosecret', '/required/ws/echo'), '--count', '1'], 0, { input: 'required\n' });
    assert.equal(r.text, 'required\n');
  });

  it('an opening refused with 404: exit status 4; no server: exit status 2', async () => {
    assert.match((await cli(['ws', url('nosecret', '/ws/none')], 4, { input: '' })).stderr, /refused: 404/);
    const r = await cli(['ws', `ws://127.0.0.1:${await freePort()}/ws/echo`], 2, { input: '' });
    assert.match(r.stderr, /ECONNREFUSED/);
  });
});
