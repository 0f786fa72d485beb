/**
 * The API group-commits the row inserts of concurrent enqueues (src/engine/job-inserts.ts): many
 * requests, one INSERT. What each caller gets must not change: its own job, the first job for a
 * repeated idempotency key, NOT_FOUND for an account it may not use, and nothing else written.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobStatus } from '../../src/db/entities/job.entity.js';
import type { NewJob } from '../../src/engine/job-store.js';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let bob: string;
let admin: string;
let aliceAccount: string;
let bobAccount: string;

const SCAN = 'mutation($a: ID!, $o: EnqueueOptions) { scanPii(accountId: $a, options: $o) { id status ownerId idempotencyKey tags } }';

beforeAll(async () => {
  // One owner enqueues in bulk here; the quotas are tested elsewhere.
  env = await createTestEnv({ ENQUEUE_RATE_MAX: '0', MAX_UNFINISHED_JOBS_PER_OWNER: '0' });
  system = await startInProcess(env, { worker: false });
  [alice, bob, admin] = await Promise.all([env.token('alice'), env.token('bob'), env.token('root', 'admin')]);
  aliceAccount = (await gqlOk<{ createAccount: { id: string } }>(system.url, alice, CREATE_ACCOUNT, { name: 'a' })).createAccount.id;
  bobAccount = (await gqlOk<{ createAccount: { id: string } }>(system.url, bob, CREATE_ACCOUNT, { name: 'b' })).createAccount.id;
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

type Scan = { scanPii: { id: string; status: string; ownerId: string; idempotencyKey: string | null; tags: string[] } };

describe('concurrent enqueues', () => {
  it('share INSERT statements, and each caller gets exactly what it would have got alone', async () => {
    const calls: { token: string; name: string; variables: Record<string, unknown> }[] = [];
    for (let i = 0; i < 40; i++) {
      calls.push({ token: alice, name: `alice ${i}`, variables: { a: aliceAccount, o: { tags: [`n${i}`] } } });
    }
    // Ten at once under one key: one job for all of them.
    for (let i = 0; i < 10; i++)
      calls.push({ token: alice, name: `key ${i}`, variables: { a: aliceAccount, o: { idempotencyKey: 'same' } } });
    // Someone else's account, among the rest: refused alone.
    for (let i = 0; i < 5; i++) calls.push({ token: alice, name: `foreign ${i}`, variables: { a: bobAccount } });
    // An admin may use any account.
    for (let i = 0; i < 5; i++) calls.push({ token: admin, name: `admin ${i}`, variables: { a: bobAccount } });
    // A value that cannot be stored (a lone surrogate) fails its own request, not its neighbours'.
    for (let i = 0; i < 3; i++)
      calls.push({ token: alice, name: `refused ${i}`, variables: { a: aliceAccount, o: { metadata: { x: '\ud800' } } } });
    const answers = await Promise.all(calls.map((call) => gql<Scan>(system.url, call.token, SCAN, call.variables)));
    const byName = new Map(calls.map((call, i) => [call.name, answers[i]!]));

    for (let i = 0; i < 40; i++) {
      const answer = byName.get(`alice ${i}`)!;
      expect(answer.errors, JSON.stringify(answer)).toBeUndefined();
      expect(answer.data!.scanPii).toMatchObject({ status: 'PENDING', ownerId: 'alice', tags: [`n${i}`] });
    }
    const keyed = new Set(Array.from({ length: 10 }, (_, i) => byName.get(`key ${i}`)!.data!.scanPii.id));
    expect(keyed.size).toBe(1);
    for (let i = 0; i < 5; i++) {
      expect(byName.get(`foreign ${i}`)!.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      expect(byName.get(`admin ${i}`)!.data!.scanPii.ownerId).toBe('root');
    }
    for (let i = 0; i < 3; i++) expect(byName.get(`refused ${i}`)!.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    const rows = await env.sql<{ owner_id: string; statement: string; jobs: number }>(
      `SELECT owner_id, created_xid::text AS statement, count(*)::int AS jobs FROM job GROUP BY owner_id, created_xid`,
    );
    // 40 + 1 + 5 jobs, no more: nothing refused was written, and the key was written once.
    expect(rows.reduce((sum, row) => sum + row.jobs, 0)).toBe(46);
    expect(rows.filter((row) => row.owner_id === 'alice').reduce((sum, row) => sum + row.jobs, 0)).toBe(41);
    // Batched: some transaction wrote several jobs.
    expect(Math.max(...rows.map((row) => row.jobs))).toBeGreaterThan(1);
    // Each job is in the queue under its row's id.
    const ids = answers.flatMap((answer) => (answer.data ? [answer.data.scanPii.id] : []));
    const queue = system.apiServices.queues.get('scan_pii');
    const queued = await Promise.all([...new Set(ids)].map((id) => queue.getJob(id)));
    expect(queued.every((job) => job !== undefined)).toBe(true);
  });

  it('writes a batch again job by job when PostgreSQL refuses a value in one, so only that job fails', async () => {
    const em = system.apiServices.orm.em.fork() as EntityManager;
    const job = (status: string): NewJob => ({
      id: randomUUID(),
      type: 'scan_pii',
      status: status as JobStatus,
      maxAttempts: 1,
      priority: null,
      payload: {},
      trigger: 'API',
      idempotencyKey: null,
      ownerId: 'carol',
      accountId: null,
      runAt: null,
    });
    // Asked for in one turn of the event loop: one batch, which the too-long status makes PostgreSQL refuse.
    const jobs = [job('PENDING'), job('PENDING'), job('A_STATUS_TOO_LONG_FOR_ITS_COLUMN'), job('PENDING')];
    const outcomes = await Promise.allSettled(jobs.map((one) => system.apiServices.jobInserts.insert(em, one, { isAdmin: false })));
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(((outcomes[2] as PromiseRejectedResult).reason as { code?: string }).code).toBe('22001');
    const carol = await env.sql<{ id: string }>(`SELECT id FROM job WHERE owner_id = 'carol'`);
    expect(carol.map((row) => row.id).sort()).toEqual([jobs[0]!.id, jobs[1]!.id, jobs[3]!.id].sort());
  });
});
