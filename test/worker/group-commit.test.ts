/**
 * The worker's group commit (issue 9): the starts and completions of jobs running at once share
 * statements. Cancels driven into saturated batches must still leave each job exactly one
 * terminal state, the same in its row, its attempt and its last event. Real PostgreSQL, Redis,
 * HTTP and a real sidecar (in this process, with `bulk_operation` run 25 at a time).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobCatalogue } from '../../src/jobs/registry.js';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gql, gqlOk, subscribe } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const BULK = `mutation($input: BulkOperationInput!) { bulkOperation(input: $input) { id status } }`;
const CANCEL = `mutation($id: ID!) { cancelJob(id: $id) { id status } }`;
const PAUSE = `mutation { pauseJobType(type: bulk_operation) { paused } }`;
const RESUME = `mutation { resumeJobType(type: bulk_operation) { paused } }`;
const JOB_EVENTS = `subscription($ids: [ID!], $after: String) { jobEvents(filter: { ids: $ids }, after: $after) { jobId status } }`;
const STREAM_CURSOR = `query { jobs(first: 1) { streamCursor } }`;
const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);
/** As many as one `ids` filter takes. */
const JOBS = 100;

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let admin: string;

beforeAll(async () => {
  env = await createTestEnv({ ENQUEUE_RATE_MAX: '0' });
  const declarations = jobCatalogue.map((declaration) =>
    declaration.name === 'bulk_operation' ? { ...declaration, options: { ...declaration.options, concurrency: 25 } } : declaration,
  );
  system = await startInProcess(env, { declarations });
  [alice, admin] = await Promise.all([env.token('alice'), env.token('root', 'admin')]);
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

describe('group-committed starts and completions', () => {
  it('leave each job one terminal state in its row, its attempt and its last event, with cancels landing in full batches', async () => {
    const { createAccount } = await gqlOk<{ createAccount: { id: string } }>(system.url, alice, CREATE_ACCOUNT, { name: 'batches' });
    const input = { accountId: createAccount.id, action: 'MARK_READ', ids: [randomUUID()] };
    // Queued while the type is paused, so that the resume starts them as fast as the worker takes them.
    await gqlOk(system.url, admin, PAUSE);
    const ids: string[] = [];
    for (let i = 0; i < JOBS; i++)
      ids.push((await gqlOk<{ bulkOperation: { id: string } }>(system.url, alice, BULK, { input })).bulkOperation.id);
    // Followed from a position taken before anything started: every change after it is streamed.
    const { jobs } = await gqlOk<{ jobs: { streamCursor: string } }>(system.url, alice, STREAM_CURSOR);
    const events = subscribe<{ jobEvents: { jobId: string; status: string } }>('ws', system.url, alice, JOB_EVENTS, {
      ids,
      after: jobs.streamCursor,
    });
    events.done.catch(() => {});
    await gqlOk(system.url, admin, RESUME);
    await waitFor(
      'the first jobs to start',
      async () =>
        (await env.one<{ n: number }>("SELECT count(*)::int AS n FROM job WHERE id = ANY($1::uuid[]) AND status <> 'PENDING'", [ids])).n >
        0,
      30_000,
      2,
    );

    // Every other job is cancelled now, all at once: queued, starting, running or already done.
    const cancels = await Promise.all(
      ids.filter((_, i) => i % 2 === 0).map((id) => gql<{ cancelJob: { status: string } }>(system.url, alice, CANCEL, { id })),
    );
    expect(cancels.flatMap((response) => response.errors ?? [])).toEqual([]);

    const rows = await waitFor(
      'every job to end',
      async () => {
        const found = await env.sql<{ id: string; status: string }>('SELECT id, status FROM job WHERE id = ANY($1::uuid[])', [ids]);
        return found.every((row) => TERMINAL.has(row.status)) ? new Map(found.map((row) => [row.id, row.status])) : null;
      },
      60_000,
      50,
    );

    // The batches were full: starts and completions were written several jobs to a statement.
    const perStatement = await env.sql<{ status_before: string; largest: number }>(
      `SELECT status_before, max(n)::int AS largest FROM (
         SELECT status_before, change_xid, count(*) AS n FROM job_status_change WHERE job_id = ANY($1::uuid[]) GROUP BY 1, 2) b
       GROUP BY 1`,
      [ids],
    );
    const largest = Object.fromEntries(perStatement.map((row) => [row.status_before, row.largest]));
    expect(largest.PENDING).toBeGreaterThan(1);
    expect(largest.ACTIVE).toBeGreaterThan(1);

    // Each job: one terminal status; started ones have one attempt, closed with the row's outcome.
    const attempts = await env.sql<{ job_id: string; outcome: string | null; finished: boolean }>(
      'SELECT job_id, outcome, finished_at IS NOT NULL AS finished FROM job_attempt WHERE job_id = ANY($1::uuid[])',
      [ids],
    );
    const outcomes = new Set<string>();
    for (const id of ids) {
      const status = rows.get(id)!;
      outcomes.add(status);
      expect(['COMPLETED', 'CANCELLED']).toContain(status);
      const own = attempts.filter((attempt) => attempt.job_id === id);
      expect(own.every((attempt) => attempt.finished)).toBe(true);
      if (status === 'COMPLETED') expect(own.map((attempt) => attempt.outcome)).toEqual(['COMPLETED']);
      else expect(own.every((attempt) => attempt.outcome === 'CANCELLED')).toBe(true);
    }
    expect([...outcomes].sort()).toEqual(['CANCELLED', 'COMPLETED']);

    // The stream's last word on each job is its row's, and no job ends twice in it.
    const lastStreamed = () => {
      const last = new Map<string, string>();
      for (const result of events.results) last.set(result.data!.jobEvents.jobId, result.data!.jobEvents.status);
      return last;
    };
    await waitFor('every ending to be streamed', () => ids.every((id) => lastStreamed().get(id) === rows.get(id)), 30_000, 20);
    const ends = new Map<string, number>();
    for (const result of events.results) {
      const { jobId, status } = result.data!.jobEvents;
      if (TERMINAL.has(status)) ends.set(jobId, (ends.get(jobId) ?? 0) + 1);
    }
    expect([...ends.values()].every((count) => count === 1)).toBe(true);
    events.close();
  });
});
