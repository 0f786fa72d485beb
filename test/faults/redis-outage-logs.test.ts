/**
 * An operator's view of a Redis outage: a real worker sidecar (scheduler on) and API against a
 * private redis-server that is stopped and started again. The outage is a few JSON lines per
 * connection role, not an error with a stack per reconnect attempt of every connection; a sidecar
 * started meanwhile says what it waits for; and jobs run again without a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import {
  createAccount,
  importMbox,
  jobRow,
  startApi,
  startPrivateRedis,
  startWorker,
  type ApiProc,
  type PrivateRedis,
  type Proc,
} from './fault-helpers.js';

/** A sidecar says what it waits for once Redis has not answered for this long (START_GRACE_MS in src/queue/redis.ts). */
const START_GRACE_MS = 1_000;
/** The error-level lines a worker may write for one outage, however long it lasts. */
const MAX_ERROR_LINES = 10;

let env: TestEnv;
let redis: PrivateRedis;
let api: ApiProc;
let worker: Proc;
let lateWorker: Proc | undefined;
let token: string;

beforeAll(async () => {
  redis = await startPrivateRedis();
  // The scheduler runs too: its connections are a role of their own.
  env = await createTestEnv({ REDIS_URL: redis.url, SCHEDULER_ENABLED: 'true' });
  [api, worker] = await Promise.all([startApi({ ...env.vars, LOG_LEVEL: 'warn' }), startWorker(env.vars)]);
  token = await env.token('alice');
}, 120_000);

afterAll(async () => {
  await Promise.all([api, worker, lateWorker].filter(Boolean).map((proc) => proc!.stop()));
  await redis?.close();
  await env?.cleanup();
});

/** Every line of a process's output (since `from`, an offset in it), parsed; fails on the first that is not JSON. */
function jsonLines(proc: Proc, from = 0): Record<string, any>[] {
  return proc
    .output()
    .slice(from)
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, any>;
      } catch {
        throw new Error(`${proc.name} wrote a line that is not JSON: ${line}`);
      }
    });
}

/** The connection roles for which `proc` has logged `msg` since `from` (an offset in its output). */
function rolesLogging(proc: Proc, msg: string, from: number): string[] {
  return proc
    .output()
    .slice(from)
    .split('\n')
    .filter((line) => line.includes(`"msg":"${msg}"`))
    .map((line) => String(JSON.parse(line).connection).replace(`${env.vars.REDIS_PREFIX}:`, ''))
    .sort();
}

const ROLES = ['pubsub', 'queues', 'scheduler', 'workers'];

describe('Redis stopped and restarted under a running worker', () => {
  it('logs the outage as a few JSON lines per connection role, and the worker runs jobs again by itself', async () => {
    const from = worker.output().length;
    await redis.stop();
    // A sidecar started while Redis is away says what it waits for, and starts once Redis is back.
    const lateStarted = startWorker(env.vars, 'late-worker', { readyTimeoutMs: 90_000, onSpawn: (proc) => (lateWorker = proc) });
    lateStarted.catch(() => {});
    // By then each connection has failed several reconnects (200 ms, 400 ms, … apart): without the
    // outage report, each failure was an error line of every type's worker.
    await waitFor(
      'every role to report the outage, and the late sidecar to say it waits',
      () =>
        rolesLogging(worker, 'Redis unreachable; reconnecting', from).length === ROLES.length &&
        lateWorker?.output().includes('"msg":"worker start waits for Redis"'),
      30_000,
      100,
    );
    expect(lateWorker!.output()).not.toContain('worker sidecar started');

    await redis.start();
    await waitFor('every role to be back', () => rolesLogging(worker, 'Redis reachable again', from).length === ROLES.length, 30_000, 100);
    await lateStarted;
    expect(lateWorker!.output()).toContain('Redis reachable; worker start goes on');

    // A job enqueued now (the API reconnects by itself too) runs to the end.
    const accountId = await waitFor('the API to take requests again', () => createAccount(api.url, token, 'after-outage'), 30_000, 200);
    const job = await waitFor(
      'an enqueue to be accepted',
      () => importMbox(api.url, token, accountId, buildMbox({ count: 5, seed: 4606 }).mbox),
      30_000,
      200,
    );
    const done = await waitFor(
      `job ${job.id} to complete`,
      async () => {
        const row = await jobRow(env.sql, job.id);
        if (row.status === 'FAILED') throw new Error(`job failed: ${row.error}`);
        return row.status === 'COMPLETED' ? row : null;
      },
      45_000,
      100,
    );
    expect(done.result).toMatchObject({ imported: 5 });

    // The whole output, the shutdown's lines included.
    await Promise.all([worker.stop(), lateWorker!.stop(), api.stop()]);
    const lines = jsonLines(worker);
    expect(lines.filter((line) => line.level >= 50).map((line) => line.msg).length).toBeLessThanOrEqual(MAX_ERROR_LINES);
    // One warning when a role lost Redis, one line when it is back: not one per reconnect attempt.
    expect(rolesLogging(worker, 'Redis unreachable; reconnecting', from)).toEqual(ROLES);
    expect(rolesLogging(worker, 'Redis reachable again', from)).toEqual(ROLES);
    const back = jsonLines(worker, from).filter((line) => line.msg === 'Redis reachable again');
    expect(back.every((line) => line.downForMs >= START_GRACE_MS && line.failedAttempts > 1)).toBe(true);

    const late = jsonLines(lateWorker!);
    expect(late.filter((line) => line.level >= 50).length).toBeLessThanOrEqual(MAX_ERROR_LINES);
    expect(late.filter((line) => line.msg === 'worker start waits for Redis')).toHaveLength(1);
    jsonLines(api);
  }, 180_000);
});
