/**
 * A subscriber whose client stops reading (issue 8): the replica does not buffer its events
 * without bound. Past MAX_QUEUED_EVENTS_PER_SUBSCRIPTION waiting events it drops them, counts the
 * cut in /metrics, and its memory returns to the baseline; when the client reads again it gets
 * SUBSCRIBER_TOO_SLOW and the stream ends. A real API process and a raw SSE reader that pauses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiProc, startApi } from '../helpers/processes.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

const EVENTS = 'subscription { jobEvents { cursor job { id status payload } } }';

let env: TestEnv;
let api: ApiProc;
let token: string;

beforeAll(async () => {
  env = await createTestEnv({ MAX_QUEUED_EVENTS_PER_SUBSCRIPTION: '1000' });
  api = await startApi(env.vars, { heapProbe: true });
  token = await env.token('slow-reader');
}, 120_000);

afterAll(async () => {
  await api?.stop();
  await env?.cleanup();
});

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${api.baseUrl}/metrics`, { headers: { authorization: `Bearer ${env.vars.METRICS_TOKEN}` } })).text();
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0);
}

/** Opens jobEvents over SSE and reads nothing past the first bytes, as a stalled client would. */
async function stalledReader() {
  const url = new URL(api.url);
  url.searchParams.set('query', EVENTS);
  const response = await fetch(url, { headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` } });
  const reader = response.body!.getReader();
  await reader.read();
  return reader;
}

/** `count` new jobs of the reader's owner, each with a 2 KB payload, in one statement. */
async function insertJobs(count: number): Promise<void> {
  await env.sql(
    `INSERT INTO job (id, type, status, max_attempts, payload, trigger, owner_id, created_at, updated_at)
     SELECT gen_random_uuid(), 'scan_pii', 'PENDING', 1, jsonb_build_object('accountId', gen_random_uuid(), 'note', repeat('x', 2000)),
            'API', 'slow-reader', clock_timestamp(), clock_timestamp()
       FROM generate_series(1, $1::int)`,
    [count],
  );
}

describe('a subscriber that stops reading', () => {
  it('is cut off past its queue limit, frees what it held, and gets SUBSCRIBER_TOO_SLOW when it reads again', async () => {
    // Warm-up, so the baseline includes compiled code and filled pools.
    const warm = await stalledReader();
    await waitFor('the warm-up subscription to open', async () => (await metric('jobwire_active_subscriptions')) === 1);
    await warm.cancel();
    await waitFor('the warm-up subscription to end', async () => (await metric('jobwire_active_subscriptions')) === 0);
    const heapBefore = await api.heap();

    const reader = await stalledReader();
    await waitFor('the subscription to open', async () => (await metric('jobwire_active_subscriptions')) === 1);
    // About 60 MB of events: far more than the sockets' buffers hold while nobody reads.
    await insertJobs(30_000);
    await waitFor(
      'the replica to cut the subscriber off',
      async () => (await metric('jobwire_slow_subscribers_cut_off_total')) === 1,
      60_000,
    );

    const heapAfter = await waitFor(
      'the heap to return to its baseline',
      async () => {
        const heap = await api.heap();
        return heap.heapUsed - heapBefore.heapUsed < 8 * 1024 * 1024 ? heap : null;
      },
      20_000,
      500,
    ).catch(async () => api.heap());
    expect(heapAfter.heapUsed - heapBefore.heapUsed).toBeLessThan(8 * 1024 * 1024);

    // Reading again: what the sockets held, then the error, then the end of the stream.
    const decoder = new TextDecoder();
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const frames = text.split('\n\n').filter((frame) => frame.startsWith('event: next'));
    const last = JSON.parse(
      frames
        .at(-1)!
        .split('\n')
        .find((line) => line.startsWith('data: '))!
        .slice(6),
    );
    expect(last.errors[0].extensions.code).toBe('SUBSCRIBER_TOO_SLOW');
    expect(frames.length - 1).toBeLessThan(30_000);
    expect(text.trimEnd().endsWith('event: complete\ndata:')).toBe(true);
    await waitFor('the subscription to be closed', async () => (await metric('jobwire_active_subscriptions')) === 0);
  }, 120_000);
});
