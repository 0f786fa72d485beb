/**
 * The dashboard at /dashboard (issue 12), in real Chromium against two real API replicas and a
 * worker sidecar: a user uploads an mbox through the generated form and watches the row reach
 * COMPLETED at 100%; cancels a running job from its detail view; sees only their own jobs while an
 * admin sees everyone's; and, when the replica the page is connected to is killed, sees
 * "reconnecting", then every change made meanwhile once it is back; retries failed jobs in bulk; and
 * stays usable with 10,000 jobs. No request leaves the host.
 */
import { request as httpRequest } from 'node:http';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../src/auth/tokens.js';
import { launchChromium, offHost, recordRequests, screenshot } from '../helpers/browser.js';
import { gqlOk, gqlUpload } from '../helpers/graphql-client.js';
import { CREATE_ACCOUNT, IMPORT_MBOX } from '../helpers/fragments.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { type ApiProc, type Proc, startApi, startWorker } from '../helpers/processes.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

let env: TestEnv;
let replicaA: ApiProc;
let replicaB: ApiProc;
let worker: Proc;
let browser: Browser;

beforeAll(async () => {
  env = await createTestEnv();
  [replicaA, replicaB, worker] = await Promise.all([startApi(env.vars), startApi(env.vars), startWorker(env.vars)]);
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all([replicaA, replicaB, worker].filter(Boolean).map((proc) => proc.stop()));
  await env?.cleanup();
});

/** The dev-token endpoint's answer to a request with these headers. */
function devTokenStatus(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/dashboard/dev-token?role=admin', headers }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
}

async function createAccount(token: string, name: string): Promise<string> {
  return (await gqlOk<{ createAccount: { id: string } }>(replicaB.url, token, CREATE_ACCOUNT, { name })).createAccount.id;
}

async function importMbox(token: string, accountId: string, messages: number, seed: number, options?: object): Promise<string> {
  const response = await gqlUpload<{ importMbox: { id: string } }>(
    replicaB.url,
    token,
    IMPORT_MBOX,
    { accountId, file: null, options },
    { path: 'file', content: buildMbox({ count: messages, seed }).mbox, filename: `seed-${seed}.mbox` },
  );
  if (!response.data) throw new Error(JSON.stringify(response.errors));
  return response.data.importMbox.id;
}

/**
 * Opens the dashboard on a replica signed in by the URL fragment, and waits for the live stream.
 * `prepare` runs on the page before it loads.
 */
async function openDashboard(
  replica: ApiProc,
  token: string,
  { width = 1400, prepare }: { width?: number; prepare?: (page: Page) => Promise<unknown> } = {},
): Promise<{ page: Page; requested: string[]; problems: string[] }> {
  const page = await (await browser.newContext({ viewport: { width, height: 1000 } })).newPage();
  await prepare?.(page);
  const requested = recordRequests(page);
  // Script errors and console errors (a CSP violation is one) the page ran into.
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => message.type() === 'error' && problems.push(message.text()));
  await page.goto(`${replica.baseUrl}/dashboard#token=${token}`);
  // A link's token is used only once the reader agrees.
  await page.getByRole('button', { name: /^Sign in as / }).click();
  await page.locator('[data-connection="live"]').waitFor({ timeout: 30_000 });
  return { page, requested, problems };
}

const row = (page: Page, jobId: string) => page.locator(`tr[data-job-id="${jobId}"]`);

async function rowStatus(page: Page, jobId: string): Promise<string | null> {
  const rows = row(page, jobId);
  return (await rows.count()) ? rows.first().getAttribute('data-status') : null;
}

describe('the dashboard', () => {
  it('starts an import from the generated form with an uploaded mbox and shows its row reach COMPLETED at 100%', async () => {
    const alice = await env.token('alice');
    const accountId = await createAccount(alice, 'alice inbox');
    const { page, requested, problems } = await openDashboard(replicaA, alice);
    expect(await page.getByText('Signed in as').textContent()).toContain('alice');

    await page.getByLabel('Job', { exact: true }).selectOption('importMbox');
    await page.getByLabel('accountId (required)').selectOption(accountId);
    const fixture = buildMbox({ count: 400, seed: 1201 });
    await page.getByLabel('file (required)').setInputFiles({ name: 'inbox.mbox', mimeType: 'application/mbox', buffer: fixture.mbox });
    await page.getByRole('button', { name: 'Start importMbox' }).click();

    // The new job opens beside the list, and its row joins the list from the stream.
    const detail = page.getByRole('dialog');
    await detail.waitFor();
    const jobId = (await detail.getAttribute('data-job-id'))!;
    expect(jobId).toMatch(/^[0-9a-f-]{36}$/);
    await waitFor('the row to show COMPLETED', async () => (await rowStatus(page, jobId)) === 'COMPLETED', 60_000, 100);
    expect(await row(page, jobId).locator('progress').getAttribute('value')).toBe('100');
    // processed / total, all of it.
    expect(await row(page, jobId).textContent()).toMatch(/(\d[\d,]*) \/ \1/);
    // The detail view shows the typed output, the attempt and the handler's log.
    await waitFor('the detail to show COMPLETED', async () => (await detail.getAttribute('data-status')) === 'COMPLETED', 20_000);
    const detailText = (await detail.textContent()) ?? '';
    expect(detailText).toContain('imported');
    expect(detailText).toContain(String(fixture.expected.unique));
    expect(detailText).toContain('completed');
    await waitFor('the log to show the import', async () => (await detail.locator('ol.log li').count()) > 0, 20_000);
    // Counts at the top follow the stream.
    await waitFor(
      'the COMPLETED count to be 1',
      async () => (await page.locator('[data-count-status="COMPLETED"] .value').textContent()) === '1',
      20_000,
    );
    await screenshot(page, 'dashboard-job');
    // Escape closes the detail and gives the focus back.
    await page.keyboard.press('Escape');
    await detail.waitFor({ state: 'detached' });
    await screenshot(page, 'dashboard');
    expect(offHost(requested, replicaA.baseUrl)).toEqual([]);
    expect(problems).toEqual([]);
    await page.context().close();
  }, 120_000);

  it('cancels a running job from its detail view', async () => {
    const carol = await env.token('carol');
    const accountId = await createAccount(carol, 'carol inbox');
    const { page } = await openDashboard(replicaA, carol);
    const jobId = await importMbox(carol, accountId, 12_000, 1202);
    await row(page, jobId)
      .getByRole('button', { name: /^Open import mbox job/ })
      .click();
    const detail = page.getByRole('dialog');
    await waitFor(
      'the import to run',
      async () => {
        const status = await detail.getAttribute('data-status');
        if (status === 'COMPLETED') throw new Error('the import completed before it could be cancelled; use a bigger mbox');
        return status === 'ACTIVE';
      },
      60_000,
      20,
    );
    await detail.getByRole('button', { name: 'Cancel job' }).click();
    await waitFor('the detail to show CANCELLED', async () => (await detail.getAttribute('data-status')) === 'CANCELLED', 60_000);
    await waitFor('the row to show CANCELLED', async () => (await rowStatus(page, jobId)) === 'CANCELLED', 20_000);
    const [stored] = await env.sql<{ status: string }>('SELECT status FROM job WHERE id = $1', [jobId]);
    expect(stored!.status).toBe('CANCELLED');
    // A cancelled job can be retried from the same place.
    await detail.getByRole('button', { name: 'Retry job' }).waitFor();
    await page.context().close();
  }, 120_000);

  it("shows a user only their own jobs, and an admin everyone's with the owner", async () => {
    const dave = await env.token('dave');
    const erin = await env.token('erin');
    const daveJob = await importMbox(dave, await createAccount(dave, 'dave inbox'), 3, 1203);
    const erinJob = await importMbox(erin, await createAccount(erin, 'erin inbox'), 3, 1204);

    const asDave = await openDashboard(replicaA, dave);
    await row(asDave.page, daveJob).waitFor({ timeout: 20_000 });
    const ownersSeen = await asDave.page.locator('tr[data-job-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job-id')));
    expect(ownersSeen).toContain(daveJob);
    expect(ownersSeen).not.toContain(erinJob);
    // Not even through the detail of a job id that is not theirs.
    const visibleToDave = await gqlOk<{ job: unknown }>(replicaA.url, dave, 'query($id: ID!) { job(id: $id) { id } }', { id: erinJob });
    expect(visibleToDave.job).toBeNull();
    // A link with someone else's token, while signed in: the page asks, and staying keeps dave.
    await asDave.page.goto(`${replicaA.baseUrl}/dashboard#token=${erin}`);
    await asDave.page.getByRole('button', { name: 'Stay dave' }).click();
    await row(asDave.page, daveJob).waitFor({ timeout: 20_000 });
    expect(await asDave.page.getByText('Signed in as').textContent()).toContain('dave');
    expect(await row(asDave.page, erinJob).count()).toBe(0);
    // A link with a forged token (claiming admin) is checked by the API before it replaces dave's.
    const forged = await mintToken('not-the-secret-0123456789abcdefghijklmnop', { sub: 'mallory', role: 'admin' });
    await asDave.page.goto(`${replicaA.baseUrl}/dashboard#token=${forged}`);
    await asDave.page.getByRole('button', { name: 'Sign in as mallory' }).click();
    await asDave.page.getByText(/refused the link's token \(UNAUTHENTICATED\)/).waitFor();
    await asDave.page.getByRole('button', { name: 'Stay dave' }).click();
    await row(asDave.page, daveJob).waitFor({ timeout: 20_000 });
    await asDave.page.context().close();

    const admin = await env.token('root', 'admin');
    const asAdmin = await openDashboard(replicaB, admin);
    await row(asAdmin.page, daveJob).waitFor({ timeout: 20_000 });
    await row(asAdmin.page, erinJob).waitFor({ timeout: 20_000 });
    expect(await row(asAdmin.page, erinJob).locator('td.owner').textContent()).toBe('erin');
    await screenshot(asAdmin.page, 'dashboard-admin');
    await asAdmin.page.context().close();
  }, 120_000);

  it('shows "reconnecting" when its replica dies, then every change made meanwhile once it is back', async () => {
    const frank = await env.token('frank');
    const accountId = await createAccount(frank, 'frank inbox');
    const before = await importMbox(frank, accountId, 3, 1205);
    const { page } = await openDashboard(replicaA, frank);
    await waitFor('the first job to complete on the page', async () => (await rowStatus(page, before)) === 'COMPLETED', 60_000, 100);

    const port = replicaA.port;
    replicaA.kill('SIGKILL');
    await replicaA.exited;
    await page.locator('[data-connection="reconnecting"]').first().waitFor({ timeout: 30_000 });

    // Meanwhile, through the other replica: new jobs run to the end, one is cancelled while queued.
    const meanwhile: string[] = [];
    for (const seed of [1206, 1207, 1208]) meanwhile.push(await importMbox(frank, accountId, 5, seed));
    const queued = (
      await gqlUpload<{ importMbox: { id: string } }>(
        replicaB.url,
        frank,
        IMPORT_MBOX,
        { accountId, file: null, options: { delayMs: 3_600_000 } },
        { path: 'file', content: buildMbox({ count: 2, seed: 1209 }).mbox, filename: 'later.mbox' },
      )
    ).data!.importMbox.id;
    await gqlOk(replicaB.url, frank, 'mutation($id: ID!) { cancelJob(id: $id) { id } }', { id: queued });
    await waitFor(
      'the imports made meanwhile to complete',
      async () =>
        (await env.sql<{ n: number }>("SELECT count(*)::int AS n FROM job WHERE id = ANY($1) AND status = 'COMPLETED'", [meanwhile]))[0]!
          .n === meanwhile.length,
      60_000,
      100,
    );
    expect(await page.locator('[data-connection="reconnecting"]').count()).toBeGreaterThan(0);

    replicaA = await startApi(env.vars, { port });
    await page.locator('[data-connection="live"]').first().waitFor({ timeout: 30_000 });
    for (const jobId of meanwhile) {
      await waitFor(`job ${jobId} to show COMPLETED`, async () => (await rowStatus(page, jobId)) === 'COMPLETED', 20_000);
    }
    await waitFor('the queued job to show CANCELLED', async () => (await rowStatus(page, queued)) === 'CANCELLED', 20_000);
    // Counts followed every change, none twice: four completed, one cancelled.
    await waitFor(
      'the counts to match',
      async () =>
        (await page.locator('[data-count-status="COMPLETED"] .value').textContent()) === '4' &&
        (await page.locator('[data-count-status="CANCELLED"] .value').textContent()) === '1',
      20_000,
    );
    expect(await page.locator('tr[data-job-id]').count()).toBe(5);
    await page.context().close();
  }, 180_000);

  it('retries the selected failed jobs with one bulk action', async () => {
    const judy = await env.token('judy');
    const admin = await env.token('root', 'admin');
    const accountId = await createAccount(judy, 'judy inbox');
    // Imports whose account is gone before they run fail for good.
    const failed = await Promise.all([1210, 1211].map((seed) => importMbox(judy, accountId, 2, seed, { delayMs: 1_000 })));
    await env.sql('DELETE FROM account WHERE id = $1', [accountId]);
    const { page } = await openDashboard(replicaA, judy);
    for (const jobId of failed) await waitFor(`job ${jobId} to fail`, async () => (await rowStatus(page, jobId)) === 'FAILED', 60_000, 100);

    // Paused, the retried imports wait PENDING, where the page can see them.
    await gqlOk(replicaB.url, admin, 'mutation { pauseJobType(type: import_mbox) { paused } }');
    try {
      // The per-type table marks it paused as it happens (jobTypeChanged), on the other replica.
      await page.locator('[data-count-type="import_mbox"] .badge.paused').waitFor({ timeout: 20_000 });
      await page.getByRole('button', { name: 'Select loaded failed and cancelled' }).click();
      await page.getByRole('button', { name: 'Retry selected (2)' }).click();
      await page.getByText(/Retrying 2 jobs/).waitFor({ timeout: 20_000 });
      for (const jobId of failed)
        await waitFor(`job ${jobId} to be retried`, async () => (await rowStatus(page, jobId)) === 'PENDING', 60_000, 100);
      const bulk = await env.sql<{ id: string; status: string }>(
        "SELECT id, status FROM job WHERE type = 'bulk_job_action' AND owner_id = 'judy'",
      );
      expect(bulk).toHaveLength(1);
      await waitFor('the bulk job to show on the page', async () => (await rowStatus(page, bulk[0]!.id)) === 'COMPLETED', 30_000, 100);
    } finally {
      await gqlOk(replicaB.url, admin, 'mutation { resumeJobType(type: import_mbox) { paused } }');
    }
    await page.locator('[data-count-type="import_mbox"] .badge.paused').waitFor({ state: 'detached', timeout: 20_000 });
    await page.context().close();
  }, 120_000);

  it('stays usable at 10,000 jobs: only the rows in view are in the page, older pages load as you scroll', async () => {
    const ivan = await env.token('ivan');
    await env.sql(
      `INSERT INTO job (id, type, status, progress, attempts, max_attempts, payload, trigger, owner_id, created_at, updated_at, finished_at, version)
       SELECT gen_random_uuid(), 'scan_pii', 'COMPLETED', 100, 1, 3, '{}', 'API', 'ivan',
              now() - g * interval '1 second', now() - g * interval '1 second', now() - g * interval '1 second', 1
         FROM generate_series(1, 10000) AS g`,
    );
    const { page } = await openDashboard(replicaA, ivan);
    await page.getByText('10,000 jobs').waitFor({ timeout: 20_000 });
    const table = page.locator('table.job-table');
    const scroller = page.locator('.job-scroller');
    // Scrolling to the end loads older pages, again and again.
    await waitFor(
      'four pages to be loaded',
      async () => {
        await scroller.evaluate((element) => element.scrollTo(0, element.scrollHeight));
        return Number(await table.getAttribute('aria-rowcount')) > 200;
      },
      60_000,
      200,
    );
    const rendered = await page.locator('tr[data-job-id]').count();
    expect(rendered).toBeGreaterThan(0);
    expect(rendered).toBeLessThan(60);
    expect(await page.locator('[data-count-status="COMPLETED"] .value').textContent()).toBe('10,000');
    await page.context().close();
  }, 120_000);

  it('fits a phone-sized screen, and says so when it could not read the accounts instead of saying there are none', async () => {
    const dave = await env.token('dave');
    await createAccount(dave, 'dave inbox');
    // Jobs of the type with the longest name, so the counts table has a row as wide as it gets.
    await env.sql(
      `INSERT INTO job (id, type, status, progress, attempts, max_attempts, payload, trigger, owner_id, created_at, updated_at, finished_at, version)
       SELECT gen_random_uuid(), 'purge_archive_trash', 'COMPLETED', 100, 1, 3, '{}', 'API', 'dave', now(), now(), now(), 1
         FROM generate_series(1, 12345)`,
    );
    let refused = 0;
    const { page } = await openDashboard(replicaA, dave, {
      width: 420,
      // The first read of the catalogue and accounts fails, as with a replica briefly unreachable.
      prepare: (page) =>
        page.route('**/graphql', async (route) => {
          const body = route.request().postDataJSON() as { query?: string } | null;
          if (!/\bquery Overview\b/.test(body?.query ?? '') || refused++ > 0) return route.continue();
          return route.fulfill({
            status: 503,
            contentType: 'application/json',
            body: JSON.stringify({ errors: [{ message: 'service unavailable', extensions: { code: 'UNAVAILABLE' } }] }),
          });
        }),
    });
    await page.getByLabel('Job', { exact: true }).selectOption('scanPii');
    // Not a list of accounts to choose from: a text field, whose help says why.
    const field = page.getByLabel('accountId (required)');
    expect(await field.evaluate((element) => element.tagName)).toBe('INPUT');
    const hint = page.locator(`#${await field.getAttribute('aria-describedby')}`);
    expect(refused).toBe(1);
    expect(await hint.textContent()).toContain('could not be loaded');
    expect(await hint.textContent()).not.toContain('no accounts yet');
    // Nothing on the page is wider than the screen: wide tables scroll within their panels.
    await page.locator('[data-count-type="purge_archive_trash"]').waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(420);
  });

  it('signs in with the dev token button only where DEV_TOKENS is on', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${replicaB.baseUrl}/dashboard`);
    await page.getByRole('textbox', { name: 'Token' }).waitFor();
    expect(await page.getByRole('button', { name: /Dev token/ }).count()).toBe(0);
    expect((await fetch(`${replicaB.baseUrl}/dashboard/dev-token?role=admin`, { method: 'POST' })).status).toBe(404);

    const dev = await startApi({ ...env.vars, DEV_TOKENS: 'true' });
    try {
      // Not for a page of another site that a rebound DNS name points here.
      expect(await devTokenStatus(dev.port, { host: 'rebound.example', origin: 'http://rebound.example' })).toBe(403);
      await page.goto(`${dev.baseUrl}/dashboard`);
      await page.getByRole('button', { name: 'Dev token: admin' }).click();
      await page.locator('[data-connection="live"]').first().waitFor({ timeout: 30_000 });
      expect(await page.getByText('Signed in as').textContent()).toContain('dev-admin');
    } finally {
      await page.context().close();
      await dev.stop();
    }
  }, 120_000);
});
