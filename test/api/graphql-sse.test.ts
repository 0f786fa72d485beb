/**
 * graphql-sse's own protocol at /graphql/stream, single connection mode included (issue 8): the
 * real graphql-sse client reserves a stream and runs several subscriptions over it; every request
 * needs the bearer token, and a stream reserved by one user is not another's to use.
 */
import { createClient } from 'graphql-sse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gqlOk } from '../helpers/graphql-client.js';
import { ResultFrameCounter } from '../../src/api/graphql-sse.js';
import { subscriptionGauge } from '../../src/observability/metrics.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { lockTable } from '../helpers/table-lock.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let streamUrl: string;
let alice: string;
let bob: string;
let accountId: string;

/** Small, so a test can reach the cap and see an unopened reservation lapse. */
const RESERVATIONS_PER_USER = 4;
const UNOPENED_STREAM_MS = 3_000;

beforeAll(async () => {
  env = await createTestEnv({
    SSE_RESERVATIONS_PER_USER: String(RESERVATIONS_PER_USER),
    SSE_UNOPENED_STREAM_MS: String(UNOPENED_STREAM_MS),
  });
  system = await startInProcess(env, { worker: false });
  streamUrl = system.url.replace(/\/graphql$/, '/graphql/stream');
  [alice, bob] = await Promise.all([env.token('alice'), env.token('bob')]);
  accountId = (await gqlOk<{ createAccount: { id: string } }>(system.url, alice, CREATE_ACCOUNT, { name: 'inbox' })).createAccount.id;
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

/** A job of `owner` (Default: alice) that waits (DELAYED) until it is cancelled. */
async function delayedScan(owner = alice): Promise<string> {
  const account =
    owner === alice
      ? accountId
      : (await gqlOk<{ createAccount: { id: string } }>(system.url, owner, CREATE_ACCOUNT, { name: 'inbox' })).createAccount.id;
  const data = await gqlOk<{ scanPii: { id: string } }>(
    system.url,
    owner,
    'mutation($a: ID!) { scanPii(accountId: $a, options: { delayMs: 600000 }) { id } }',
    { a: account },
  );
  return data.scanPii.id;
}

function follow(client: ReturnType<typeof createClient>, jobId: string) {
  const statuses: string[] = [];
  const done = new Promise<void>((resolve, reject) => {
    client.subscribe<{ jobProgress: { status: string } }>(
      { query: 'subscription($id: ID!) { jobProgress(jobId: $id) { status } }', variables: { id: jobId } },
      { next: (result) => void statuses.push(result.data!.jobProgress.status), error: reject, complete: resolve },
    );
  });
  return { statuses, done };
}

describe('graphql-sse single connection mode', () => {
  it('runs several subscriptions over one reserved stream, each to its end', async () => {
    const client = createClient({
      url: streamUrl,
      singleConnection: true,
      headers: { authorization: `Bearer ${alice}` },
      retryAttempts: 0,
    });
    const [first, second] = await Promise.all([delayedScan(), delayedScan()]);
    const a = follow(client, first);
    const b = follow(client, second);
    await waitFor('both subscriptions to send the current state', () => a.statuses.length > 0 && b.statuses.length > 0);
    await gqlOk(system.url, alice, 'mutation($id: ID!) { cancelJob(id: $id) { id } }', { id: first });
    await gqlOk(system.url, alice, 'mutation($id: ID!) { cancelJob(id: $id) { id } }', { id: second });
    await Promise.all([a.done, b.done]);
    client.dispose();
    expect(a.statuses).toEqual(['DELAYED', 'CANCELLED']);
    expect(b.statuses).toEqual(['DELAYED', 'CANCELLED']);
  });

  it('refuses a request without a valid token, and keeps a stream to the user who reserved it', async () => {
    expect((await fetch(streamUrl, { method: 'PUT' })).status).toBe(401);
    const reserved = await fetch(streamUrl, { method: 'PUT', headers: { authorization: `Bearer ${alice}` } });
    expect(reserved.status).toBe(201);
    const token = await reserved.text();
    const asBob = await fetch(`${streamUrl}?token=${token}`, { headers: { authorization: `Bearer ${bob}`, accept: 'text/event-stream' } });
    expect(asBob.status).toBe(404);
    const intoAlicesStream = await fetch(streamUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${bob}`, 'content-type': 'application/json', 'x-graphql-event-stream-token': token },
      body: JSON.stringify({ query: 'subscription { jobEvents { jobId } }', extensions: { operationId: '1' } }),
    });
    expect(intoAlicesStream.status).toBe(404);
  });

  it("caps each user's reserved streams without touching anyone else's, and frees one when its stream closes", async () => {
    const reserve = (user: string) => fetch(streamUrl, { method: 'PUT', headers: { authorization: `Bearer ${user}` } });
    const alicesStream = await (await reserve(alice)).text();
    const bobs: string[] = [];
    for (let i = 0; i < RESERVATIONS_PER_USER; i++) {
      const reserved = await reserve(bob);
      expect(reserved.status).toBe(201);
      bobs.push(await reserved.text());
    }
    const refused = await reserve(bob);
    expect(refused.status).toBe(429);
    expect((await refused.json()).errors[0].extensions.code).toBe('RATE_LIMITED');

    // Alice's reservation is still hers to open.
    const listening = new AbortController();
    const opened = await fetch(`${streamUrl}?token=${alicesStream}`, {
      headers: { authorization: `Bearer ${alice}`, accept: 'text/event-stream' },
      signal: listening.signal,
    });
    expect(opened.status).toBe(200);
    listening.abort();

    // Bob closes one of his streams: its reservation is freed, and he may reserve another.
    const closing = new AbortController();
    const bobsOpened = await fetch(`${streamUrl}?token=${bobs[0]}`, {
      headers: { authorization: `Bearer ${bob}`, accept: 'text/event-stream' },
      signal: closing.signal,
    });
    await bobsOpened.body!.getReader().read();
    closing.abort();
    await waitFor('the closed stream to free its reservation', async () => (await reserve(bob)).status === 201);
  });

  it('drops a reserved stream nobody opens, with the operation sent into it, and frees its place', async () => {
    const carol = await env.token('carol');
    const reserve = () => fetch(streamUrl, { method: 'PUT', headers: { authorization: `Bearer ${carol}` } });
    const streams: string[] = [];
    for (let i = 0; i < RESERVATIONS_PER_USER; i++) streams.push(await (await reserve()).text());
    const sent = await fetch(`${streamUrl}?token=${streams[0]}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${carol}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        query: 'subscription($id: ID!) { jobProgress(jobId: $id) { status } }',
        variables: { id: await delayedScan() },
        extensions: { operationId: 'a' },
      }),
    });
    expect(sent.status).toBe(202);
    expect((await reserve()).status).toBe(429);
    // Unopened, they lapse: carol may reserve again, and the lapsed stream cannot be opened or sent into.
    await waitFor('an unopened reservation to lapse', async () => (await reserve()).status === 201, UNOPENED_STREAM_MS * 5);
    const opened = await fetch(`${streamUrl}?token=${streams[0]}`, {
      headers: { authorization: `Bearer ${carol}`, accept: 'text/event-stream' },
    });
    expect(opened.status).toBe(404);
  });

  it('ends an operation deleted while it is being set up, and refuses its id until then', async () => {
    await waitFor('no subscription open on the API', async () => (await openSubscriptions()) === 0);
    const dave = await env.token('dave');
    const jobId = await delayedScan(dave);
    const headers = { authorization: `Bearer ${dave}` };
    const token = await (await fetch(streamUrl, { method: 'PUT', headers })).text();
    const stream = await fetch(`${streamUrl}?token=${token}`, { headers: { ...headers, accept: 'text/event-stream' } });
    expect(stream.status).toBe(200);
    const post = () =>
      fetch(`${streamUrl}?token=${token}`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({
          query: 'subscription($id: ID!) { jobProgress(jobId: $id) { status } }',
          variables: { id: jobId },
          extensions: { operationId: 'again' },
        }),
      });
    const remove = () => fetch(`${streamUrl}?token=${token}&operationId=again`, { method: 'DELETE', headers });

    // The job table locked: the first operation is held where it reads the job, mid-setup.
    const lock = await lockTable(env, 'job');
    const first = post();
    await lock.waitForWaiter('the first operation to wait for the job table');
    expect((await remove()).status).toBe(200);
    const sentAgain = post();
    await lock.release();

    // The id was still taken by the deleted operation; that one ends and answers 204.
    const second = await sentAgain;
    expect(second.status).toBe(409);
    expect((await second.json()).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect((await first).status).toBe(204);
    // The client ends the id and its stream: no subscription of its runs on.
    await remove();
    await stream.body!.cancel();
    await waitFor('every subscription of the stream to end', async () => (await openSubscriptions()) === 0);
  });

  it('answers a bad operation with a coded error for that operation', async () => {
    const client = createClient({
      url: streamUrl,
      singleConnection: true,
      headers: { authorization: `Bearer ${alice}` },
      retryAttempts: 0,
    });
    const outcome = await new Promise<unknown>((resolve) => {
      client.subscribe(
        { query: 'subscription { jobProgress(jobId: "not-a-uuid") { status } }' },
        { next: resolve, error: resolve, complete: () => resolve('complete') },
      );
    });
    client.dispose();
    expect(JSON.stringify(outcome)).toContain('BAD_USER_INPUT');
  });
});

describe('the count of result frames that went out', () => {
  it('counts every frame of a chunk holding several, and a frame split across chunks once', () => {
    const frame = (n: number) => `event: next\ndata: {"data":{"n":${n},"text":"event: next"}}\n\n`;
    const stream = `:\n\n${frame(1)}${frame(2)}:\n\n${frame(3)}event: complete\ndata: \n\n${frame(4)}`;
    const counter = new ResultFrameCounter();
    // The whole stream in chunks of every size from 1 byte up: always 4 results.
    for (let size = 1; size <= stream.length; size += 7) {
      const counting = new ResultFrameCounter();
      let counted = 0;
      for (let at = 0; at < stream.length; at += size) counted += counting.in(Buffer.from(stream.slice(at, at + size)));
      expect(counted, `chunks of ${size}`).toBe(4);
    }
    expect(counter.in(Buffer.from(stream))).toBe(4);
  });
});

/** Subscriptions open on this process's API. */
async function openSubscriptions(): Promise<number> {
  return (await subscriptionGauge.get()).values.reduce((sum, value) => sum + value.value, 0);
}
