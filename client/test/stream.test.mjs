// v2 answers read as streams, and zeqE2EEventSource, in Node.js against
// crafted answers. A stand-in fetch plays the server with node:crypto
// (client/test/v2.mjs, never the library's code): it answers the handshake,
// checks each request's seal, and answers with a sealed message in records
// of the sizes a test asks for, handed over in chunks of the sizes it asks
// for, cut, altered, extended or failed where it says. What the library
// gives the page is compared with what was sealed.
//
// Records split at every byte boundary; every prefix of a message (never a
// shorter body: e2e_truncated, also when the transport ends cleanly); bytes
// after the final record; a flipped bit in every part of a middle record
// (nothing of that record delivered); malformed headers refused before
// more bytes come; transport failures and aborts; backpressure (the library
// reads no further ahead than the page); lengths, gzip, clone(). Then the
// event stream parser and zeqE2EEventSource: the examples of the HTML
// standard's "Server-sent events" section with every split of their bytes
// into records, line endings, the BOM, multi-byte characters, id and retry
// fields, reconnection with Last-Event-ID, 204, failures and close().
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import * as v2 from './v2.mjs';

const ORIGIN = 'https://stream.example:8443';
const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let lib;
let session;
let savedFetch;
/** what the stand-in answers next: (request, seq) => answer (see answerOf) */
let serve = null;
/** the requests the stand-in received: { url, seq, headers, credentials, cache, at } */
const requests = [];

/** Deterministic bytes: byte i = (i * 31 + seed) & 0xff. */
function pattern(n, seed = 7) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/**
 * The stand-in's answer to request seq, from a description:
 *   parts      the plaintext of each record (Buffers or strings)
 *   status, type, encoding, headers (more headers; null removes one)
 *   edit(msg, offsets)  changes the sealed bytes (offsets: where each record starts)
 *   chunks     chunk sizes (the rest in one last chunk), or a number: all chunks of that size
 *   end        'close' (default), 'hold' (never ends), or an Error the body fails with
 *   source     a ReadableStream to answer with instead (lazy answers)
 */
function answerOf(req, seq, a) {
  const status = a.status ?? 200;
  const type = a.type ?? 'application/octet-stream';
  const aad = v2.responseAAD(session.sessionId, seq, status, type, a.encoding ?? '');
  const headers = new Headers({ 'Content-Type': v2.MEDIA_TYPE, 'X-E2E-Content-Type': type });
  if (a.encoding) headers.set('X-E2E-Content-Encoding', a.encoding);
  for (const [k, v] of Object.entries(a.headers || {})) {
    if (v === null) headers.delete(k);
    else headers.set(k, v);
  }
  if (a.source) return new Response(a.source(aad), { status, headers });
  if (status === 204 || status === 304) {
    // No body: the sealed empty message in X-E2E-Seal (18.8).
    headers.set('X-E2E-Seal', v2.b64url(v2.sealMessage(session.s2c, aad, Buffer.alloc(0))));
    return new Response(null, { status, headers });
  }
  const parts = a.parts.map((p) => Buffer.from(p));
  const sealed = v2.sealMessage(session.s2c, aad, Buffer.concat(parts), { records: parts.map((p) => p.length) });
  const offsets = [13];
  for (const p of parts) offsets.push(offsets.at(-1) + 4 + p.length + 16);
  const bytes = a.edit ? a.edit(Buffer.from(sealed), offsets) : sealed;
  const sizes = [];
  if (typeof a.chunks === 'number') {
    for (let off = 0; off < bytes.length; off += a.chunks) sizes.push(Math.min(a.chunks, bytes.length - off));
  } else {
    let off = 0;
    for (const n of a.chunks || []) { sizes.push(n); off += n; }
    if (off < bytes.length) sizes.push(bytes.length - off);
  }
  let next = 0;
  let off = 0;
  const end = a.end ?? 'close';
  const body = new ReadableStream({
    start(controller) {
      req.signal.addEventListener('abort', () => controller.error(req.signal.reason), { once: true });
    },
    pull(controller) {
      if (next < sizes.length) {
        controller.enqueue(new Uint8Array(bytes.subarray(off, off + sizes[next])));
        off += sizes[next++];
        return;
      }
      if (end === 'close') controller.close();
      else if (end instanceof Error) controller.error(end);
      else return new Promise(() => {});
    },
  }, { highWaterMark: 0 });
  return new Response(body, { status, headers });
}

/** The stand-in server: the handshake, then each request's seal checked and answered per serve(). */
async function standIn(input, init) {
  const req = new Request(input, init);
  const url = new URL(req.url);
  if (url.pathname === '/api/e2e/handshake') {
    const hs = await req.json();
    const e = v2.ecdh();
    const serverNonce = randomBytes(32).toString('hex');
    session = { sessionId: 'stream-session', ...v2.sessionKeys(e.computeSecret(v2.fromB64url(hs.clientKey)), hs.clientNonce, serverNonce) };
    return new Response(JSON.stringify({ version: 2, sessionId: session.sessionId, serverNonce,
      serverKey: v2.b64url(e.getPublicKey()), expiresIn: 3600 }), { headers: { 'Content-Type': 'application/json' } });
  }
  const seq = Number(req.headers.get('x-e2e-seq'));
  const target = url.pathname + url.search;
  assert.equal(v2.openMessage(session.c2s, v2.requestAAD(session.sessionId, seq, req.method, target),
    v2.fromB64url(req.headers.get('x-e2e-seal'))).length, 0, 'the request\'s seal verifies');
  requests.push({ url: req.url, seq, headers: req.headers, credentials: req.credentials, cache: req.cache, at: Date.now() });
  return answerOf(req, seq, await serve(req, seq));
}

before(async () => {
  savedFetch = globalThis.fetch;
  globalThis.fetch = standIn;
  lib = await import('../zeq-e2e-client.js?stream-stand-in');
  await lib.zeqE2EHandshake(ORIGIN);
});

after(() => {
  globalThis.fetch = savedFetch;
});

/** zeqE2EFetch of a path answered as described. */
function fetchAnswer(description, init) {
  serve = () => description;
  return lib.zeqE2EFetch(`${ORIGIN}/stream`, init);
}

/** Reads a body to its end: { chunks: [Buffer], error } (error: what the read rejected with, or null). */
async function readAll(res) {
  const reader = res.body.getReader();
  const chunks = [];
  for (;;) {
    let r;
    try {
      r = await reader.read();
    } catch (error) {
      return { chunks, error };
    }
    if (r.done) return { chunks, error: null };
    chunks.push(Buffer.from(r.value));
  }
}

const PARTS = ['abc', '', 'seventeen bytes!!', 'x', 'the final'];
const PLAIN = Buffer.from(PARTS.join(''));
const SEALED_LENGTH = 13 + PARTS.length * 20 + PLAIN.length;

describe('v2 answers as streams', () => {
  it('opens records split at every byte boundary, one chunk per record, as they arrive', async () => {
    const splits = [[], [1], 1, 5];
    for (let k = 1; k < SEALED_LENGTH; k++) splits.push([k]);
    for (const chunks of splits) {
      const res = await fetchAnswer({ parts: PARTS, chunks });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/octet-stream');
      const { chunks: got, error } = await readAll(res);
      assert.equal(error, null, `split ${JSON.stringify(chunks)}: ${error && error.message}`);
      assert.deepEqual(got.map((c) => c.toString()), PARTS.filter((p) => p !== ''),
        `split ${JSON.stringify(chunks)}: each record's plaintext as one chunk`);
    }
    const res = await fetchAnswer({ parts: PARTS, chunks: 3 });
    assert.equal(await res.text(), PLAIN.toString());
  });

  it('delivers a record as soon as its last byte is there, before the message ends', async () => {
    const res = await fetchAnswer({ parts: ['first', 'second', 'third'], chunks: [13 + 4 + 5 + 16],
      edit: (m, o) => m.subarray(0, o[2]), end: 'hold' });
    const reader = res.body.getReader();
    assert.equal(Buffer.from((await reader.read()).value).toString(), 'first');
    assert.equal(Buffer.from((await reader.read()).value).toString(), 'second');
    // The third record never comes: the transport holds.
    const third = await Promise.race([reader.read(), sleep(200).then(() => 'pending')]);
    assert.equal(third, 'pending');
    await reader.cancel();
  });

  it('never gives a shorter body: every prefix of a message is e2e_truncated, also when the transport ends cleanly', async () => {
    let early = 0;
    let late = 0;
    for (let p = 0; p < SEALED_LENGTH; p++) {
      const description = { parts: PARTS, edit: (m) => m.subarray(0, p) };
      let res;
      try {
        res = await fetchAnswer(description);
      } catch (e) {
        // Cut before the first record verified: the answer itself rejects.
        assert.equal(e.code, 'e2e_truncated', `prefix ${p}: ${e.message}`);
        early++;
        continue;
      }
      late++;
      const { chunks, error } = await readAll(res);
      assert.ok(error, `prefix ${p} of ${SEALED_LENGTH}: the body must not end as if whole`);
      assert.equal(error.code, 'e2e_truncated', `prefix ${p}: ${error.message}`);
      assert.match(error.message, /^the answer ends (before its final record|inside a record)/);
      assert.ok(PLAIN.toString().startsWith(Buffer.concat(chunks).toString()), 'what came before is the start of the answer');
      await assert.rejects((await fetchAnswer(description)).text(), (e) => e.code === 'e2e_truncated', `text() of prefix ${p}`);
      await assert.rejects((await fetchAnswer(description)).json(), (e) => e.code === 'e2e_truncated', `json() of prefix ${p}`);
    }
    assert.ok(early > 0 && late > 0, `cut before (${early}) and after (${late}) the first record`);
    // The last record cut whole: every byte but the final record's.
    const whole = await fetchAnswer({ parts: PARTS, edit: (m, o) => m.subarray(0, o[PARTS.length - 1]) });
    await assert.rejects(whole.arrayBuffer(), (e) => e.code === 'e2e_truncated' && /ends before its final record/.test(e.message));
  });

  it('refuses bytes after the final record, in the same chunk or a later one, once the records before are read', async () => {
    const extra = v2.sealRecord(randomBytes(32), Buffer.alloc(0), randomBytes(12), 5, Buffer.from('more'), true);
    for (const tail of [Buffer.from([0]), extra]) {
      for (const chunks of [[], [SEALED_LENGTH], 1]) {
        const res = await fetchAnswer({ parts: PARTS, edit: (m) => Buffer.concat([m, tail]), chunks });
        const { chunks: got, error } = await readAll(res);
        assert.equal(error && error.code, 'e2e_bad_envelope', `${tail.length} bytes after the final record, chunks ${chunks}`);
        assert.match(error.message, new RegExp(`has ${chunks === 1 ? 1 : tail.length} bytes after its final record`));
        assert.equal(Buffer.concat(got).toString(), PLAIN.toString());
        await assert.rejects((await fetchAnswer({ parts: PARTS, edit: (m) => Buffer.concat([m, tail]), chunks })).text(),
          (e) => e.code === 'e2e_bad_envelope');
      }
    }
  });

  it('delivers nothing of a record that fails to verify, and nothing after it', async () => {
    const parts = [pattern(16384, 1), pattern(16384, 2), pattern(16384, 3), pattern(100, 4)];
    const record1 = 13 + 4 + 16384 + 16;
    // A bit of record 1's header, of its ciphertext (first, middle, last
    // byte) and of its tag; the final flag of the last record.
    const flips = { header: record1 + 3, 'first byte': record1 + 4, middle: record1 + 4 + 8000,
      'last byte': record1 + 4 + 16383, tag: record1 + 4 + 16384 + 15 };
    for (const [where, at] of Object.entries(flips)) {
      for (const chunks of [[], 7, 1000, [record1 + 10]]) {
        const res = await fetchAnswer({ parts, chunks, edit: (m) => { m[at] ^= 0x04; return m; } });
        const { chunks: got, error } = await readAll(res);
        assert.equal(error && error.code, 'e2e_bad_envelope', `${where}, chunks ${chunks}`);
        assert.match(error.message, /did not verify/);
        assert.deepEqual(got.map(sha256), [sha256(parts[0])], `${where}, chunks ${chunks}: record 0 only`);
      }
    }
    const finalFlag = await fetchAnswer({ parts, edit: (m, o) => { m[o[3]] ^= 0x80; return m; } });
    const { chunks: got, error } = await readAll(finalFlag);
    assert.equal(error && error.code, 'e2e_bad_envelope', 'the final flag taken away');
    assert.equal(got.length, 3);
    // Record 0 altered: the answer itself is refused (its status unproven).
    await assert.rejects(fetchAnswer({ parts, edit: (m) => { m[20] ^= 1; return m; } }), (e) => e.code === 'e2e_bad_envelope');
  });

  it('refuses a malformed record header at once, without waiting for more bytes', async () => {
    for (const [name, header] of [['a reserved bit', 0x40000010], ['a record over 1 MiB', (1 << 20) + 1],
      ['not 0x02 first', null]]) {
      const edit = (m) => {
        if (header === null) m[0] = 0x01;
        else m.writeUInt32BE(header >>> 0, 13);
        return m;
      };
      const started = fetchAnswer({ parts: ['x'.repeat(40)], edit, end: 'hold' });
      const outcome = await Promise.race([started.then(() => 'resolved', (e) => e), sleep(2000).then(() => 'waited')]);
      assert.ok(outcome instanceof Error, `${name}: refused while the transport still holds (${outcome})`);
      assert.equal(outcome.code, 'e2e_bad_envelope', name);
      assert.match(outcome.message, header === null ? /starts with 0x01, not 0x02/ : /malformed record header/, name);
    }
  });

  it('a transport that fails in the middle is e2e_truncated; an abort stays an AbortError', async () => {
    const parts = ['one', 'two', 'three'];
    const failed = await fetchAnswer({ parts, chunks: [13 + 23], edit: (m, o) => m.subarray(0, o[2]),
      end: new TypeError('network error') });
    const { chunks, error } = await readAll(failed);
    assert.deepEqual(chunks.map(String), ['one', 'two']);
    assert.equal(error.code, 'e2e_truncated');
    assert.match(error.message, /the connection failed before its final record/);
    assert.equal(error.cause.message, 'network error');
    await assert.rejects((await fetchAnswer({ parts, edit: (m, o) => m.subarray(0, o[1] + 5),
      end: new TypeError('reset') })).text(), (e) => e.code === 'e2e_truncated');
    // After the final record the message is whole: a failure then is the transport's own.
    const late = await fetchAnswer({ parts, end: new TypeError('late reset') });
    const after = await readAll(late);
    assert.deepEqual(after.chunks.map(String), parts);
    assert.equal(after.error.message, 'late reset');

    const controller = new AbortController();
    const res = await fetchAnswer({ parts, edit: (m, o) => m.subarray(0, o[1]), end: 'hold' }, { signal: controller.signal });
    const reader = res.body.getReader();
    assert.equal(Buffer.from((await reader.read()).value).toString(), 'one');
    controller.abort();
    await assert.rejects(reader.read(), (e) => e.name === 'AbortError');
  });

  it('reads no further ahead than the page: about one record is held (backpressure)', async (t) => {
    const records = 4096;
    const size = 16384;
    let produced = 0;
    const source = (aad) => {
      const nonceBase = randomBytes(12);
      let i = -1;
      return new ReadableStream({
        pull(controller) {
          if (i < 0) controller.enqueue(v2.messagePrefix(nonceBase));
          else controller.enqueue(v2.sealRecord(session.s2c, aad, nonceBase, i, pattern(size, i & 0xff), i === records - 1));
          i++;
          produced = i;
          if (i === records) controller.close();
        },
      }, { highWaterMark: 0 });
    };
    const res = await fetchAnswer({ source, headers: { 'Content-Length': String(v2.sealedLength(records * size)) } });
    assert.equal(res.headers.get('content-length'), String(records * size), 'the plaintext length of 16 KiB records');
    const reader = res.body.getReader();
    const hash = createHash('sha256');
    const expected = createHash('sha256');
    hash.update((await reader.read()).value);
    await sleep(100);
    assert.ok(produced <= 4, `the page read one record; ${produced} were pulled from the transport`);
    let received = size;
    let peak = 0;
    const base = process.memoryUsage();
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      hash.update(r.value);
      received += r.value.length;
      if ((received & 0xfffff) === 0) {
        const m = process.memoryUsage();
        peak = Math.max(peak, m.arrayBuffers - base.arrayBuffers);
        assert.ok(produced * size - received <= 4 * size, `read ahead by ${produced * size - received} bytes`);
      }
    }
    for (let i = 0; i < records; i++) expected.update(pattern(size, i & 0xff));
    assert.equal(received, records * size);
    assert.equal(hash.digest('hex'), expected.digest('hex'), 'the 64 MiB exactly');
    t.diagnostic(`64 MiB streamed; ArrayBuffer memory at most ${(peak / 2 ** 20).toFixed(1)} MiB above the start (garbage included)`);
  });

  it('tells the plaintext length where it is known; undoes gzip as a stream; clone() keeps the errors', async () => {
    const one = await fetchAnswer({ parts: ['a single record'] });
    assert.equal(one.headers.get('content-length'), '15');
    const streamed = await fetchAnswer({ parts: ['a', 'b'] });
    assert.equal(streamed.headers.get('content-length'), null, 'a streamed answer: no length');
    await streamed.text();
    const body = Buffer.from(JSON.stringify({ text: 'zeq '.repeat(5000) }));
    const gz = gzipSync(body);
    const zipped = await fetchAnswer({ parts: [gz.subarray(0, 100), gz.subarray(100, 5000), gz.subarray(5000)],
      encoding: 'gzip', type: 'application/json' });
    assert.equal(zipped.headers.get('content-length'), null);
    assert.deepEqual(await zipped.json(), JSON.parse(body));
    const cut = await fetchAnswer({ parts: PARTS, edit: (m, o) => m.subarray(0, o[3]) });
    const copy = cut.clone();
    await assert.rejects(copy.text(), (e) => e.code === 'e2e_truncated');
    await assert.rejects(cut.arrayBuffer(), (e) => e.code === 'e2e_truncated');
    await assert.rejects(fetchAnswer({ parts: ['x'], encoding: 'br' }), (e) => e.code === 'e2e_unsupported');
  });
});

// ---------------------------------------------------------------------------
// zeqE2EEventSource.

/**
 * Opens zeqE2EEventSource(path) and records its events until done(log)
 * says so (default: the first error); then closes it. Each entry: { type,
 * data, lastEventId, origin, readyState, error }.
 */
async function eventsOf(path, { done = (log) => log.some((e) => e.type === 'error'), names = [], options, ms = 10000 } = {}) {
  const source = lib.zeqE2EEventSource(path, options);
  const log = [];
  const record = (ev) => log.push({ type: ev.type, data: ev.data, lastEventId: ev.lastEventId, origin: ev.origin,
    readyState: source.readyState, error: ev.error && ev.error.code, at: Date.now() });
  for (const t of ['open', 'message', 'error', ...names]) source.addEventListener(t, record);
  const end = Date.now() + ms;
  while (!done(log)) {
    if (Date.now() > end) {
      source.close();
      throw new Error(`timed out: ${JSON.stringify(log)}`);
    }
    await sleep(5);
  }
  source.close();
  return { source, log };
}

/** The plaintext of an event stream in records: one record, one per byte, or two at every split. */
function* recordings(text) {
  const bytes = Buffer.from(text);
  yield [bytes];
  yield Array.from(bytes, (b) => Buffer.from([b]));
  for (let k = 1; k < bytes.length; k++) yield [bytes.subarray(0, k), bytes.subarray(k)];
}

/** Serves an event stream once per connection: texts[i] to connection i (a description, or a text). */
function serveStreams(texts) {
  let n = 0;
  serve = () => {
    const t = texts[Math.min(n++, texts.length - 1)];
    return typeof t === 'string' ? { type: 'text/event-stream', parts: [t] } : t;
  };
}

/** The message-like events of a log: [type, data, lastEventId]. */
const messages = (log) => log.filter((e) => e.type !== 'open' && e.type !== 'error').map((e) => [e.type, e.data, e.lastEventId]);

describe('zeqE2EEventSource: the event stream format', () => {
  // The examples of the HTML standard, section "Server-sent events".
  const EXAMPLES = [
    ['three messages, one of two lines',
      'data: This is the first message.\n\ndata: This is the second message, it\ndata: has two lines.\n\n' +
      'data: This is the third message.\n\n',
      [['message', 'This is the first message.', ''], ['message', 'This is the second message, it\nhas two lines.', ''],
        ['message', 'This is the third message.', '']]],
    ['event types', 'event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n',
      [['add', '73857293', ''], ['remove', '2153', ''], ['add', '113411', '']]],
    ['data in lines', 'data: YHOO\ndata: +2\ndata: 10\n\n', [['message', 'YHOO\n+2\n10', '']]],
    ['a comment, ids, and an event never ended',
      ': test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n',
      [['message', 'first event', '1'], ['message', 'second event', '']]],
    ['empty data', 'data\n\ndata\ndata\n\ndata:\n', [['message', '', ''], ['message', '\n', '']]],
    ['a space after the colon, or none', 'data:test\n\ndata: test\n\n', [['message', 'test', ''], ['message', 'test', '']]],
  ];

  for (const [name, text, expected] of EXAMPLES) {
    it(`parses the standard's example "${name}" however its bytes fall into records`, async () => {
      for (const parts of recordings(text)) {
        serveStreams([{ type: 'text/event-stream', parts: [...parts, ''] }]);
        const { log } = await eventsOf('/events', { names: ['add', 'remove'] });
        assert.deepEqual(messages(log), expected, `records of ${parts.map((p) => p.length)}`);
        assert.deepEqual(log[0].type, 'open');
        assert.deepEqual([log.at(-1).type, log.at(-1).readyState], ['error', 0], 'the end of the stream: reconnecting');
      }
    });
  }

  it('ends lines with CRLF, LF or CR, also split between records', async () => {
    const base = 'data: one\n: comment\ndata: two\n\nid: 3\ndata: three\n\n';
    for (const eol of ['\r\n', '\r', '\n']) {
      for (const parts of recordings(base.replace(/\n/g, eol))) {
        serveStreams([{ type: 'text/event-stream', parts }]);
        const { log } = await eventsOf('/events');
        assert.deepEqual(messages(log), [['message', 'one\ntwo', ''], ['message', 'three', '3']],
          `${JSON.stringify(eol)}, records of ${parts.map((p) => p.length)}`);
      }
    }
    serveStreams(['data: a\r\r\ndata: b\n\r\n']);
    assert.deepEqual(messages((await eventsOf('/events')).log), [['message', 'a', ''], ['message', 'b', '']],
      'CR then CRLF: two line ends');
  });

  it('drops one leading BOM, decodes UTF-8 split anywhere, and replaces bad bytes', async () => {
    for (const parts of recordings('\uFEFFdata: é漢😀\n\n')) {
      serveStreams([{ type: 'text/event-stream', parts }]);
      assert.deepEqual(messages((await eventsOf('/events')).log), [['message', 'é漢😀', '']]);
    }
    serveStreams(['\uFEFF\uFEFFdata: x\n\ndata: y\n\n']);
    assert.deepEqual(messages((await eventsOf('/events')).log), [['message', 'y', '']],
      'a second BOM is part of the first field\'s name');
    serveStreams([{ type: 'text/event-stream', parts: [Buffer.from([0x64, 0x61, 0x74, 0x61, 0x3a, 0xff, 0x0a, 0x0a])] }]);
    assert.deepEqual(messages((await eventsOf('/events')).log), [['message', '\uFFFD', '']]);
  });

  it('keeps the last event ID: id with a NUL ignored, an empty id clears it, an id alone sets it', async () => {
    serveStreams(['id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\nid\ndata: c\n\nid: 7\n\nevent: named\ndata: d\n\n']);
    const { source, log } = await eventsOf('/events', { names: ['named'] });
    assert.deepEqual(messages(log), [['message', 'a', '1'], ['message', 'b', '1'], ['message', 'c', ''], ['named', 'd', '7']]);
    assert.equal(source.lastEventId, '7');
    assert.ok(log.filter((e) => e.type === 'message').every((e) => e.origin === ORIGIN), 'origin: the stream\'s');
  });

  it('ignores unknown fields, bad retry values, and what follows the last blank line', async () => {
    serveStreams(['retry: 10x\nretry\nfoo: bar\nDATA: no\ndata: kept\nevent\n\ndata: lost\nid: 9\n']);
    const started = Date.now();
    const { source, log } = await eventsOf('/events', { done: (l) => l.filter((e) => e.type === 'message').length === 2 });
    assert.deepEqual(messages(log), [['message', 'kept', ''], ['message', 'kept', '']]);
    assert.equal(source.lastEventId, '', 'an id of an event never ended does not count');
    const wait = requests.at(-1).at - log.find((e) => e.type === 'error').at;
    assert.ok(wait >= 2900, `no valid retry: the default 3 s before reconnecting, waited ${wait} ms`);
    assert.ok(Date.now() - started < 20000);
  });
});

describe('zeqE2EEventSource: connections', () => {
  it('reconnects after the reconnection time of `retry:` with Last-Event-ID, and stops at a 204', async () => {
    serveStreams([
      'retry: 150\nid: 1\ndata: first\n\n: the script ends here\n',
      'id: é2\ndata: second\n\ndata: no id\n\n',
      { status: 204, type: 'text/event-stream', parts: [''] },
    ]);
    const from = requests.length;
    const { source, log } = await eventsOf('/events?x=1', { done: (l) => l.some((e) => e.type === 'error' && e.readyState === 2) });
    assert.deepEqual(log.map((e) => [e.type, e.data, e.lastEventId, e.readyState]), [
      ['open', undefined, undefined, 1],
      ['message', 'first', '1', 1],
      ['error', undefined, undefined, 0],
      ['open', undefined, undefined, 1],
      ['message', 'second', 'é2', 1],
      ['message', 'no id', 'é2', 1],
      ['error', undefined, undefined, 0],
      ['error', undefined, undefined, 2],
    ]);
    const seen = requests.slice(from);
    assert.equal(seen.length, 3);
    assert.deepEqual(seen.map((r) => r.headers.get('last-event-id')), [null, '1', Buffer.from('é2').toString('latin1')],
      'Last-Event-ID: the last event ID, in UTF-8');
    for (const r of seen) {
      assert.equal(r.url, `${ORIGIN}/events?x=1`);
      assert.match(r.headers.get('accept'), /^text\/event-stream, application\/x-zeq-e2e$/);
      assert.equal(r.cache, 'no-store');
      assert.equal(r.credentials, 'same-origin');
    }
    const errors = log.filter((e) => e.type === 'error');
    for (const [i, e] of errors.slice(0, 2).entries()) {
      const wait = seen[i + 1].at - e.at;
      assert.ok(wait >= 140 && wait < 2900, `reconnected after retry: 150, not the default 3 s (${wait} ms)`);
    }
    assert.equal(source.readyState, 2);
    assert.equal(source.url, `${ORIGIN}/events?x=1`);
    await sleep(300);
    assert.equal(requests.length, from + 3, 'no request after the 204');
  });

  it('fails for good on another status, another type, or an answer that does not verify; reconnects after a cut', async () => {
    const cases = [
      ['a 500', { status: 500, type: 'text/event-stream', parts: ['data: x\n\n'] }, 2, undefined],
      ['text/plain', { type: 'text/plain', parts: ['data: x\n\n'] }, 2, undefined],
      ['a record that does not verify', { type: 'text/event-stream', parts: ['data: before\n\n', 'data: bad\n\n', ''],
        edit: (m, o) => { m[o[1] + 6] ^= 1; return m; } }, 2, 'e2e_bad_envelope'],
      ['bytes after the final record', { type: 'text/event-stream', parts: ['data: before\n\n'], chunks: [13 + 20 + 14],
        edit: (m) => Buffer.concat([m, Buffer.from([0])]) }, 2, 'e2e_bad_envelope'],
      ['an answer cut before its final record', { type: 'text/event-stream', parts: ['retry: 50\ndata: before\n\n', ''],
        edit: (m, o) => m.subarray(0, o[1]) }, 0, 'e2e_truncated'],
      ['a connection that fails', { type: 'text/event-stream', parts: ['retry: 50\ndata: before\n\n', ''],
        edit: (m, o) => m.subarray(0, o[1]), end: new TypeError('network error') }, 0, 'e2e_truncated'],
      ['a connection that fails after the final record', { type: 'text/event-stream', parts: ['retry: 50\ndata: before\n\n', ''],
        end: new TypeError('network error') }, 0, undefined],
    ];
    for (const [name, answer, state, code] of cases) {
      serveStreams([answer, { status: 204, type: 'text/event-stream', parts: [''] }]);
      const { log } = await eventsOf('/events');
      const error = log.find((e) => e.type === 'error');
      assert.deepEqual([error.readyState, error.error], [state, code], name);
      if (/before/.test(answer.parts[0])) {
        assert.deepEqual(messages(log), [['message', 'before', '']], `${name}: what verified before is delivered`);
      }
    }
  });

  it('has the interface of EventSource; close() stops at once, also inside a handler', async () => {
    assert.throws(() => lib.zeqE2EEventSource('http://[bad'), (e) => e.name === 'SyntaxError');
    serveStreams(['data: 1\n\ndata: 2\n\n']);
    const source = lib.zeqE2EEventSource('/events?iface', { withCredentials: true });
    assert.ok(source instanceof EventTarget && source instanceof lib.ZeqE2EEventSource);
    assert.deepEqual([source.CONNECTING, source.OPEN, source.CLOSED, lib.ZeqE2EEventSource.CLOSED], [0, 1, 2, 2]);
    assert.deepEqual([source.readyState, source.withCredentials, source.url, source.lastEventId],
      [0, true, `${ORIGIN}/events?iface`, '']);
    const seen = [];
    const handler = function onmessage(ev) { seen.push([this === source, ev.data]); source.close(); };
    source.onmessage = handler;
    source.onopen = () => seen.push('open');
    source.onerror = () => seen.push('error');
    assert.equal(source.onmessage, handler);
    await until(() => seen.length >= 2);
    await sleep(100);
    assert.deepEqual(seen, ['open', [true, '1']], 'nothing after close()');
    assert.equal(source.readyState, 2);
    assert.equal(requests.at(-1).credentials, 'include');
    source.onmessage = null;
    assert.equal(source.onmessage, null);
  });
});

async function until(check, ms = 5000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(5);
  }
}
