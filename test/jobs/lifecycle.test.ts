import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { JobRecord } from '../../src/db/entities/job.entity.js';
import { defineJob } from '../../src/engine/define-job.js';
import { enqueueJob, type EnqueueDeps } from '../../src/engine/enqueue.js';
import { PermanentJobError } from '../../src/engine/errors.js';
import { completeJobs, startJobs, toEventMessage } from '../../src/engine/job-store.js';
import { jobCatalogue } from '../../src/jobs/registry.js';
import { topics, type JobEventMessage } from '../../src/pubsub/topics.js';
import { CREATE_ACCOUNT, IMPORT_MBOX, JOB, JOB_FIELDS, JOB_PROGRESS } from '../helpers/fragments.js';
import { gql, gqlOk, gqlUpload, subscribe } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

/**
 * Test-only job types exercise the runner's retry and failure paths deterministically. They run
 * through the real enqueue path, queue, worker and row updates; only the handler is a fixture.
 */
const flakyJob = defineJob({
  name: 'test_flaky',
  description: 'Fails until its third attempt.',
  graphql: { mutation: 'testFlaky', typeName: 'TestFlakyJob' },
  unit: 'attempts',
  args: z.object({}),
  input: z.object({}),
  output: z.object({ succeededOnAttempt: z.number() }),
  options: { attempts: 3, backoff: { type: 'exponential', delayMs: 100 } },
  prepare: async () => ({ input: {}, accountId: null }),
  handler: async (_input, ctx) => {
    if (ctx.attempt < 3) throw new Error(`transient failure on attempt ${ctx.attempt}`);
    return { succeededOnAttempt: ctx.attempt };
  },
});

const strictJob = defineJob({
  name: 'test_strict',
  description: 'Rejects its input as permanently invalid.',
  graphql: { mutation: 'testStrict', typeName: 'TestStrictJob' },
  unit: 'items',
  args: z.object({ value: z.number() }),
  input: z.object({ value: z.number() }),
  output: z.object({}),
  options: { attempts: 5 },
  prepare: async (args) => ({ input: args, accountId: null }),
  handler: async (input) => {
    throw new PermanentJobError(`value ${input.value} can never be processed`);
  },
});

/** The attempts of `test_gated` now running, by job id: each waits for the test to say how it ends. */
const gatedAttempts = new Map<string, (outcome: 'complete' | 'fail') => void>();
/** Jobs whose input `test_gated`'s `release` freed. */
const releasedInputs: string[] = [];

const gatedJob = defineJob({
  name: 'test_gated',
  description: 'Runs until the test ends it, completed or failed; records when its input is released.',
  graphql: { mutation: 'testGated', typeName: 'TestGatedJob' },
  unit: 'attempts',
  args: z.object({}),
  input: z.object({}),
  output: z.object({ attempt: z.number() }),
  options: { attempts: 1 },
  prepare: async () => ({ input: {}, accountId: null }),
  handler: async (_input, ctx) => {
    const outcome = await new Promise<'complete' | 'fail'>((resolve) => gatedAttempts.set(ctx.jobId, resolve));
    if (outcome === 'fail') throw new Error(`attempt ${ctx.attempt} failed`);
    return { attempt: ctx.attempt };
  },
  release: async (_input, { jobId }) => {
    releasedInputs.push(jobId);
  },
});

let env: TestEnv;
let system: InProcessSystem;
let token: string;
let deps: EnqueueDeps;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env, { declarations: [...jobCatalogue, flakyJob, strictJob, gatedJob] });
  token = await env.token('alice');
  const services = system.apiServices;
  deps = {
    em: services.orm.em.fork(),
    queues: services.queues,
    storage: services.storage,
    config: services.config,
    publish: (job) => services.pubsub.publishJobEvent(toEventMessage(job)),
  };
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

async function row(id: string): Promise<JobRecord & Record<string, unknown>> {
  return env.one('SELECT status, attempts, error, result, trigger FROM job WHERE id = $1', [id]);
}

/** Collects the pub/sub events of one job, as every API replica receives them. */
async function recordEvents(jobId: string): Promise<{ events: JobEventMessage[]; stop: () => void }> {
  const events: JobEventMessage[] = [];
  const stop = await system.apiServices.pubsub.listen(topics.job(jobId), (event) => void events.push(event));
  return { events, stop };
}

describe('job lifecycle', () => {
  it('consumes every declared type in the worker and lists it in jobTypes', async () => {
    expect(system.sidecar!.runner.types).toEqual(expect.arrayContaining(jobCatalogue.map((d) => d.name)));
    const { jobTypes } = await gqlOk<{ jobTypes: { name: string; mutation: string; attempts: number; backoff: { delayMs: number } }[] }>(
      system.url,
      token,
      '{ jobTypes { name mutation attempts backoff { delayMs } } }',
    );
    expect(jobTypes.map((t) => t.name).sort()).toEqual(jobCatalogue.map((d) => d.name).sort());
    expect(jobTypes.find((t) => t.name === 'import_mbox')).toMatchObject({
      mutation: 'importMbox',
      attempts: 3,
      backoff: { delayMs: 2000 },
    });
  });

  it('retries a failing job with backoff until it completes on its third attempt', async () => {
    const job = await enqueueJob(deps, { declaration: flakyJob, args: {}, ownerId: 'alice', isAdmin: false, trigger: 'API' });
    const recorder = await recordEvents(job.id);
    await waitFor('flaky job to complete', async () => (await row(job.id)).status === 'COMPLETED');
    recorder.stop();
    const final = await row(job.id);
    expect(final).toMatchObject({ status: 'COMPLETED', attempts: 3, error: null, result: { succeededOnAttempt: 3 } });
    const statuses = recorder.events.map((e) => e.job.status);
    // Between attempts the row waits as DELAYED with the last error; it is FAILED only when none is left.
    expect(statuses.filter((s) => s === 'DELAYED')).toHaveLength(2);
    expect(statuses).not.toContain('FAILED');
    expect(recorder.events.find((e) => e.job.status === 'DELAYED')?.job.error).toBe('transient failure on attempt 1');
  });

  it('fails an unrecoverable job after one attempt, whatever attempts are left', async () => {
    const job = await enqueueJob(deps, { declaration: strictJob, args: { value: 7 }, ownerId: 'alice', isAdmin: false, trigger: 'API' });
    await waitFor('strict job to fail', async () => (await row(job.id)).status === 'FAILED');
    expect(await row(job.id)).toMatchObject({ status: 'FAILED', attempts: 1, error: 'value 7 can never be processed' });
  });

  it('fails a job whose stored payload no longer matches its declaration, without retrying', async () => {
    const job = await enqueueJob(deps, {
      declaration: strictJob,
      args: { value: 1 },
      ownerId: 'alice',
      isAdmin: false,
      trigger: 'API',
      options: { delayMs: 60_000 },
    });
    await env.sql(`UPDATE job SET payload = '{"value":"not a number"}' WHERE id = $1`, [job.id]);
    await system.apiServices.queues.get('test_strict').remove(job.id);
    await system.apiServices.queues.add('test_strict', job.id, { value: 'not a number' }, { attempts: 5 });
    await waitFor('bad payload to fail', async () => (await row(job.id)).status === 'FAILED');
    const final = await row(job.id);
    expect(final.attempts).toBe(1);
    expect(final.error).toMatch(/^invalid payload: value:/);
  });

  it.each(['complete', 'fail'] as const)(
    'an attempt that ends (%s) after a newer attempt took the job over changes nothing and frees no input',
    async (outcome) => {
      const job = await enqueueJob(deps, { declaration: gatedJob, args: {}, ownerId: 'alice', isAdmin: false, trigger: 'API' });
      await waitFor('the first attempt to run', async () => gatedAttempts.has(job.id));
      // What another worker does when BullMQ finds the first attempt stalled and hands it the job.
      const em = system.apiServices.orm.em.fork();
      const newer = (await startJobs(em, [job.id], 'another-worker')).get(job.id)!;
      expect(newer).toMatchObject({ status: 'ACTIVE', attempts: 2 });
      const queued = await system.apiServices.queues.get('test_gated').getJob(job.id);
      gatedAttempts.get(job.id)!(outcome);
      await waitFor('the first attempt to end in the queue', async () => ['completed', 'failed'].includes(await queued!.getState()));

      expect(await row(job.id)).toMatchObject({ status: 'ACTIVE', attempts: 2, result: null, error: null });
      expect(releasedInputs).not.toContain(job.id);
      const attempts = await env.sql<{ number: number; outcome: string | null }>(
        'SELECT number, outcome FROM job_attempt WHERE job_id = $1 ORDER BY number',
        [job.id],
      );
      expect(attempts).toEqual([
        { number: 1, outcome: 'STALLED' },
        { number: 2, outcome: null },
      ]);
      // The newer attempt still owns the row and ends it.
      const ended = (
        await completeJobs(em, [{ id: job.id, run: newer.run, attempt: 2, processed: 1, total: 1, result: { attempt: 2 } }])
      ).get(job.id);
      expect(ended).toMatchObject({ status: 'COMPLETED', result: { attempt: 2 } });
    },
  );
});

describe('enqueue options', () => {
  let accountId: string;
  const mbox = buildMbox({ count: 3, seed: 3 }).mbox;
  const upload = (variables: Record<string, unknown>) =>
    gqlUpload<{ importMbox: any }>(
      system.url,
      token,
      IMPORT_MBOX,
      { accountId, file: null, ...variables },
      { path: 'file', content: mbox, filename: 'a.mbox' },
    );

  beforeAll(async () => {
    accountId = (await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, { name: 'opts' })).createAccount.id;
  });

  it('returns the first job for a repeated idempotency key of the same owner only', async () => {
    const first = (await upload({ options: { idempotencyKey: 'nightly-1' } })).data!.importMbox;
    const second = (await upload({ options: { idempotencyKey: 'nightly-1' } })).data!.importMbox;
    expect(second.id).toBe(first.id);
    expect(second.idempotencyKey).toBe('nightly-1');
    const { count } = await env.one<{ count: number }>("SELECT count(*)::int AS count FROM job WHERE idempotency_key = 'nightly-1'");
    expect(count).toBe(1);
    const other = (await upload({ options: { idempotencyKey: 'nightly-2' } })).data!.importMbox;
    expect(other.id).not.toBe(first.id);
  });

  it('delays a job with delayMs, and cancelling it while queued removes it at once', async () => {
    const job = (await upload({ options: { delayMs: 600_000 } })).data!.importMbox;
    expect(job.status).toBe('DELAYED');
    expect(Date.parse(job.runAt) - Date.parse(job.createdAt)).toBeGreaterThanOrEqual(599_000);
    const { cancelJob } = await gqlOk<{ cancelJob: any }>(
      system.url,
      token,
      `mutation($id: ID!) { cancelJob(id: $id) { ${JOB_FIELDS} } }`,
      { id: job.id },
    );
    expect(cancelJob).toMatchObject({ status: 'CANCELLED' });
    expect(cancelJob.cancelRequestedAt).not.toBeNull();
    expect(await system.apiServices.queues.get('import_mbox').getJob(job.id)).toBeUndefined();
    // Its upload was released with the cancel, so a retry runs and says why it cannot import.
    const retry = `mutation($id: ID!) { retryJob(id: $id) { ${JOB_FIELDS} } }`;
    await gqlOk(system.url, token, retry, { id: job.id });
    const refused = await waitFor('retried import to fail', async () => {
      const current = await row(job.id);
      return current.status === 'FAILED' ? current : null;
    });
    expect(refused.error).toBe('the uploaded file is gone');

    // A job whose input holds nothing outside the database comes back under the same id.
    const scan = (
      await gqlOk<{ scanPii: { id: string } }>(
        system.url,
        token,
        'mutation($a: ID!) { scanPii(accountId: $a, options: { delayMs: 600000 }) { id } }',
        {
          a: accountId,
        },
      )
    ).scanPii;
    await gqlOk(system.url, token, 'mutation($id: ID!) { cancelJob(id: $id) { id } }', { id: scan.id });
    const { retryJob } = await gqlOk<{ retryJob: any }>(system.url, token, retry, { id: scan.id });
    expect(retryJob).toMatchObject({ id: scan.id, status: 'PENDING', trigger: 'RETRY', cancelRequestedAt: null });
    await waitFor('retried job', async () => (await row(scan.id)).status === 'COMPLETED');
  });

  it('rejects bad options with BAD_USER_INPUT and creates no job', async () => {
    const before = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM job');
    for (const options of [{ priority: 0 }, { delayMs: -5 }, { idempotencyKey: '' }]) {
      const response = await upload({ options });
      expect(response.errors?.[0]?.extensions?.code, JSON.stringify(options)).toBe('BAD_USER_INPUT');
    }
    const notUuid = await upload({ accountId: 'not-a-uuid' });
    expect(notUuid.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const after = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM job');
    expect(after.count).toBe(before.count);
  });

  it('refuses to retry a job that has not failed', async () => {
    const job = (await upload({})).data!.importMbox;
    await waitFor('import', async () => (await row(job.id)).status === 'COMPLETED');
    const response = await gql(system.url, token, `mutation($id: ID!) { retryJob(id: $id) { id } }`, { id: job.id });
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

describe('cancelling a running job', () => {
  it('aborts the handler at its next checkpoint; the row ends CANCELLED, not retried', async () => {
    const fixture = buildMbox({ count: 4000, seed: 21, attachmentEvery: 0 });
    const accountId = (await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, { name: 'big' })).createAccount.id;
    const response = await gqlUpload<{ importMbox: any }>(
      system.url,
      token,
      IMPORT_MBOX,
      { accountId, file: null },
      {
        path: 'file',
        content: fixture.mbox,
        filename: 'big.mbox',
      },
    );
    const jobId = response.data!.importMbox.id;
    const sub = subscribe<{ jobProgress: any }>('ws', system.url, token, JOB_PROGRESS, { jobId });
    await waitFor('import to make progress', () => sub.results.some((r) => (r.data?.jobProgress.processed ?? 0) > 0));
    const { cancelJob } = await gqlOk<{ cancelJob: any }>(
      system.url,
      token,
      `mutation($id: ID!) { cancelJob(id: $id) { status cancelRequestedAt } }`,
      {
        id: jobId,
      },
    );
    expect(cancelJob.cancelRequestedAt).not.toBeNull();
    await sub.done;
    const last = sub.results.at(-1)!.data!.jobProgress;
    expect(last.status).toBe('CANCELLED');
    const final = (await gqlOk<{ job: any }>(system.url, token, JOB, { id: jobId })).job;
    expect(final).toMatchObject({ status: 'CANCELLED', attempts: 1 });
    const { count } = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM message WHERE account_id = $1', [accountId]);
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThan(fixture.expected.unique);
  });
});
