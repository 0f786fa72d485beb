import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_ACCOUNT, IMPORT_MBOX, JOB, JOB_PROGRESS } from '../helpers/fragments.js';
import { gqlOk, gqlUpload, subscribe, type Transport } from '../helpers/graphql-client.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { startApi as spawnApi, startWorker as spawnWorker, type Proc as SpawnedProcess } from '../helpers/processes.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

/**
 * The whole path as a user runs it: two API replicas and a worker sidecar as separate processes.
 * The mutation goes to replica A; progress is watched on replica B over SSE and WebSocket.
 */
let env: TestEnv;
let replicaA: Awaited<ReturnType<typeof spawnApi>>;
let replicaB: Awaited<ReturnType<typeof spawnApi>>;
let worker: SpawnedProcess;
let token: string;

beforeAll(async () => {
  env = await createTestEnv();
  [replicaA, replicaB, worker] = await Promise.all([spawnApi(env.vars), spawnApi(env.vars), spawnWorker(env.vars)]);
  token = await env.token('alice');
}, 120_000);

afterAll(async () => {
  await Promise.all([replicaA?.stop(), replicaB?.stop(), worker?.stop()]);
  await env?.cleanup();
});

describe('enqueue on one replica, watch on another', () => {
  it.each<Transport>(['sse', 'ws'])(
    'streams an mbox import over %s in order up to COMPLETED, with the messages queryable',
    async (transport) => {
      const fixture = buildMbox({ count: 400, malformed: 1, attachmentEvery: 6, duplicates: 2, seed: transport === 'sse' ? 101 : 202 });
      const { createAccount } = await gqlOk<{ createAccount: { id: string } }>(replicaA.url, token, CREATE_ACCOUNT, {
        name: `e2e-${transport}`,
      });
      const enqueued = await gqlUpload<{ importMbox: any }>(
        replicaA.url,
        token,
        IMPORT_MBOX,
        { accountId: createAccount.id, file: null },
        {
          path: 'file',
          content: fixture.mbox,
          filename: 'e2e.mbox',
        },
      );
      expect(enqueued.errors).toBeUndefined();
      const job = enqueued.data!.importMbox;
      expect(['PENDING', 'ACTIVE']).toContain(job.status);

      const sub = subscribe<{ jobProgress: any }>(transport, replicaB.url, token, JOB_PROGRESS, { jobId: job.id });
      await sub.done;
      const events = sub.results.map((result) => {
        expect(result.errors).toBeUndefined();
        return result.data!.jobProgress;
      });
      expect(events.length).toBeGreaterThanOrEqual(2);
      for (let i = 1; i < events.length; i++) {
        expect(Date.parse(events[i].at)).toBeGreaterThanOrEqual(Date.parse(events[i - 1].at));
        expect(events[i].progress).toBeGreaterThanOrEqual(events[i - 1].progress);
        expect(events[i].processed ?? 0).toBeGreaterThanOrEqual(events[i - 1].processed ?? 0);
      }
      const last = events.at(-1);
      expect(last).toMatchObject({
        jobId: job.id,
        type: 'import_mbox',
        status: 'COMPLETED',
        progress: 100,
        processed: 400,
        total: 400,
        error: null,
      });
      expect(last.result).toMatchObject({
        total: 400,
        imported: fixture.expected.unique,
        malformed: 1,
        duplicates: fixture.expected.valid - fixture.expected.unique,
      });

      const history = (await gqlOk<{ job: any }>(replicaB.url, token, JOB, { id: job.id })).job;
      expect(history).toMatchObject({ status: 'COMPLETED', attempts: 1, processed: 400, total: 400 });
      expect(Date.parse(history.finishedAt)).toBeGreaterThanOrEqual(Date.parse(history.startedAt));

      const page = await gqlOk<{ messages: { nodes: any[]; pageInfo: { hasNextPage: boolean } } }>(
        replicaA.url,
        token,
        `query($accountId: ID!) { messages(accountId: $accountId, first: 200) { nodes { id subject from attachmentCount } pageInfo { hasNextPage endCursor } } }`,
        { accountId: createAccount.id },
      );
      expect(page.messages.nodes).toHaveLength(200);
      expect(page.messages.pageInfo.hasNextPage).toBe(true);
      const { count } = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM message WHERE account_id = $1', [
        createAccount.id,
      ]);
      expect(count).toBe(fixture.expected.unique);
    },
  );

  it('lists the history newest first with a keyset cursor across replicas', async () => {
    const first = await gqlOk<{ jobs: { edges: { cursor: string; node: { id: string; createdAt: string } }[]; pageInfo: any } }>(
      replicaA.url,
      token,
      '{ jobs(first: 1, filter: { types: [import_mbox], statuses: [COMPLETED] }) { edges { cursor node { id createdAt } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }',
    );
    expect(first.jobs.edges).toHaveLength(1);
    expect(first.jobs.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false, startCursor: first.jobs.edges[0]!.cursor });
    const second = await gqlOk<{ jobs: { edges: { node: { id: string; createdAt: string } }[]; pageInfo: any } }>(
      replicaB.url,
      token,
      'query($after: String) { jobs(first: 10, after: $after, filter: { types: [import_mbox] }) { edges { node { id createdAt } } pageInfo { hasNextPage hasPreviousPage } } }',
      { after: first.jobs.pageInfo.endCursor },
    );
    expect(second.jobs.edges).toHaveLength(1);
    expect(second.jobs.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
    expect(Date.parse(second.jobs.edges[0]!.node.createdAt)).toBeLessThanOrEqual(Date.parse(first.jobs.edges[0]!.node.createdAt));
    expect(second.jobs.edges[0]!.node.id).not.toBe(first.jobs.edges[0]!.node.id);
  });
});
