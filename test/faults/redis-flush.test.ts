import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gqlOk } from '../helpers/graphql-client.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import {
  createAccount,
  importMbox,
  jobRow,
  startApi,
  startPrivateRedis,
  startWorker,
  type ApiProc,
  type PrivateRedis,
  type Proc,
} from './fault-helpers.js';

let env: TestEnv;
let redis: PrivateRedis;
let api: ApiProc;
let worker: Proc;
let token: string;

beforeAll(async () => {
  redis = await startPrivateRedis();
  env = await createTestEnv({ REDIS_URL: redis.url, RECONCILE_INTERVAL_MS: '1000' });
  [api, worker] = await Promise.all([startApi(env.vars), startWorker(env.vars)]);
  token = await env.token('alice');
}, 120_000);

afterAll(async () => {
  await Promise.all([api, worker].filter(Boolean).map((proc) => proc.stop()));
  await redis?.close();
  await env?.cleanup();
});

const IMPORT_DELAYED = `mutation($accountId: ID!, $file: File!, $options: EnqueueOptions) {
  importMbox(accountId: $accountId, file: $file, options: $options) { id status runAt }
}`;

async function importDelayed(accountId: string, mbox: Buffer, delayMs: number): Promise<string> {
  const form = new FormData();
  form.set('operations', JSON.stringify({ query: IMPORT_DELAYED, variables: { accountId, file: null, options: { delayMs } } }));
  form.set('map', JSON.stringify({ 0: ['variables.file'] }));
  form.set('0', new Blob([new Uint8Array(mbox)]), 'later.mbox');
  const response = await fetch(api.url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
  const body = (await response.json()) as { data?: { importMbox: { id: string; status: string } }; errors?: unknown };
  if (!body.data) throw new Error(`importMbox failed: ${JSON.stringify(body.errors)}`);
  expect(body.data.importMbox.status).toBe('DELAYED');
  return body.data.importMbox.id;
}

describe('Redis flushed while jobs are PENDING, DELAYED and ACTIVE', () => {
  it('reconciles every orphaned row within its period and keeps the history', async () => {
    const fixture = buildMbox({ count: 1500, seed: 4505 });
    const accounts: string[] = [];
    const imports: { id: string }[] = [];
    // import_mbox runs 3 at a time (one per owner): three become ACTIVE, two stay PENDING in the queue.
    for (let i = 0; i < 5; i++) {
      const owner = await env.token(`flush-owner-${i}`);
      accounts.push(await createAccount(api.url, owner, `flush-${i}`));
      imports.push(await importMbox(api.url, owner, accounts[i]!, fixture.mbox));
    }
    const small = buildMbox({ count: 5, seed: 4506 }).mbox;
    // Delayed an hour by its owner: must still wait after the flush, not run at once.
    const later = await importDelayed(await createAccount(api.url, token, 'flush-later'), small, 3_600_000);
    // Waiting for its last attempt: nothing left to re-run, so it must fail with a clear reason.
    const lastChance = await importDelayed(await createAccount(api.url, token, 'flush-last'), small, 3_600_000);
    await env.sql("UPDATE job SET attempts = max_attempts, error = 'boom', updated_at = now() - interval '1 minute' WHERE id = $1", [
      lastChance,
    ]);

    await waitFor(
      'three imports running and two waiting',
      async () => {
        const rows = await Promise.all(imports.map((job) => jobRow(env.sql, job.id)));
        if (rows.some((row) => row.status === 'COMPLETED')) throw new Error('an import completed before the flush; use a bigger mbox');
        return (
          rows.filter((row) => row.status === 'ACTIVE' && (row.processed ?? 0) > 0).length === 3 &&
          rows.filter((row) => row.status === 'PENDING').length === 2
        );
      },
      60_000,
      20,
    );
    const historyBefore = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM job');

    await redis.client.flushall();
    const flushedAt = Date.now();

    const finals = await waitFor(
      'every import to complete',
      async () => {
        const rows = await Promise.all(imports.map((job) => jobRow(env.sql, job.id)));
        const failed = rows.find((row) => row.status === 'FAILED' || row.status === 'CANCELLED');
        if (failed) throw new Error(`an import ended ${failed.status}: ${failed.error}`);
        return rows.every((row) => row.status === 'COMPLETED') ? rows : null;
      },
      90_000,
      200,
    );
    const failed = await waitFor(
      'the last-attempt job to be failed',
      async () => {
        const row = await jobRow(env.sql, lastChance);
        return row.status === 'FAILED' ? row : null;
      },
      30_000,
      200,
    );
    // Within the reconciler's period (1 s) plus its grace for rows changed in the last 5 s.
    expect(Date.now() - flushedAt).toBeLessThan(60_000);
    expect(failed.error).toMatch(/queue lost this job/);

    for (const [i, row] of finals.entries()) {
      expect(row.processed).toBe(fixture.expected.messages);
      const { count } = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM message WHERE account_id = $1', [accounts[i]]);
      expect(count).toBe(fixture.expected.unique);
    }

    // The delayed job is queued again, still delayed until the time its owner asked for.
    const queue = new Queue('import_mbox', { connection: redis.client, prefix: env.vars.REDIS_PREFIX });
    try {
      await waitFor('the delayed job to be queued again', async () => (await queue.getJob(later)) !== undefined, 30_000, 200);
      expect(await (await queue.getJob(later))!.getState()).toBe('delayed');
    } finally {
      await queue.close();
    }
    const delayed = await env.one<{ status: string; run_at: Date | null }>('SELECT status, run_at FROM job WHERE id = $1', [later]);
    expect(delayed.status).toBe('DELAYED');
    expect(delayed.run_at!.getTime()).toBeGreaterThan(Date.now() + 3_000_000);

    // History is PostgreSQL's: every job is still listed.
    const page = await gqlOk<{ jobs: { edges: { node: { id: string } }[] } }>(
      api.url,
      await env.token('flush-admin', 'admin'),
      'query { jobs(first: 100) { edges { node { id } } } }',
    );
    expect(page.jobs.edges).toHaveLength(historyBefore.count);
    expect(page.jobs.edges.map((edge) => edge.node.id)).toEqual(
      expect.arrayContaining([...imports.map((job) => job.id), later, lastChance]),
    );
    expect(worker.alive() && api.alive()).toBe(true);
  }, 150_000);
});
