#!/usr/bin/env node
// zeq-e2e: the command-line client of mod_zeq_e2e (see client/README.md,
// "Command line"). This file prepares Node.js (Web Crypto as a global on
// Node.js 18) and runs cli/main.mjs; --max-time ends it with exit status 2.
import { webcrypto } from 'node:crypto';

if (!globalThis.crypto || !globalThis.crypto.subtle) {
  Object.defineProperty(globalThis, 'crypto', { value: webcrypto, configurable: true, writable: true });
}
// Node.js 18 calls its fetch experimental, once, on stderr: not this
// command's output.
const emitWarning = process.emitWarning;
process.emitWarning = function filtered(warning, ...rest) {
  const text = typeof warning === 'string' ? warning : warning && warning.message;
  const type = typeof rest[0] === 'string' ? rest[0] : rest[0] && rest[0].type;
  if ((type === 'ExperimentalWarning' || (warning && warning.name === 'ExperimentalWarning')) && /fetch/i.test(text || '')) return;
  emitWarning.call(process, warning, ...rest);
};

// A reader that stops early (`zeq-e2e get URL | head -c 100`) closes the
// pipe: what was written had verified; stop quietly, as a pipeline expects.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

const { main } = await import('../cli/main.mjs');
const argv = process.argv.slice(2);
const maxTime = argv.findIndex((a) => a === '--max-time' || a.startsWith('--max-time='));
if (maxTime >= 0) {
  const value = argv[maxTime].includes('=') ? argv[maxTime].split('=')[1] : argv[maxTime + 1];
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) {
    setTimeout(() => {
      process.stderr.write(`zeq-e2e: --max-time ${value} s passed\n`, () => process.exit(2));
    }, seconds * 1000).unref();
  }
}
const status = await main(argv, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
process.exit(status);
