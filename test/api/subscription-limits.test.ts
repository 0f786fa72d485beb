import { createClient, type Client } from 'graphql-ws';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOB_PROGRESS } from '../helpers/fragments.js';
import { gqlOk, subscribe } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import { redisUrl } from '../helpers/urls.js';
import { CountedLeases } from '../../src/queue/counted-leases.js';

const PER_CONNECTION = 2;
const PER_USER = 3;

let env: TestEnv;
/** Two API replicas sharing one database and one Redis prefix; no sidecar (the jobs stay DELAYED). */
let replicaA: InProcessSystem;
let replicaB: InProcessSystem;
let redis: Redis;

beforeAll(async () => {
  env = await createTestEnv({ MAX_SUBSCRIPTIONS_PER_CONNECTION: String(PER_CONNECTION), MAX_SUBSCRIPTIONS_PER_USER: String(PER_USER) });
  [replicaA, replicaB] = await Promise.all([startInProcess(env, { worker: false }), startInProcess(env, { worker: false })]);
  redis = new Redis(redisUrl());
});

afterAll(async () => {
  redis?.disconnect();
  await replicaA?.stop();
  await replicaB?.stop();
  await env?.cleanup();
});

type Outcome = { kind: 'complete' } | { kind: 'error'; error: any };

interface Operation {
  results: any[];
  ended: Promise<Outcome>;
  dispose(): void;
}

function operate(client: Client, query: string, variables: Record<string, unknown> = {}): Operation {
  const op: Operation = { results: [], ended: null as never, dispose: () => {} };
  op.ended = new Promise<Outcome>((resolve) => {
    op.dispose = client.subscribe(
      { query, variables },
      {
        next: (value) => void op.results.push(value),
        error: (error) => resolve({ kind: 'error', error }),
        complete: () => resolve({ kind: 'complete' }),
      },
    );
  });
  return op;
}

function wsClient(system: InProcessSystem, token: string): Client {
  return createClient({
    url: system.url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
    lazy: true,
    // Keep the socket between operations, so the checks below are about one socket.
    lazyCloseTimeout: 60_000,
  });
}

/** Subscribes to `jobId`'s progress and resolves once the subscription is accepted (its first event came) or refused. */
async function progressOn(client: Client, jobId: string): Promise<{ op: Operation; refusal: any | null }> {
  const op = operate(client, JOB_PROGRESS, { jobId });
  const first = await Promise.race([waitFor('the first event', () => op.results.length > 0).then(() => null), op.ended]);
  if (first?.kind === 'error') return { op, refusal: first.error[0] };
  return { op, refusal: null };
}

async function delayedJob(token: string): Promise<string> {
  const data = await gqlOk<{ applyRetention: { id: string } }>(
    replicaA.url,
    token,
    'mutation { applyRetention(options: { delayMs: 3600000 }) { id } }',
  );
  return data.applyRetention.id;
}

const cancel = (token: string, id: string) => gqlOk(replicaA.url, token, 'mutation($id: ID!) { cancelJob(id: $id) { id } }', { id });
const openLeases = (owner: string) => redis.zcard(`${env.vars.REDIS_PREFIX}:subs:${owner}`);

describe('MAX_SUBSCRIPTIONS_PER_CONNECTION', () => {
  it('refuses the extra subscription on a socket with RATE_LIMITED while the earlier ones go on', async () => {
    const carol = await env.token('carol');
    const [j1, j2, j3] = await Promise.all([delayedJob(carol), delayedJob(carol), delayedJob(carol)]);
    const client = wsClient(replicaA, carol);
    const first = await progressOn(client, j1);
    const second = await progressOn(client, j2);
    expect([first.refusal, second.refusal]).toEqual([null, null]);

    const extra = await progressOn(client, j3);
    expect(extra.refusal?.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfter: expect.any(Number) });
    expect(extra.refusal.message).toMatch(/connection/);
    expect(extra.op.results).toEqual([]);

    // The earlier two still deliver; once one ends, the socket has room again.
    await cancel(carol, j1);
    expect(await first.op.ended).toEqual({ kind: 'complete' });
    expect(first.op.results.map((r) => r.data.jobProgress.status)).toEqual(['DELAYED', 'CANCELLED']);
    const again = await progressOn(client, j3);
    expect(again.refusal).toBeNull();
    await cancel(carol, j2);
    await cancel(carol, j3);
    expect(await second.op.ended).toEqual({ kind: 'complete' });
    expect(await again.op.ended).toEqual({ kind: 'complete' });
    await waitFor('carol to hold no leases', async () => (await openLeases('carol')) === 0);
    await client.dispose();
  });
});

describe('MAX_SUBSCRIPTIONS_PER_USER', () => {
  it('is shared by both replicas and both transports; an ended or dropped subscription frees its slot', async () => {
    const dave = await env.token('dave');
    const jobs = await Promise.all(Array.from({ length: 5 }, () => delayedJob(dave)));
    const onA = wsClient(replicaA, dave);
    const onB = wsClient(replicaB, dave);

    // Three slots: two over WebSocket on A, one over SSE on B.
    const a1 = await progressOn(onA, jobs[0]!);
    const a2 = await progressOn(onA, jobs[1]!);
    const b1 = subscribe<{ jobProgress: any }>('sse', replicaB.url, dave, JOB_PROGRESS, { jobId: jobs[2] });
    await waitFor('the SSE subscription', () => b1.results.length > 0);
    expect([a1.refusal, a2.refusal, b1.results[0]!.errors]).toEqual([null, null, undefined]);
    expect(await openLeases('dave')).toBe(PER_USER);

    // The fourth is refused on the other replica, over either transport.
    const overWs = await progressOn(onB, jobs[3]!);
    expect(overWs.refusal?.extensions?.code).toBe('RATE_LIMITED');
    expect(overWs.refusal.extensions.retryAfter).toBeGreaterThanOrEqual(1);
    expect(overWs.refusal.extensions.retryAfter).toBeLessThanOrEqual(30);
    const overSse = subscribe<{ jobProgress: any }>('sse', replicaA.url, dave, JOB_PROGRESS, { jobId: jobs[3] });
    await overSse.done.catch(() => {});
    expect(overSse.results[0]?.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfter: expect.any(Number) });
    expect(overSse.results.some((r) => r.data?.jobProgress)).toBe(false);
    expect(await openLeases('dave')).toBe(PER_USER);

    // A subscription that completes (its job is cancelled) frees a slot for a new one on B.
    await cancel(dave, jobs[0]!);
    expect(await a1.op.ended).toEqual({ kind: 'complete' });
    let b2: Awaited<ReturnType<typeof progressOn>> | null = null;
    await waitFor('a new subscription to be accepted on B', async () => {
      const attempt = await progressOn(onB, jobs[3]!);
      if (attempt.refusal) return false;
      b2 = attempt;
      return true;
    });

    // So does one the client drops (unsubscribes): SSE on A takes its place.
    a2.op.dispose();
    let a3: ReturnType<typeof subscribe<{ jobProgress: any }>> | null = null;
    await waitFor('a new SSE subscription to be accepted on A', async () => {
      const attempt = subscribe<{ jobProgress: any }>('sse', replicaA.url, dave, JOB_PROGRESS, { jobId: jobs[4] });
      await waitFor('an answer', () => attempt.results.length > 0, 5_000);
      if (attempt.results[0]!.errors) return false;
      a3 = attempt;
      return true;
    });
    expect(await openLeases('dave')).toBe(PER_USER);

    // The rest end by a closed SSE request and by closing B's socket with a subscription open.
    expect(b2).not.toBeNull();
    b1.close();
    a3!.close();
    await onB.dispose();
    await waitFor('every lease of dave to be released', async () => (await openLeases('dave')) === 0);
    await onA.dispose();
    await Promise.all(jobs.slice(1).map((id) => cancel(dave, id)));
  });

  it('does not count an admin', async () => {
    const dave = await env.token('dave');
    const admin = await env.token('root', 'admin');
    const job = await delayedJob(dave);
    const clients = [wsClient(replicaA, admin), wsClient(replicaB, admin)];
    const ops = [];
    for (const client of clients) for (let i = 0; i < PER_CONNECTION; i++) ops.push(await progressOn(client, job));
    expect(ops.length).toBeGreaterThan(PER_USER);
    expect(ops.map((o) => o.refusal)).toEqual(ops.map(() => null));
    expect(await openLeases('root')).toBe(0);
    await cancel(dave, job);
    for (const o of ops) expect(await o.op.ended).toEqual({ kind: 'complete' });
    await Promise.all(clients.map((c) => c.dispose()));
  });
});

describe('subscription leases', () => {
  it("keep a live replica's subscriptions counted past the TTL, and let a crashed replica's lapse", async () => {
    const ttlMs = 300;
    const live = new Redis(redisUrl());
    const crashing = new Redis(redisUrl());
    const prefix = `${env.vars.REDIS_PREFIX}:lease-test`;
    const survivor = new CountedLeases(live, `${prefix}:subs`, { ttlMs, refreshMs: 50 });
    const doomed = new CountedLeases(crashing, `${prefix}:subs`, { ttlMs, refreshMs: 50 });
    const held = await survivor.acquire('erin', 2);
    const lost = await doomed.acquire('erin', 2);
    expect([held.granted, lost.granted]).toEqual([true, true]);
    if (!held.granted || !lost.granted) return;
    held.lease.keepAlive();
    lost.lease.keepAlive();
    const full = await survivor.acquire('erin', 2);
    expect(full).toMatchObject({ granted: false, open: 2 });
    expect((full as { retryAfterMs: number }).retryAfterMs).toBeLessThanOrEqual(ttlMs);

    // The "crash": that replica's connection goes away without releasing anything.
    crashing.disconnect();
    const crashedAt = Date.now();
    const next = await waitFor('the crashed lease to lapse', async () => {
      const outcome = await survivor.acquire('erin', 2);
      return outcome.granted ? outcome : null;
    });
    next.lease.keepAlive();
    // The survivor's lease, refreshed all along, still counts after several TTLs.
    await waitFor('a few TTLs to pass', () => Date.now() - crashedAt > 3 * ttlMs);
    expect(await live.zcard(`${prefix}:subs:erin`)).toBe(2);
    expect(await survivor.acquire('erin', 2)).toMatchObject({ granted: false });
    await held.lease.release();
    await next.lease.release();
    expect(await live.zcard(`${prefix}:subs:erin`)).toBe(0);
    live.disconnect();
  });
});
