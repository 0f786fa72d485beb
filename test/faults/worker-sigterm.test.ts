import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import { createAccount, importMbox, jobRow, ranJob, startApi, startWorker, type ApiProc, type Proc } from './fault-helpers.js';

let env: TestEnv;
let api: ApiProc;
const procs: Proc[] = [];
let token: string;
let redis: Redis;
let queue: Queue;

beforeAll(async () => {
  env = await createTestEnv({ STALLED_INTERVAL_MS: '2000', SHUTDOWN_TIMEOUT_MS: '45000' });
  api = await startApi(env.vars);
  procs.push(api);
  token = await env.token('alice');
  redis = new Redis(env.vars.REDIS_URL!, { maxRetriesPerRequest: null });
  queue = new Queue('import_mbox', { connection: redis, prefix: env.vars.REDIS_PREFIX });
}, 120_000);

afterAll(async () => {
  await Promise.all(procs.map((proc) => proc.stop()));
  await queue?.close();
  redis?.disconnect();
  await env?.cleanup();
});

async function worker(name: string, vars: Record<string, string> = {}): Promise<Proc> {
  const proc = await startWorker({ ...env.vars, ...vars }, name);
  procs.push(proc);
  return proc;
}

/** How many times BullMQ found the job stalled (its lock lost while active). */
async function stalls(jobId: string): Promise<number> {
  const job = await queue.getJob(jobId);
  if (!job) throw new Error(`BullMQ no longer has job ${jobId}`);
  return job.stalledCounter;
}

describe('a worker stopped with SIGTERM mid-job', () => {
  it('fetches no new job, lets the running ones complete, and records no stall', async () => {
    const first = await worker('worker-1');
    // import_mbox runs 3 at a time per worker (one per owner): three run, the fourth waits.
    const fixture = buildMbox({ count: 1500, malformed: 2, duplicates: 10, seed: 4202 });
    const jobs: { id: string; status: string }[] = [];
    for (let i = 0; i < 4; i++) {
      const owner = await env.token(`sigterm-owner-${i}`);
      const accountId = await createAccount(api.url, owner, `sigterm-${i}`);
      jobs.push(await importMbox(api.url, owner, accountId, fixture.mbox));
    }
    const running = await waitFor(
      'three imports to be under way',
      async () => {
        const rows = await Promise.all(jobs.map((job) => jobRow(env.sql, job.id)));
        if (rows.some((row) => row.status === 'COMPLETED')) throw new Error('an import completed before SIGTERM; use a bigger mbox');
        const active = rows.filter((row) => row.status === 'ACTIVE' && (row.processed ?? 0) > 0);
        return active.length === 3 ? active : null;
      },
      60_000,
      20,
    );
    const waiting = jobs.find((job) => !running.some((row) => row.id === job.id))!;

    first.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    for (const row of running) {
      const final = await jobRow(env.sql, row.id);
      expect(final).toMatchObject({ status: 'COMPLETED', attempts: 1, processed: fixture.expected.messages });
      expect(await stalls(row.id)).toBe(0);
    }
    // The free slots did not fetch the fourth job on the way out.
    expect(ranJob(first, waiting.id)).toBe(false);
    expect(await jobRow(env.sql, waiting.id)).toMatchObject({ status: 'PENDING', attempts: 0 });
    expect(await (await queue.getJob(waiting.id))!.getState()).toBe('waiting');

    // The next worker takes it from the queue as a first attempt.
    const second = await worker('worker-2');
    await waitFor(
      'the waiting import to complete on the next worker',
      async () => (await jobRow(env.sql, waiting.id)).status === 'COMPLETED',
      60_000,
      100,
    );
    expect(ranJob(second, waiting.id)).toBe(true);
    expect(await jobRow(env.sql, waiting.id)).toMatchObject({ attempts: 1 });
    expect(await stalls(waiting.id)).toBe(0);
    await second.stop();
  }, 150_000);

  it('past the shutdown deadline, hands the running job back to the queue at once, without a stall', async () => {
    const impatient = await worker('worker-deadline', { SHUTDOWN_TIMEOUT_MS: '500' });
    const fixture = buildMbox({ count: 2500, seed: 4203 });
    const accountId = await createAccount(api.url, token, 'sigterm-deadline');
    const job = await importMbox(api.url, token, accountId, fixture.mbox);
    await waitFor(
      'the import to be under way',
      async () => {
        const row = await jobRow(env.sql, job.id);
        if (row.status === 'COMPLETED') throw new Error('the import completed before SIGTERM; use a bigger mbox');
        return row.status === 'ACTIVE' && (row.processed ?? 0) > 0;
      },
      60_000,
      20,
    );

    impatient.kill('SIGTERM');
    await impatient.exited;
    // Handed back: waiting for the next worker, not stuck active until its lock expires.
    const state = await (await queue.getJob(job.id))!.getState();
    expect(state).toBe('waiting');
    const row = await jobRow(env.sql, job.id);
    expect(row.status).not.toBe('ACTIVE');

    const next = await worker('worker-after-deadline');
    const final = await waitFor(
      'the handed-back import to complete',
      async () => {
        const current = await jobRow(env.sql, job.id);
        return current.status === 'COMPLETED' ? current : null;
      },
      60_000,
      100,
    );
    expect(ranJob(next, job.id)).toBe(true);
    expect(final.processed).toBe(fixture.expected.messages);
    expect(await stalls(job.id)).toBe(0);
    const { count } = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM message WHERE account_id = $1', [accountId]);
    expect(count).toBe(fixture.expected.unique);
    await next.stop();
  }, 120_000);
});
