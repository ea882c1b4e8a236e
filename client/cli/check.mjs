// zeq-e2e check URL: what a server with mod_zeq_e2e offers at URL's origin,
// found with the library's own handshakes, a sealed GET of URL through the
// library, and a plaintext GET of URL; reported as text or JSON.
//
// The handshakes the command line does not ask for are made as probes
// first: protocol 2 without a secret, protocol 2 in pre-shared key mode and
// protocol 1, the last two with a random secret that is not the host's (a
// handshake succeeds or is refused before any key is used: the answer tells
// whether the version is offered and whether the host has a secret; the
// probes' sessions are never used). Then the command line's own handshake,
// whose session the sealed GET uses.
import { zeqE2EHandshake, zeqE2EFetch } from '../zeq-e2e-client.js';
import { EXIT, CliError, explain, statusOfModuleError } from './exit.mjs';

const KINDS = {
  v2: { name: 'protocol 2', options: () => ({}) },
  psk: { name: 'protocol 2, pre-shared key mode', options: (secret) => ({ secret }) },
  v1: { name: 'protocol 1', options: (secret) => ({ protocol: 1, secret }) },
};

/** What the handshake results say the host offers. */
function offers(results) {
  const { v2, psk, v1 } = results;
  const ok = (r) => r === 'ok';
  const v2Offered = [v2, psk].some((r) => ok(r) || r === 'e2e_psk_required') ? true
    : [v2, psk].every((r) => r === 'e2e_version_unsupported') ? false : null;
  const v1Offered = ok(v1) ? true : ['e2e_version_unsupported', 'e2e_unavailable'].includes(v1) ? false : null;
  // A host without a secret answers a PSK or v1 handshake 503 e2e_unavailable
  // before it says whether it offers the version (PROTOCOL.md 18.9).
  const secret = ok(psk) || ok(v1) || v1 === 'e2e_version_unsupported' || psk === 'e2e_version_unsupported' ? true
    : psk === 'e2e_unavailable' ? false : null;
  const pskMode = v2 === 'e2e_psk_required' ? 'required' : ok(psk) ? 'available' : psk === 'e2e_unavailable' ? 'unavailable' : null;
  const versions = [v2Offered && 2, v1Offered && 1].filter(Boolean);
  return { versions, v2: v2Offered, v1: v1Offered, secret, psk: pskMode };
}

/** Signing as the v2 handshake answers on the wire show it. */
function signing(wire, info, pinned) {
  const answers = wire.handshakes.filter((h) => h.status === 200 && h.answer && h.answer.version === 2).map((h) => h.answer);
  if (!answers.length) return { signed: null, signer: null, verified: false };
  const signed = answers.find((a) => typeof a.signature === 'string');
  return {
    signed: Boolean(signed),
    signer: signed ? signed.signer : null,
    verified: Boolean(pinned && info && info.signer),
  };
}

function sealedAnswer(wire, url) {
  const e = wire.exchanges.filter((x) => !x.webSocket && x.url.split('#')[0] === url.split('#')[0] && x.session).pop();
  if (!e || !e.responseHeaders) return {};
  const records = e.responseSealed ? e.responseSealed.records : [];
  return {
    wireBytes: e.responseSize === undefined ? null : e.responseSize,
    records: records.length,
    largestRecord: records.reduce((m, r) => Math.max(m, r.length), 0),
    length: e.responseHeaders.has('content-length') ? 'Content-Length' : 'streamed (no Content-Length)',
    sequence: Number(e.requestHeaders.get('x-e2e-seq')),
  };
}

function text(report) {
  const lines = [];
  const row = (label, value) => lines.push(`${label.padEnd(15)}${value}`);
  const o = report.offers;
  row('server', `${report.origin} (handshake at ${report.handshakePath})`);
  const v = (flag, yes, no) => (flag === true ? yes : flag === false ? no : 'unknown (see -v)');
  row('versions', o.versions.length ? `${o.versions.join(' and ')} offered` : 'none offered');
  row('  protocol 2', v(o.v2, `offered (${report.probes.v2})`, `not offered (${report.probes.v2})`));
  row('  protocol 1', v(o.v1, 'offered', o.secret === false ? 'not offered (no secret: e2e_unavailable)' : `not offered (${report.probes.v1})`));
  row('pre-shared key', o.psk === 'required' ? 'required (ZeqE2ERequirePSK On): give --psk-file'
    : o.psk === 'available' ? 'available (the host has a secret)'
      : o.psk === 'unavailable' ? 'not available (the host has no secret)' : 'unknown (see -v)');
  const s = report.signing;
  row('signing', s.signed === null ? 'unknown (no protocol 2 answer)'
    : !s.signed ? 'not signed (no ZeqE2EServerKey): an active attacker on the path could answer the handshake'
      : s.verified ? `signed by ${s.signer}, verified against --server-key`
        : `signed by ${s.signer}, not checked: pin the key with --server-key`);
  if (report.session) {
    const ss = report.session;
    row('session', `protocol ${ss.version}${ss.psk ? ', pre-shared key mode' : ''}, lifetime ${ss.lifetime} s (ZeqE2ESessionTTL)`);
  } else {
    row('session', `none: ${report.error}`);
  }
  if (report.sealed) {
    const g = report.sealed;
    if (g.verified) {
      row('sealed GET', `${g.status}${g.moduleError ? ` ${g.moduleError}` : ''}, ${g.type || 'no type'}, ${g.bytes} bytes` +
        (g.records ? ` in ${g.records} record${g.records === 1 ? '' : 's'} (${g.wireBytes} on the wire, ${g.length})` : '') +
        (g.moduleError ? ': refused by the module' : ', verified'));
    } else {
      row('sealed GET', `failed: ${g.error}`);
    }
  }
  if (report.plaintext) {
    const p = report.plaintext;
    row('plaintext GET', p.error === null && p.status === 0 ? 'no answer'
      : `${p.status}${p.error ? ` ${p.error}` : ''}: ${p.refused ? 'refused (ZeqE2ERequire On)' : 'answered in plaintext (ZeqE2ERequire Off here)'}`);
  }
  const l = report.limits;
  row('limits', `session lifetime ${l.sessionLifetime === null ? 'unknown' : `${l.sessionLifetime} s`}` +
    `${l.largestRecord ? `; records of up to ${l.largestRecord} bytes seen` : ''}; body and message limits ` +
    '(ZeqE2EMaxRequestBody, ZeqE2EMaxResponseBody, ZeqE2EMaxMessage) are not told to clients');
  row('result', report.ok ? 'ok: sealed requests and answers work at this URL' : `failed: ${report.result}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Runs the check; resolves to EXIT.OK or throws a CliError with the exit
 * status. deps: { origin (the session's), handshakeOptions(), put(stream, data) }.
 */
export async function check(opts, io, wire, { origin, handshakeOptions, put }) {
  const options = handshakeOptions();
  const handshakePath = options.handshakePath || '/api/e2e/handshake';
  const mine = options.protocol === 1 ? 'v1' : options.secret ? 'psk' : 'v2';
  const probeSecret = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const results = {};
  const probes = {};
  for (const kind of Object.keys(KINDS).filter((k) => k !== mine)) {
    wire.label(`probe (${KINDS[kind].name})`);
    try {
      await zeqE2EHandshake(origin, { ...KINDS[kind].options(probeSecret), handshakePath });
      results[kind] = 'ok';
      probes[kind] = 'a handshake is answered';
    } catch (e) {
      const { status, message } = explain(e);
      if (status === EXIT.NETWORK) throw new CliError(status, message);
      results[kind] = e.code || 'error';
      probes[kind] = `answered ${e.status || ''} ${e.code || message}`.replace(/ {2}/, ' ');
    }
  }
  wire.label('handshake');
  const report = {
    url: opts.url, origin, handshakePath, offers: null, probes, signing: null, session: null, sealed: null,
    plaintext: null, limits: null, ok: false, result: null, error: null,
  };
  let info = null;
  let failure = null;
  try {
    info = await zeqE2EHandshake(origin, options);
    results[mine] = 'ok';
    probes[mine] = 'a handshake is answered';
  } catch (e) {
    failure = explain(e);
    if (failure.status === EXIT.NETWORK) throw new CliError(failure.status, failure.message);
    results[mine] = e.code || 'error';
    probes[mine] = `answered ${e.status || ''} ${e.code || failure.message}`.replace(/ {2}/, ' ');
    report.error = failure.message;
  }
  report.offers = offers(results);
  report.signing = signing(wire, info, options.serverKey !== undefined);
  const mineAnswer = wire.handshakes.filter((h) => h.label === 'handshake' && h.status === 200).pop();
  if (info) {
    report.session = {
      version: info.version, psk: info.psk, signer: info.signer,
      lifetime: mineAnswer && mineAnswer.answer ? mineAnswer.answer.expiresIn : Math.round((info.expiresAt - Date.now()) / 1000),
    };
  }
  let status = failure ? failure.status : EXIT.OK;
  if (info) {
    wire.label('sealed GET');
    try {
      const res = await zeqE2EFetch(opts.url, { headers: new Headers(opts.headers) });
      const body = new Uint8Array(await res.arrayBuffer());
      await wire.settled();
      report.sealed = {
        verified: !res.zeqE2EError, status: res.status, moduleError: res.zeqE2EError || null,
        type: res.zeqE2EError ? null : res.headers.get('content-type'), bytes: body.length, ...sealedAnswer(wire, opts.url),
      };
      if (res.zeqE2EError) {
        status = statusOfModuleError(res.zeqE2EError);
        report.result = `the module refused the sealed GET (${res.status} ${res.zeqE2EError})`;
      } else if (res.status >= 400) {
        status = EXIT.HTTP;
        report.result = `the sealed GET verified but its status is ${res.status}`;
      }
    } catch (e) {
      await wire.settled();
      const f = explain(e);
      status = f.status;
      report.sealed = { verified: false, error: f.message };
      report.result = e.code === 'e2e_downgrade'
        ? `the answer at ${opts.url} is not sealed: the module does not encrypt there (ZeqE2E Off?)`
        : f.message;
    }
  } else if (Object.values(results).every((r) => r === 'e2e_handshake_failed')) {
    // A 404 page (or another answer that is not the module's) at the handshake path.
    report.result = `no handshake at ${handshakePath} (${failure.message.replace(/^e2e_handshake_failed: /, '')}): ` +
      `the module is not loaded, or ZeqE2E On does not apply to ${handshakePath} on this host`;
  } else {
    report.result = `no session: ${failure.message}`;
  }
  wire.label('plaintext GET');
  try {
    const res = await globalThis.fetch(opts.url, { headers: new Headers(opts.headers), redirect: 'manual' });
    const body = await res.text();
    let error = null;
    try { const j = JSON.parse(body); if (j && typeof j.error === 'string' && j.error.startsWith('e2e_')) error = j.error; } catch { /* not JSON */ }
    report.plaintext = { status: res.status, error, refused: error === 'e2e_required' };
  } catch (e) {
    report.plaintext = { status: 0, error: null, refused: false, failure: explain(e).message };
  }
  await wire.settled();
  report.limits = {
    sessionLifetime: report.session ? report.session.lifetime : null,
    largestRecord: report.sealed && report.sealed.largestRecord ? report.sealed.largestRecord : null,
    requestBody: null, responseBody: null, message: null,
  };
  report.ok = status === EXIT.OK;
  if (report.ok) report.result = 'ok';
  await put(io.stdout, opts.json ? `${JSON.stringify(report, null, 2)}\n` : text(report));
  if (!report.ok) throw new CliError(status, `check ${opts.url}: ${report.result}`);
  return EXIT.OK;
}
