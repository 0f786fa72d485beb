/**
 * GraphiQL served by Jobwire itself (issue 12), in real Chromium: it renders its editor with the
 * example operation and runs it with the token from the URL fragment, runs a subscription over
 * SSE, and no request leaves the host. Chromium is Debian's (`.ci/run` installs it), driven by
 * playwright-core.
 */
import { get as httpGet, type IncomingHttpHeaders } from 'node:http';
import { gunzipSync } from 'node:zlib';
import type { Browser } from 'playwright-core';
import { GRAPHIQL_VERSION } from '../../src/api/graphiql.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, offHost, recordRequests, screenshot } from '../helpers/browser.js';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let browser: Browser;
let origin: string;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env, { worker: false, vars: { GRAPHIQL: 'true' } });
  origin = new URL(system.url).origin;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await system?.stop();
  await env?.cleanup();
});

/** A GET as sent, without a client that decompresses on its own. */
function rawGet(path: string, headers: Record<string, string>): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    httpGet(`${origin}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

describe('GraphiQL', () => {
  it('renders from this host only, runs the example with the fragment token, and streams a subscription over SSE', async () => {
    const admin = await env.token('root', 'admin');
    const page = await (await browser.newContext()).newPage();
    const requested = recordRequests(page);
    const sentTokens: (string | undefined)[] = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname === '/graphql' && request.method() === 'POST') sentTokens.push(request.headers().authorization);
    });

    // The page asks before a link's token signs anyone in.
    const questions: string[] = [];
    page.on('dialog', (dialog) => {
      questions.push(dialog.message());
      void dialog.accept();
    });
    await page.goto(`${origin}/graphql#token=${admin}`);
    // The fragment is read, kept in the browser, and taken off the address bar.
    await waitFor('the token to leave the address bar', () => !page.url().includes('#token'));
    expect(await page.getByRole('textbox', { name: 'Token' }).inputValue()).toBe(admin);
    expect(questions).toEqual(['This link signs you in as root (admin). Use it?']);

    const run = page.getByRole('button', { name: /execute/i }).first();
    await run.waitFor({ timeout: 30_000 });
    await waitFor('the example operation in the editor', async () => (await page.content()).includes('RecentJobs'), 30_000);
    await run.click();
    await page.getByText('"import_mbox"').first().waitFor({ timeout: 30_000 });
    expect(sentTokens.length).toBeGreaterThan(0);
    expect(sentTokens.every((header) => header === `Bearer ${admin}`)).toBe(true);

    // A subscription typed into the editor streams over SSE as the server sends.
    await page.locator('.graphiql-query-editor .view-lines').first().click();
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.press('Delete');
    await page.keyboard.insertText('subscription Watch { jobTypeChanged { name paused } }');
    // GraphiQL names the operation it runs after parsing the edit, in its own time (its tab then
    // takes the name): run it after that, or it runs the previous operation's name.
    await waitFor(
      'GraphiQL to take the edited operation',
      async () => (await page.locator('.graphiql-tab').first().textContent())?.includes('Watch'),
      20_000,
    );
    await run.click();
    // Once the stream is open, a pause made elsewhere shows up in the result pane.
    await waitFor(
      'the subscription to show a pause',
      async () => {
        await gqlOk(system.url, admin, 'mutation { pauseJobType(type: scan_tracking) { paused } }');
        await gqlOk(system.url, admin, 'mutation { resumeJobType(type: scan_tracking) { paused } }');
        const result = (await page.locator('.graphiql-response').first().textContent()) ?? '';
        return result.includes('"jobTypeChanged"') && result.includes('"scan_tracking"');
      },
      30_000,
      500,
    );

    await screenshot(page, 'graphiql');
    expect(offHost(requested, origin)).toEqual([]);
    await page.close();
  }, 120_000);

  it('keeps the token across a reload, and forgets it on request', async () => {
    const token = await env.token('alice');
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${origin}/graphql`);
    await page.getByRole('textbox', { name: 'Token' }).fill(token);
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.waitForLoadState('load');
    expect(await page.getByRole('textbox', { name: 'Token' }).inputValue()).toBe(token);
    await page.getByRole('button', { name: 'Forget' }).click();
    await page.waitForLoadState('load');
    expect(await page.getByRole('textbox', { name: 'Token' }).inputValue()).toBe('');
    await page.close();
  }, 60_000);

  it('sends its bundle gzipped to a client that takes it, and answers 304 to one that holds this version', async () => {
    const path = `/graphiql/assets/${GRAPHIQL_VERSION}/graphiql.js`;
    const plain = await rawGet(path, {});
    const zipped = await rawGet(path, { 'accept-encoding': 'gzip' });
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(zipped.body).equals(plain.body)).toBe(true);
    expect(zipped.body.length).toBeLessThan(plain.body.length / 2);
    expect((await rawGet(path, { 'if-none-match': String(plain.headers.etag) })).status).toBe(304);
  });

  it('is off with GRAPHIQL=false', async () => {
    const off = await startInProcess(env, { worker: false, vars: { GRAPHIQL: 'false' } });
    try {
      const page = await fetch(off.url, { headers: { accept: 'text/html' } });
      expect(await page.text()).not.toContain('YogaGraphiQL');
      const asset = await fetch(`${new URL(off.url).origin}/graphiql/assets/x/graphiql.js`);
      expect(asset.status).not.toBe(200);
      expect((await gql(off.url, await env.token('alice'), '{ __typename }')).data).toEqual({ __typename: 'Query' });
    } finally {
      await off.stop();
    }
  });
});
