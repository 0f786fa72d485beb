/**
 * The queue board (/admin/queues, Bull Board) in real Chromium: an admin's one-time link opens it,
 * it renders the catalogue's queues, and no request leaves the host (its page links a web font on
 * a CDN, which the board's Content-Security-Policy keeps from loading).
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, offHost, recordRequests, screenshot } from '../helpers/browser.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let browser: Browser;
let origin: string;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env, { worker: false });
  origin = new URL(system.url).origin;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await system?.stop();
  await env?.cleanup();
});

describe('the queue board', () => {
  it('renders the queues from this host only', async () => {
    const admin = await env.token('root', 'admin');
    const page = await (await browser.newContext()).newPage();
    const requested = recordRequests(page);
    const refusedByPolicy: string[] = [];
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) refusedByPolicy.push(message.text());
    });
    await page.goto(`${origin}/admin/queues?token=${admin}`);
    await page.getByText('import_mbox').first().waitFor({ timeout: 30_000 });
    // The overview has loaded the queues' counts through the board's own API.
    await page.getByText('Loading...').waitFor({ state: 'detached', timeout: 30_000 });
    expect(refusedByPolicy).toEqual([]);
    await screenshot(page, 'queue-board');
    expect(offHost(requested, origin)).toEqual([]);
  });
});
