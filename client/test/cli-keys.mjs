// Preloaded into the command-line client by cli.test.mjs (node --import):
// records the ECDH private keys the library asks Web Crypto for (made
// extractable, as v2.mjs's captureClientKeys does in the other tests) and
// writes them as JSON to the file named by ZEQ_CLI_TEST_KEYS when the process
// exits, so that the test can derive every session's keys with node:crypto
// from what --save-wire recorded. The library's code is not changed by it.
import { writeFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { captureClientKeys } from './v2.mjs';

if (!globalThis.crypto || !globalThis.crypto.subtle) {
  Object.defineProperty(globalThis, 'crypto', { value: webcrypto, configurable: true, writable: true });
}
const capture = captureClientKeys(globalThis.crypto.subtle);
process.on('exit', () => {
  writeFileSync(process.env.ZEQ_CLI_TEST_KEYS, JSON.stringify(capture.captured));
});
