import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMPORT_MBOX } from '../helpers/fragments.js';
import { gql } from '../helpers/graphql-client.js';
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
  env = await createTestEnv({ REDIS_URL: redis.url });
  // The API logs warnings: an outage is one.
  [api, worker] = await Promise.all([startApi({ ...env.vars, LOG_LEVEL: 'warn' }), startWorker(env.vars)]);
  token = await env.token('alice');
}, 120_000);

afterAll(async () => {
  await Promise.all([api, worker].filter(Boolean).map((proc) => proc.stop()));
  await redis?.close();
  await env?.cleanup();
});

/** An importMbox call that gives up after `ms`, so a hanging API fails the test instead of stalling it. */
async function tryImport(accountId: string, mbox: Buffer, ms: number) {
  const form = new FormData();
  form.set('operations', JSON.stringify({ query: IMPORT_MBOX, variables: { accountId, file: null } }));
  form.set('map', JSON.stringify({ 0: ['variables.file'] }));
  form.set('0', new Blob([new Uint8Array(mbox)]), 'inbox.mbox');
  const started = Date.now();
  const response = await fetch(api.url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: form,
    signal: AbortSignal.timeout(ms),
  });
  const body = (await response.json()) as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] };
  return { ...body, tookMs: Date.now() - started };
}

async function untilCompleted(id: string) {
  return waitFor(
    `job ${id} to complete`,
    async () => {
      const row = await jobRow(env.sql, id);
      if (row.status === 'FAILED') throw new Error(`job failed: ${row.error}`);
      return row.status === 'COMPLETED' ? row : null;
    },
    45_000,
    100,
  );
}

describe('Redis stopped during enqueue', () => {
  it('refuses with a clear error and leaves no PENDING row; after Redis returns, everything resumes by itself', async () => {
    const mbox = buildMbox({ count: 20, seed: 4404 }).mbox;
    const accountId = await createAccount(api.url, token, 'redis-stop');
    const before = await importMbox(api.url, token, accountId, mbox);
    await untilCompleted(before.id);

    await redis.stop();
    const refused = await tryImport(accountId, mbox, 20_000);
    expect(refused.errors?.[0]?.extensions?.code).toBe('QUEUE_UNAVAILABLE');
    expect(refused.errors?.[0]?.message).toMatch(/queue is unavailable/);
    expect(refused.data?.importMbox ?? null).toBeNull();
    // The row written before the queue refused is FAILED with a reason, not left PENDING.
    const rows = await env.sql<{ id: string; status: string; error: string | null }>(
      'SELECT id, status, error FROM job WHERE account_id = $1 AND id <> $2',
      [accountId, before.id],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/could not be queued/) });
    expect(await env.sql("SELECT id FROM job WHERE status IN ('PENDING', 'ACTIVE')")).toHaveLength(0);
    expect((await fetch(`${api.baseUrl}/ready`)).status).toBe(503);
    // An operator still sees the rest: /metrics answers without queue depths, queueStats says why,
    // and the outage is one JSON warning, not ioredis's unhandled-error noise on stderr.
    const metrics = await fetch(`${api.baseUrl}/metrics`, { headers: { authorization: `Bearer ${env.vars.METRICS_TOKEN}` } });
    expect(metrics.status).toBe(200);
    const scraped = await metrics.text();
    expect(scraped).toMatch(/jobwire_jobs\{type="import_mbox",status="COMPLETED"\} 1/);
    expect(scraped).not.toMatch(/jobwire_queue_jobs\{/);
    const stats = await gql(api.url, await env.token('root', 'admin'), '{ queueStats { queue waiting } }');
    expect(stats.errors?.[0]?.extensions?.code).toBe('QUEUE_UNAVAILABLE');
    await waitFor('the outage to be logged', () => api.output().includes('Redis unreachable; reconnecting'));
    expect(api.output()).not.toContain('Unhandled error event');

    // Redis back (empty, as after a restart without persistence): same processes, nothing restarted.
    await redis.start();
    await waitFor('the API to see Redis again', async () => (await fetch(`${api.baseUrl}/ready`)).status === 200, 30_000, 200);
    const after = await waitFor(
      'an enqueue to be accepted again',
      async () => {
        const result = await tryImport(accountId, buildMbox({ count: 20, seed: 4405 }).mbox, 20_000);
        return result.data?.importMbox ?? null;
      },
      30_000,
      200,
    );
    await untilCompleted(after.id);
    expect(api.alive() && worker.alive()).toBe(true);
  }, 120_000);
});
