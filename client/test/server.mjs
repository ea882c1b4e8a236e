// A real Apache httpd with mod_zeq_e2e for the client's tests.
//
// startServer() writes a configuration into a fresh directory under the
// repository's build/ directory (under the system's temporary directory when,
// as root, Apache's www-data children could not reach build/), copies the
// demo's htdocs and cgi-bin there, and starts Debian's apache2 (found with apxs)
// in the foreground with the module from <repo>/.libs/mod_zeq_e2e.so (run
// `make` first), mod_cgid, mod_proxy_http to t/backend/echo.pl, and three
// IP-based virtual hosts on free 127.0.0.1 ports:
//
//   main      ZeqE2E On, ZeqE2ESecret file:..., the default TTL: protocol
//             v2 (plain and pre-shared key) and v1
//   short     the same secret, ZeqE2ESessionTTL 2 (renewal tests)
//   nosecret  ZeqE2E On and no secret: v2 only (v1 and PSK handshakes
//             answer 503)
//   signed    no secret, ZeqE2EServerKey with two P-256 keys generated
//             with openssl for this run (the first signs): v2 only
//   v1only    the secret and ZeqE2EProtocol 1: a v2 handshake answers
//             400 e2e_version_unsupported
//   psk       the secret and ZeqE2ERequirePSK On
//
// Every host serves the same URL space:
//   /                     demo/htdocs (the demo page)
//   /cgi-bin/             demo/cgi-bin (echo.cgi)
//   /t-cgi/               test CGIs written here (slow.cgi, redirect.cgi,
//                         nph-x.cgi) and those of client/test/cgi/ (sse.cgi)
//   /files/               static test files written here
//   /proxy/               the echo backend (ProxyPass)
//   /ws/                  the backend's WebSockets (/ws/echo, /ws/pulse)
//                         through mod_proxy_http (upgrade=websocket)
//   /wst/                 the same through mod_proxy_wstunnel (ws://)
//   /ws/small/...         ZeqE2EMaxMessage 4096
//   /off/...              the same with ZeqE2E Off (plaintext answers)
//   /limits/...           ZeqE2EMaxRequestBody 1024, ZeqE2EMaxResponseBody 1000
//   /required/...         ZeqE2ERequire On
//
// Sessions live in shmcb, which a graceful restart (restart()) empties: that
// is how the tests drop every session server-side.

import { spawn, execFileSync } from 'node:child_process';
import { createServer, connect } from 'node:net';
import {
  mkdirSync, mkdtempSync, writeFileSync, readFileSync, existsSync, chmodSync, rmSync, cpSync, statSync, readdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, pbkdf2Sync, createDecipheriv } from 'node:crypto';
import { signingKeyFromPem } from './v2.mjs';

export const TOP = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLIENT_JS = join(TOP, 'client', 'zeq-e2e-client.js');
export const MODULE_SO = join(TOP, '.libs', 'mod_zeq_e2e.so');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function apxs(name) {
  return execFileSync('apxs', ['-q', name], { encoding: 'utf8' }).trim();
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function canConnect(port) {
  return new Promise((res) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => { sock.destroy(); res(true); });
    sock.once('error', () => res(false));
  });
}

const MODULES = [
  ['authz_core_module', 'mod_authz_core.so'],
  ['mime_module', 'mod_mime.so'],
  ['dir_module', 'mod_dir.so'],
  ['alias_module', 'mod_alias.so'],
  ['env_module', 'mod_env.so'],
  ['setenvif_module', 'mod_setenvif.so'],
  ['log_config_module', 'mod_log_config.so'],
  ['cgid_module', 'mod_cgid.so'],
  ['proxy_module', 'mod_proxy.so'],
  ['proxy_http_module', 'mod_proxy_http.so'],
  ['proxy_wstunnel_module', 'mod_proxy_wstunnel.so'],
  ['socache_shmcb_module', 'mod_socache_shmcb.so'],
  ['unixd_module', 'mod_unixd.so'],
];

function loadModules(dir) {
  const mpm = `<IfModule !mpm_event_module>
  <IfModule !mpm_prefork_module>
    <IfModule !mpm_worker_module>
      LoadModule mpm_event_module "${dir}/mod_mpm_event.so"
    </IfModule>
  </IfModule>
</IfModule>`;
  return [mpm, ...MODULES.map(([name, file]) =>
    `<IfModule !${name}>\n    LoadModule ${name} "${dir}/${file}"\n</IfModule>`)].join('\n');
}

// The URL space common to every virtual host.
function commonConf(dir, backend) {
  return `
    DocumentRoot "${dir}/htdocs"
    ScriptAlias /cgi-bin/ "${dir}/cgi-bin/"
    ScriptAlias /t-cgi/ "${dir}/t-cgi/"
    Alias /files/ "${dir}/files/"
    # The WebSocket workers first: a ProxyPass whose URL lies below an
    # earlier worker's (http://backend/ws/ below http://backend/) shares that
    # worker, without upgrade=websocket.
    ProxyPass /ws/ "http://${backend}/ws/" upgrade=websocket
    ProxyPass /wst/ "ws://${backend}/ws/"
    ProxyPass /off/ws/ "http://${backend}/ws/" upgrade=websocket
    ProxyPass /required/ws/ "http://${backend}/ws/" upgrade=websocket
    ProxyPass /proxy/ "http://${backend}/"
    ScriptAlias /off/cgi-bin/ "${dir}/cgi-bin/"
    Alias /off/files/ "${dir}/files/"
    ProxyPass /off/proxy/ "http://${backend}/"
    ScriptAlias /limits/cgi-bin/ "${dir}/cgi-bin/"
    Alias /limits/files/ "${dir}/files/"
    ScriptAlias /required/cgi-bin/ "${dir}/cgi-bin/"
    Alias /required/files/ "${dir}/files/"
    <Location /off/>
        ZeqE2E Off
    </Location>
    <Location /limits/>
        ZeqE2EMaxRequestBody 1024
        ZeqE2EMaxResponseBody 1000
    </Location>
    <Location /required/>
        ZeqE2ERequire On
    </Location>
    # mod_proxy_wstunnel's own tunnel, not its fallback to mod_proxy_http.
    <Location /wst/>
        ProxyWebsocketFallbackToProxyHttp Off
    </Location>
    <Location /ws/small/>
        ZeqE2EMaxMessage 4096
    </Location>
`;
}

function config({ dir, ports, backend, root }) {
  const modules = apxs('LIBEXECDIR');
  return `# Generated by client/test/server.mjs for the client's tests.
ServerRoot "${dir}"
PidFile "${dir}/httpd.pid"
DefaultRuntimeDir "${dir}"
ServerName 127.0.0.1
${Object.values(ports).map((p) => `Listen 127.0.0.1:${p}`).join('\n')}

${loadModules(modules)}
LoadModule zeq_e2e_module "${MODULE_SO}"

${root ? 'User www-data\nGroup www-data' : ''}
<IfModule mpm_event_module>
    StartServers 1
    ServerLimit 4
    ThreadsPerChild 16
    MaxRequestWorkers 32
    MinSpareThreads 8
    MaxSpareThreads 32
</IfModule>
Timeout 30
KeepAlive On
KeepAliveTimeout 5

# Every test comes from 127.0.0.1, many handshakes a second: the handshake
# guard's limits per address (tested by the server's own suite) are off.
ZeqE2EHandshakeRate off
ZeqE2EUnusedSessions off
ZeqE2EHandshakeConcurrency 256

ErrorLog "${dir}/error_log"
LogLevel warn zeq_e2e:info
LogFormat "%h %{local}p \\"%r\\" %>s %b %{Content-Type}o %{X-E2E-Content-Type}o" zeq
CustomLog "${dir}/access_log" zeq
# The request line as Apache read it, with the session and sequence number
# it came with: what a v2 request's seal must be bound to. (Noted before the
# module takes the headers away from the application.)
SetEnvIf X-E2E-Session "^([A-Za-z0-9_-]+)$" zeq_wire_session=$1
SetEnvIf X-E2E-Seq "^([0-9]+)$" zeq_wire_seq=$1
LogFormat "%{zeq_wire_session}e %{zeq_wire_seq}e %>s \\"%r\\"" zeqwire
CustomLog "${dir}/wire_log" zeqwire
ScriptSock "${dir}/cgid.sock"
TypesConfig /etc/mime.types
AddType text/javascript .js .mjs
DirectoryIndex index.html

<Directory />
    Require all denied
    AllowOverride None
</Directory>
<Directory "${dir}/htdocs">
    Require all granted
</Directory>
<Directory "${dir}/cgi-bin">
    Require all granted
</Directory>
<Directory "${dir}/t-cgi">
    Require all granted
</Directory>
<Directory "${dir}/files">
    Require all granted
</Directory>

<VirtualHost 127.0.0.1:${ports.main}>
    ZeqE2E On
    ZeqE2ESecret "file:${dir}/secret"
${commonConf(dir, backend)}
</VirtualHost>

<VirtualHost 127.0.0.1:${ports.short}>
    ZeqE2E On
    ZeqE2ESecret "file:${dir}/secret"
    ZeqE2ESessionTTL 2
${commonConf(dir, backend)}
</VirtualHost>

<VirtualHost 127.0.0.1:${ports.nosecret}>
    ZeqE2E On
${commonConf(dir, backend)}
</VirtualHost>

<VirtualHost 127.0.0.1:${ports.signed}>
    ZeqE2E On
    ZeqE2EServerKey "file:${dir}/server-key-1.pem"
    ZeqE2EServerKey "file:${dir}/server-key-2.pem"
${commonConf(dir, backend)}
</VirtualHost>

<VirtualHost 127.0.0.1:${ports.v1only}>
    ZeqE2E On
    ZeqE2ESecret "file:${dir}/secret"
    ZeqE2EProtocol 1
${commonConf(dir, backend)}
</VirtualHost>

<VirtualHost 127.0.0.1:${ports.psk}>
    ZeqE2E On
    ZeqE2ESecret "file:${dir}/secret"
    ZeqE2ERequirePSK On
${commonConf(dir, backend)}
</VirtualHost>
`;
}

/** Deterministic test bytes: byte i = (i * 31 + 7) & 0xff. */
export function testBytes(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

export const FILES = {
  'hello.txt': Buffer.from('hello from a static file\n'),
  'data.json': Buffer.from(JSON.stringify({ static: true, answer: 42, text: 'zeq é ü 漢字' }) + '\n'),
  'bytes.bin': testBytes(300000),
  'empty.txt': Buffer.alloc(0),
  'blank.html': Buffer.from('<!doctype html><meta charset="utf-8"><title>blank</title>\n'),
};

const SLOW_CGI = `#!/bin/sh
# Answers after a pause (abort tests), its body read first (see redirect.cgi).
cat > /dev/null
sleep "\${QUERY_STRING:-2}"
printf 'Content-Type: text/plain\\r\\n\\r\\nslow\\n'
`;

const REDIRECT_CGI = `#!/bin/sh
# A redirect to a static file (redirect tests). Reads its body first: under
# mod_cgid, a script that exits with its body unread resets the connection
# its answer travels on.
cat > /dev/null
printf 'Status: 302 Found\\r\\nLocation: /files/hello.txt\\r\\nContent-Type: text/plain\\r\\n\\r\\nmoved\\n'
`;

const NPH_CGI = `#!/bin/sh
# An nph- script writes its own status line straight to the client: the
# module refuses it in an encrypted exchange (500 e2e_encrypt_failed).
cat > /dev/null
printf 'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nNPH-PLAINTEXT\\n'
`;

/** True when every directory from p up to / lets others through (o+x). */
function reachableByOthers(p) {
  for (let d = resolve(p); ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (d === dirname(d)) return true;
  }
}

/** chmod a+rX, and a+x for CGI scripts, below dir. */
function makeReadable(dir) {
  const walk = (d) => {
    chmodSync(d, 0o755);
    for (const ent of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else chmodSync(p, /\.cgi$/.test(ent.name) ? 0o755 : 0o644);
    }
  };
  walk(dir);
}

function errorLogLines(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

/** The virtual hosts, each on its own port (see the top of this file). */
const HOSTS = ['main', 'short', 'nosecret', 'signed', 'v1only', 'psk'];

const LEVEL_RE = /^\[[^\]]*\] \[(?:[\w.-]+:)?(emerg|alert|crit|error|warn)\]/;

/**
 * Starts Apache and the echo backend; resolves to an object with urls
 * (main, short, nosecret, signed, v1only, psk), secret (string),
 * serverKeys, restart(), stop(), and
 * unexpectedLogLines(allowed regexps).
 */
export async function startServer(name = 'client') {
  if (!existsSync(MODULE_SO)) {
    throw new Error(`${MODULE_SO} is missing: run make at the repository root first`);
  }
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  let base = join(TOP, 'build', 'client-test');
  mkdirSync(base, { recursive: true });
  // As root, Apache's children (www-data) may not reach the checkout: then a
  // fresh directory of a random name in the system's temp directory.
  const dir = root && !reachableByOthers(base)
    ? mkdtempSync(join(tmpdir(), `zeq-e2e-client-test-${name}-`))
    : mkdtempSync(join(base, `${name}-`));
  chmodSync(dir, 0o755);

  // A secret with non-ASCII characters: the key derivation uses UTF-8 bytes.
  const secret = `zeq-client-test-${randomBytes(12).toString('hex')}-ключ`;
  writeFileSync(join(dir, 'secret'), secret + '\n', { mode: 0o600 });
  // What Apache's children read: the demo, test files, test CGIs.
  cpSync(join(TOP, 'demo', 'htdocs'), join(dir, 'htdocs'), { recursive: true });
  cpSync(join(TOP, 'demo', 'cgi-bin'), join(dir, 'cgi-bin'), { recursive: true });
  mkdirSync(join(dir, 'files'));
  for (const [f, b] of Object.entries(FILES)) writeFileSync(join(dir, 'files', f), b);
  mkdirSync(join(dir, 't-cgi'));
  for (const [f, text] of [['slow.cgi', SLOW_CGI], ['redirect.cgi', REDIRECT_CGI], ['nph-x.cgi', NPH_CGI]]) {
    writeFileSync(join(dir, 't-cgi', f), text);
  }
  cpSync(join(TOP, 'client', 'test', 'cgi'), join(dir, 't-cgi'), { recursive: true });
  makeReadable(dir);
  // Read by Apache's parent only: the module refuses a secret other users may read.
  chmodSync(join(dir, 'secret'), 0o600);

  // The proxied application. It logs each WebSocket's events to
  // backend/ws-<conn>.jsonl (see t/backend/echo.pl).
  const portFile = join(dir, 'backend.port');
  const backendDir = join(dir, 'backend');
  mkdirSync(backendDir);
  const backendProc = spawn('perl', [join(TOP, 't', 'backend', 'echo.pl'), '--port-file', portFile,
    '--hits-file', join(backendDir, 'hits.jsonl')], { stdio: ['ignore', 'ignore', 'inherit'] });
  let backend = null;
  for (let i = 0; i < 100 && !backend; i++) {
    if (existsSync(portFile)) backend = readFileSync(portFile, 'utf8').trim() || null;
    if (!backend) await sleep(50);
  }
  if (!backend) {
    backendProc.kill();
    throw new Error('t/backend/echo.pl did not start');
  }

  // The signing keys of the signed host, made for this run (never committed).
  for (const n of [1, 2]) {
    execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout',
      '-out', join(dir, `server-key-${n}.pem`)], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const serverKeys = [1, 2].map((n) => signingKeyFromPem(readFileSync(join(dir, `server-key-${n}.pem`))));

  const ports = {};
  // Each port once: a port just closed by freePort() may be handed out again.
  for (const name of HOSTS) {
    do ports[name] = await freePort(); while (Object.entries(ports).some(([h, p]) => h !== name && p === ports[name]));
  }
  const conf = join(dir, 'httpd.conf');
  writeFileSync(conf, config({ dir, ports, backend, root }));
  // ZEQ_T_HTTPD: what client/test/run starts instead (t/sanitize/httpd for a
  // module built with make SANITIZE=1), its reports written here.
  const httpd = process.env.ZEQ_T_HTTPD || join(apxs('SBINDIR'), apxs('TARGET'));
  const env = { ...process.env, ZEQ_SANITIZE_LOGS: join(dir, 'sanitizer') };
  delete env.ZEQ_E2E_SECRET;
  delete env.ZEQ_HITE_SECRET;
  const errorLog = join(dir, 'error_log');

  const proc = spawn(httpd, ['-f', conf, '-DFOREGROUND'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  let exited = null;
  const exitPromise = new Promise((res) => proc.on('exit', (code, sig) => { exited = { code, sig }; res(exited); }));

  const ready = async () => {
    for (let i = 0; i < 200; i++) {
      if (exited) break;
      let all = true;
      for (const p of Object.values(ports)) all = all && await canConnect(p);
      if (all) return;
      await sleep(50);
    }
    const log = existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '';
    throw new Error(`apache2 did not start (${JSON.stringify(exited)}):\n${output}\n${log}`);
  };
  try {
    await ready();
  } catch (e) {
    proc.kill('SIGKILL');
    backendProc.kill();
    throw e;
  }

  const url = (p) => `http://127.0.0.1:${p}`;
  const resumed = () => errorLogLines(errorLog).filter((l) => /resuming normal operations/.test(l)).length;

  const server = {
    dir,
    secret,
    backend,
    ports,
    urls: Object.fromEntries(HOSTS.map((h) => [h, url(ports[h])])),
    /** The signed host's keys (node:crypto KeyObjects, SPKI, JWK, signer); the first signs. */
    serverKeys,
    errorLog,

    /** Graceful restart: shmcb starts empty, so every session is gone. */
    async restart() {
      const before = resumed();
      process.kill(proc.pid, 'SIGUSR1');
      for (let i = 0; i < 200 && resumed() <= before; i++) await sleep(50);
      if (resumed() <= before) throw new Error('apache2 did not finish its graceful restart');
      await ready();
      // Let the old generation close its idle keep-alive connections.
      await sleep(300);
    },

    async stop() {
      if (!exited) {
        proc.kill('SIGTERM');
        let timer;
        await Promise.race([exitPromise, new Promise((r) => { timer = setTimeout(r, 10000); })]);
        clearTimeout(timer);
        if (!exited) proc.kill('SIGKILL');
      }
      backendProc.kill();
      // ZEQ_SANITIZE_COLLECT: where client/test/run looks for the sanitizers'
      // reports (t/sanitize/check) once every test has run.
      const collect = process.env.ZEQ_SANITIZE_COLLECT;
      if (collect) {
        const to = join(collect, basename(dir));
        mkdirSync(to, { recursive: true });
        if (existsSync(errorLog)) cpSync(errorLog, join(to, 'error_log'));
        if (existsSync(join(dir, 'sanitizer'))) cpSync(join(dir, 'sanitizer'), to, { recursive: true });
      }
      if (!process.env.ZEQ_CLIENT_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
    },

    /**
     * Error-log lines at warn level or above not matched by any of allowed,
     * with those Apache wrote to its stderr while reading its configuration
     * (before the error log opens).
     */
    unexpectedLogLines(allowed = []) {
      return [...output.split('\n'), ...errorLogLines(errorLog)]
        .filter((l) => LEVEL_RE.test(l))
        .filter((l) => !allowed.some((re) => re.test(l)));
    },

    /** Stops the server; returns unexpectedLogLines(allowed) as they were. */
    async stopChecked(allowed = []) {
      const unexpected = this.unexpectedLogLines(allowed);
      await this.stop();
      return unexpected;
    },

    logText() {
      return existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '';
    },

    accessLogText() {
      const file = join(dir, 'access_log');
      return existsSync(file) ? readFileSync(file, 'utf8') : '';
    },

    /**
     * The requests Apache logged with their X-E2E-Session and X-E2E-Seq
     * ("-" when absent): [{ session, seq, status, method, target }].
     */
    requestLines() {
      const file = join(dir, 'wire_log');
      if (!existsSync(file)) return [];
      return readFileSync(file, 'latin1').split('\n').filter(Boolean).map((l) => {
        const m = /^(\S+) (\S+) (\d+) "(\S+) (\S+) [^"]*"$/.exec(l);
        return m ? { session: m[1], seq: m[2], status: Number(m[3]), method: m[4], target: m[5] } : { line: l };
      });
    },

    /** The events the backend logged for the WebSockets opened with ?conn=id. */
    backendWebSocketEvents(id) {
      const file = join(backendDir, `ws-${id}.jsonl`);
      if (!existsSync(file)) return [];
      return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    },
  };
  return server;
}

// ---------------------------------------------------------------------------
// The independent check: node:crypto, not Web Crypto.

/** PBKDF2-HMAC-SHA256(secret, cn || sn, 100000, 32) with node:crypto. */
export function deriveKeyNode(secret, clientNonceHex, serverNonceHex) {
  const salt = Buffer.concat([Buffer.from(clientNonceHex, 'hex'), Buffer.from(serverNonceHex, 'hex')]);
  return pbkdf2Sync(Buffer.from(secret, 'utf8'), salt, 100000, 32, 'sha256');
}

/** Opens iv || tag || ciphertext with node:crypto's aes-256-gcm; throws on a bad tag. */
export function openNode(key, envelope) {
  const env = Buffer.from(envelope);
  if (env.length < 28) throw new Error(`envelope of ${env.length} bytes`);
  const d = createDecipheriv('aes-256-gcm', key, env.subarray(0, 12));
  d.setAuthTag(env.subarray(12, 28));
  return Buffer.concat([d.update(env.subarray(28)), d.final()]);
}
