// Runs the command-line client (client/bin/zeq-e2e.mjs) as a subprocess for
// the tests: runCli(args, options) resolves to { status, stdout (a Buffer),
// text (stdout as UTF-8), stderr }.
import { spawn } from 'node:child_process';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = resolve(here, '..', 'bin', 'zeq-e2e.mjs');
/** A preload that records the ECDH private keys the library makes (see cli-keys.mjs). */
export const KEY_CAPTURE = join(here, 'cli-keys.mjs');

/**
 * options: input (stdin's bytes; stdin ends after them, at once without),
 * node (the Node.js binary, default this one), nodeArgs (before the
 * script), env (added), bin (default BIN), limit (ms before the run is
 * killed, default 120000).
 */
export function runCli(args, { input = null, node = process.execPath, env = {}, bin = BIN, limit = 120000, nodeArgs = [] } = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(node, [...nodeArgs, bin, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    let err = '';
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`zeq-e2e ${args.join(' ')} did not end in ${limit} ms; stderr:\n${err}`));
    }, limit);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      resolvePromise({ status, signal, stdout, text: stdout.toString('utf8'), stderr: err });
    });
    child.stdin.on('error', () => { /* the command may end before it read stdin */ });
    child.stdin.end(input === null ? undefined : input);
  });
}

/** A line for assertion messages: the command, its status and its stderr. */
export function shown(args, r) {
  return `zeq-e2e ${args.join(' ')} -> ${r.status}\nstderr: ${r.stderr}`;
}
