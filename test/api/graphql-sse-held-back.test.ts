/**
 * A graphql-sse operation held back while its stream's client has more than
 * SUBSCRIPTION_SEND_BUFFER_BYTES unread (`Backlog.drained` in src/api/graphql-sse.ts) waits once
 * per result it takes while the client is behind. Each wait must be let go once it is over: a
 * subscription that lives for hours on a busy stream, read a little behind, would otherwise hold
 * more of the replica's memory with every event it gets. A real API process; the buffer is one
 * byte, so that every result waits for the one before it to be read.
 */
import { TOKEN_HEADER_KEY } from 'graphql-sse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricTotal } from '../helpers/metrics.js';
import { type ApiProc, startApi } from '../helpers/processes.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

const EVENTS = 'subscription { jobEvents { job { id } } }';

let env: TestEnv;
let api: ApiProc;
let token: string;

beforeAll(async () => {
  env = await createTestEnv({ SUBSCRIPTION_SEND_BUFFER_BYTES: '1' });
  api = await startApi(env.vars, { heapProbe: true });
  token = await env.token('held-back');
}, 120_000);

afterAll(async () => {
  await api?.stop();
  await env?.cleanup();
});

const metric = (name: string) => metricTotal(api.baseUrl, env.vars.METRICS_TOKEN!, name);

async function insertJobs(count: number): Promise<void> {
  await env.sql(
    `INSERT INTO job (id, type, status, max_attempts, payload, trigger, owner_id, created_at, updated_at)
     SELECT gen_random_uuid(), 'scan_pii', 'PENDING', 1, jsonb_build_object('accountId', gen_random_uuid()),
            'API', 'held-back', clock_timestamp(), clock_timestamp()
       FROM generate_series(1, $1::int)`,
    [count],
  );
}

/**
 * jobEvents over graphql-sse's single connection mode (reserve a stream, listen to it, send the
 * operation into it), read as it comes; `results` counts its result frames.
 */
async function openStream() {
  const streamUrl = api.url.replace(/\/graphql$/, '/graphql/stream');
  const authorization = `Bearer ${token}`;
  const reserved = await fetch(streamUrl, { method: 'PUT', headers: { authorization } });
  const streamToken = await reserved.text();
  const listening = await fetch(streamUrl, {
    headers: { accept: 'text/event-stream', authorization, [TOKEN_HEADER_KEY]: streamToken },
  });
  const reader = listening.body!.pipeThrough(new TextDecoderStream()).getReader();
  const sent = await fetch(streamUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization, [TOKEN_HEADER_KEY]: streamToken },
    body: JSON.stringify({ query: EVENTS, extensions: { operationId: '1' } }),
  });
  expect(sent.status).toBe(202);
  const stream = { results: 0, errors: 0 };
  let carry = '';
  void (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      const frames = (carry + value).split('\n\n');
      carry = frames.pop()!;
      for (const frame of frames.filter((f) => f.startsWith('event: next'))) {
        stream.results++;
        if (frame.includes('"errors"')) stream.errors++;
      }
    }
  })().catch(() => {});
  return { stream, cancel: () => reader.cancel() };
}

describe('a graphql-sse operation held back by its stream', () => {
  it('holds no more memory for every result it took while held back', async () => {
    const { stream, cancel } = await openStream();
    await waitFor('the subscription to open', async () => (await metric('jobwire_active_subscriptions')) === 1);
    /** `rounds` rounds of events, each read to the last before the next is written. */
    const deliver = async (rounds: number) => {
      for (let round = 0; round < rounds; round++) {
        const expected = stream.results + 2_000;
        await insertJobs(2_000);
        await waitFor('the round to be read', () => stream.results >= expected, 60_000);
      }
    };
    // Warm-up, and a baseline with the replica's feed as full as it will be (it keeps recent events).
    await deliver(5);
    const before = await api.heap();
    // 40,000 results, each taken while the one before was still unread.
    await deliver(20);
    const after = await api.heap();
    expect(stream.errors).toBe(0);
    // A few hundred bytes kept per wait would be over 10 MB (13.5 MB before the fix).
    expect(after.heapUsed - before.heapUsed).toBeLessThan(6 * 1024 * 1024);
    await cancel();
    await waitFor('the subscription to be closed', async () => (await metric('jobwire_active_subscriptions')) === 0);
  }, 180_000);
});
