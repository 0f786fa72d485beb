/**
 * Operator and tenant controls (issue 11): pausing a job type (queued jobs wait, dashboards are
 * told), expiry of jobs that never started, and idempotency keys with a window. Through GraphQL,
 * with a real worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gql, gqlOk, subscribe } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const SCAN_PII = `mutation($accountId: ID!, $options: EnqueueOptions) {
  scanPii(accountId: $accountId, options: $options) { id status idempotencyKey expiresAt }
}`;
const SCAN_TRACKING = `mutation($accountId: ID!) { scanTracking(accountId: $accountId) { id } }`;
const JOB = `query($id: ID!) { job(id: $id) { id status message attempts idempotencyKey startedAt } }`;
const PAUSE = `mutation($type: JobTypeName!) { pauseJobType(type: $type) { name paused pausedAt } }`;
const RESUME = `mutation($type: JobTypeName!) { resumeJobType(type: $type) { name paused pausedAt } }`;

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let admin: string;
let accountId: string;

beforeAll(async () => {
  env = await createTestEnv({ EXPIRY_SWEEP_INTERVAL_MS: '100' });
  system = await startInProcess(env);
  [alice, admin] = await Promise.all([env.token('alice'), env.token('root', 'admin')]);
  accountId = (await gqlOk<{ createAccount: { id: string } }>(system.url, alice, CREATE_ACCOUNT, { name: 'control' })).createAccount.id;
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

const job = async (id: string) => (await gqlOk<{ job: any }>(system.url, alice, JOB, { id })).job;
const until = (id: string, status: string) =>
  waitFor(`job ${id} to be ${status}`, async () => {
    const current = await job(id);
    return current.status === status ? current : null;
  });
const scanPii = async (options: Record<string, unknown> = {}) =>
  (await gqlOk<{ scanPii: any }>(system.url, alice, SCAN_PII, { accountId, options })).scanPii;

describe('pausing a job type', () => {
  it('holds its queued jobs while other types run, tells subscribers, and runs them after resume', async () => {
    const dashboard = subscribe<{ jobTypeChanged: { name: string; paused: boolean } }>(
      'ws',
      system.url,
      alice,
      'subscription { jobTypeChanged { name paused } }',
    );
    // The subscription is live once a change made after it arrives; a pause of another type marks that point.
    await waitFor('the dashboard to be subscribed', async () => {
      await gqlOk(system.url, admin, PAUSE, { type: 'scan_unsubscribe' });
      await gqlOk(system.url, admin, RESUME, { type: 'scan_unsubscribe' });
      return dashboard.results.length > 0;
    });
    const changesOf = (type: string) =>
      dashboard.results.map((result) => result.data?.jobTypeChanged).filter((change) => change?.name === type);

    const paused = (await gqlOk<{ pauseJobType: any }>(system.url, admin, PAUSE, { type: 'scan_pii' })).pauseJobType;
    expect(paused).toMatchObject({ name: 'scan_pii', paused: true });
    expect(Date.parse(paused.pausedAt)).not.toBeNaN();
    const { jobTypes } = await gqlOk<{ jobTypes: { name: string; paused: boolean }[] }>(system.url, alice, '{ jobTypes { name paused } }');
    expect(jobTypes.filter((type) => type.paused).map((type) => type.name)).toEqual(['scan_pii']);

    const held = await scanPii();
    // Another type's job runs to its end meanwhile; the paused type's job has not started.
    const other = (await gqlOk<{ scanTracking: { id: string } }>(system.url, alice, SCAN_TRACKING, { accountId })).scanTracking.id;
    await until(other, 'COMPLETED');
    expect(await job(held.id)).toMatchObject({ status: 'PENDING', attempts: 0, startedAt: null });

    expect((await gqlOk<{ resumeJobType: any }>(system.url, admin, RESUME, { type: 'scan_pii' })).resumeJobType).toMatchObject({
      paused: false,
      pausedAt: null,
    });
    await until(held.id, 'COMPLETED');
    await waitFor('both changes to reach the dashboard', () => changesOf('scan_pii').length >= 2);
    expect(changesOf('scan_pii')).toEqual([
      { name: 'scan_pii', paused: true },
      { name: 'scan_pii', paused: false },
    ]);
    dashboard.close();
  });

  it('is for admins only', async () => {
    const response = await gql(system.url, alice, PAUSE, { type: 'scan_pii' });
    expect(response.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const { jobTypes } = await gqlOk<{ jobTypes: { paused: boolean }[] }>(system.url, alice, '{ jobTypes { paused } }');
    expect(jobTypes.some((type) => type.paused)).toBe(false);
  });
});

describe('expiry', () => {
  it('ends a job not started within expiresInMs as CANCELLED, "expired before it started"', async () => {
    await gqlOk(system.url, admin, PAUSE, { type: 'scan_pii' });
    try {
      const doomed = await scanPii({ expiresInMs: 300 });
      expect(Date.parse(doomed.expiresAt)).toBeGreaterThan(Date.now() - 1_000);
      expect(await until(doomed.id, 'CANCELLED')).toMatchObject({ message: 'expired before it started', attempts: 0, startedAt: null });
    } finally {
      await gqlOk(system.url, admin, RESUME, { type: 'scan_pii' });
    }
    // One that starts in time is not touched by it.
    const prompt = await scanPii({ expiresInMs: 3_600_000 });
    await until(prompt.id, 'COMPLETED');
  });

  it('refuses an expiry that would come before the job may start', async () => {
    const response = await gql(system.url, alice, SCAN_PII, { accountId, options: { delayMs: 1_000, expiresInMs: 500 } });
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(response.errors?.[0]?.message).toMatch(/expiresInMs must be greater than delayMs/);
  });
});

describe('idempotency window', () => {
  it('answers a repeated key with the first job within idempotencyTtlMs, and enqueues a new one after it', async () => {
    const options = { idempotencyKey: 'nightly-2026-11-29', idempotencyTtlMs: 400 };
    const first = await scanPii(options);
    expect((await scanPii(options)).id).toBe(first.id);
    // Asked again until the window has passed: then the same key makes a new job.
    const second = await waitFor('the key to enqueue a new job', async () => {
      const answer = await scanPii(options);
      return answer.id !== first.id ? answer : null;
    });
    expect(second.idempotencyKey).toBe(options.idempotencyKey);
    expect((await job(first.id)).idempotencyKey).toBeNull();
    expect((await scanPii({ idempotencyKey: options.idempotencyKey })).id).toBe(second.id);
  });

  it('refuses a window without a key', async () => {
    const response = await gql(system.url, alice, SCAN_PII, { accountId, options: { idempotencyTtlMs: 1_000 } });
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

describe('bulk actions', () => {
  const CANCEL_JOBS = `mutation($filter: JobFilter!, $all: Boolean) { cancelJobs(filter: $filter, all: $all) { id type status } }`;
  const RETRY_JOBS = `mutation($filter: JobFilter!) { retryJobs(filter: $filter) { id type } }`;
  const BULK = `query($id: ID!) { job(id: $id) { status processed total ... on BulkJobActionJob { output { action matched affected skipped { reason count } } } } }`;

  /** Runs a bulk mutation and follows its job to the end over jobProgress; returns the final job and every event. */
  async function runBulk(token: string, document: string, variables: Record<string, unknown>) {
    const response = await gql<Record<string, { id: string; type: string }>>(system.url, token, document, variables);
    if (response.errors?.length) throw new Error(JSON.stringify(response.errors));
    const { id, type } = Object.values(response.data!)[0]!;
    expect(type).toBe('bulk_job_action');
    const progress = subscribe<{ jobProgress: { status: string; processed: number | null; total: number | null } }>(
      'sse',
      system.url,
      token,
      'subscription($jobId: ID!) { jobProgress(jobId: $jobId) { status processed total } }',
      { jobId: id },
    );
    await progress.done;
    const events = progress.results.map((result) => result.data!.jobProgress);
    return { job: (await gqlOk<{ job: any }>(system.url, token, BULK, { id })).job, events };
  }

  it('cancels, then retries, the 20 of 50 jobs matching a filter, with progress and exact counts, leaving another owner’s alone', async () => {
    const bob = await env.token('bob');
    const bobAccount = (await gqlOk<{ createAccount: { id: string } }>(system.url, bob, CREATE_ACCOUNT, { name: 'bob' })).createAccount.id;
    // Held in the queue, so there is something to cancel: 20 tagged, 30 not, and bob's 5 tagged the same way.
    await gqlOk(system.url, admin, PAUSE, { type: 'scan_pii' });
    const enqueue = (token: string, account: string, tags: string[]) =>
      gqlOk<{ scanPii: { id: string } }>(system.url, token, SCAN_PII, { accountId: account, options: { tags } }).then((r) => r.scanPii.id);
    const tagged = await Promise.all(Array.from({ length: 20 }, () => enqueue(alice, accountId, ['batch-7'])));
    const others = await Promise.all(Array.from({ length: 30 }, () => enqueue(alice, accountId, ['batch-8'])));
    const bobs = await Promise.all(Array.from({ length: 5 }, () => enqueue(bob, bobAccount, ['batch-7'])));

    try {
      const cancelled = await runBulk(alice, CANCEL_JOBS, { filter: { tags: ['batch-7'] } });
      expect(cancelled.job).toMatchObject({
        status: 'COMPLETED',
        processed: 20,
        total: 20,
        output: { action: 'CANCEL', matched: 20, affected: 20, skipped: [] },
      });
      expect(cancelled.events.some((event) => event.status === 'ACTIVE' && event.total === 20)).toBe(true);
      for (const id of tagged) expect((await job(id)).status).toBe('CANCELLED');
      for (const id of others) expect((await job(id)).status).toBe('PENDING');
      for (const id of bobs) expect((await gqlOk<{ job: any }>(system.url, bob, JOB, { id })).job.status).toBe('PENDING');

      // Retrying the same filter brings the 20 back; the other 30 were never FAILED or CANCELLED.
      const retried = await runBulk(alice, RETRY_JOBS, { filter: { tags: ['batch-7'] } });
      expect(retried.job.output).toEqual({ action: 'RETRY', matched: 20, affected: 20, skipped: [] });
      for (const id of tagged) expect(await job(id)).toMatchObject({ status: 'PENDING', attempts: 0 });
      const mixed = await runBulk(alice, RETRY_JOBS, { filter: { statuses: ['PENDING'], tags: ['batch-8'] } });
      expect(mixed.job.output).toMatchObject({
        matched: 30,
        affected: 0,
        skipped: [{ reason: 'not FAILED or CANCELLED (retry)', count: 30 }],
      });
    } finally {
      await gqlOk(system.url, admin, RESUME, { type: 'scan_pii' });
    }
    for (const id of [...tagged, ...others]) await until(id, 'COMPLETED');
  });

  it('refuses an empty filter unless all: true is said', async () => {
    const before = await env.one<{ n: number }>('SELECT count(*)::int AS n FROM job');
    // Empty lists narrow nothing: such a filter is just as empty.
    for (const filter of [{}, { tags: [] }, { statuses: [], types: [] }]) {
      const refused = await gql(system.url, alice, CANCEL_JOBS, { filter });
      expect(refused.errors?.[0]?.extensions?.code, JSON.stringify(filter)).toBe('BAD_USER_INPUT');
    }
    expect((await env.one<{ n: number }>('SELECT count(*)::int AS n FROM job')).n).toBe(before.n);
    // A filter on dates works, and finds nothing created in the future.
    const dated = await runBulk(alice, CANCEL_JOBS, { filter: { createdAfter: new Date(Date.now() + 3_600_000).toISOString() } });
    expect(dated.job.output).toMatchObject({ matched: 0, affected: 0 });
    // Everything of alice's has ended by now: all of it is skipped, nothing is touched.
    const everything = await runBulk(alice, CANCEL_JOBS, { filter: {}, all: true });
    expect(everything.job.output.affected).toBe(0);
    expect(everything.job.output.matched).toBeGreaterThan(50);
  });
});
