// Debian's Chromium driven by playwright-core (never a browser download),
// with the flags this kind of machine needs and a fresh profile each time.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.ZEQ_CHROMIUM || '/usr/bin/chromium';

/** Launches Chromium with a new profile under dir (options.args: more flags); close() removes it. */
export async function launchChromium(dir, { args = [], ...options } = {}) {
  const profile = mkdtempSync(join(dir, 'chromium-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
    ...options,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
