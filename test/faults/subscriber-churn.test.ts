import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gqlOk, subscribe as open, type Subscription, type Transport } from '../helpers/graphql-client.js';
import { JOB_PROGRESS } from '../helpers/fragments.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import { createAccount, startApi, startPrivateRedis, type ApiProc, type PrivateRedis } from './fault-helpers.js';

let env: TestEnv;
let redis: PrivateRedis;
let api: ApiProc;
let token: string;
const jobIds: string[] = [];

const BULK = `mutation($input: BulkOperationInput!) { bulkOperation(input: $input) { id status } }`;
const JOB_EVENTS = `subscription { jobEvents { jobId status } }`;

beforeAll(async () => {
  // A Redis of its own, so PUBSUB NUMPAT and the channel list count this file's subscribers only.
  redis = await startPrivateRedis();
  env = await createTestEnv({ REDIS_URL: redis.url });
  api = await startApi(env.vars, { heapProbe: true });
  token = await env.token('alice');
  // No worker runs here: the jobs stay PENDING, so their subscriptions stay open until dropped.
  const accountId = await createAccount(api.url, token, 'churn');
  for (let i = 0; i < 20; i++) {
    const data = await gqlOk<{ bulkOperation: { id: string } }>(api.url, token, BULK, {
      input: { accountId, action: 'MARK_READ', ids: [randomUUID()] },
    });
    jobIds.push(data.bulkOperation.id);
  }
}, 120_000);

afterAll(async () => {
  await api?.stop();
  await redis?.close();
  await env?.cleanup();
});

/** What this replica holds in Redis and in its own books. */
async function footprint() {
  const channels = ((await redis.client.pubsub('CHANNELS', `${env.vars.REDIS_PREFIX}:*`)) as string[]).sort();
  const numpat = Number(await redis.client.pubsub('NUMPAT'));
  const metrics = await (await fetch(`${api.baseUrl}/metrics`, { headers: { authorization: `Bearer ${env.vars.METRICS_TOKEN}` } })).text();
  const open = [...metrics.matchAll(/^jobwire_active_subscriptions\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  return { channels, numpat, open };
}

async function openSubscriptions(metric: string): Promise<number> {
  const metrics = await (await fetch(`${api.baseUrl}/metrics`, { headers: { authorization: `Bearer ${env.vars.METRICS_TOKEN}` } })).text();
  return Number(new RegExp(`^jobwire_active_subscriptions\\{subscription="${metric}"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
}

/**
 * One batch of `size` subscriptions, half SSE and half WebSocket: a quarter are dashboards
 * (`jobEvents`) dropped while open with no event yet, a quarter `jobProgress` dropped the instant
 * they are made, and half `jobProgress` dropped after their first event.
 */
async function churn(size: number, batch: number): Promise<void> {
  const transport = (i: number): Transport => (i % 2 === 0 ? 'sse' : 'ws');
  // Every subscription here is dropped by the client; a drop may be reported as an error.
  const subscribe = <T>(...args: Parameters<typeof open<T>>) => {
    const sub = open<T>(...args);
    sub.done.catch(() => {});
    return sub;
  };
  const quarter = size / 4;
  const dashboards: Subscription<unknown>[] = [];
  for (let i = 0; i < quarter; i++) dashboards.push(subscribe(transport(i), api.url, token, JOB_EVENTS));
  const instant: Subscription<unknown>[] = [];
  const watched: Subscription<unknown>[] = [];
  for (let i = 0; i < quarter; i++) {
    const sub = subscribe(transport(i), api.url, token, JOB_PROGRESS, { jobId: jobIds[(batch + i) % jobIds.length] });
    instant.push(sub);
    // Spread over the first milliseconds: before the request, during it, before the first event.
    setTimeout(() => sub.close(), i % 10);
  }
  for (let i = 0; i < 2 * quarter; i++) {
    watched.push(subscribe(transport(i), api.url, token, JOB_PROGRESS, { jobId: jobIds[(batch * 7 + i) % jobIds.length] }));
  }
  await waitFor('the dashboards to be open on the server', async () => (await openSubscriptions('jobEvents')) >= quarter, 30_000, 50);
  for (const sub of dashboards) sub.close();
  await waitFor('each watched subscription to get its first event', () => watched.every((sub) => sub.results.length > 0), 30_000, 20);
  for (const sub of watched) {
    expect(sub.results[0]).toMatchObject({ data: { jobProgress: { status: 'PENDING' } } });
    sub.close();
  }
}

describe('subscriber churn', () => {
  it('returns Redis subscriptions and heap to their baseline after 2,000 subscriptions come and go', async () => {
    // Warm-up: code paths compiled, pools and caches filled, before the baseline is taken.
    await churn(100, 0);
    await waitFor('the warm-up subscriptions to be released', async () => (await footprint()).open === 0, 30_000, 100);
    const baseline = await footprint();
    const heapBefore = await api.heap();

    for (let batch = 1; batch <= 10; batch++) await churn(200, batch);

    let last = baseline;
    await waitFor(
      'Redis subscriptions and open subscriptions back to the baseline',
      async () => {
        last = await footprint();
        return last.open === 0 && last.numpat === baseline.numpat && last.channels.join() === baseline.channels.join();
      },
      30_000,
      100,
    ).catch(() => {});
    expect(last).toEqual(baseline);
    // Heap: back to the baseline, give or take what V8 keeps between collections (a leak of even
    // 3 KB per subscription would show as 6 MB here).
    const heapAfter = await waitFor(
      'the heap to return to its baseline',
      async () => {
        const heap = await api.heap();
        return heap.heapUsed - heapBefore.heapUsed < 6 * 1024 * 1024 ? heap : null;
      },
      20_000,
      500,
    ).catch(async () => api.heap());
    expect(heapAfter.heapUsed - heapBefore.heapUsed).toBeLessThan(6 * 1024 * 1024);
    expect(api.alive()).toBe(true);
  }, 180_000);
});
