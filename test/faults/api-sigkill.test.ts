import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribe, type Subscription } from '../helpers/graphql-client.js';
import { JOB_PROGRESS } from '../helpers/fragments.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import { createAccount, importMbox, jobRow, startApi, startWorker, type ApiProc, type Proc } from './fault-helpers.js';

let env: TestEnv;
let doomed: ApiProc;
let survivor: ApiProc;
let worker: Proc;
let token: string;

beforeAll(async () => {
  env = await createTestEnv();
  [doomed, survivor, worker] = await Promise.all([startApi(env.vars), startApi(env.vars), startWorker(env.vars)]);
  token = await env.token('alice');
}, 120_000);

afterAll(async () => {
  await Promise.all([doomed, survivor, worker].filter(Boolean).map((proc) => proc.stop()));
  await env?.cleanup();
});

const JOB_EVENTS = `subscription { jobEvents { jobId status progress processed } }`;

describe('an API replica killed with SIGKILL', () => {
  it('does not interrupt the subscribers of the other replica', async () => {
    const fixture = buildMbox({ count: 2500, seed: 4303 });
    const accountId = await createAccount(doomed.url, token, 'replicas');
    const job = await importMbox(doomed.url, token, accountId, fixture.mbox);

    // Over WebSocket: graphql-sse (retryAttempts 0) also rejects an internal promise nobody holds
    // when its server dies, which vitest would report as an unhandled rejection.
    const onDoomed = [subscribe<{ jobProgress: any }>('ws', doomed.url, token, JOB_PROGRESS, { jobId: job.id })];
    // Its failure is asserted below; a handler now keeps it from counting as unhandled meanwhile.
    onDoomed.forEach((sub) => sub.done.catch(() => {}));
    const progress = (['sse', 'ws', 'sse', 'ws'] as const).map((transport) =>
      subscribe<{ jobProgress: any }>(transport, survivor.url, token, JOB_PROGRESS, { jobId: job.id }),
    );
    progress.forEach((sub) => sub.done.catch(() => {}));
    const dashboards = (['sse', 'ws'] as const).map((transport) =>
      subscribe<{ jobEvents: any }>(transport, survivor.url, token, JOB_EVENTS),
    );
    // Closed by the test at the end; a close may be reported as an error.
    dashboards.forEach((sub) => sub.done.catch(() => {}));

    await waitFor(
      'every subscriber to see the import running',
      async () => {
        const row = await jobRow(env.sql, job.id);
        if (row.status === 'COMPLETED') throw new Error('the import completed before the kill; use a bigger mbox');
        return (
          row.status === 'ACTIVE' &&
          (row.processed ?? 0) > 0 &&
          [...progress, ...onDoomed].every((sub) => sub.results.some((r) => r.data?.jobProgress.status === 'ACTIVE')) &&
          dashboards.every((sub) => sub.results.length > 0)
        );
      },
      60_000,
      20,
    );

    doomed.kill('SIGKILL');
    await doomed.exited;
    const seenAtKill = [...progress, ...dashboards].map((sub: Subscription<unknown>) => sub.results.length);
    // The doomed replica's own subscribers lose their stream (graphql-sse / graphql-ws report it).
    await expect(onDoomed[0]!.done).rejects.toBeDefined();

    await waitFor('the import to complete', async () => (await jobRow(env.sql, job.id)).status === 'COMPLETED', 60_000, 100);
    await waitFor(
      'the progress subscribers on the surviving replica to complete',
      async () => {
        const done = await Promise.all(
          progress.map((sub) => Promise.race([sub.done.then(() => true), new Promise((r) => setTimeout(() => r(false), 50))])),
        );
        return done.every(Boolean);
      },
      20_000,
      0,
    );

    progress.forEach((sub, i) => {
      const events = sub.results.map((r) => r.data!.jobProgress);
      expect(events.length).toBeGreaterThan(seenAtKill[i]!);
      expect(events.at(-1)).toMatchObject({ status: 'COMPLETED', processed: fixture.expected.messages });
      expect(sub.results.every((r) => !r.errors)).toBe(true);
    });
    await waitFor('the dashboards to see the completion', () =>
      dashboards.every((sub) => sub.results.some((r) => r.data?.jobEvents.jobId === job.id && r.data.jobEvents.status === 'COMPLETED')),
    );
    dashboards.forEach((sub, i) => expect(sub.results.length).toBeGreaterThan(seenAtKill[progress.length + i]!));
    dashboards.forEach((sub) => sub.close());
  }, 120_000);
});
