import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, subscribe, type Subscription } from '../helpers/graphql-client.js';
import { JOB_PROGRESS } from '../helpers/fragments.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import { createAccount, importMbox, startApi, startWorker, type ApiProc, type Proc } from './fault-helpers.js';

let env: TestEnv;
let api: ApiProc;
let worker: Proc;
let token: string;

beforeAll(async () => {
  env = await createTestEnv();
  [api, worker] = await Promise.all([startApi(env.vars), startWorker(env.vars)]);
  token = await env.token('alice');
}, 120_000);

afterAll(async () => {
  await Promise.all([api, worker].filter(Boolean).map((proc) => proc.stop()));
  await env?.cleanup();
});

const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);
const CANCEL = `mutation($id: ID!) { cancelJob(id: $id) { id status } }`;
const JOB_EVENTS = `subscription { jobEvents { jobId status } }`;

interface Event {
  jobId: string;
  status: string;
}

describe('a cancel that races completion', () => {
  it('ends each job in exactly one terminal state, the same in the row and in the last event', async () => {
    const accountId = await createAccount(api.url, token, 'cancel-race');
    const dashboard = subscribe<{ jobEvents: Event }>('ws', api.url, token, JOB_EVENTS);
    dashboard.done.catch(() => {});
    await waitFor('the dashboard subscription to be open', async () =>
      /jobwire_active_subscriptions\{subscription="jobEvents"\} [1-9]/.test(
        await (await fetch(`${api.baseUrl}/metrics`, { headers: { authorization: `Bearer ${env.vars.METRICS_TOKEN}` } })).text(),
      ),
    );
    // Small imports take a few tens of milliseconds. Cancels go out at fixed delays after the
    // enqueue (mostly while queued), the moment the row turns ACTIVE (racing the handler's end), or
    // after it completed (a no-op), so they land on every side of the race.
    const plans: Array<{ delayMs: number } | 'onActive' | 'afterEnd'> = [
      ...Array.from({ length: 16 }, (_, i) => ({ delayMs: i * 6 })),
      ...Array.from({ length: 12 }, () => 'onActive' as const),
      ...Array.from({ length: 4 }, () => 'afterEnd' as const),
    ];
    const runs = await Promise.all(
      plans.map(async (plan, i) => {
        const mbox = buildMbox({ count: plan === 'onActive' ? 30 : 8, seed: 4800 + i }).mbox;
        const job = await importMbox(api.url, token, accountId, mbox);
        const progress = subscribe<{ jobProgress: Event }>(i % 2 ? 'ws' : 'sse', api.url, token, JOB_PROGRESS, { jobId: job.id });
        progress.done.catch(() => {});
        if (plan === 'onActive' || plan === 'afterEnd') {
          const wanted = plan === 'onActive' ? ['ACTIVE', ...TERMINAL] : [...TERMINAL];
          await waitFor(
            'the job to move on',
            async () => wanted.includes((await env.one<{ status: string }>('SELECT status FROM job WHERE id = $1', [job.id])).status),
            30_000,
            2,
          );
        } else {
          await new Promise((resolve) => setTimeout(resolve, plan.delayMs));
        }
        const cancelled = await gql<{ cancelJob: { status: string } }>(api.url, token, CANCEL, { id: job.id });
        expect(cancelled.errors).toBeUndefined();
        return { id: job.id, progress };
      }),
    );

    const rows = await waitFor(
      'every job to reach a terminal state',
      async () => {
        const found = await env.sql<{ id: string; status: string }>('SELECT id, status FROM job WHERE id = ANY($1::uuid[])', [
          runs.map((r) => r.id),
        ]);
        return found.length === runs.length && found.every((row) => TERMINAL.has(row.status))
          ? new Map(found.map((row) => [row.id, row.status]))
          : null;
      },
      60_000,
      100,
    );
    await waitFor(
      'every progress subscription to complete',
      async () => {
        const settled = await Promise.all(
          runs.map(({ progress }) => Promise.race([progress.done.then(() => true), new Promise((r) => setTimeout(() => r(false), 20))])),
        );
        return settled.every(Boolean);
      },
      30_000,
      0,
    );

    const outcomes = new Set<string>();
    for (const { id, progress } of runs) {
      const status = rows.get(id)!;
      outcomes.add(status);
      expect(status === 'COMPLETED' || status === 'CANCELLED').toBe(true);
      const events = progress.results.map((r) => r.data!.jobProgress);
      expect(events.filter((e) => TERMINAL.has(e.status)).map((e) => e.status)).toEqual([status]);
      expect(events.at(-1)!.status).toBe(status);
    }
    // Both sides of the race were exercised.
    expect([...outcomes].sort()).toEqual(['CANCELLED', 'COMPLETED']);
    const runningCancels = await env.one<{ count: number }>(
      "SELECT count(*)::int AS count FROM job WHERE id = ANY($1::uuid[]) AND status = 'CANCELLED' AND started_at IS NOT NULL",
      [runs.map((r) => r.id)],
    );
    expect(runningCancels.count).toBeGreaterThan(0);

    // A dashboard sees one terminal event per job, the row's, and nothing after it.
    await waitFor(
      'the dashboard to see every terminal event',
      () => {
        const ended = new Set(
          dashboard.results
            .map((r) => r.data!.jobEvents)
            .filter((e) => TERMINAL.has(e.status))
            .map((e) => e.jobId),
        );
        return runs.every(({ id }) => ended.has(id));
      },
      20_000,
    );
    for (const { id } of runs) {
      const events = dashboard.results.map((r) => r.data!.jobEvents).filter((e) => e.jobId === id);
      expect(events.filter((e) => TERMINAL.has(e.status)).map((e) => e.status)).toEqual([rows.get(id)]);
      expect(events.at(-1)!.status).toBe(rows.get(id));
    }
    dashboard.close();
    runs.forEach(({ progress }: { progress: Subscription<unknown> }) => progress.close());
  }, 120_000);
});
