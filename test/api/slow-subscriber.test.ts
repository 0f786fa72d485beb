/**
 * A subscriber whose client stops reading (issue 8): the replica does not buffer its events
 * without bound. Its events are written while its connection keeps up (SUBSCRIPTION_SEND_BUFFER_BYTES),
 * then wait in its queue; past MAX_QUEUED_EVENTS_PER_SUBSCRIPTION waiting events they are dropped,
 * the cut is counted in /metrics, and the replica's memory returns to the baseline; when the client
 * reads again it gets SUBSCRIBER_TOO_SLOW and the stream ends. A real API process, and a raw SSE
 * reader and a raw graphql-ws socket that stop reading.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { metricTotal } from '../helpers/metrics.js';
import { type ApiProc, startApi } from '../helpers/processes.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

const EVENTS = 'subscription { jobEvents { cursor job { id status payload } } }';

let env: TestEnv;
let api: ApiProc;
let token: string;

beforeAll(async () => {
  env = await createTestEnv({ MAX_QUEUED_EVENTS_PER_SUBSCRIPTION: '1000', MAX_QUEUED_BYTES_PER_SUBSCRIPTION: String(8 * 1024 * 1024) });
  api = await startApi(env.vars, { heapProbe: true });
  token = await env.token('slow-reader');
}, 120_000);

afterAll(async () => {
  await api?.stop();
  await env?.cleanup();
});

const metric = (name: string) => metricTotal(api.baseUrl, env.vars.METRICS_TOKEN!, name);

/** A subscriber that has stopped reading: `resume` reads everything to the end of the stream. */
interface StalledReader {
  /** Reads on to the end; the results it got, in order, and whether the stream ended as the protocol says. */
  resume(): Promise<{ results: { errors?: { extensions: { code: string } }[] }[]; completed: boolean }>;
  cancel(): Promise<void>;
}

/** jobEvents over SSE, reading nothing past the first bytes, as a stalled client would. */
async function stalledSse(): Promise<StalledSseReader> {
  const url = new URL(api.url);
  url.searchParams.set('query', EVENTS);
  const response = await fetch(url, { headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` } });
  return readerOf(response);
}

type Result = { data?: { jobEvents: { job: { id: string } } }; errors?: { extensions: { code: string } }[] };

/** An SSE stream's reader that stopped after its first bytes: `take` reads on up to `count` results, `resume` to the end. */
interface StalledSseReader extends StalledReader {
  take(count: number): Promise<Result[]>;
}

/** An SSE response read up to its first bytes, then left unread until `take` or `resume`. */
async function readerOf(response: Response): Promise<StalledSseReader> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  await reader.read();
  let text = '';
  const frames: string[] = [];
  /** Reads until `enough` holds or the stream ends; true if it ended. */
  const readUntil = async (enough: () => boolean) => {
    while (!enough()) {
      const { done, value } = await reader.read();
      if (done) return true;
      text += value;
      const complete = text.split('\n\n');
      text = complete.pop()!;
      frames.push(...complete);
    }
    return false;
  };
  const resultsOf = (read: string[]): Result[] =>
    read
      .filter((frame) => frame.startsWith('event: next'))
      .map((frame) =>
        JSON.parse(
          frame
            .split('\n')
            .find((line) => line.startsWith('data: '))!
            .slice(6),
        ),
      );
  return {
    async take(count) {
      await readUntil(() => resultsOf(frames).length >= count);
      return resultsOf(frames.splice(0));
    },
    async resume() {
      await readUntil(() => false);
      return { results: resultsOf(frames), completed: frames.at(-1)?.trimEnd() === 'event: complete\ndata:' };
    },
    cancel: () => reader.cancel(),
  };
}

/** jobEvents over graphql-sse's own protocol (/graphql/stream, distinct connections mode), reading nothing past the first bytes. */
async function stalledGraphqlSse(): Promise<StalledSseReader> {
  const response = await fetch(api.url.replace(/\/graphql$/, '/graphql/stream'), {
    method: 'POST',
    headers: { accept: 'text/event-stream', 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: EVENTS }),
  });
  return readerOf(response);
}

/** jobEvents over graphql-ws, on a socket whose TCP stream is paused once the subscription is acknowledged. */
async function stalledWs(): Promise<StalledReader> {
  const socket = new WebSocket(api.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
  const messages: { type: string; payload?: unknown }[] = [];
  socket.on('message', (data) => messages.push(JSON.parse(String(data))));
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  await waitFor('the connection to be acknowledged', () => messages.some((m) => m.type === 'connection_ack'));
  socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: EVENTS } }));
  await waitFor('the subscription to open', async () => (await metric('jobwire_active_subscriptions')) === 1);
  // ws reads from its TCP socket; paused, nothing more is read and the server's writes back up.
  (socket as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
  return {
    async resume() {
      (socket as unknown as { _socket: { resume(): void } })._socket.resume();
      await waitFor('the stream to end', () => messages.some((m) => m.type === 'complete' || m.type === 'error'), 30_000, 50);
      socket.close();
      return {
        results: messages.filter((m) => m.type === 'next').map((m) => m.payload as never),
        completed: messages.at(-1)?.type === 'complete',
      };
    },
    // Its TCP stream paused, a closing handshake could not finish: the client drops the connection.
    async cancel() {
      socket.terminate();
    },
  };
}

/** `count` new jobs of the reader's owner, each with a payload of `payloadBytes` (about), in one statement. */
async function insertJobs(count: number, payloadBytes = 2000): Promise<void> {
  await env.sql(
    `INSERT INTO job (id, type, status, max_attempts, payload, trigger, owner_id, created_at, updated_at)
     SELECT gen_random_uuid(), 'scan_pii', 'PENDING', 1, jsonb_build_object('accountId', gen_random_uuid(), 'note', repeat('x', $2::int)),
            'API', 'slow-reader', clock_timestamp(), clock_timestamp()
       FROM generate_series(1, $1::int)`,
    [count, payloadBytes],
  );
}

describe('a subscriber that stops reading', () => {
  it.each([
    ['SSE', stalledSse],
    ['graphql-sse', stalledGraphqlSse],
    ['WebSocket', stalledWs],
  ])(
    'is cut off past its queue limit, frees what it held, and gets SUBSCRIBER_TOO_SLOW when it reads again (%s)',
    async (_transport, stalled) => {
      const cutBefore = await metric('jobwire_slow_subscribers_cut_off_total');
      // Warm-up, so the baseline includes compiled code and filled pools.
      const warm = await stalled();
      await waitFor('the warm-up subscription to open', async () => (await metric('jobwire_active_subscriptions')) === 1);
      await warm.cancel();
      await waitFor('the warm-up subscription to end', async () => (await metric('jobwire_active_subscriptions')) === 0);
      const heapBefore = await api.heap();

      const reader = await stalled();
      await waitFor('the subscription to open', async () => (await metric('jobwire_active_subscriptions')) === 1);
      // About 60 MB of events: far more than the sockets' buffers hold while nobody reads.
      await insertJobs(30_000);
      await waitFor(
        'the replica to cut the subscriber off',
        async () => (await metric('jobwire_slow_subscribers_cut_off_total')) === cutBefore + 1,
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
      const { results, completed } = await reader.resume();
      expect(results.at(-1)!.errors?.[0]?.extensions.code).toBe('SUBSCRIBER_TOO_SLOW');
      expect(results.length - 1).toBeLessThan(30_000);
      expect(completed).toBe(true);
      await waitFor('the subscription to be closed', async () => (await metric('jobwire_active_subscriptions')) === 0);
    },
    120_000,
  );

  it('holds little for each of many graphql-sse streams that stop reading, and loses none of their events', async () => {
    const streams = 30;
    const events = 900;
    // Warm-up, so the baseline includes compiled code and filled pools.
    const warm = await stalledGraphqlSse();
    await waitFor('the warm-up subscription to open', async () => (await metric('jobwire_active_subscriptions')) === 1);
    await warm.cancel();
    await waitFor('the warm-up subscription to end', async () => (await metric('jobwire_active_subscriptions')) === 0);
    const readers = await Promise.all(Array.from({ length: streams }, () => stalledGraphqlSse()));
    await waitFor('the subscriptions to open', async () => (await metric('jobwire_active_subscriptions')) === streams);
    const heapBefore = await api.heap();
    // A subscriber that reads says when the replica has handed out every change.
    const watcher = await stalledSse();
    await waitFor('the watching subscription to open', async () => (await metric('jobwire_active_subscriptions')) === streams + 1);
    // About 6.5 MB of events, under both of a subscription's limits (1,000 events, 8 MiB): each
    // stalled stream gets them all, and would hold all of them if it took every result as it came.
    await insertJobs(events, 7_000);
    expect(await watcher.take(events)).toHaveLength(events);
    await watcher.cancel();
    const heapAfter = await api.heap();
    // The events are shared by every subscriber that waits for them; 30 copies would take 200 MB.
    expect(heapAfter.heapUsed - heapBefore.heapUsed).toBeLessThan(48 * 1024 * 1024);

    // Each stalled stream, read again, gets every event: they waited in its queue, not in its stream.
    for (const reader of [readers[0]!, readers.at(-1)!]) {
      const results = await reader.take(events);
      expect(results.every((result) => !result.errors)).toBe(true);
      expect(new Set(results.map((result) => result.data!.jobEvents.job.id)).size).toBe(events);
    }
    await Promise.all(readers.map((reader) => reader.cancel()));
    await waitFor('the subscriptions to be closed', async () => (await metric('jobwire_active_subscriptions')) === 0);
  }, 120_000);

  it.each([
    ['SSE', stalledSse],
    ['graphql-sse', stalledGraphqlSse],
  ])(
    'is not cut off by one page of large changes while it reads as fast as it can (%s)',
    async (_transport, subscribe) => {
      const reader = await subscribe();
      await waitFor('the subscription to open', async () => (await metric('jobwire_active_subscriptions')) === 1);
      // One commit of 500 jobs of 20 KB: the replica reads them as one page, 10 MB, past the 8 MiB
      // a subscription may have waiting. A client that reads along gets them all.
      await insertJobs(500, 20_000);
      const results = await reader.take(500);
      await reader.cancel();
      expect(results.filter((result) => result.errors).map((result) => result.errors![0]!.extensions.code)).toEqual([]);
      expect(results).toHaveLength(500);
      await waitFor('the subscription to be closed', async () => (await metric('jobwire_active_subscriptions')) === 0);
    },
    120_000,
  );

  it('is let go when its connection closes, also while queued behind another on a pipelining connection', async () => {
    // Three subscriptions sent back to back on one connection (HTTP/1.1 pipelining), over SSE and
    // graphql-sse: the second and third responses wait behind the first, which never ends.
    const url = new URL(api.url);
    const get = `GET ${url.pathname}?query=${encodeURIComponent(EVENTS)} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\nAuthorization: Bearer ${token}\r\n\r\n`;
    const socket = connect(Number(url.port), url.hostname);
    socket.on('error', () => {});
    socket.resume();
    await new Promise((resolve) => socket.once('connect', resolve));
    const body = JSON.stringify({ query: EVENTS });
    const post = `POST /graphql/stream HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nAuthorization: Bearer ${token}\r\n\r\n${body}`;
    socket.write(get + post + post);
    await waitFor('the three subscriptions to open', async () => (await metric('jobwire_active_subscriptions')) === 3);
    socket.destroy();
    await waitFor('every subscription to be let go', async () => (await metric('jobwire_active_subscriptions')) === 0, 20_000);
  });

  it('is cut off by the bytes waiting too, however few events they are (SSE)', async () => {
    const cutBefore = await metric('jobwire_slow_subscribers_cut_off_total');
    const reader = await stalledSse();
    await waitFor('the subscription to open', async () => (await metric('jobwire_active_subscriptions')) === 1);
    // 600 events, under the 1,000 a subscription may have waiting, of 40 KB each: 24 MB, past its 8 MiB.
    await insertJobs(600, 40_000);
    await waitFor(
      'the replica to cut the subscriber off',
      async () => (await metric('jobwire_slow_subscribers_cut_off_total')) === cutBefore + 1,
      60_000,
    );
    const { results, completed } = await reader.resume();
    expect(results.at(-1)!.errors?.[0]?.extensions.code).toBe('SUBSCRIBER_TOO_SLOW');
    expect(results.length - 1).toBeLessThan(600);
    expect(completed).toBe(true);
  }, 120_000);

  it('is not cut off over graphql-sse while it keeps up, however the frames are batched on the way', async () => {
    const response = await fetch(api.url.replace(/\/graphql$/, '/graphql/stream'), {
      method: 'POST',
      headers: { accept: 'text/event-stream', 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: EVENTS }),
    });
    const reader = response.body!.getReader();
    await reader.read();
    await waitFor('the subscription to open', async () => (await metric('jobwire_active_subscriptions')) === 1);
    // Each round, 900 events while it reads nothing (under its 1,000), so they back up and come in
    // large chunks once it reads them all; whatever the server miscounted would add up round by round.
    const decoder = new TextDecoder();
    let results = 0;
    let tooSlow = false;
    let carry = '';
    const readUntil = async (count: number) => {
      while (results < count && !tooSlow) {
        const { done, value } = await reader.read();
        if (done) return;
        const text = carry + decoder.decode(value, { stream: true });
        const frames = text.split('\n\n');
        carry = frames.pop()!;
        results += frames.filter((frame) => frame.startsWith('event: next')).length;
        tooSlow ||= frames.some((frame) => frame.includes('SUBSCRIBER_TOO_SLOW'));
      }
    };
    for (let round = 1; round <= 4; round++) {
      await insertJobs(900);
      await readUntil(900 * round);
    }
    await reader.cancel();
    expect(tooSlow).toBe(false);
    expect(results).toBe(3_600);
  }, 120_000);
});
