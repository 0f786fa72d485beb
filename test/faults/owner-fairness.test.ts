/**
 * Fairness between owners (issue 11): `import_mbox` runs at most one job per owner at a time
 * across every sidecar (`ownerConcurrency: 1`), so one owner's backlog does not hold another
 * owner's import behind it; a sidecar SIGKILLed mid-import gives its owner's slot back (the lease
 * lapses) and the owner's backlog goes on. Real processes: one API, two (then three) sidecars.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_ACCOUNT, IMPORT_MBOX } from '../helpers/fragments.js';
import { gqlOk, gqlUpload } from '../helpers/graphql-client.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';
import { type ApiProc, type Proc, ranJob, startApi, startWorker } from './fault-helpers.js';

const ATTEMPTS = `query($id: ID!) { job(id: $id) { status attemptHistory { outcome startedAt finishedAt } } }`;

let env: TestEnv;
let api: ApiProc;
let workers: Proc[];
const tokens: Record<string, string> = {};
const accounts: Record<string, string> = {};

beforeAll(async () => {
  env = await createTestEnv({ STALLED_INTERVAL_MS: '1000' });
  [api, ...workers] = await Promise.all([startApi(env.vars), startWorker(env.vars, 'sidecar-a'), startWorker(env.vars, 'sidecar-b')]);
  for (const owner of ['anna', 'ben']) {
    tokens[owner] = await env.token(owner);
    accounts[owner] = (
      await gqlOk<{ createAccount: { id: string } }>(api.url, tokens[owner]!, CREATE_ACCOUNT, { name: owner })
    ).createAccount.id;
  }
}, 120_000);

afterAll(async () => {
  await Promise.all([api, ...(workers ?? [])].filter(Boolean).map((proc) => proc.stop()));
  await env?.cleanup();
});

async function importAs(owner: string, messages: number, seed: number): Promise<string> {
  const fixture = buildMbox({ count: messages, attachmentEvery: 0, seed });
  const result = await gqlUpload<{ importMbox: { id: string } }>(
    api.url,
    tokens[owner]!,
    IMPORT_MBOX,
    { accountId: accounts[owner], file: null },
    { path: 'file', content: fixture.mbox, filename: `${owner}-${seed}.mbox` },
  );
  if (result.errors?.length) throw new Error(JSON.stringify(result.errors));
  return result.data!.importMbox.id;
}

interface Attempt {
  outcome: string | null;
  startedAt: string;
  finishedAt: string | null;
}

const attemptsOf = async (owner: string, id: string) =>
  (await gqlOk<{ job: { status: string; attemptHistory: Attempt[] } }>(api.url, tokens[owner]!, ATTEMPTS, { id })).job;

const allCompleted = (owner: string, ids: string[]) =>
  waitFor(
    `${owner}'s imports to complete`,
    async () => {
      const jobs = await Promise.all(ids.map((id) => attemptsOf(owner, id)));
      const ended = jobs.find((job) => job.status === 'FAILED' || job.status === 'CANCELLED');
      if (ended) throw new Error(`an import ended ${ended.status}`);
      return jobs.every((job) => job.status === 'COMPLETED') ? jobs : null;
    },
    90_000,
    100,
  );

/** Whether any two of these attempts ran at the same time. */
function overlapping(attempts: Attempt[]): boolean {
  const spans = attempts.map((a) => [Date.parse(a.startedAt), Date.parse(a.finishedAt!)] as const).sort((x, y) => x[0] - y[0]);
  return spans.some((span, i) => i > 0 && span[0] < spans[i - 1]![1]);
}

describe('owner concurrency', () => {
  it("runs one owner's imports one at a time, and starts another owner's import while that backlog waits", async () => {
    const { jobTypes } = await gqlOk<{ jobTypes: { name: string; ownerConcurrency: number | null; concurrency: number }[] }>(
      api.url,
      tokens.anna!,
      '{ jobTypes { name concurrency ownerConcurrency } }',
    );
    expect(jobTypes.find((type) => type.name === 'import_mbox')).toMatchObject({ concurrency: 3, ownerConcurrency: 1 });

    const annas = [];
    for (let i = 0; i < 5; i++) annas.push(await importAs('anna', 1500, 100 + i));
    const bens = await importAs('ben', 300, 200);

    const annaJobs = await allCompleted('anna', annas);
    const [benJob] = await allCompleted('ben', [bens]);
    const annaAttempts = annaJobs.flatMap((job) => job.attemptHistory);
    // Six worker slots on two sidecars, yet never two of anna's imports at once.
    expect(overlapping(annaAttempts)).toBe(false);
    // Ben did not wait for anna's backlog: his import started before her last one did.
    const benStart = Date.parse(benJob!.attemptHistory[0]!.startedAt);
    const annaStarts = annaAttempts.map((attempt) => Date.parse(attempt.startedAt)).sort((a, b) => a - b);
    expect(benStart).toBeLessThan(annaStarts.at(-1)!);
    // Waiting for a slot used no attempt.
    expect(annaJobs.every((job) => job.attemptHistory.length === 1)).toBe(true);
  });

  it('gives a SIGKILLed sidecar’s slot back, so the owner’s backlog goes on', async () => {
    const first = await importAs('anna', 3000, 300);
    const second = await importAs('anna', 300, 301);
    await waitFor(
      'the first import to be under way',
      async () =>
        (await env.one<{ processed: number | null; status: string }>('SELECT status, processed FROM job WHERE id = $1', [first]))
          .processed! >= 200,
      30_000,
      20,
    );
    const victim = workers.find((worker) => ranJob(worker, first))!;
    expect(victim).toBeDefined();
    victim.kill('SIGKILL');
    await victim.exited;
    workers.push(await startWorker(env.vars, 'sidecar-c'));

    const [firstJob, secondJob] = await allCompleted('anna', [first, second]);
    expect(firstJob!.attemptHistory.map((attempt) => attempt.outcome)).toEqual(['STALLED', 'COMPLETED']);
    expect(secondJob!.attemptHistory.map((attempt) => attempt.outcome)).toEqual(['COMPLETED']);
    // The owner's slots are all free again.
    const redis = await import('ioredis');
    const client = new redis.Redis(env.vars.REDIS_URL!);
    try {
      expect(await client.zcard(`${env.vars.REDIS_PREFIX}:owner-slots:import_mbox:anna`)).toBe(0);
    } finally {
      client.disconnect();
    }
  });
});
