/**
 * Events that are Jobs (issue 8): a subscriber that selects `job { ... }` gets the concrete job type
 * with `__typename`, `id` and the typed output, read from the event itself, so a normalized cache
 * (Apollo, urql graphcache, Relay) updates the job it holds; `previousStatus` lets a dashboard keep
 * its counts per status from the stream alone. Real API and worker, real graphql-ws and graphql-sse.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_ACCOUNT, IMPORT_MBOX } from '../helpers/fragments.js';
import { gqlOk, gqlUpload, subscribe, type Transport } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

const JOB_PROGRESS_WITH_JOB = `subscription($jobId: ID!) {
  jobProgress(jobId: $jobId) {
    jobId status previousStatus
    job {
      __typename id status progress processed total attempts maxAttempts startedAt finishedAt trigger
      ... on ImportMboxJob { input { accountId filename } output { total imported duplicates malformed } }
    }
  }
}`;
const JOB_EVENTS = `subscription { jobEvents { jobId status previousStatus job { __typename id status } } }`;

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let accountId: string;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env);
  alice = await env.token('alice');
  accountId = (await gqlOk<{ createAccount: { id: string } }>(system.url, alice, CREATE_ACCOUNT, { name: 'inbox' })).createAccount.id;
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

/** Each import brings new messages, so every one imports all eight. */
let seed = 0;

async function startImport(options?: Record<string, unknown>): Promise<string> {
  const response = await gqlUpload<{ importMbox: { id: string } }>(
    system.url,
    alice,
    IMPORT_MBOX,
    { accountId, file: null, options },
    {
      path: 'file',
      content: buildMbox({ count: 8, seed: ++seed }).mbox,
      filename: 'events.mbox',
    },
  );
  expect(response.errors).toBeUndefined();
  return response.data!.importMbox.id;
}

describe('jobProgress events carry the job', () => {
  for (const transport of ['ws', 'sse'] as Transport[]) {
    it(`gives the concrete job with its typed output on COMPLETED (${transport})`, async () => {
      // Delayed, so the subscription is open before the job runs.
      const jobId = await startImport({ delayMs: 300 });
      const sub = subscribe<{ jobProgress: any }>(transport, system.url, alice, JOB_PROGRESS_WITH_JOB, { jobId });
      await sub.done;
      const events = sub.results.map((result) => result.data!.jobProgress);
      const last = events.at(-1)!;
      expect(last.status).toBe('COMPLETED');
      expect(last.job).toMatchObject({
        __typename: 'ImportMboxJob',
        id: jobId,
        status: 'COMPLETED',
        progress: 100,
        attempts: 1,
        trigger: 'API',
        input: { accountId, filename: 'events.mbox' },
        output: { total: 8, imported: 8, duplicates: 0, malformed: 0 },
      });
      expect(last.job.startedAt).toBeTruthy();
      expect(last.job.finishedAt).toBeTruthy();
      // Every event's job is the same cache entry, moving forward.
      for (const event of events) expect(event.job).toMatchObject({ __typename: 'ImportMboxJob', id: jobId, status: event.status });
      expect(events.slice(0, -1).every((event) => event.job.output === null)).toBe(true);
    });
  }
});

describe('previousStatus', () => {
  it('lets a dashboard keep counts per status from the stream alone', async () => {
    const dashboard = subscribe<{ jobEvents: any }>('sse', system.url, alice, JOB_EVENTS);
    // The stream is open once a probe job's first event arrives.
    await waitFor('the dashboard stream', async () => {
      await startImport();
      return dashboard.results.length > 0;
    });
    const ids = await Promise.all([startImport(), startImport(), startImport()]);
    await waitFor(
      'three imports to complete on the dashboard',
      () => ids.every((id) => dashboard.results.some((r) => r.data?.jobEvents.jobId === id && r.data.jobEvents.status === 'COMPLETED')),
      60_000,
    );
    dashboard.close();

    const events = dashboard.results.map((result) => result.data!.jobEvents).filter((event) => ids.includes(event.jobId));
    const counts = new Map<string, number>();
    for (const event of events) {
      expect(event.job).toMatchObject({ __typename: 'ImportMboxJob', id: event.jobId, status: event.status });
      if (event.previousStatus === event.status) continue;
      if (event.previousStatus) counts.set(event.previousStatus, (counts.get(event.previousStatus) ?? 0) - 1);
      counts.set(event.status, (counts.get(event.status) ?? 0) + 1);
    }
    // Counted from the events alone, the three jobs end where the database says they are.
    expect(Object.fromEntries([...counts].filter(([, n]) => n !== 0))).toEqual({ COMPLETED: 3 });
    // Changes made faster than the replica reads fold into one event, so a job may first appear
    // ACTIVE or even COMPLETED; each event's previousStatus is the status of the event before it.
    for (const id of ids) {
      const own = events.filter((event) => event.jobId === id);
      expect(own[0]).toMatchObject({ previousStatus: null });
      for (const [i, event] of own.entries()) if (i > 0) expect(event.previousStatus).toBe(own[i - 1]!.status);
      expect(own.at(-1)).toMatchObject({ status: 'COMPLETED' });
    }
  });
});

describe('jobEvents with ids', () => {
  it('watches a set of jobs on one subscription, and nothing else', async () => {
    const [watched, other] = await Promise.all([startImport({ delayMs: 500 }), startImport({ delayMs: 500 })]);
    const sub = subscribe<{ jobEvents: any }>(
      'ws',
      system.url,
      alice,
      'subscription($ids: [ID!]) { jobEvents(filter: { ids: $ids }) { jobId status } }',
      {
        ids: [watched],
      },
    );
    await waitFor(
      'the watched job to complete',
      () => sub.results.some((r) => r.data?.jobEvents.jobId === watched && r.data.jobEvents.status === 'COMPLETED'),
      60_000,
    );
    // The other job runs to its end while the subscription is open, and none of its events arrive.
    await waitFor(
      'the other job to complete',
      async () =>
        (await gqlOk<{ job: { status: string } }>(system.url, alice, 'query($id: ID!) { job(id: $id) { status } }', { id: other })).job
          .status === 'COMPLETED',
    );
    sub.close();
    expect(new Set(sub.results.map((r) => r.data!.jobEvents.jobId))).toEqual(new Set([watched]));
  });
});

describe('watchers of the same job', () => {
  it('each get every change of it, whoever else watches it or leaves', async () => {
    const [watched, other] = await Promise.all([startImport({ delayMs: 400 }), startImport({ delayMs: 400 })]);
    const both = subscribe<{ jobEvents: any }>(
      'ws',
      system.url,
      alice,
      'subscription($ids: [ID!]) { jobEvents(filter: { ids: $ids }) { jobId status } }',
      {
        ids: [other, watched],
      },
    );
    const leaving = subscribe<{ jobProgress: any }>('sse', system.url, alice, JOB_PROGRESS_WITH_JOB, { jobId: watched });
    const staying = subscribe<{ jobProgress: any }>('ws', system.url, alice, JOB_PROGRESS_WITH_JOB, { jobId: watched });
    const everyJob = subscribe<{ jobEvents: any }>('sse', system.url, alice, JOB_EVENTS);
    await waitFor('the watcher that leaves to see the job start', () =>
      leaving.results.some((r) => r.data?.jobProgress.status === 'ACTIVE'),
    );
    leaving.close();
    await staying.done;
    const changesOf = (events: { jobId: string; status: string }[], id: string) =>
      events.filter((event) => event.jobId === id).map((event) => event.status);
    await waitFor('both jobs to complete for the subscriber of both', () =>
      [watched, other].every((id) =>
        changesOf(
          both.results.map((r) => r.data!.jobEvents),
          id,
        ).includes('COMPLETED'),
      ),
    );
    await waitFor('the watched job to complete for the subscriber of every job', () =>
      changesOf(
        everyJob.results.map((r) => r.data!.jobEvents),
        watched,
      ).includes('COMPLETED'),
    );
    both.close();
    everyJob.close();
    const staid = staying.results.map((r) => r.data!.jobProgress.status);
    expect(staid.at(-1)).toBe('COMPLETED');
    // Whoever else watched the job, each subscriber saw its progress through to the end, in order.
    for (const seen of [
      changesOf(
        both.results.map((r) => r.data!.jobEvents),
        watched,
      ),
      staid,
    ]) {
      expect(seen.indexOf('ACTIVE')).toBeGreaterThanOrEqual(0);
      expect(seen.indexOf('ACTIVE')).toBeLessThan(seen.indexOf('COMPLETED'));
    }
    expect(new Set(both.results.map((r) => r.data!.jobEvents.jobId))).toEqual(new Set([watched, other]));
  });
});

describe('jobEvents with statuses', () => {
  it('also reports a job leaving a watched status, so a filtered dashboard can take it out', async () => {
    const sub = subscribe<{ jobEvents: any }>(
      'sse',
      system.url,
      alice,
      'subscription { jobEvents(filter: { statuses: [PENDING] }) { jobId status previousStatus } }',
    );
    let jobId = '';
    await waitFor(
      'a job to be seen leaving PENDING',
      async () => {
        if (!jobId || sub.results.every((r) => r.data?.jobEvents.jobId !== jobId)) jobId = await startImport();
        return sub.results.some((r) => r.data?.jobEvents.jobId === jobId && r.data.jobEvents.previousStatus === 'PENDING');
      },
      60_000,
      200,
    );
    sub.close();
    const own = sub.results.map((r) => r.data!.jobEvents).filter((event) => event.jobId === jobId);
    expect(own.find((event) => event.previousStatus === 'PENDING')?.status).toBe('ACTIVE');
  });
});

describe('ids in any case', () => {
  it('names the same job in upper case, in queries and in subscriptions that then follow it to the end', async () => {
    const jobId = await startImport({ delayMs: 300 });
    const upper = jobId.toUpperCase();
    const { job } = await gqlOk<{ job: { id: string } }>(system.url, alice, `{ job(id: "${upper}") { id } }`);
    expect(job.id).toBe(jobId);
    const sub = subscribe<{ jobProgress: any }>('ws', system.url, alice, JOB_PROGRESS_WITH_JOB, { jobId: upper });
    await sub.done;
    expect(sub.results.at(-1)!.data!.jobProgress).toMatchObject({ jobId, status: 'COMPLETED' });
  });
});
