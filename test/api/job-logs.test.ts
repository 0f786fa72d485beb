/**
 * A job's log and attempt history as a user finds out why a job did what it did (issue 10): the
 * import's handler logs each malformed message with its index; the lines are read through
 * `Job.logs` (paged) and followed live through `jobLogs` on another API replica than the one the
 * job was enqueued on; the per-job bound keeps the newest lines and counts the rest; and a worker
 * SIGKILLed mid-attempt leaves its lines and a STALLED attempt behind. Real processes: two API
 * replicas, two worker sidecars.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_ACCOUNT, IMPORT_MBOX } from '../helpers/fragments.js';
import { gql, gqlOk, gqlUpload, subscribe } from '../helpers/graphql-client.js';
import { mboxFromMessages } from '../helpers/corpus.js';
import { buildMbox, buildMessage } from '../helpers/mbox-fixture.js';
import { type ApiProc, type Proc, startApi, startWorker } from '../helpers/processes.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

const MAX_LINES = 12;

const LOGS = `query($id: ID!, $first: Int, $after: String) {
  job(id: $id) {
    status attempts
    logs(first: $first, after: $after) {
      droppedCount
      edges { cursor node { at level message fields attempt run cursor } }
      pageInfo { hasNextPage endCursor }
    }
  }
}`;
const ATTEMPTS = `query($id: ID!) {
  job(id: $id) { status attempts attemptHistory { run number startedAt finishedAt outcome error durationMs worker } }
}`;
const JOB_LOGS = `subscription($jobId: ID!, $after: String) { jobLogs(jobId: $jobId, after: $after) { level message fields attempt cursor } }`;

interface LogLine {
  level: string;
  message: string;
  fields: Record<string, unknown> | null;
  attempt: number;
  run: number;
  cursor: string;
}

let env: TestEnv;
let apis: ApiProc[];
let workers: Proc[];
let token: string;
let accountId: string;

beforeAll(async () => {
  env = await createTestEnv({ JOB_LOG_MAX_LINES: String(MAX_LINES), STALLED_INTERVAL_MS: '2000' });
  apis = await Promise.all([startApi(env.vars), startApi(env.vars)]);
  workers = await Promise.all([startWorker(env.vars, 'sidecar-a'), startWorker(env.vars, 'sidecar-b')]);
  token = await env.token('erin');
  accountId = (await gqlOk<{ createAccount: { id: string } }>(apis[0]!.url, token, CREATE_ACCOUNT, { name: 'logs' })).createAccount.id;
}, 120_000);

afterAll(async () => {
  await Promise.all([...(apis ?? []), ...(workers ?? [])].map((proc) => proc.stop()));
  await env?.cleanup();
});

/** A file whose entries at `malformedAt` are garbage, the rest distinct valid messages. */
function mboxWithMalformed(count: number, malformedAt: number[], tag: string): Buffer {
  return mboxFromMessages(
    Array.from({ length: count }, (_, index) =>
      malformedAt.includes(index)
        ? `this is not a header line\r\n@@@@ garbage ${index} @@@@\r\n\r\nbody\r\n`
        : buildMessage({ subject: `${tag} message ${index}`, text: `body ${index}\n` }),
    ),
  );
}

async function importFile(url: string, mbox: Buffer, options: Record<string, unknown> = {}): Promise<string> {
  const result = await gqlUpload<{ importMbox: { id: string } }>(
    url,
    token,
    IMPORT_MBOX,
    { accountId, file: null, options },
    { path: 'file', content: mbox, filename: 'logs.mbox' },
  );
  if (result.errors?.length) throw new Error(JSON.stringify(result.errors));
  return result.data!.importMbox.id;
}

async function finalStatus(jobId: string): Promise<string> {
  return waitFor(
    `job ${jobId} to end`,
    async () => {
      const { job } = await gqlOk<{ job: { status: string } }>(apis[0]!.url, token, ATTEMPTS, { id: jobId });
      return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(job.status) ? job.status : null;
    },
    60_000,
    100,
  );
}

/** Every stored line of a job, paged `first` at a time; also the drop count. */
async function allLogs(url: string, jobId: string, first: number): Promise<{ lines: LogLine[]; droppedCount: number; pages: number }> {
  const lines: LogLine[] = [];
  let after: string | null = null;
  let droppedCount = 0;
  let pages = 0;
  for (;;) {
    const { job }: { job: { logs: any } } = await gqlOk(url, token, LOGS, { id: jobId, first, after });
    pages++;
    droppedCount = job.logs.droppedCount;
    for (const edge of job.logs.edges) {
      expect(edge.cursor).toBe(edge.node.cursor);
      lines.push(edge.node);
    }
    if (!job.logs.pageInfo.hasNextPage) return { lines, droppedCount, pages };
    after = job.logs.pageInfo.endCursor;
  }
}

const malformedIndexes = (lines: Pick<LogLine, 'level' | 'fields'>[]) =>
  lines.filter((line) => line.level === 'WARN' && line.fields && 'index' in line.fields).map((line) => line.fields!.index);

describe('job logs', () => {
  it('has one line per malformed message, with its index and in order, through Job.logs and live through jobLogs on another replica', async () => {
    const malformedAt = [1, 4, 5, 9];
    // Delayed a moment, so the subscriber (on the other replica) is there before the first line.
    const jobId = await importFile(apis[0]!.url, mboxWithMalformed(12, malformedAt, 'live'), { delayMs: 500 });
    const live = subscribe<{ jobLogs: LogLine }>('sse', apis[1]!.url, token, JOB_LOGS, { jobId });
    await live.done;
    expect(await finalStatus(jobId)).toBe('COMPLETED');

    expect(live.results.every((result) => !result.errors)).toBe(true);
    const streamed = live.results.map((result) => result.data!.jobLogs);
    expect(malformedIndexes(streamed)).toEqual(malformedAt);
    for (const index of malformedAt) {
      expect(streamed.find((line) => line.fields?.index === index)?.message).toMatch(new RegExp(`^message ${index} skipped: `));
    }
    // The summary is the last line, and the stream completed after it.
    expect(streamed.at(-1)).toMatchObject({ level: 'INFO', attempt: 1, fields: { imported: 8, malformed: 4 } });

    // Paged two at a time, the stored log is the same lines in the same order.
    const stored = await allLogs(apis[0]!.url, jobId, 2);
    expect(stored.pages).toBeGreaterThan(2);
    expect(stored.droppedCount).toBe(0);
    expect(stored.lines.map((line) => line.message)).toEqual(streamed.map((line) => line.message));
    expect(stored.lines.every((line) => line.run === 1 && line.attempt === 1)).toBe(true);

    // Resuming after a line's cursor sends only what follows it; the job is final, so it completes.
    const resumed = subscribe<{ jobLogs: LogLine }>('ws', apis[1]!.url, token, JOB_LOGS, { jobId, after: streamed[1]!.cursor });
    await resumed.done;
    expect(resumed.results.map((result) => result.data!.jobLogs.message)).toEqual(streamed.slice(2).map((line) => line.message));
  });

  it('keeps the newest lines within the bound and says how many were dropped', async () => {
    const malformedAt = Array.from({ length: 20 }, (_, i) => i * 2 + 1);
    const jobId = await importFile(apis[1]!.url, mboxWithMalformed(41, malformedAt, 'bound'));
    expect(await finalStatus(jobId)).toBe('COMPLETED');
    // Written: the opening line, 20 malformed lines, the summary: 22, of which the newest 12 stay.
    const { lines, droppedCount } = await allLogs(apis[0]!.url, jobId, 5);
    expect(lines).toHaveLength(MAX_LINES);
    expect(droppedCount).toBe(22 - MAX_LINES);
    expect(malformedIndexes(lines)).toEqual(malformedAt.slice(-(MAX_LINES - 1)));
    expect(lines.at(-1)?.fields).toMatchObject({ malformed: 20 });
  });

  it("refuses someone else's job and a forged cursor", async () => {
    const jobId = await importFile(apis[0]!.url, mboxWithMalformed(3, [1], 'private'));
    const other = await env.token('mallory');
    const refused = subscribe('sse', apis[1]!.url, other, JOB_LOGS, { jobId });
    const outcome = await refused.done.then(
      () => JSON.stringify(refused.results),
      (error: unknown) => (error instanceof Error ? error.message : JSON.stringify(error)),
    );
    expect(outcome).toContain('NOT_FOUND');
    const { job } = await gqlOk<{ job: null }>(apis[0]!.url, other, LOGS, { id: jobId });
    expect(job).toBeNull();
    const forged = await gql(apis[0]!.url, token, LOGS, { id: jobId, after: Buffer.from('log|0; DROP TABLE job').toString('base64url') });
    expect(forged.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

describe('a worker SIGKILLed mid-attempt', () => {
  it('keeps the lines that attempt wrote, and its history shows the attempt STALLED, then the next one COMPLETED', async () => {
    const fixture = buildMbox({ count: 3000, malformed: 3, attachmentEvery: 7, seed: 1010 });
    const jobId = await importFile(apis[0]!.url, fixture.mbox);
    // Under way, with the attempt's first line stored.
    await waitFor(
      'the import to be under way with a stored line',
      async () => {
        const { job } = await gqlOk<{ job: { status: string; logs: any } }>(apis[0]!.url, token, LOGS, { id: jobId, first: 5 });
        if (job.status === 'COMPLETED' || job.status === 'FAILED') throw new Error(`the import ended before the kill: ${job.status}`);
        const row = await env.one<{ processed: number | null }>('SELECT processed FROM job WHERE id = $1', [jobId]);
        return job.status === 'ACTIVE' && job.logs.edges.length > 0 && (row.processed ?? 0) >= 200;
      },
      30_000,
      20,
    );
    const victim = workers.find((worker) => worker.output().includes(jobId))!;
    expect(victim).toBeDefined();
    victim.kill('SIGKILL');
    await victim.exited;
    expect(await finalStatus(jobId)).toBe('COMPLETED');

    const { lines } = await allLogs(apis[1]!.url, jobId, 50);
    const opening = lines.filter((line) => line.message.startsWith('importing '));
    expect(opening.map((line) => line.attempt)).toEqual([1, 2]);

    const { job } = await gqlOk<{ job: { attempts: number; attemptHistory: any[] } }>(apis[1]!.url, token, ATTEMPTS, { id: jobId });
    expect(job.attemptHistory.map((attempt) => [attempt.run, attempt.number, attempt.outcome])).toEqual([
      [1, 1, 'STALLED'],
      [1, 2, 'COMPLETED'],
    ]);
    const [stalled, completed] = job.attemptHistory;
    expect(stalled.error).toMatch(/stopped responding/);
    expect(stalled.worker).not.toBe(completed.worker);
    for (const attempt of job.attemptHistory) {
      expect(attempt.worker).toMatch(/^.+:\d+$/);
      expect(attempt.durationMs).toBe(Date.parse(attempt.finishedAt) - Date.parse(attempt.startedAt));
      expect(attempt.durationMs).toBeGreaterThanOrEqual(0);
    }
  });
});
