/**
 * What a user sees inside a job (issue 10): the history of its attempts across retries, its tags
 * and how to find jobs by them (list, counts, stream), and metadata a handler sets while it runs.
 * Test-only job types make the attempt outcomes deterministic; they run through the real enqueue
 * path, queue, worker and row updates, and are read back through GraphQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from '../../src/engine/define-job.js';
import { enqueueJob, type EnqueueDeps, retryJob } from '../../src/engine/enqueue.js';
import { PermanentJobError } from '../../src/engine/errors.js';
import { toEventMessage } from '../../src/engine/job-store.js';
import { jobCatalogue } from '../../src/jobs/registry.js';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gql, gqlOk, subscribe } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const flakyJob = defineJob({
  name: 'test_flaky_logged',
  description: 'Fails its first two attempts, logging each.',
  graphql: { mutation: 'testFlakyLogged', typeName: 'TestFlakyLoggedJob' },
  unit: 'attempts',
  args: z.object({}),
  input: z.object({}),
  output: z.object({ succeededOnAttempt: z.number() }),
  options: { attempts: 3, backoff: { type: 'fixed', delayMs: 50 } },
  prepare: async () => ({ input: {}, accountId: null }),
  handler: async (_input, ctx) => {
    ctx.log.info(`attempt ${ctx.attempt} starting`, { attempt: ctx.attempt, password: 'hunter2' });
    if (ctx.attempt < 3) throw new Error(`transient failure on attempt ${ctx.attempt}`);
    return { succeededOnAttempt: ctx.attempt };
  },
});

const doomedJob = defineJob({
  name: 'test_doomed',
  description: 'Fails for good at once.',
  graphql: { mutation: 'testDoomed', typeName: 'TestDoomedJob' },
  unit: 'items',
  args: z.object({}),
  input: z.object({}),
  output: z.object({}),
  options: { attempts: 5 },
  prepare: async () => ({ input: {}, accountId: null }),
  handler: async () => {
    throw new PermanentJobError('the input can never be processed');
  },
});

/** Per job id, what lets its handler finish: the test decides when. */
const gates = new Map<string, () => void>();

const meteredJob = defineJob({
  name: 'test_metered',
  description: 'Sets metadata, then waits for the test before finishing.',
  graphql: { mutation: 'testMetered', typeName: 'TestMeteredJob' },
  unit: 'steps',
  args: z.object({}),
  input: z.object({}),
  output: z.object({}),
  prepare: async () => ({ input: {}, accountId: null }),
  handler: async (_input, ctx) => {
    ctx.setMetadata({ phase: 'half', bytesRead: 512 });
    await new Promise<void>((resolve) => gates.set(ctx.jobId, resolve));
    ctx.setMetadata({ phase: 'done' });
    ctx.setMetadata({ huge: 'x'.repeat(9_000) });
    return {};
  },
});

const ATTEMPTS = `query($id: ID!) {
  job(id: $id) { status run attempts error attemptHistory { run number startedAt finishedAt outcome error durationMs worker } }
}`;
const SCAN = `mutation($accountId: ID!, $options: EnqueueOptions) { scanPii(accountId: $accountId, options: $options) { id tags metadata } }`;
const JOBS = `query($filter: JobFilter) { jobs(filter: $filter, first: 200) { nodes { id tags } totalCount } }`;

let env: TestEnv;
let system: InProcessSystem;
let deps: EnqueueDeps;
let alice: string;
let bob: string;
let admin: string;
let aliceAccount: string;
let bobAccount: string;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env, { declarations: [...jobCatalogue, flakyJob, doomedJob, meteredJob] });
  [alice, bob, admin] = await Promise.all([env.token('alice'), env.token('bob'), env.token('root', 'admin')]);
  const services = system.apiServices;
  deps = {
    em: services.orm.em.fork(),
    queues: services.queues,
    storage: services.storage,
    config: services.config,
    publish: (job) => services.pubsub.publishJobEvent(toEventMessage(job)),
  };
  aliceAccount = (await gqlOk<{ createAccount: { id: string } }>(system.url, alice, CREATE_ACCOUNT, { name: 'a' })).createAccount.id;
  bobAccount = (await gqlOk<{ createAccount: { id: string } }>(system.url, bob, CREATE_ACCOUNT, { name: 'b' })).createAccount.id;
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

async function enqueueAs(declaration: typeof flakyJob | typeof doomedJob | typeof meteredJob, ownerId = 'alice'): Promise<string> {
  const job = await enqueueJob(deps, { declaration, args: {}, ownerId, isAdmin: false, trigger: 'API' });
  return job.id;
}

async function settled(token: string, id: string): Promise<any> {
  return waitFor(
    `job ${id} to end`,
    async () => {
      const { job } = await gqlOk<{ job: any }>(system.url, token, ATTEMPTS, { id });
      return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(job.status) ? job : null;
    },
    30_000,
  );
}

describe('attempt history', () => {
  it('shows a job failing twice then succeeding as RETRIED, RETRIED, COMPLETED, with errors and durations', async () => {
    const id = await enqueueAs(flakyJob);
    const job = await settled(alice, id);
    expect(job).toMatchObject({ status: 'COMPLETED', attempts: 3, run: 1 });
    expect(job.attemptHistory.map((a: any) => [a.run, a.number, a.outcome, a.error])).toEqual([
      [1, 1, 'RETRIED', 'transient failure on attempt 1'],
      [1, 2, 'RETRIED', 'transient failure on attempt 2'],
      [1, 3, 'COMPLETED', null],
    ]);
    for (const attempt of job.attemptHistory) {
      expect(attempt.durationMs).toBe(Date.parse(attempt.finishedAt) - Date.parse(attempt.startedAt));
      expect(attempt.worker).toBe(`${(await import('node:os')).hostname()}:${process.pid}`);
    }
    // Each attempt's line is in the log, tagged with its attempt, and a secret-named field is redacted.
    const { job: logged } = await gqlOk<{ job: any }>(
      system.url,
      alice,
      `query($id: ID!) { job(id: $id) { logs { nodes { attempt message fields } } } }`,
      {
        id,
      },
    );
    expect(logged.logs.nodes).toEqual(
      [1, 2, 3].map((n) => ({ attempt: n, message: `attempt ${n} starting`, fields: { attempt: n, password: '[redacted]' } })),
    );
  });

  it('keeps the first run when a failed job is retried, each attempt with its run number', async () => {
    const id = await enqueueAs(doomedJob);
    expect((await settled(alice, id)).status).toBe('FAILED');
    // The engine's retryJob (what the mutation calls): test types have no GraphQL mutations.
    expect(await retryJob(deps, doomedJob, id)).toMatchObject({ run: 2, attempts: 0, trigger: 'RETRY' });
    const job = await waitFor('the second run to fail', async () => {
      const current = await settled(alice, id);
      return current.attemptHistory.length === 2 ? current : null;
    });
    expect(job).toMatchObject({ status: 'FAILED', run: 2, attempts: 1 });
    expect(job.attemptHistory.map((a: any) => [a.run, a.number, a.outcome, a.error])).toEqual([
      [1, 1, 'FAILED', 'the input can never be processed'],
      [2, 1, 'FAILED', 'the input can never be processed'],
    ]);
  });
});

describe('metadata', () => {
  it('reaches a jobProgress subscriber while the job runs, merged into what was given at enqueue', async () => {
    const job = await enqueueJob(deps, {
      declaration: meteredJob,
      args: {},
      ownerId: 'alice',
      isAdmin: false,
      trigger: 'API',
      options: { metadata: { requestedBy: 'nightly-cron' }, tags: ['metered'] },
    });
    const sub = subscribe<{ jobProgress: any }>(
      'ws',
      system.url,
      alice,
      `subscription($jobId: ID!) { jobProgress(jobId: $jobId) { status metadata tags job { metadata } } }`,
      {
        jobId: job.id,
      },
    );
    const running = await waitFor('the metadata set mid-run to reach the subscriber', () =>
      sub.results.map((result) => result.data?.jobProgress).find((event) => event?.metadata.phase === 'half'),
    );
    expect(running).toMatchObject({
      status: 'ACTIVE',
      tags: ['metered'],
      metadata: { requestedBy: 'nightly-cron', phase: 'half', bytesRead: 512 },
    });
    expect(running.job.metadata).toEqual(running.metadata);
    gates.get(job.id)!();
    await sub.done;
    const last = sub.results.at(-1)!.data!.jobProgress;
    // The patch past 8 KiB was refused (and said so in the log); the one before it stands.
    expect(last).toMatchObject({ status: 'COMPLETED', metadata: { requestedBy: 'nightly-cron', phase: 'done', bytesRead: 512 } });
    expect(last.metadata.huge).toBeUndefined();
    const { job: logged } = await gqlOk<{ job: any }>(
      system.url,
      alice,
      `query($id: ID!) { job(id: $id) { logs { nodes { level message } } } }`,
      {
        id: job.id,
      },
    );
    expect(logged.logs.nodes).toEqual([{ level: 'WARN', message: expect.stringMatching(/^metadata update refused/) }]);
  });
});

describe('tags', () => {
  let nightly: string;
  let nightlyCustomer: string;
  let bobsNightly: string;

  beforeAll(async () => {
    const scan = async (token: string, accountId: string, options: Record<string, unknown>) =>
      (await gqlOk<{ scanPii: { id: string; tags: string[]; metadata: unknown } }>(system.url, token, SCAN, { accountId, options }))
        .scanPii;
    const first = await scan(alice, aliceAccount, { tags: ['nightly', 'nightly'], metadata: { ticket: 'OPS-1' } });
    expect(first).toMatchObject({ tags: ['nightly'], metadata: { ticket: 'OPS-1' } });
    nightly = first.id;
    nightlyCustomer = (await scan(alice, aliceAccount, { tags: ['customer:4711', 'nightly'] })).id;
    await scan(alice, aliceAccount, { tags: ['customer:4711'] });
    await scan(alice, aliceAccount, {});
    bobsNightly = (await scan(bob, bobAccount, { tags: ['nightly', 'customer:4711'] })).id;
  });

  const listed = async (token: string, tags: string[]) =>
    (await gqlOk<{ jobs: { nodes: { id: string }[]; totalCount: number } }>(system.url, token, JOBS, { filter: { tags } })).jobs;

  it('finds jobs holding one tag, and all of two tags; never another owner’s', async () => {
    const one = await listed(alice, ['nightly']);
    expect(one.nodes.map((job) => job.id).sort()).toEqual([nightly, nightlyCustomer].sort());
    expect(one.totalCount).toBe(2);
    expect((await listed(alice, ['nightly', 'customer:4711'])).nodes.map((job) => job.id)).toEqual([nightlyCustomer]);
    expect((await listed(bob, ['nightly'])).nodes.map((job) => job.id)).toEqual([bobsNightly]);
    expect((await listed(admin, ['nightly', 'customer:4711'])).nodes.map((job) => job.id).sort()).toEqual(
      [nightlyCustomer, bobsNightly].sort(),
    );
    expect((await listed(alice, ['nobody-uses-this'])).nodes).toEqual([]);

    const { jobCounts } = await gqlOk<{ jobCounts: { type: string; count: number }[] }>(
      system.url,
      alice,
      `query($filter: JobFilter) { jobCounts(filter: $filter) { type status count } }`,
      { filter: { tags: ['customer:4711'] } },
    );
    expect(jobCounts.reduce((sum, row) => sum + row.count, 0)).toBe(2);
  });

  it('streams only the jobs holding the tags to a jobEvents subscriber', async () => {
    const dashboard = subscribe<{ jobEvents: any }>(
      'sse',
      system.url,
      alice,
      `subscription { jobEvents(filter: { tags: ["stream-me"] }) { status tags job { id } } }`,
    );
    // Untagged first, and finished before the tagged one exists: its events come earlier in the stream, if at all.
    const untagged = (await gqlOk<{ scanPii: { id: string } }>(system.url, alice, SCAN, { accountId: aliceAccount, options: {} })).scanPii
      .id;
    await settled(alice, untagged);
    const tagged = (
      await gqlOk<{ scanPii: { id: string } }>(system.url, alice, SCAN, { accountId: aliceAccount, options: { tags: ['stream-me'] } })
    ).scanPii.id;
    await waitFor('the tagged job to complete on the stream', () =>
      dashboard.results.some((result) => result.data?.jobEvents.job.id === tagged && result.data.jobEvents.status === 'COMPLETED'),
    );
    dashboard.close();
    const ids = new Set(dashboard.results.map((result) => result.data?.jobEvents.job.id));
    expect([...ids]).toEqual([tagged]);
  });

  it('refuses invalid tags and metadata with BAD_USER_INPUT, creating nothing', async () => {
    const before = await env.one<{ n: number }>('SELECT count(*)::int AS n FROM job');
    const cases: Record<string, unknown>[] = [
      { tags: Array.from({ length: 11 }, (_, i) => `t${i}`) },
      { tags: [''] },
      { tags: ['x'.repeat(65)] },
      { tags: ['has space'] },
      { tags: ['-leading-dash'] },
      { metadata: ['not', 'an', 'object'] },
      { metadata: 'a string' },
      { metadata: { blob: 'x'.repeat(8_200) } },
    ];
    for (const options of cases) {
      const response = await gql(system.url, alice, SCAN, { accountId: aliceAccount, options });
      expect(response.errors?.[0]?.extensions?.code, JSON.stringify(options).slice(0, 80)).toBe('BAD_USER_INPUT');
      expect(response.data?.scanPii ?? null).toBeNull();
    }
    expect((await env.one<{ n: number }>('SELECT count(*)::int AS n FROM job')).n).toBe(before.n);
    const badFilter = await gql(system.url, alice, JOBS, { filter: { tags: ['has space'] } });
    expect(badFilter.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});
