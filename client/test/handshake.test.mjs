// zeqE2EHandshake in protocol v2 against a real Apache: no secret by
// default, pre-shared key mode, pinned signing keys, refused downgrades to
// v1 and what allowV1 accepts, malformed answers, and the options that do not
// fit together. The keys are derived again here with node:crypto from what
// the handshake put on the wire (client/test/wire.mjs) and must open what the
// library sent and what the server answered.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, FILES } from './server.mjs';
import { installWireTap, checkV2Exchange, checkV1Exchange, isHandshake } from './wire.mjs';
import * as v2 from './v2.mjs';

let instances = 0;
const freshLibrary = () => import(`../zeq-e2e-client.js?handshake-instance=${++instances}`);

let server;
let wire;

before(async () => {
  server = await startServer('handshake');
  wire = installWireTap();
});

after(async () => {
  wire && wire.restore();
  if (server) assert.deepEqual(await server.stopChecked(), [], 'unexpected error-log lines');
});

/** The wire entries from index `from` on. */
const since = (from) => wire.log.slice(from);
const handshakes = (entries) => entries.filter(isHandshake);

/**
 * Replaces globalThis.fetch while f runs: `edit(request, send)` answers each
 * request the library makes (send = the recording tap).
 */
async function withMiddle(edit, f) {
  const tap = globalThis.fetch;
  globalThis.fetch = (input, init) => edit(new Request(input, init), (r) => tap(r));
  try {
    return await f();
  } finally {
    globalThis.fetch = tap;
  }
}

/** A handshake answer with some members replaced. */
async function editedAnswer(res, change) {
  const answer = await res.json();
  change(answer);
  return new Response(JSON.stringify(answer), { status: res.status, headers: res.headers });
}

/** A GET and a POST through the library, checked on the wire; returns the entries. */
async function exchange(lib, origin, session) {
  const from = wire.log.length;
  const res = await lib.zeqE2EFetch(origin + '/files/hello.txt');
  assert.equal(await res.text(), FILES['hello.txt'].toString());
  const post = await lib.zeqE2EFetch(origin + '/cgi-bin/echo.cgi', { method: 'POST', body: 'sealed by the library' });
  assert.equal((await post.json()).body, 'sealed by the library');
  const [get, p] = since(from);
  const g = checkV2Exchange(get, session);
  assert.equal(g.response.toString(), FILES['hello.txt'].toString());
  const q = checkV2Exchange(p, session);
  assert.equal(q.request.toString(), 'sealed by the library');
  return [get, p];
}

describe('protocol 2 by default', () => {
  it('needs no secret: a fresh P-256 key each time; node:crypto derives the same keys from the wire', async () => {
    const lib = await freshLibrary();
    const from = wire.log.length;
    const info = await lib.zeqE2EHandshake(server.urls.nosecret);
    assert.deepEqual({ ...info, sessionId: 'x', expiresAt: 0 }, { sessionId: 'x', expiresAt: 0, version: 2, psk: false, signer: null });
    const [hs] = handshakes(since(from));
    const request = JSON.parse(hs.requestBody.toString());
    assert.deepEqual(Object.keys(request).sort(), ['clientKey', 'clientNonce', 'version'], 'no psk, no secret');
    assert.equal(request.version, 2);
    assert.match(request.clientNonce, /^[0-9a-f]{64}$/);
    assert.match(request.clientKey, /^[A-Za-z0-9_-]{87}$/);
    const point = v2.fromB64url(request.clientKey);
    assert.equal(point.length, 65);
    assert.equal(point[0], 0x04);
    const answer = JSON.parse(hs.responseBody.toString());
    assert.equal(answer.version, 2);
    assert.equal(answer.signature, undefined);
    const session = v2.keysFromHandshake(request, answer, wire.captured);
    assert.equal(session.sessionId, info.sessionId);
    // The library's requests open under node:crypto's k_c2s, the server's
    // answers under k_s2c: both sides derived these keys.
    await exchange(lib, server.urls.nosecret, session);

    await lib.zeqE2EHandshake(server.urls.nosecret);
    const [again] = handshakes(since(from)).slice(1);
    const second = JSON.parse(again.requestBody.toString());
    assert.notEqual(second.clientKey, request.clientKey, 'a fresh key pair');
    assert.notEqual(second.clientNonce, request.clientNonce, 'a fresh nonce');
  });

  it('asks Web Crypto for non-extractable keys only', async () => {
    const lib = await freshLibrary();
    const subtle = globalThis.crypto.subtle;
    const deriveKey = subtle.deriveKey;
    const derived = [];
    subtle.deriveKey = function (algorithm, base, derivedAlgorithm, extractable, usages) {
      derived.push({ name: algorithm.name, info: algorithm.info && Buffer.from(algorithm.info).toString(), extractable, usages });
      return deriveKey.call(subtle, algorithm, base, derivedAlgorithm, extractable, usages);
    };
    const capturedBefore = wire.captured.length;
    try {
      await lib.zeqE2EHandshake(server.urls.nosecret);
    } finally {
      subtle.deriveKey = deriveKey;
    }
    const [pair] = wire.captured.slice(capturedBefore);
    assert.equal(pair.askedExtractable, false, 'the ECDH pair is asked non-extractable');
    assert.deepEqual(pair.usages, ['deriveBits']);
    assert.deepEqual(derived.sort((a, b) => a.info.localeCompare(b.info)), [
      { name: 'HKDF', info: 'zeq-e2e/2 c2s', extractable: false, usages: ['encrypt'] },
      { name: 'HKDF', info: 'zeq-e2e/2 s2c', extractable: false, usages: ['decrypt'] },
    ]);
  });

  it('a host without a secret refuses pre-shared key mode and protocol 1 (503 e2e_unavailable)', async () => {
    const lib = await freshLibrary();
    await assert.rejects(lib.zeqE2EHandshake(server.urls.nosecret, { secret: 'some secret' }),
      (e) => e.code === 'e2e_unavailable' && e.status === 503);
    await assert.rejects(lib.zeqE2EHandshake(server.urls.nosecret, { protocol: 1, secret: 'some secret' }),
      (e) => e.code === 'e2e_unavailable' && e.status === 503);
    assert.equal(lib.zeqE2ESession(), null);
  });
});

describe('pre-shared key mode', () => {
  it('{ secret } sends "psk": true and mixes PBKDF2(secret, "zeq-e2e/2 psk") into both keys', async () => {
    const lib = await freshLibrary();
    const from = wire.log.length;
    const info = await lib.zeqE2EHandshake(server.urls.main, { secret: server.secret });
    assert.equal(info.psk, true);
    assert.equal(info.version, 2);
    const [hs] = handshakes(since(from));
    const request = JSON.parse(hs.requestBody.toString());
    assert.equal(request.psk, true);
    assert.equal(hs.requestBody.indexOf(Buffer.from(server.secret)), -1, 'the secret does not travel');
    const answer = JSON.parse(hs.responseBody.toString());
    const session = v2.keysFromHandshake(request, answer, wire.captured, { secret: server.secret });
    const [get] = await exchange(lib, server.urls.main, session);
    // Without the PSK, node:crypto's keys do not open it.
    const plain = v2.sessionKeys(session.z, request.clientNonce, answer.serverNonce);
    assert.throws(() => checkV2Exchange(get, { ...session, ...plain }), /auth|verify|Unsupported state/i);
  });

  it('is what a ZeqE2ERequirePSK host accepts; without it: 400 e2e_psk_required', async () => {
    const lib = await freshLibrary();
    await assert.rejects(lib.zeqE2EHandshake(server.urls.psk),
      (e) => e.code === 'e2e_psk_required' && e.status === 400);
    const from = wire.log.length;
    await lib.zeqE2EHandshake(server.urls.psk, { secret: new TextEncoder().encode(server.secret) });
    const [hs] = handshakes(since(from));
    const session = v2.keysFromHandshake(JSON.parse(hs.requestBody), JSON.parse(hs.responseBody), wire.captured,
      { secret: server.secret });
    await exchange(lib, server.urls.psk, session);
  });

  it('with another secret the handshake succeeds and the first request is refused (400 e2e_decrypt_failed)', async () => {
    const lib = await freshLibrary();
    await lib.zeqE2EHandshake(server.urls.main, { secret: `${server.secret}, not quite` });
    const res = await lib.zeqE2EFetch(server.urls.main + '/cgi-bin/echo.cgi', { method: 'POST', body: 'x' });
    assert.equal(res.status, 400);
    assert.equal(res.zeqE2EError, 'e2e_decrypt_failed');
  });

  it('derives the PSK once per zeqE2EHandshake, not again for a renewal', async () => {
    const lib = await freshLibrary();
    const subtle = globalThis.crypto.subtle;
    const deriveBits = subtle.deriveBits;
    let pbkdf2 = 0;
    subtle.deriveBits = function (algorithm, ...rest) {
      if (algorithm.name === 'PBKDF2') pbkdf2++;
      return deriveBits.call(subtle, algorithm, ...rest);
    };
    try {
      await lib.zeqE2EHandshake(server.urls.main, { secret: server.secret });
      assert.equal(pbkdf2, 1);
      const first = lib.zeqE2ESession().sessionId;
      // One forged 401 makes the library renew the session.
      let forged = false;
      const res = await withMiddle(async (req, send) => {
        if (!forged && !isHandshake(req)) {
          forged = true;
          return new Response('{"error":"e2e_session_invalid","message":"gone"}',
            { status: 401, headers: { 'Content-Type': 'application/json' } });
        }
        return send(req);
      }, () => lib.zeqE2EFetch(server.urls.main + '/files/hello.txt'));
      assert.equal(await res.text(), FILES['hello.txt'].toString());
      assert.notEqual(lib.zeqE2ESession().sessionId, first, 'renewed');
      assert.equal(lib.zeqE2ESession().psk, true);
      assert.equal(pbkdf2, 1, 'the renewal used the PSK computed before');
    } finally {
      subtle.deriveBits = deriveBits;
    }
  });
});

describe('signed handshakes (serverKey)', () => {
  const key = (i) => server.serverKeys[i];

  it('accepts the answer signed by the pinned key (SPKI base64url) and names its signer', async () => {
    const lib = await freshLibrary();
    const from = wire.log.length;
    const info = await lib.zeqE2EHandshake(server.urls.signed, { serverKey: key(0).spkiB64url });
    assert.equal(info.signer, key(0).signer);
    assert.equal(lib.zeqE2ESession().signer, key(0).signer);
    const [hs] = handshakes(since(from));
    const request = JSON.parse(hs.requestBody.toString());
    const answer = JSON.parse(hs.responseBody.toString());
    assert.equal(answer.signer, key(0).signer, 'the first ZeqE2EServerKey signs');
    // node:crypto verifies the same signature over the transcript of 18.4.
    const t = v2.transcript(request.clientNonce, answer.serverNonce, v2.fromB64url(request.clientKey),
      v2.fromB64url(answer.serverKey), answer.sessionId);
    assert.equal(v2.verifyTranscript(key(0), t, v2.fromB64url(answer.signature)), true);
    await exchange(lib, server.urls.signed, v2.keysFromHandshake(request, answer, wire.captured));
  });

  it('takes a JWK, a PEM block, standard base64 and a list (rotation: either key)', async () => {
    const lib = await freshLibrary();
    const pem = `-----BEGIN PUBLIC KEY-----\n${key(0).spki.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PUBLIC KEY-----\n`;
    for (const serverKey of [key(0).jwk, pem, key(0).spki.toString('base64'), [key(1).spkiB64url, key(0).jwk]]) {
      const info = await lib.zeqE2EHandshake(server.urls.signed, { serverKey });
      assert.equal(info.signer, key(0).signer, JSON.stringify(serverKey).slice(0, 60));
    }
  });

  /** A handshake that must be refused: no session kept, nothing sent after it. */
  async function refused(lib, promise, why) {
    const from = wire.log.length;
    await assert.rejects(promise, (e) => {
      assert.equal(e.code, 'e2e_bad_signature', e.message);
      assert.match(e.message, why);
      return true;
    });
    assert.equal(lib.zeqE2ESession(), null, 'no session');
    const res = await lib.zeqE2EFetch(server.urls.signed + '/files/hello.txt');
    assert.equal(await res.text(), FILES['hello.txt'].toString());
    const after = since(from).filter((e) => !isHandshake(e));
    assert.equal(after.at(-1).requestHeaders.get('x-e2e-session'), null, 'fetch stays plain, no session used');
  }

  it('refuses an answer without a signature', async () => {
    const lib = await freshLibrary();
    await refused(lib, lib.zeqE2EHandshake(server.urls.nosecret, { serverKey: key(0).spkiB64url }), /not signed/);
  });

  it('refuses an answer signed by a key that is not pinned', async () => {
    const lib = await freshLibrary();
    await refused(lib, lib.zeqE2EHandshake(server.urls.signed, { serverKey: key(1).spkiB64url }),
      new RegExp(`signed by "${key(0).signer}", not by a pinned key \\(${key(1).signer}\\)`));
  });

  it('refuses a signature with a flipped bit', async () => {
    const lib = await freshLibrary();
    await refused(lib, withMiddle(async (req, send) => editedAnswer(await send(req), (a) => {
      const sig = v2.fromB64url(a.signature);
      sig[10] ^= 0x04;
      a.signature = v2.b64url(sig);
    }), () => lib.zeqE2EHandshake(server.urls.signed, { serverKey: key(0).spkiB64url })), /does not verify/);
  });

  it('refuses an attacker\'s serverKey under the server\'s signature, and the attacker\'s own signature', async () => {
    const attacker = v2.ecdh();
    const attackerSigner = v2.signingKey();
    const lib = await freshLibrary();
    await refused(lib, withMiddle(async (req, send) => editedAnswer(await send(req), (a) => {
      a.serverKey = v2.b64url(attacker.getPublicKey());
    }), () => lib.zeqE2EHandshake(server.urls.signed, { serverKey: key(0).spkiB64url })), /does not verify/);
    // Re-signed by the attacker and claimed as the pinned key's.
    await refused(lib, withMiddle(async (req, send) => {
      const request = await req.clone().json();
      return editedAnswer(await send(req), (a) => {
        a.serverKey = v2.b64url(attacker.getPublicKey());
        const t = v2.transcript(request.clientNonce, a.serverNonce, v2.fromB64url(request.clientKey),
          attacker.getPublicKey(), a.sessionId);
        a.signature = v2.b64url(v2.signTranscript(attackerSigner, t));
        a.signer = key(0).signer;
      });
    }, () => lib.zeqE2EHandshake(server.urls.signed, { serverKey: key(0).spkiB64url })), /does not verify/);
    // ... and under its own signer.
    await refused(lib, withMiddle(async (req, send) => editedAnswer(await send(req), (a) => {
      a.signer = attackerSigner.signer;
    }), () => lib.zeqE2EHandshake(server.urls.signed, { serverKey: key(0).spkiB64url })), /not by a pinned key/);
  });

  it('without serverKey, a signed answer is simply used (signer null)', async () => {
    const lib = await freshLibrary();
    const info = await lib.zeqE2EHandshake(server.urls.signed);
    assert.equal(info.signer, null);
  });

  it('refuses what is not a P-256 public key, as a TypeError, before any request', async () => {
    const lib = await freshLibrary();
    const from = wire.log.length;
    const { privateKey } = await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign']);
    const privateJwk = await globalThis.crypto.subtle.exportKey('jwk', privateKey);
    for (const serverKey of ['not a key!', 'AAAA', privateJwk, [], 42]) {
      await assert.rejects(lib.zeqE2EHandshake(server.urls.signed, { serverKey }), TypeError, JSON.stringify(serverKey));
    }
    assert.equal(since(from).length, 0, 'nothing was sent');
  });
});

describe('versions and downgrades', () => {
  /** A genuine v1 answer of the main host to the client nonce of a v2 handshake request. */
  const v1Answer = async (req, send) => {
    const { clientNonce } = await req.clone().json();
    return send(new Request(`${server.urls.main}/api/e2e/handshake`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ clientNonce }),
    }));
  };

  it('refuses a v1 answer to a v2 handshake (e2e_downgrade)', async () => {
    const lib = await freshLibrary();
    await assert.rejects(withMiddle(v1Answer, () => lib.zeqE2EHandshake(server.urls.main, { secret: server.secret })),
      (e) => e.code === 'e2e_downgrade' && e.status === 200 && /allowV1/.test(e.message));
    assert.equal(lib.zeqE2ESession(), null);
  });

  it('a host that offers only protocol 1 refuses it: 400 e2e_version_unsupported', async () => {
    const lib = await freshLibrary();
    await assert.rejects(lib.zeqE2EHandshake(server.urls.v1only, { secret: server.secret }),
      (e) => e.code === 'e2e_version_unsupported' && e.status === 400);
    assert.equal(lib.zeqE2ESession(), null);
  });

  it('allowV1 with the secret: that host gives a v1 session, its bodies in v1 envelopes', async () => {
    const lib = await freshLibrary();
    const from = wire.log.length;
    const info = await lib.zeqE2EHandshake(server.urls.v1only, { secret: server.secret, allowV1: true });
    assert.equal(info.version, 1);
    const hs = handshakes(since(from));
    assert.deepEqual(hs.map((e) => [JSON.parse(e.requestBody).version, e.status]), [[2, 400], [undefined, 200]],
      'a v2 handshake refused, then a v1 one');
    const res = await lib.zeqE2EFetch(server.urls.v1only + '/cgi-bin/echo.cgi', { method: 'POST', body: 'in v1' });
    assert.equal((await res.json()).body, 'in v1');
    const session = wire.sessions(server.secret).get(info.sessionId);
    assert.equal(session.version, 1);
    assert.equal(checkV1Exchange(wire.log.at(-1), session).request.toString(), 'in v1');
  });

  it('allowV1 with the secret: a v1 answer to the v2 handshake gives a v1 session', async () => {
    const lib = await freshLibrary();
    const info = await withMiddle(async (req, send) => (isHandshake(req) ? v1Answer(req, send) : send(req)),
      () => lib.zeqE2EHandshake(server.urls.main, { secret: server.secret, allowV1: true }));
    assert.equal(info.version, 1);
    const res = await lib.zeqE2EFetch(server.urls.main + '/cgi-bin/echo.cgi', { method: 'POST', body: 'v1 again' });
    assert.equal((await res.json()).body, 'v1 again');
    assert.equal(wire.log.at(-1).requestHeaders.get('x-e2e-seq'), null, 'a v1 request');
  });

  it('options that do not fit together are TypeErrors, before any request', async () => {
    const lib = await freshLibrary();
    const from = wire.log.length;
    const cases = [
      [{ allowV1: true }, /allowV1 needs options.secret/],
      [{ protocol: 1 }, /protocol 1 needs options.secret/],
      [{ protocol: 1, secret: 's', serverKey: server.serverKeys[0].spkiB64url }, /serverKey cannot be combined with protocol 1/],
      [{ secret: 's', allowV1: true, serverKey: server.serverKeys[0].spkiB64url }, /serverKey cannot be combined with allowV1/],
      [{ protocol: 3 }, /options.protocol is 1 or 2, not 3/],
      [{ protocol: '2' }, /options.protocol is 1 or 2/],
      [{ secret: 42 }, /options.secret must be a string or bytes/],
    ];
    for (const [options, message] of cases) {
      await assert.rejects(lib.zeqE2EHandshake(server.urls.main, options), (e) => e instanceof TypeError && message.test(e.message),
        JSON.stringify(options));
    }
    assert.equal(since(from).length, 0, 'nothing was sent');
  });
});

describe('malformed answers', () => {
  const cases = {
    'a serverKey off the curve': (a) => {
      const p = v2.fromB64url(a.serverKey);
      p[64] ^= 1;
      a.serverKey = v2.b64url(p);
    },
    'a compressed serverKey': (a) => {
      const p = v2.fromB64url(a.serverKey);
      a.serverKey = v2.b64url(Buffer.concat([Buffer.from([2 + (p[64] & 1)]), p.subarray(1, 33)]));
    },
    'a serverKey in padded base64': (a) => { a.serverKey = v2.fromB64url(a.serverKey).toString('base64'); },
    'no serverKey': (a) => { delete a.serverKey; },
    'version 3': (a) => { a.version = 3; },
    'a short serverNonce': (a) => { a.serverNonce = a.serverNonce.slice(2); },
    'a sessionId with a dot': (a) => { a.sessionId += '.'; },
    'no expiresIn': (a) => { delete a.expiresIn; },
  };
  for (const [name, change] of Object.entries(cases)) {
    it(`refuses ${name} (e2e_bad_handshake_answer)`, async () => {
      const lib = await freshLibrary();
      await assert.rejects(withMiddle(async (req, send) => editedAnswer(await send(req), change),
        () => lib.zeqE2EHandshake(server.urls.nosecret)),
      (e) => e.code === 'e2e_bad_handshake_answer' && e.status === 200);
      assert.equal(lib.zeqE2ESession(), null);
    });
  }

  it('an attacker who answers with its own key gets sealed requests it can read: what pinning is for', async () => {
    // The other side of the refusals above: without serverKey, nothing
    // tells the attacker's key from the server's.
    const attacker = v2.ecdh();
    const lib = await freshLibrary();
    let request;
    let answer;
    await withMiddle(async (req, send) => {
      request = await req.clone().json();
      answer = { version: 2, sessionId: 'attacker-session', serverNonce: randomBytes(32).toString('hex'),
        serverKey: v2.b64url(attacker.getPublicKey()), expiresIn: 3600 };
      void send;
      return new Response(JSON.stringify(answer), { headers: { 'Content-Type': 'application/json' } });
    }, () => lib.zeqE2EHandshake(server.urls.nosecret));
    const keys = v2.sessionKeys(attacker.computeSecret(v2.fromB64url(request.clientKey)), request.clientNonce,
      answer.serverNonce);
    let body;
    await withMiddle(async (req) => {
      body = Buffer.from(await req.arrayBuffer());
      return new Response('{"error":"e2e_unavailable","message":"x"}', { status: 503, headers: { 'Content-Type': 'application/json' } });
    }, () => lib.zeqE2EFetch(server.urls.nosecret + '/cgi-bin/echo.cgi', { method: 'POST', body: 'read by the attacker' }));
    const aad = v2.requestAAD('attacker-session', 0, 'POST', '/cgi-bin/echo.cgi', 'text/plain;charset=UTF-8');
    assert.equal(v2.openMessage(keys.c2s, aad, body).toString(), 'read by the attacker');
  });
});
