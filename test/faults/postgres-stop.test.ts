import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import {
  createAccount,
  importMbox,
  jobRow,
  startApi,
  startPrivatePostgres,
  startWorker,
  type ApiProc,
  type PrivatePostgres,
  type Proc,
} from './fault-helpers.js';

let env: TestEnv;
let postgres: PrivatePostgres;
let api: ApiProc;
let worker: Proc;
let token: string;
let redis: Redis;
let queue: Queue;

const query = async (text: string, params?: unknown[]) => (await postgres.pool.query(text, params)).rows;

beforeAll(async () => {
  postgres = await startPrivatePostgres();
  env = await createTestEnv({ DATABASE_URL: postgres.url, RECONCILE_INTERVAL_MS: '1000' });
  [api, worker] = await Promise.all([startApi(env.vars), startWorker(env.vars)]);
  token = await env.token('alice');
  redis = new Redis(env.vars.REDIS_URL!, { maxRetriesPerRequest: null });
  queue = new Queue('import_mbox', { connection: redis, prefix: env.vars.REDIS_PREFIX });
}, 120_000);

afterAll(async () => {
  await Promise.all([api, worker].filter(Boolean).map((proc) => proc.stop()));
  await queue?.close();
  redis?.disconnect();
  await postgres?.close();
  await env?.cleanup();
});

/** How long PostgreSQL stays down in the first case. */
const OUTAGE_MS = 3_000;

/** The row's status as BullMQ's final state would name it, or null while either is not final. */
const BULL_FINAL: Record<string, string> = { completed: 'COMPLETED', failed: 'FAILED' };

/** Waits until the row and BullMQ agree on a terminal state, then checks what the import stored. */
async function expectOneTerminalState(jobId: string, accountId: string, expected: { messages: number; unique: number }) {
  const outcome = await waitFor(
    'the row and the queue to agree on a terminal state',
    async () => {
      const row = await jobRow(query, jobId);
      const state = await (await queue.getJob(jobId))?.getState();
      if (!state || !BULL_FINAL[state]) return null;
      return row.status === BULL_FINAL[state] ? { row, state } : null;
    },
    45_000,
    200,
  );
  expect(worker.alive()).toBe(true);

  const { count } = (await query('SELECT count(*)::int AS count FROM message WHERE account_id = $1', [accountId]))[0] as { count: number };
  if (outcome.row.status === 'COMPLETED') {
    expect(outcome.row.processed).toBe(expected.messages);
    expect(count).toBe(expected.unique);
  } else {
    // A failure is explained without leaking SQL or data from the driver.
    expect(outcome.row.error).toBeTruthy();
    expect(outcome.row.error).not.toMatch(/insert into|select |update job/i);
    expect(count).toBeLessThanOrEqual(expected.unique);
  }
  return outcome;
}

async function startImport(name: string, count: number, seed: number) {
  const fixture = buildMbox({ count, seed });
  const accountId = await createAccount(api.url, token, name);
  const job = await importMbox(api.url, token, accountId, fixture.mbox);
  await waitFor(
    'the import to be under way',
    async () => {
      const row = await jobRow(query, job.id);
      if (row.status === 'COMPLETED') throw new Error('the import completed before the fault; use a bigger mbox');
      return row.status === 'ACTIVE' && (row.processed ?? 0) > 0;
    },
    60_000,
    20,
  );
  return { job, accountId, expected: fixture.expected };
}

describe('PostgreSQL stopped during a running job', () => {
  it('keeps the worker alive, and once PostgreSQL returns the job ends in one terminal state, in the row and in the queue', async () => {
    const { job, accountId, expected } = await startImport('pg-stop', 3000, 4606);

    await postgres.stop();
    try {
      // The fault's duration, not an assertion: many progress writes (one per 100 ms) and the next
      // batch insert fall into the outage. Queries fail or wait for a connection; the worker lives on.
      await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
      expect(worker.alive()).toBe(true);
    } finally {
      await postgres.start();
    }

    await expectOneTerminalState(job.id, accountId, expected);

    // The worker still works: the next job runs to completion.
    const next = await importMbox(api.url, token, accountId, buildMbox({ count: 10, seed: 4607 }).mbox);
    await waitFor('a new job to complete', async () => (await jobRow(query, next.id)).status === 'COMPLETED', 30_000, 100);
  }, 120_000);

  it('when every attempt fails while PostgreSQL refuses connections, the row still ends FAILED like the queued job', async () => {
    // Independent of the first case: a worker it brought down is replaced, not reused.
    if (!worker.alive()) worker = await startWorker(env.vars);
    const { job, accountId, expected } = await startImport('pg-refuses', 3000, 4608);

    // What a starting-up or overloaded server does: connections are refused at once, so the
    // attempts (short backoff here) run out while no row update can land.
    const admin = new pg.Client({ connectionString: postgres.url.replace(/\/jobwire$/, '/postgres') });
    await admin.connect();
    try {
      await admin.query('ALTER DATABASE jobwire ALLOW_CONNECTIONS false');
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'jobwire' AND pid <> pg_backend_pid()");
      await waitFor('BullMQ to give up on the job', async () => (await (await queue.getJob(job.id))?.getState()) === 'failed', 30_000, 50);
      expect(worker.alive()).toBe(true);
    } finally {
      await admin.query('ALTER DATABASE jobwire ALLOW_CONNECTIONS true');
      await admin.end();
    }

    const outcome = await expectOneTerminalState(job.id, accountId, expected);
    expect(outcome.row.status).toBe('FAILED');
  }, 120_000);
});
