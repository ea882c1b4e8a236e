// Streamed v2 answers in headless Chromium (Debian's chromium driven by
// playwright-core), against a real Apache on a host without any secret:
//  - zeqE2EEventSource receives a live event stream from a CGI script
//    (client/test/cgi/sse.cgi writes 20 events 150 ms apart, each with the
//    time it was written): every event reaches the page before the next one
//    is written; named events, lastEventId, CRLF lines, reconnection with
//    Last-Event-ID after the script ends, the reconnection time of `retry:`,
//    and a 204 that stops it. On the network the stream was sealed, and
//    node:crypto opens it (the keys from the page's ECDH key, captured where
//    Web Crypto makes it, client/test/v2.mjs) into one record per event.
//  - a page streams a 100 MiB encrypted download (the echo backend's marked
//    pattern, through mod_proxy_http) through response.body with a progress
//    count, hashing it as it comes (SHA-256 in the page, incremental,
//    checked against node:crypto first); the renderer's memory is sampled
//    from /proc during the download.
//  - truncation: a backend that cuts its answer (the module aborts the
//    connection), and answers edited by page.route that end cleanly without
//    their final record, with a bit flipped in a middle record, or with
//    bytes after the final record: e2e_truncated and e2e_bad_envelope from
//    the body's reader and from text()/arrayBuffer(), never a shorter body,
//    nothing of the bad record.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { launchChromium } from './chromium.mjs';
import { startServer, FILES } from './server.mjs';
import * as v2 from './v2.mjs';

const MIB = 1024 * 1024;
const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let server;
let browser;
let context;

before(async () => {
  server = await startServer('browser-stream');
  // gc() in the page: the renderer's memory during the download is then
  // what it holds, not garbage waiting for a collection.
  browser = await launchChromium(server.dir, { args: ['--js-flags=--expose-gc'] });
  context = browser.context;
  await context.addInitScript(v2.clientKeyCaptureScript());
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    assert.deepEqual(await server.stopChecked([
      // the backend that cuts its answer, on purpose (mod_proxy_http, then the module)
      /\[proxy_http:error\] .*AH01110: error reading response/,
      /ZEQ50003: sealed answer cut short/,
    ]), [], 'unexpected error-log lines');
  }
});

/**
 * A blank page of the host without a secret, the library imported and a v2
 * session made; records every request it makes. Resolves to { page, seen,
 * session (node:crypto's keys of the page's session) }.
 */
async function v2Page() {
  const page = await context.newPage();
  const seen = [];
  page.on('request', (request) => seen.push(request));
  await page.goto(`${server.urls.nosecret}/files/blank.html`);
  await page.evaluate(async () => {
    window.zeqLib = await import('/static/zeq-e2e-client.js');
    await window.zeqLib.zeqE2EHandshake(location.origin);
  });
  const hs = seen.find((r) => new URL(r.url()).pathname === '/api/e2e/handshake');
  const answer = JSON.parse((await (await hs.response()).body()).toString());
  const session = v2.keysFromHandshake(JSON.parse(hs.postDataBuffer().toString()), answer,
    await page.evaluate(() => window.zeqTestKeys));
  return { page, seen, session };
}

/** The requests of a page to a path, in order. */
const requestsTo = (seen, path) => seen.filter((r) => new URL(r.url()).pathname === path);

/**
 * Opens zeqE2EEventSource(url) in the page and records every event (the
 * arrival time, readyState then) until an error event with readyState
 * CLOSED, or `errors` error events; then closes it.
 */
function sourceEvents(page, url, { errors = Infinity, names = ['tick'], ms = 30000 } = {}) {
  return page.evaluate(async ({ url, errors, names, ms }) => {
    const source = window.zeqLib.zeqE2EEventSource(url);
    const log = [];
    const at = () => performance.timeOrigin + performance.now();
    const record = (ev) => log.push({ type: ev.type, data: ev.data, lastEventId: ev.lastEventId, origin: ev.origin,
      readyState: source.readyState, error: ev.error ? ev.error.code : undefined, at: at() });
    source.onopen = record;
    source.onmessage = record;
    source.onerror = record;
    for (const n of names) source.addEventListener(n, record);
    const end = Date.now() + ms;
    while (!log.some((e) => e.type === 'error' && e.readyState === 2)
      && log.filter((e) => e.type === 'error').length < errors && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 5));
    }
    source.close();
    return { log, url: source.url, lastEventId: source.lastEventId, readyState: source.readyState };
  }, { url, errors, names, ms });
}

/**
 * Routes the requests of a page to a path through route.fetch(), keeping
 * what came: [{ requestHeaders, status, headers, body }]. (A route hands the
 * page the answer whole, once it has ended: not for timing.)
 */
async function recordAnswers(page, glob) {
  const answers = [];
  await page.route(glob, async (route) => {
    const response = await route.fetch();
    const body = await response.body();
    answers.push({ requestHeaders: route.request().headers(), status: response.status(), headers: response.headers(), body });
    await route.fulfill({ response, body });
  });
  return answers;
}

/** A recorded answer as node:crypto opens it: { plaintext, records }. */
function openRecorded(answer, session) {
  const aad = v2.responseAAD(session.sessionId, Number(answer.requestHeaders['x-e2e-seq']), answer.status,
    answer.headers['x-e2e-content-type'] ?? '', answer.headers['x-e2e-content-encoding'] ?? '');
  return v2.openMessageDetail(session.s2c, aad, answer.body);
}

const ms = (x) => `${x.toFixed(1)} ms`;

describe('zeqE2EEventSource in Chromium, from a CGI script', () => {
  it('delivers each event of a live stream before the next one is written', async (t) => {
    const { page, session } = await v2Page();
    try {
      // Until the script ends (the source then reconnects: its first error).
      const out = await sourceEvents(page, '/t-cgi/sse.cgi?n=20&ms=150', { errors: 1 });
      const events = out.log.filter((e) => e.data !== undefined);
      assert.equal(out.log[0].type, 'open');
      assert.deepEqual([out.log.at(-1).type, out.log.at(-1).readyState], ['error', 0]);
      assert.equal(events.length, 20, JSON.stringify(out.log.slice(-3)));
      events.forEach((e, i) => {
        const d = JSON.parse(e.data);
        assert.equal(d.id, i);
        assert.equal(e.type, i % 2 ? 'tick' : 'message', `event ${i}: named on odd ids`);
        assert.equal(e.lastEventId, String(i));
        assert.equal(e.origin, server.urls.nosecret);
        e.written = d.written * 1000;
      });
      const late = events.slice(0, -1).filter((e, i) => e.at >= events[i + 1].written);
      assert.deepEqual(late.map((e) => JSON.parse(e.data).id), [],
        'every event arrived before the next one was written (150 ms later)');
      const lags = events.map((e) => e.at - e.written).sort((a, b) => a - b);
      assert.ok(lags[0] > -5, `no event arrives before it is written (clock check): ${lags[0]}`);
      t.diagnostic(`SSE over CGI, 20 events 150 ms apart: arrival after writing min ${ms(lags[0])}, ` +
        `median ${ms(lags[10])}, max ${ms(lags[19])}`);

      // On the network (a shorter run, recorded by a route): a sealed
      // request, a streamed sealed answer of the CGI's text/event-stream,
      // one record per event (each flush), that node:crypto opens.
      const answers = await recordAnswers(page, '**/t-cgi/sse.cgi*');
      const recorded = await sourceEvents(page, '/t-cgi/sse.cgi?n=5&ms=50', { errors: 1 });
      assert.equal(answers.length, 1);
      const [wire] = answers;
      assert.equal(wire.headers['content-type'], v2.MEDIA_TYPE);
      assert.equal(wire.headers['x-e2e-content-type'], 'text/event-stream');
      assert.equal(wire.headers['content-length'], undefined, 'streamed: no Content-Length');
      assert.match(wire.requestHeaders.accept, /^text\/event-stream, application\/x-zeq-e2e$/);
      const opened = openRecorded(wire, session);
      const text = opened.plaintext.toString();
      assert.deepEqual((text.match(/^data: .*$/gm) || []).map((l) => l.slice(6)),
        recorded.log.filter((e) => e.data !== undefined).map((e) => e.data), 'the page got what the CGI wrote');
      assert.ok(opened.records.filter((n) => n > 0).length >= 5, `a record per event: ${opened.records}`);
      assert.equal(wire.body.indexOf('"written"'), -1, 'no plaintext on the wire');
    } finally {
      await page.close();
    }
  });

  it('reconnects when the script ends (retry:, Last-Event-ID), parses CRLF lines, stops at a 204', async () => {
    const { page, seen, session } = await v2Page();
    try {
      const out = await sourceEvents(page, '/t-cgi/sse.cgi?n=3&ms=20&retry=300&until=5&eol=crlf');
      const kinds = out.log.map((e) => (e.data !== undefined ? `${e.type} ${JSON.parse(e.data).id} ${e.lastEventId}` : `${e.type} ${e.readyState}`));
      assert.deepEqual(kinds, ['open 1', 'message 0 0', 'tick 1 1', 'message 2 2', 'error 0',
        'open 1', 'tick 3 3', 'message 4 4', 'tick 5 5', 'error 0', 'error 2']);
      // What the script saw: the second connection came with Last-Event-ID 2.
      const seenLast = out.log.filter((e) => e.data !== undefined).map((e) => JSON.parse(e.data).lastEventId);
      assert.deepEqual(seenLast, ['', '', '', '2', '2', '2']);
      assert.equal(out.lastEventId, '5');
      assert.equal(out.readyState, 2);
      const errors = out.log.filter((e) => e.type === 'error');
      const opens = out.log.filter((e) => e.type === 'open');
      const wait = opens[1].at - errors[0].at;
      assert.ok(wait >= 300 && wait < 3000, `reconnected after retry: 300 (not the default 3 s): ${wait} ms`);

      await sleep(500);
      const requests = requestsTo(seen, '/t-cgi/sse.cgi');
      assert.equal(requests.length, 3, 'no request after the 204');
      const headers = await Promise.all(requests.map((r) => r.allHeaders()));
      assert.deepEqual(headers.map((h) => h['last-event-id']), [undefined, '2', '5']);
      const seqs = headers.map((h) => Number(h['x-e2e-seq']));
      assert.equal(new Set(seqs).size, 3, 'each connection its own sequence number');
      const statuses = await Promise.all(requests.map(async (r) => (await r.response()).status()));
      assert.deepEqual(statuses, [200, 200, 204]);
      const stop = await requests[2].response();
      const seal = (await stop.allHeaders())['x-e2e-seal'];
      assert.equal(v2.openMessage(session.s2c, v2.responseAAD(session.sessionId, seqs[2], 204, 'text/event-stream'),
        v2.fromB64url(seal)).length, 0, 'the 204 was sealed');
    } finally {
      await page.close();
    }
  });
});

// ---------------------------------------------------------------------------
// In the page: SHA-256, incremental (Web Crypto hashes only whole buffers).

function installSha256() {
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);
  window.sha256 = () => {
    const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    const W = new Uint32Array(64);
    const block = new Uint8Array(64);
    let used = 0;
    let length = 0;
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    const compress = (b, off) => {
      for (let i = 0; i < 16; i++) W[i] = (b[off + 4 * i] << 24) | (b[off + 4 * i + 1] << 16) | (b[off + 4 * i + 2] << 8) | b[off + 4 * i + 3];
      for (let i = 16; i < 64; i++) {
        const x = W[i - 15];
        const y = W[i - 2];
        W[i] = (W[i - 16] + (rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3)) + W[i - 7] + (rotr(y, 17) ^ rotr(y, 19) ^ (y >>> 10))) | 0;
      }
      let [a, b2, c, d, e, f, g, h] = H;
      for (let i = 0; i < 64; i++) {
        const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b2) ^ (a & c) ^ (b2 & c))) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b2; b2 = a; a = (t1 + t2) | 0;
      }
      H[0] += a; H[1] += b2; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
    };
    return {
      update(data) {
        let i = 0;
        length += data.length;
        if (used) {
          const k = Math.min(64 - used, data.length);
          block.set(data.subarray(0, k), used);
          used += k;
          i = k;
          if (used < 64) return;
          compress(block, 0);
          used = 0;
        }
        for (; i + 64 <= data.length; i += 64) compress(data, i);
        block.set(data.subarray(i), 0);
        used = data.length - i;
      },
      hex() {
        const bits = length * 8;
        block[used++] = 0x80;
        if (used > 56) { block.fill(0, used); compress(block, 0); used = 0; }
        block.fill(0, used, 56);
        new DataView(block.buffer).setUint32(56, Math.floor(bits / 2 ** 32));
        new DataView(block.buffer).setUint32(60, bits >>> 0);
        compress(block, 0);
        return Array.from(H, (x) => x.toString(16).padStart(8, '0')).join('');
      },
    };
  };
}

/** The first n bytes of the echo backend's marked pattern (t/lib/ZeqTest/Fixtures.pm, marked_block). */
function markedSha256(n) {
  const h = createHash('sha256');
  for (let i = 0, off = 0; off < n; i++, off += MIB) {
    const block = Buffer.alloc(MIB);
    block.write(`zeq-e2e marked MiB ${String(i).padStart(8, '0')}\n`, 'latin1');
    h.update(block.subarray(0, Math.min(MIB, n - off)));
  }
  return h.digest('hex');
}

/** The summed VmRSS (kB) of this test's Chromium renderer processes (descendants of its browser process). */
function rendererRssKb() {
  const procs = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      procs.set(Number(d), { ppid, cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8') });
    } catch { /* gone */ }
  }
  const marker = `--user-data-dir=${server.dir}/chromium-profile-`;
  const mine = new Set([...procs].filter(([, p]) => p.cmd.includes(marker) && !p.cmd.includes('--type=')).map(([pid]) => pid));
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, p] of procs) if (!mine.has(pid) && mine.has(p.ppid)) { mine.add(pid); grew = true; }
  }
  let kb = 0;
  for (const pid of mine) {
    if (!procs.get(pid).cmd.includes('--type=renderer')) continue;
    try {
      kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
    } catch { /* gone */ }
  }
  return kb;
}

describe('a 100 MiB encrypted download in Chromium', () => {
  it('streams through response.body with progress, exact bytes, about one record held', async (t) => {
    const n = 100 * MIB;
    const { page, seen, session } = await v2Page();
    try {
      await page.evaluate(installSha256);
      // The page's SHA-256 against node:crypto first.
      const samples = [0, 3, 55, 56, 63, 64, 65, 1000, 100000];
      const pageHashes = await page.evaluate((sizes) => sizes.map((k) => {
        const h = window.sha256();
        const b = new Uint8Array(k).map((_, i) => (i * 31 + 7) & 0xff);
        h.update(b.subarray(0, k >> 1));
        h.update(b.subarray(k >> 1));
        return h.hex();
      }), samples);
      assert.deepEqual(pageHashes, samples.map((k) => sha256(Buffer.from(Array.from({ length: k }, (_, i) => (i * 31 + 7) & 0xff)))));

      const base = rendererRssKb();
      let peak = base;
      const sampler = setInterval(() => { peak = Math.max(peak, rendererRssKb()); }, 100);
      let out;
      try {
        out = await page.evaluate(async (path) => {
          const started = performance.now();
          const res = await window.zeqLib.zeqE2EFetch(path);
          const total = Number(res.headers.get('content-length'));
          const reader = res.body.getReader();
          const hash = window.sha256();
          const progress = [];
          let loaded = 0;
          let chunks = 0;
          let largest = 0;
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            hash.update(value);
            loaded += value.length;
            chunks++;
            if (chunks % 512 === 0) window.gc();
            largest = Math.max(largest, value.length);
            if (progress.length === 0 || loaded - progress.at(-1).loaded >= 4 * 1024 * 1024 || loaded === total) {
              progress.push({ loaded, total, at: performance.now() - started });
            }
          }
          return { status: res.status, type: res.headers.get('content-type'), total, loaded, chunks, largest, progress,
            hash: hash.hex(), ms: performance.now() - started };
        }, `/proxy/big?n=${n}`);
      } finally {
        clearInterval(sampler);
      }
      assert.equal(out.status, 200);
      assert.equal(out.type, 'application/octet-stream');
      assert.equal(out.total, n, 'Content-Length: the plaintext length');
      assert.equal(out.loaded, n);
      assert.equal(out.hash, markedSha256(n), 'the exact bytes (SHA-256 computed in the page as they came)');
      assert.ok(out.largest <= 16384, `one record per chunk at most: ${out.largest}`);
      const before = out.progress.filter((p) => p.loaded < n);
      assert.ok(before.length >= 10, `progress before the end: ${before.length} updates`);
      assert.ok(out.progress.every((p, i) => i === 0 || p.loaded > out.progress[i - 1].loaded));
      assert.ok(before.at(-1).at < out.ms, 'updates came during the download');
      const grown = (peak - base) / 1024;
      t.diagnostic(`100 MiB in ${(out.ms / 1000).toFixed(1)} s (${(100 / (out.ms / 1000)).toFixed(0)} MiB/s through ` +
        `the page, hashing included), ${out.chunks} chunks, ${out.progress.length} progress updates; renderer RSS ` +
        `${(base / 1024).toFixed(0)} MiB before, peak ${(peak / 1024).toFixed(0)} MiB (+${grown.toFixed(0)} MiB, gc() every 8 MiB)`);
      // (A native fetch of the same bytes read the same way grows it by
      // about 20 MiB too: the network's buffers.)
      assert.ok(grown < 64, `the renderer grew by ${grown.toFixed(0)} MiB: it does not hold the 100 MiB`);

      const [request] = requestsTo(seen, '/proxy/big');
      const headers = await (await request.response()).allHeaders();
      assert.equal(headers['content-length'], String(v2.sealedLength(n)), 'the exact sealed Content-Length');
      assert.equal(headers['content-type'], v2.MEDIA_TYPE);
      assert.ok(session.sessionId);
    } finally {
      await page.close();
    }
  });
});

// ---------------------------------------------------------------------------
// Truncation.

/**
 * Reads a body in the page: { status, bytes (base64 of what came), error:
 * what the reader or the fetch itself rejected with ({ code, message }) or
 * null, text and arrayBuffer: how those of two more fetches ended }.
 */
function readInPage(page, path, { again = true } = {}) {
  return page.evaluate(async ({ path, again }) => {
    const outcome = async (f) => f().then(() => 'resolved', (e) => e.code || `${e.name}: ${e.message}`);
    const more = async () => (again ? {
      text: await outcome(async () => (await window.zeqLib.zeqE2EFetch(path)).text()),
      arrayBuffer: await outcome(async () => (await window.zeqLib.zeqE2EFetch(path)).arrayBuffer()),
    } : {});
    let res;
    try {
      res = await window.zeqLib.zeqE2EFetch(path);
    } catch (e) {
      return { status: null, bytes: '', chunks: [], error: { code: e.code, name: e.name, message: e.message }, ...(await more()) };
    }
    const reader = res.body.getReader();
    const parts = [];
    let error = null;
    for (;;) {
      try {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
      } catch (e) {
        error = { code: e.code, name: e.name, message: e.message };
        break;
      }
    }
    const all = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let off = 0;
    for (const p of parts) { all.set(p, off); off += p.length; }
    let bin = '';
    for (const b of all) bin += String.fromCharCode(b);
    return { status: res.status, length: res.headers.get('content-length'), bytes: btoa(bin), chunks: parts.map((p) => p.length),
      error, ...(await more()) };
  }, { path, again });
}

describe('truncated and altered answers in Chromium', () => {
  it('a backend that cuts its answer: e2e_truncated, never a shorter body', async () => {
    const { page } = await v2Page();
    try {
      const out = await readInPage(page, `/proxy/cut?n=${MIB}&after=300000`);
      // (When the reset comes before the page read the first record, the
      // kernel may drop what it had: then the fetch itself is cut short.)
      if (out.status !== null) {
        assert.equal(out.status, 200);
        assert.equal(out.length, String(MIB), 'the length announced');
      }
      assert.deepEqual([out.error && out.error.code, out.text, out.arrayBuffer], ['e2e_truncated', 'e2e_truncated', 'e2e_truncated']);
      const got = Buffer.from(out.bytes, 'base64');
      assert.ok(got.length <= 300000 && got.length % 16384 === 0, `whole records only: ${got.length}`);
      const expected = Buffer.alloc(got.length);
      expected.write('zeq-e2e marked MiB 00000000\n', 'latin1');
      assert.ok(got.equals(expected), 'what came is the start of the answer');
      assert.match(server.logText(), /ZEQ50003: sealed answer cut short/);
    } finally {
      await page.close();
    }
  });

  it('answers that end cleanly without their final record, with a bad middle record, or with bytes after the final one (page.route)', async () => {
    const { page } = await v2Page();
    const file = FILES['bytes.bin'];
    const record = 4 + 16384 + 16;
    let edit = null;
    await page.route('**/files/bytes.bin', async (route) => {
      const response = await route.fetch();
      const body = edit(await response.body());
      const headers = { ...response.headers(), 'content-length': String(body.length) };
      await route.fulfill({ response, body, headers });
    });
    try {
      // 300000 bytes: 18 records of 16 KiB and a final one of 5088.
      edit = (b) => b.subarray(0, 13 + 18 * record);
      const cut = await readInPage(page, '/files/bytes.bin');
      assert.equal(cut.status, 200);
      assert.deepEqual([cut.error && cut.error.code, cut.text, cut.arrayBuffer], ['e2e_truncated', 'e2e_truncated', 'e2e_truncated']);
      assert.match(cut.error.message, /ends before its final record/);
      assert.ok(Buffer.from(cut.bytes, 'base64').equals(file.subarray(0, 18 * 16384)), 'every whole record, and no more');

      edit = (b) => b.subarray(0, 13 + 18 * record + 100);
      const inside = await readInPage(page, '/files/bytes.bin', { again: false });
      assert.equal(inside.error && inside.error.code, 'e2e_truncated');
      assert.match(inside.error.message, /ends inside a record/);

      edit = (b) => { const c = Buffer.from(b); c[13 + 5 * record + 4 + 1000] ^= 0x10; return c; };
      const flipped = await readInPage(page, '/files/bytes.bin');
      assert.deepEqual([flipped.error && flipped.error.code, flipped.text, flipped.arrayBuffer],
        ['e2e_bad_envelope', 'e2e_bad_envelope', 'e2e_bad_envelope']);
      assert.ok(Buffer.from(flipped.bytes, 'base64').equals(file.subarray(0, 5 * 16384)), 'records 0 to 4, nothing of record 5');

      edit = (b) => Buffer.concat([b, Buffer.from('more')]);
      const extended = await readInPage(page, '/files/bytes.bin');
      assert.deepEqual([extended.error && extended.error.code, extended.text], ['e2e_bad_envelope', 'e2e_bad_envelope']);
      assert.match(extended.error.message, /has 4 bytes after its final record/);

      edit = (b) => b;
      const whole = await readInPage(page, '/files/bytes.bin');
      assert.deepEqual([whole.error, whole.text, whole.length], [null, 'resolved', String(file.length)]);
      assert.ok(Buffer.from(whole.bytes, 'base64').equals(file));
      assert.ok(whole.chunks.every((c) => c <= 16384));
      await sleep(0);
    } finally {
      await page.close();
    }
  });
});
