/**
 * Snapshot, then stream, then resume (issue 8): a dashboard queries `jobs { streamCursor }`,
 * subscribes to `jobEvents(after: streamCursor)`, and after a drop resumes from the last event's
 * cursor (over SSE, the `id:` its reconnect sends back as Last-Event-ID). Its view must end equal
 * to a fresh query, with no change seen twice, while two sidecars finish jobs concurrently (commit
 * order is not the order positions were taken in). Real processes: two API replicas, two worker
 * sidecars; real graphql-ws and an EventSource-style SSE reader.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PositionCodec } from '../../src/realtime/stream-position.js';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gqlOk, subscribe } from '../helpers/graphql-client.js';
import { nextPayloads, readEventStream } from '../helpers/event-stream.js';
import { type ApiProc, type Proc, startApi, startWorker } from '../helpers/processes.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

const SCAN = `mutation($accountId: ID!) { scanPii(accountId: $accountId) { id } }`;
const EVENTS = `subscription($after: String) { jobEvents(after: $after) { cursor previousStatus job { id status updatedAt } } }`;
const PROGRESS = `subscription($jobId: ID!, $after: String) { jobProgress(jobId: $jobId, after: $after) { cursor status job { id status updatedAt } } }`;
const JOBS = `query($after: String) {
  jobs(first: 200, after: $after) { nodes { id status updatedAt } pageInfo { hasNextPage endCursor } streamCursor }
}`;

interface JobState {
  status: string;
  updatedAt: string;
}
interface StreamEvent {
  cursor: string;
  previousStatus: string | null;
  job: { id: string } & JobState;
}

let env: TestEnv;
let apis: ApiProc[];
let workers: Proc[];
let token: string;
let accountId: string;

beforeAll(async () => {
  env = await createTestEnv();
  apis = await Promise.all([startApi(env.vars), startApi(env.vars)]);
  workers = await Promise.all([startWorker(env.vars, 'sidecar-a'), startWorker(env.vars, 'sidecar-b')]);
  token = await env.token('dana');
  accountId = (await gqlOk<{ createAccount: { id: string } }>(apis[0]!.url, token, CREATE_ACCOUNT, { name: 'stream' })).createAccount.id;
}, 120_000);

afterAll(async () => {
  await Promise.all([...(apis ?? []), ...(workers ?? [])].map((proc) => proc.stop()));
  await env?.cleanup();
});

async function enqueue(url: string): Promise<string> {
  return (await gqlOk<{ scanPii: { id: string } }>(url, token, SCAN, { accountId })).scanPii.id;
}

/** Every job of the caller, as a fresh query sees it. */
async function freshView(): Promise<Map<string, JobState>> {
  const view = new Map<string, JobState>();
  let after: string | null = null;
  for (;;) {
    const { jobs }: { jobs: any } = await gqlOk<{ jobs: any }>(apis[0]!.url, token, JOBS, { after });
    for (const node of jobs.nodes) view.set(node.id, { status: node.status, updatedAt: node.updatedAt });
    if (!jobs.pageInfo.hasNextPage) return view;
    after = jobs.pageInfo.endCursor;
  }
}

/**
 * Applies events to a view as a normalized cache would; returns the events that told it nothing
 * new (a change seen twice, or one older than what it had).
 */
function apply(view: Map<string, JobState>, events: StreamEvent[]): StreamEvent[] {
  const repeated: StreamEvent[] = [];
  for (const event of events) {
    const known = view.get(event.job.id);
    if (known && Date.parse(known.updatedAt) >= Date.parse(event.job.updatedAt)) repeated.push(event);
    else view.set(event.job.id, { status: event.job.status, updatedAt: event.job.updatedAt });
  }
  return repeated;
}

/**
 * The events whose `previousStatus` is not the status the client held for the job before them
 * (null for a job new to it): a dashboard keeping counts per status from the stream takes one
 * from that status.
 */
function unknownPreviousStatus(view: Map<string, JobState>, events: StreamEvent[]): StreamEvent[] {
  const held = new Map([...view].map(([id, state]) => [id, state.status]));
  const wrong: StreamEvent[] = [];
  for (const event of events) {
    if (event.previousStatus !== (held.get(event.job.id) ?? null)) wrong.push(event);
    held.set(event.job.id, event.job.status);
  }
  return wrong;
}

function sameView(a: Map<string, JobState>, b: Map<string, JobState>): boolean {
  return a.size === b.size && [...a].every(([id, state]) => b.get(id)?.updatedAt === state.updatedAt && b.get(id)?.status === state.status);
}

/** Enqueues from several clients on both replicas at once until stopped. */
function enqueueConcurrently(clients: number): { count(): number; stop(): Promise<void> } {
  let running = true;
  let count = 0;
  const loops = Array.from({ length: clients }, async (_, index) => {
    while (running) {
      await enqueue(apis[index % apis.length]!.url);
      count++;
    }
  });
  return {
    count: () => count,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function allFinished(): Promise<boolean> {
  const [row] = await env.sql<{ n: number }>(`SELECT count(*)::int AS n FROM job WHERE status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')`);
  return row!.n === 0;
}

describe('snapshot, then stream', () => {
  it('ends equal to a fresh query while two sidecars finish jobs concurrently, and resumes from any cursor missing nothing', async () => {
    const load = enqueueConcurrently(4);
    await waitFor('some jobs to exist', () => load.count() >= 10);
    const { jobs } = await gqlOk<{ jobs: any }>(apis[0]!.url, token, JOBS, { after: null });
    expect(jobs.pageInfo.hasNextPage).toBe(false);
    const snapshot = new Map<string, JobState>(
      jobs.nodes.map((node: any) => [node.id, { status: node.status, updatedAt: node.updatedAt }]),
    );

    // Subscribed on the other replica, while jobs keep being created and finished.
    const live = subscribe<{ jobEvents: StreamEvent }>('ws', apis[1]!.url, token, EVENTS, { after: jobs.streamCursor });
    await waitFor('the load to go on for a while', () => load.count() >= 120, 60_000);
    await load.stop();
    await waitFor('every job to finish', allFinished, 60_000);
    const fresh = await freshView();

    const view = new Map(snapshot);
    const events = () => live.results.map((result) => result.data!.jobEvents);
    await waitFor('the streamed view to equal a fresh query', () => sameView(replay(view, events()), fresh), 30_000);
    live.close();
    const received = events();
    expect(apply(new Map(snapshot), received)).toEqual([]);
    expect(unknownPreviousStatus(snapshot, received)).toEqual([]);
    expect(received.length).toBeGreaterThan(fresh.size - snapshot.size);

    // A client that dropped after any event and resumes from its cursor ends with the same view.
    const cuts = [...new Set(Array.from({ length: 12 }, (_, i) => Math.floor((i * (received.length - 1)) / 11)))];
    for (const [n, cut] of cuts.entries()) {
      const before = new Map(snapshot);
      apply(before, received.slice(0, cut + 1));
      const resumed =
        n % 2 === 0
          ? readEventStream(apis[n % 2]!.url, token, EVENTS, {}, received[cut]!.cursor)
          : readEventStream(apis[n % 2]!.url, token, EVENTS, { after: received[cut]!.cursor });
      const resumedEvents = () => nextPayloads<{ jobEvents: StreamEvent }>(resumed).map((payload) => payload.data!.jobEvents);
      await waitFor(
        `the view resumed after event ${cut} to equal a fresh query`,
        () => sameView(replay(before, resumedEvents()), fresh),
        30_000,
      );
      resumed.drop();
      expect(apply(new Map(before), resumedEvents())).toEqual([]);
    }
  }, 180_000);
});

/** The view after the events, without changing `view`. */
function replay(view: Map<string, JobState>, events: StreamEvent[]): Map<string, JobState> {
  const copy = new Map(view);
  apply(copy, events);
  return copy;
}

describe('resume after a drop', () => {
  it('over SSE, sends every change made during the drop once when the reconnect gives Last-Event-ID', async () => {
    const first = readEventStream(apis[0]!.url, token, EVENTS);
    await waitFor('the stream to deliver an event', async () => {
      await enqueue(apis[0]!.url);
      return nextPayloads(first).length > 0;
    });
    await waitFor('every job to finish', allFinished, 60_000);
    first.drop();
    const seen = nextPayloads<{ jobEvents: StreamEvent }>(first).map((payload) => payload.data!.jobEvents);
    // Every frame's id is its event's cursor.
    for (const frame of first.frames.filter((f) => f.event === 'next')) expect(frame.id).toBe(JSON.parse(frame.data).data.jobEvents.cursor);

    const during = await Promise.all([enqueue(apis[1]!.url), enqueue(apis[0]!.url)]);
    await waitFor('the jobs enqueued during the drop to finish', allFinished, 60_000);

    const second = readEventStream(apis[1]!.url, token, EVENTS, {}, first.lastEventId);
    const resumed = () => nextPayloads<{ jobEvents: StreamEvent }>(second).map((payload) => payload.data!.jobEvents);
    await waitFor('both jobs, finished, on the resumed stream', () =>
      during.every((id) => resumed().some((event) => event.job.id === id && event.job.status === 'COMPLETED')),
    );
    second.drop();
    // New to this client: its first event about each says previousStatus null, whatever happened
    // while it was away (the replica may replay each change it still holds, or fold them into one).
    for (const id of during) {
      const own = resumed().filter((event) => event.job.id === id);
      expect(own[0]).toMatchObject({ previousStatus: null });
      expect(own.at(-1)).toMatchObject({ job: { status: 'COMPLETED' } });
    }
    const view = new Map<string, JobState>();
    expect(apply(view, [...seen, ...resumed()])).toEqual([]);
  }, 120_000);

  it('over WebSocket, resumes with after: the last cursor', async () => {
    const first = subscribe<{ jobEvents: StreamEvent }>('ws', apis[1]!.url, token, EVENTS);
    await waitFor('the stream to deliver an event', async () => {
      await enqueue(apis[1]!.url);
      return first.results.length > 0;
    });
    await waitFor('every job to finish', allFinished, 60_000);
    first.close();
    const seen = first.results.map((result) => result.data!.jobEvents);
    const pending = await enqueue(apis[0]!.url);
    await waitFor('the job to finish', allFinished, 60_000);

    const second = subscribe<{ jobEvents: StreamEvent }>('ws', apis[0]!.url, token, EVENTS, { after: seen.at(-1)!.cursor });
    await waitFor('the job on the resumed stream', () =>
      second.results.some((result) => result.data!.jobEvents.job.id === pending && result.data!.jobEvents.job.status === 'COMPLETED'),
    );
    second.close();
    expect(apply(new Map(), [...seen, ...second.results.map((result) => result.data!.jobEvents)])).toEqual([]);
  }, 120_000);

  it('jobProgress resumes a job from its last cursor, and completes at once when the job had ended', async () => {
    const jobId = (
      await gqlOk<{ scanPii: { id: string } }>(
        apis[0]!.url,
        token,
        `mutation($accountId: ID!) { scanPii(accountId: $accountId, options: { delayMs: 400 }) { id } }`,
        { accountId },
      )
    ).scanPii.id;
    const first = readEventStream(apis[0]!.url, token, PROGRESS, { jobId });
    await waitFor('the current state', () => nextPayloads(first).length > 0);
    first.drop();
    expect(nextPayloads<{ jobProgress: any }>(first)[0]!.data!.jobProgress).toMatchObject({ status: 'DELAYED' });
    await waitFor('the job to finish', allFinished, 60_000);

    const second = readEventStream(apis[1]!.url, token, PROGRESS, { jobId }, first.lastEventId);
    await second.ended;
    const resumed = nextPayloads<{ jobProgress: any }>(second).map((payload) => payload.data!.jobProgress);
    expect(resumed).toHaveLength(1);
    expect(resumed[0]).toMatchObject({ status: 'COMPLETED', job: { id: jobId, status: 'COMPLETED' } });
    expect(second.frames.at(-1)?.event).toBe('complete');

    const third = readEventStream(apis[0]!.url, token, PROGRESS, { jobId }, second.lastEventId);
    await third.ended;
    expect(nextPayloads(third)).toEqual([]);
  }, 60_000);
});

describe('cursors that cannot be resumed', () => {
  async function refusal(after: string): Promise<string | undefined> {
    const sub = subscribe('ws', apis[0]!.url, token, EVENTS, { after });
    const error = await sub.done.then(
      () => null,
      (e: unknown) => e,
    );
    return JSON.parse((error as Error).message)[0]?.extensions?.code;
  }

  it('refuses garbage, a forged or altered cursor, one from the future and one older than the stream keeps, with codes', async () => {
    const { jobs } = await gqlOk<{ jobs: any }>(apis[0]!.url, token, JOBS, { after: null });
    // Signed with the deployment's secret, as the API signs them; a client has no such key.
    const signed = new PositionCodec(env.vars.JWT_SECRET!);
    const forger = new PositionCodec('not the secret');
    const position = signed.decode(jobs.streamCursor)!;
    expect(position).not.toBeNull();
    expect(await refusal('not-a-cursor')).toBe('BAD_USER_INPUT');
    // "From the very beginning": would make the resume read every change ever made.
    const beginning = { ...position.base, text: '1:1:', xmin: 1n, xmax: 1n, xip: new Set<bigint>() };
    expect(await refusal(forger.encode({ base: beginning, partial: null }))).toBe('BAD_USER_INPUT');
    const cursor: string = jobs.streamCursor;
    const altered = `${cursor.slice(0, 20)}${cursor[20] === 'A' ? 'B' : 'A'}${cursor.slice(21)}`;
    expect(await refusal(altered)).toBe('BAD_USER_INPUT');
    // Sealed, not only signed: the transaction ids in it (how busy everyone's jobs are) are not readable.
    expect(Buffer.from(cursor, 'base64url').toString('latin1')).not.toContain(`${position.base.xmin.toString(36)}~`);
    const future = position.base.xmax + 1_000_000n;
    expect(
      await refusal(
        signed.encode({
          base: { ...position.base, text: `${future}:${future}:`, xmin: future, xmax: future, xip: new Set() },
          partial: null,
        }),
      ),
    ).toBe('BAD_USER_INPUT');
    expect(await refusal(signed.encode({ base: { ...position.base, takenAt: Date.now() - 25 * 3_600_000 }, partial: null }))).toBe(
      'CURSOR_EXPIRED',
    );
  });
});
