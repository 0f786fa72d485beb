import { createClient, type Client } from 'graphql-ws';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscriptionGauge } from '../../src/observability/metrics.js';
import { JOB_PROGRESS } from '../helpers/fragments.js';
import { gqlOk } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { lockTable } from '../helpers/table-lock.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const INIT_TIMEOUT_MS = 400;
const MAX_PAYLOAD = 64 * 1024;
const KEEP_ALIVE_MS = 500;

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let bob: string;

beforeAll(async () => {
  env = await createTestEnv({
    WS_CONNECTION_INIT_TIMEOUT_MS: String(INIT_TIMEOUT_MS),
    WS_MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD),
    WS_KEEP_ALIVE_MS: String(KEEP_ALIVE_MS),
  });
  // No sidecar: the jobs here are DELAYED for an hour and end by cancelJob, which the API does itself.
  system = await startInProcess(env, { worker: false });
  [alice, bob] = await Promise.all([env.token('alice'), env.token('bob')]);
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

type Outcome = { kind: 'complete' } | { kind: 'error'; error: any };

/** One operation on a graphql-ws client: what it received and how it ended. */
interface Operation {
  results: any[];
  ended: Promise<Outcome>;
  /** Set once `ended` settles, for synchronous checks. */
  outcome: Outcome | null;
  dispose(): void;
}

function operate(client: Client, query: string, variables: Record<string, unknown> = {}): Operation {
  const op: Operation = { results: [], outcome: null, ended: null as never, dispose: () => {} };
  op.ended = new Promise<Outcome>((resolve) => {
    op.dispose = client.subscribe(
      { query, variables },
      {
        next: (value) => void op.results.push(value),
        error: (error) => resolve((op.outcome = { kind: 'error', error })),
        complete: () => resolve((op.outcome = { kind: 'complete' })),
      },
    );
  });
  return op;
}

/** A real graphql-ws client that records whether it was acknowledged and how its socket closed. */
function wsClient(token: string | null, options: { header?: string } = {}) {
  const state = { acknowledged: false, closed: null as { code: number; reason: string } | null };
  const client = createClient({
    url: system.url.replace(/^http/, 'ws'),
    webSocketImpl: options.header
      ? class extends WebSocket {
          constructor(url: string, protocols: string[]) {
            super(url, protocols, { headers: { authorization: options.header! } });
          }
        }
      : WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
    // Keep the socket between operations, so the checks below are about one socket.
    lazyCloseTimeout: 60_000,
    on: {
      connected: () => void (state.acknowledged = true),
      closed: (event) => void (state.closed = { code: (event as CloseEvent).code, reason: String((event as CloseEvent).reason) }),
    },
  });
  return { client, state };
}

async function delayedJob(token: string): Promise<string> {
  const data = await gqlOk<{ applyRetention: { id: string; status: string } }>(
    system.url,
    token,
    'mutation { applyRetention(options: { delayMs: 3600000 }) { id status } }',
  );
  expect(data.applyRetention.status).toBe('DELAYED');
  return data.applyRetention.id;
}

const cancel = (token: string, id: string) => gqlOk(system.url, token, 'mutation($id: ID!) { cancelJob(id: $id) { id status } }', { id });

/** A query nested deeper than graphql-armor's maxDepth (12). */
const TOO_DEEP = `query { __type(name: "Job") { fields { type { ${'ofType { '.repeat(12)}name${' }'.repeat(12)} } } } }`;

describe('one bad operation on a WebSocket', () => {
  it('gets an error for its own id with a code, while the good subscriptions on the socket go on', async () => {
    const mine = await delayedJob(alice);
    const theirs = await delayedJob(bob);
    const { client, state } = wsClient(alice);

    const progress = operate(client, JOB_PROGRESS, { jobId: mine });
    const dashboard = operate(client, 'subscription { jobEvents { jobId status } }');
    await waitFor('the current state of the job', () => progress.results.length === 1);
    expect(progress.results[0].data.jobProgress.status).toBe('DELAYED');

    const refused = {
      GRAPHQL_PARSE_FAILED: operate(client, 'subscription { jobProgress(jobId: '),
      GRAPHQL_VALIDATION_FAILED: operate(client, TOO_DEEP),
      NOT_FOUND: operate(client, JOB_PROGRESS, { jobId: theirs }),
      UNKNOWN_FIELD: operate(client, 'subscription { jobProgress(jobId: "x") { noSuchField } }'),
    };
    const outcomes = Object.fromEntries(
      await Promise.all(Object.entries(refused).map(async ([name, op]) => [name, await op.ended] as const)),
    );
    for (const [name, outcome] of Object.entries(outcomes)) {
      expect(outcome.kind, name).toBe('error');
      const errors = (outcome as { error: any[] }).error;
      expect(Array.isArray(errors), `${name}: an error message, not a closed socket`).toBe(true);
      const expected = name === 'UNKNOWN_FIELD' ? 'GRAPHQL_VALIDATION_FAILED' : name;
      expect(errors[0].extensions?.code, name).toBe(expected);
      expect(refused[name as keyof typeof refused].results, name).toEqual([]);
    }
    expect((outcomes.GRAPHQL_VALIDATION_FAILED as { error: any[] }).error[0].message).toMatch(/depth/i);
    expect((outcomes.NOT_FOUND as { error: any[] }).error[0].message).not.toContain('DELAYED');

    // The socket is still open and its subscriptions still deliver.
    expect(state.closed).toBeNull();
    await cancel(alice, mine);
    expect(await progress.ended).toEqual({ kind: 'complete' });
    expect(progress.results.map((r) => r.data.jobProgress.status)).toEqual(['DELAYED', 'CANCELLED']);
    await waitFor('the dashboard to see the cancel', () =>
      dashboard.results.some((r) => r.data.jobEvents.jobId === mine && r.data.jobEvents.status === 'CANCELLED'),
    );
    expect(dashboard.results.every((r) => r.data.jobEvents.jobId !== theirs)).toBe(true);
    expect(state.closed).toBeNull();
    dashboard.dispose();
    await client.dispose();
    await cancel(bob, theirs);
  });

  it('answers bad variables per operation, and queries still run on the socket', async () => {
    const { client, state } = wsClient(alice);
    const badVariable = await operate(client, JOB_PROGRESS, { jobId: { not: 'an id' } }).ended;
    expect(badVariable.kind).toBe('error');
    expect((badVariable as { error: any[] }).error[0].extensions.code).toBe('BAD_USER_INPUT');
    const query = operate(client, '{ jobs(first: 1) { nodes { id } } }');
    expect(await query.ended).toEqual({ kind: 'complete' });
    expect(query.results[0].data.jobs.nodes).toBeDefined();
    expect(state.closed).toBeNull();
    await client.dispose();
  });

  it('refuses a subscribe after the token has expired with UNAUTHENTICATED for that operation, not by closing the socket', async () => {
    // Long enough for the first operation on a loaded machine (exp is in whole seconds), short enough to wait out.
    const shortLived = await env.token('alice', 'user', 4);
    const exp = (JSON.parse(Buffer.from(shortLived.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
    const { client, state } = wsClient(shortLived);
    expect(await operate(client, '{ jobs(first: 1) { nodes { id } } }').ended).toEqual({ kind: 'complete' });
    await waitFor('the token to expire', () => Date.now() > exp * 1000, 10_000);
    const late = await operate(client, 'subscription { jobEvents { jobId } }').ended;
    expect(late.kind).toBe('error');
    expect((late as { error: any[] }).error[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(state.closed).toBeNull();
    await client.dispose();
  });
});

describe('an operation the client completes while it is being set up', () => {
  it('gets nothing written for it, while the next operation on the socket is answered', async () => {
    const jobId = await delayedJob(alice);
    const socket = new WebSocket(system.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    const messages: { id?: string; type: string }[] = [];
    socket.on('message', (data) => messages.push(JSON.parse(String(data))));
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${alice}` } }));
    await waitFor('the connection to be acknowledged', () => messages.some((m) => m.type === 'connection_ack'));
    const subscribe = (id: string) =>
      socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query: JOB_PROGRESS, variables: { jobId } } }));
    // Each completed before the server could have read the job: its first event is ready when graphql-ws learns of the complete.
    for (let i = 0; i < 20; i++) {
      subscribe(`gone-${i}`);
      socket.send(JSON.stringify({ id: `gone-${i}`, type: 'complete' }));
    }
    // Sent after them, set up the same way: once it has its first event, theirs would have been written too.
    subscribe('kept');
    await waitFor('the kept operation to get its first event', () => messages.some((m) => m.id === 'kept' && m.type === 'next'));
    socket.close();
    expect(messages.filter((m) => m.id?.startsWith('gone-'))).toEqual([]);
  });

  it('runs on neither after its complete nor after its socket closed, when its id is used again meanwhile', async () => {
    // The sockets the tests before closed end their subscriptions soon after.
    await waitFor('no subscription open on the API', async () => (await openSubscriptions()) === 0);
    const jobId = await delayedJob(alice);
    const socket = new WebSocket(system.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    const messages: { id?: string; type: string }[] = [];
    let closedWith: number | null = null;
    socket.on('message', (data) => messages.push(JSON.parse(String(data))));
    socket.on('close', (code) => void (closedWith = code));
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${alice}` } }));
    await waitFor('the connection to be acknowledged', () => messages.some((m) => m.type === 'connection_ack'));
    const subscribe = () =>
      socket.send(JSON.stringify({ id: 'again', type: 'subscribe', payload: { query: JOB_PROGRESS, variables: { jobId } } }));

    // The job table locked: the first subscription is held where it reads the job, mid-setup.
    const lock = await lockTable(env, 'job');
    subscribe();
    await lock.waitForWaiter('the first subscription to wait for the job table');
    socket.send(JSON.stringify({ id: 'again', type: 'complete' }));
    subscribe();
    await waitFor('the socket to be closed as a duplicate operation', () => closedWith !== null);
    await lock.release();

    expect(closedWith).toBe(4409);
    expect(messages.filter((m) => m.id === 'again')).toEqual([]);
    // Every subscription the socket started has ended: none runs on without a client.
    await waitFor('every subscription of the socket to end', async () => (await openSubscriptions()) === 0);
    await cancel(alice, jobId);
  });
});

describe('messages on the socket', () => {
  it('are text frames, results included, as a browser needs them', async () => {
    const jobId = await delayedJob(alice);
    const socket = new WebSocket(system.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    const messages: { type: string; binary: boolean }[] = [];
    socket.on('message', (data, isBinary) => messages.push({ type: JSON.parse(String(data)).type, binary: isBinary }));
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${alice}` } }));
    await waitFor('the connection to be acknowledged', () => messages.some((m) => m.type === 'connection_ack'));
    socket.send(JSON.stringify({ id: 'p', type: 'subscribe', payload: { query: JOB_PROGRESS, variables: { jobId } } }));
    await waitFor('the first result', () => messages.some((m) => m.type === 'next'));
    socket.close();
    expect(messages.map((m) => m.type)).toEqual(['connection_ack', 'next']);
    expect(messages.filter((m) => m.binary)).toEqual([]);
  });
});

describe('keep-alive (WS_KEEP_ALIVE_MS)', () => {
  /** A raw socket that answers no ping, acknowledged by the server. */
  async function silentSocket() {
    const socket = new WebSocket(system.url.replace(/^http/, 'ws'), 'graphql-transport-ws', { autoPong: false });
    const state = { pings: 0, closedWith: null as number | null, acknowledged: false, answers: 0 };
    socket.on('ping', () => state.pings++);
    socket.on('close', (code) => (state.closedWith = code));
    socket.on('message', (data) => {
      const type = JSON.parse(String(data)).type;
      if (type === 'connection_ack') state.acknowledged = true;
      if (type === 'complete') state.answers++;
    });
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${alice}` } }));
    await waitFor('the connection to be acknowledged', () => state.acknowledged);
    return { socket, state };
  }

  it('drops a socket that neither answers its pings nor takes anything sent to it', async () => {
    const { state } = await silentSocket();
    await waitFor('the server to drop the socket', () => state.closedWith !== null);
    expect(state.closedWith).toBe(1006);
    expect(state.pings).toBeGreaterThan(0);
  });

  it('keeps a socket that answers no ping while it takes what is sent to it, as a client far behind a busy stream does', async () => {
    const { socket, state } = await silentSocket();
    // The client keeps asking, and so keeps taking answers; its pongs never come.
    let asked = 0;
    const ask = () => socket.send(JSON.stringify({ id: `q${++asked}`, type: 'subscribe', payload: { query: '{ __typename }' } }));
    socket.on('message', (data) => {
      if (JSON.parse(String(data)).type === 'complete' && socket.readyState === socket.OPEN) setTimeout(ask, 20);
    });
    ask();
    await waitFor('four pings unanswered', () => state.pings >= 4 || state.closedWith !== null);
    expect(state.closedWith).toBeNull();
    expect(state.answers).toBeGreaterThan(0);
    socket.close();
  });

  it('drops a socket whose client stopped reading, however much is still sent to it', async () => {
    const jobId = await delayedJob(alice);
    const { socket } = await silentSocket();
    socket.on('error', () => {});
    const before = await openSubscriptions();
    socket.send(JSON.stringify({ id: 'p', type: 'subscribe', payload: { query: JOB_PROGRESS, variables: { jobId } } }));
    await waitFor('the subscription to start', async () => (await openSubscriptions()) === before + 1);
    // The client stops reading its connection (ws has no public pause). What the server keeps
    // sending, the pongs of graphql-ws pings that echo their payload, fills the kernel's buffers,
    // then Node's: the server sends more every interval, and none of it is taken.
    (socket as unknown as { _socket: Socket })._socket.pause();
    const ping = JSON.stringify({ type: 'ping', payload: { pad: 'x'.repeat(60_000) } });
    const flood = setInterval(() => {
      for (let i = 0; i < 10 && socket.readyState === socket.OPEN; i++) socket.send(ping);
    }, 20);
    try {
      await waitFor('the server to drop the socket, ending its subscription', async () => (await openSubscriptions()) === before);
    } finally {
      clearInterval(flood);
      socket.terminate();
    }
  });
});

describe('authentication at connection_init', () => {
  it('closes a socket with no, a bad, a forged or an expired token with 4403 and never acknowledges it', async () => {
    const { mintToken } = await import('../../src/auth/tokens.js');
    const tokens = {
      none: null,
      garbage: 'not-a-jwt',
      forged: await mintToken('another-secret-that-is-long-enough-000000', { sub: 'alice', role: 'admin' }),
      expired: await env.token('alice', 'user', -10),
    };
    for (const [name, token] of Object.entries(tokens)) {
      const { client, state } = wsClient(token);
      const op = operate(client, 'subscription { jobEvents { jobId } }');
      const outcome = await op.ended;
      expect(outcome.kind, name).toBe('error');
      expect((outcome as { error: CloseEvent }).error.code, name).toBe(4403);
      expect(state.acknowledged, name).toBe(false);
      expect(state.closed?.reason, name).toMatch(name === 'expired' ? /expired/ : /token/);
      await client.dispose();
    }
  });

  it("accepts the upgrade request's Authorization header when connectionParams carry none", async () => {
    const mine = await delayedJob(alice);
    const { client, state } = wsClient(null, { header: `Bearer ${alice}` });
    const op = operate(client, JOB_PROGRESS, { jobId: mine });
    await waitFor('the first event', () => op.results.length === 1);
    expect(state.acknowledged).toBe(true);
    await cancel(alice, mine);
    expect(await op.ended).toEqual({ kind: 'complete' });
    await client.dispose();
  });

  it('closes a socket that never sends connection_init with 4408 after the deadline', async () => {
    const socket = new WebSocket(system.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    const messages: string[] = [];
    socket.on('message', (data) => messages.push(String(data)));
    const opened = Date.now();
    const [code] = await new Promise<[number, string]>((resolve) => socket.once('close', (c, r) => resolve([c, String(r)])));
    expect(code).toBe(4408);
    expect(Date.now() - opened).toBeGreaterThanOrEqual(INIT_TIMEOUT_MS - 50);
    expect(messages).toEqual([]);
  });
});

describe('WS_MAX_PAYLOAD_BYTES', () => {
  it('closes the socket that sends a bigger message with 1009; the server and other sockets carry on', async () => {
    const mine = await delayedJob(alice);
    const bystander = wsClient(alice);
    const progress = operate(bystander.client, JOB_PROGRESS, { jobId: mine });
    await waitFor('the bystander subscription', () => progress.results.length === 1);

    const big = wsClient(alice);
    const huge = operate(big.client, JOB_PROGRESS, { jobId: mine, padding: 'x'.repeat(MAX_PAYLOAD + 1) });
    const outcome = await huge.ended;
    expect(outcome.kind).toBe('error');
    expect((outcome as { error: CloseEvent }).error.code).toBe(1009);
    expect(huge.results).toEqual([]);

    // The server still serves: the bystander gets its event, and a new socket works.
    await cancel(alice, mine);
    expect(await progress.ended).toEqual({ kind: 'complete' });
    expect(progress.results.map((r) => r.data.jobProgress.status)).toEqual(['DELAYED', 'CANCELLED']);
    expect(bystander.state.closed).toBeNull();
    const fresh = wsClient(alice);
    expect(await operate(fresh.client, '{ jobs(first: 1) { nodes { id } } }').ended).toEqual({ kind: 'complete' });
    await Promise.all([bystander.client.dispose(), big.client.dispose(), fresh.client.dispose()]);
  });
});

/** Subscriptions open on this process's API. */
async function openSubscriptions(): Promise<number> {
  return (await subscriptionGauge.get()).values.reduce((sum, value) => sum + value.value, 0);
}
