/**
 * `previousStatus` after a resume is the status the client last knew, even when a job changed
 * twice around the moment the catch-up hands over to the live feed: once before the replica's feed
 * position (so the catch-up reads up to it), and again after it but before the catch-up's read
 * (so the row the catch-up would send is already past that position, and the live feed sends it).
 * A dashboard that keeps counts per status from the stream alone takes one from the status it
 * holds; any other would leave its counts wrong for good.
 *
 * The replica's feed reads only when its doorbell rings (the poll is set to an hour), so the test
 * decides where the feed stands. Real API, PostgreSQL, Redis and graphql-ws.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { subscriptionGauge } from '../../src/observability/metrics.js';
import { topics } from '../../src/pubsub/topics.js';
import { gqlOk, subscribe } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

const EVENTS = `subscription($after: String) { jobEvents(after: $after) { jobId status previousStatus cursor } }`;

let env: TestEnv;
let system: InProcessSystem;
let token: string;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env, { worker: false, vars: { STREAM_POLL_INTERVAL_MS: '3600000' } });
  token = await env.token('erin');
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

/** A status change as the job store writes it (row and status log, one statement); no doorbell. */
const STATUS_SQL = `WITH changed AS (
       UPDATE job SET status = $2, previous_status = status, version = version + 1, updated_at = clock_timestamp(),
                      change_xid = pg_current_xact_id()
        WHERE id = $1 RETURNING id, previous_status, status)
     INSERT INTO job_status_change (job_id, status_before) SELECT id, previous_status FROM changed WHERE previous_status <> status`;
/** A change that is not a status change (progress), as the job store writes it. */
const PROGRESS_SQL = `UPDATE job SET progress = progress + 1, previous_status = status, version = version + 1, updated_at = clock_timestamp(),
                      change_xid = pg_current_xact_id() WHERE id = $1`;

const setStatus = (jobId: string, status: string) => env.sql(STATUS_SQL, [jobId, status]);

async function newJob(): Promise<string> {
  const { id } = await env.one<{ id: string }>(
    `INSERT INTO job (id, type, status, max_attempts, payload, trigger, owner_id, created_at, updated_at)
     VALUES (gen_random_uuid(), 'scan_pii', 'PENDING', 1, '{}'::jsonb, 'API', 'erin', clock_timestamp(), clock_timestamp()) RETURNING id`,
  );
  return id;
}

/** Rings the change feed's doorbell, as a worker's announcement of a change does. */
const ringDoorbell = () => system.apiServices.pubsub.publish(topics.jobChanges(), { changes: 1 });

async function openSubscriptions(): Promise<number> {
  return (await subscriptionGauge.get()).values.reduce((sum, value) => sum + value.value, 0);
}

it('is the status the client last knew when the job changed again just past the feed position its catch-up read to', async () => {
  const jobId = await newJob();
  // Keeps the replica's feed running, and tells when it has read a change.
  const watcher = subscribe<{ jobEvents: any }>('ws', system.url, token, EVENTS);
  await waitFor('the watcher to open', async () => (await openSubscriptions()) === 1);
  // A transaction the feed has not read past: the cursor below is then no position the feed has been
  // at, and the resume must catch up by itself before it joins the feed.
  await env.sql('SELECT pg_current_xact_id()');
  const { jobs } = await gqlOk<{ jobs: { streamCursor: string; nodes: { status: string }[] } }>(
    system.url,
    token,
    '{ jobs { streamCursor nodes { status } } }',
  );
  expect(jobs.nodes.map((node) => node.status)).toEqual(['PENDING']);

  await setStatus(jobId, 'ACTIVE');
  await ringDoorbell();
  await waitFor('the feed to read ACTIVE', () => watcher.results.some((r) => r.data?.jobEvents.status === 'ACTIVE'));
  // Past the feed's position, unannounced: the feed stays where it is.
  await setStatus(jobId, 'COMPLETED');

  const resumed = subscribe<{ jobEvents: any }>('ws', system.url, token, EVENTS, { after: jobs.streamCursor });
  // Started: its catch-up took the feed's position as the point to hand over at.
  await waitFor('the resumed subscription to start', async () => (await openSubscriptions()) === 2);
  await ringDoorbell();
  await waitFor('the resumed subscription to get COMPLETED', () => resumed.results.some((r) => r.data?.jobEvents.status === 'COMPLETED'));
  resumed.close();
  watcher.close();
  await waitFor('both subscriptions to close', async () => (await openSubscriptions()) === 0);
  const seen = resumed.results.map((r) => r.data!.jobEvents).filter((event) => event.jobId === jobId);
  expect(seen.at(-1)).toMatchObject({ status: 'COMPLETED' });
  // Each event's previousStatus is the status the one before it said (PENDING, at the cursor, for the first).
  expect(seen.map((event) => event.previousStatus)).toEqual(['PENDING', ...seen.slice(0, -1).map((event) => event.status)]);
});

/** Subscribes from `after` once the feed stands where the test put it, rings, and returns the job's events up to COMPLETED. */
async function resumeUntilCompleted(after: string, jobId: string): Promise<{ status: string; previousStatus: string | null }[]> {
  const resumed = subscribe<{ jobEvents: any }>('ws', system.url, token, EVENTS, { after });
  await waitFor('the resumed subscription to start', async () => (await openSubscriptions()) === 2);
  await ringDoorbell();
  await waitFor('COMPLETED', () =>
    resumed.results.some((r) => r.data?.jobEvents.jobId === jobId && r.data.jobEvents.status === 'COMPLETED'),
  );
  resumed.close();
  return resumed.results.map((r) => r.data!.jobEvents).filter((event) => event.jobId === jobId);
}

it('is null for a job created after the cursor that changed again past the position the catch-up read to', async () => {
  const watcher = subscribe<{ jobEvents: any }>('ws', system.url, token, EVENTS);
  await waitFor('the watcher to open', async () => (await openSubscriptions()) === 1);
  await env.sql('SELECT pg_current_xact_id()');
  const { jobs } = await gqlOk<{ jobs: { streamCursor: string } }>(system.url, token, '{ jobs { streamCursor } }');
  const jobId = await newJob();
  await ringDoorbell();
  await waitFor('the feed to read the new job', () => watcher.results.some((r) => r.data?.jobEvents.jobId === jobId));
  await setStatus(jobId, 'ACTIVE');
  await setStatus(jobId, 'COMPLETED');
  const seen = await resumeUntilCompleted(jobs.streamCursor, jobId);
  watcher.close();
  await waitFor('both subscriptions to close', async () => (await openSubscriptions()) === 0);
  // The client's page did not have the job: it is new to it.
  expect(seen.map((event) => [event.status, event.previousStatus])).toEqual([['COMPLETED', null]]);
});

it('is the status of the event the client resumes from, even when that status was written after the row it came in', async () => {
  const jobId = await newJob();
  const watcher = subscribe<{ jobEvents: any }>('ws', system.url, token, EVENTS);
  await waitFor('the watcher to open', async () => (await openSubscriptions()) === 1);
  // Transaction A takes its id first; B (a later id) makes the job ACTIVE and commits; then A writes
  // progress and commits: the row the feed reads was written by A, below B's status change.
  const a = new pg.Client({ connectionString: env.vars.DATABASE_URL });
  await a.connect();
  try {
    await a.query('BEGIN');
    await a.query('SELECT pg_current_xact_id()');
    await setStatus(jobId, 'ACTIVE');
    await a.query(PROGRESS_SQL, [jobId]);
    await a.query('COMMIT');
  } finally {
    await a.end();
  }
  await ringDoorbell();
  await waitFor('the watcher to get ACTIVE', () =>
    watcher.results.some((r) => r.data?.jobEvents.jobId === jobId && r.data.jobEvents.status === 'ACTIVE'),
  );
  const active = watcher.results.map((r) => r.data!.jobEvents).find((event) => event.jobId === jobId && event.status === 'ACTIVE');
  await setStatus(jobId, 'COMPLETED');
  const seen = await resumeUntilCompleted(active.cursor, jobId);
  watcher.close();
  await waitFor('both subscriptions to close', async () => (await openSubscriptions()) === 0);
  expect(seen.map((event) => [event.status, event.previousStatus])).toEqual([['COMPLETED', 'ACTIVE']]);
});
