import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messagePackPlace, readStoredBlob, type StoredBlob } from '../../src/mail/message-store.js';
import { BlobStorage } from '../../src/storage/blob-storage.js';
import { subscribe } from '../helpers/graphql-client.js';
import { JOB_PROGRESS } from '../helpers/fragments.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import { createAccount, importMbox, jobRow, ranJob, startApi, startWorker, type ApiProc, type Proc } from './fault-helpers.js';

let env: TestEnv;
let api: ApiProc;
let workers: Proc[] = [];
let token: string;

beforeAll(async () => {
  env = await createTestEnv({ STALLED_INTERVAL_MS: '2000' });
  [api, ...workers] = await Promise.all([startApi(env.vars), startWorker(env.vars, 'worker-a'), startWorker(env.vars, 'worker-b')]);
  token = await env.token('alice');
}, 120_000);

afterAll(async () => {
  await Promise.all([api, ...workers].filter(Boolean).map((proc) => proc.stop()));
  await env?.cleanup();
});

describe('a worker killed with SIGKILL mid-job', () => {
  it('lets the other worker finish the job after the stall interval, without storing any message twice', async () => {
    const fixture = buildMbox({ count: 3000, malformed: 4, duplicates: 30, attachmentEvery: 7, seed: 4101 });
    const accountId = await createAccount(api.url, token, 'sigkill');
    const job = await importMbox(api.url, token, accountId, fixture.mbox);
    const sub = subscribe<{ jobProgress: any }>('sse', api.url, token, JOB_PROGRESS, { jobId: job.id });

    // Mid-way: some batches stored, most of the file still to go.
    await waitFor(
      'the import to be under way',
      async () => {
        const row = await jobRow(env.sql, job.id);
        if (row.status !== 'ACTIVE' && row.status !== 'PENDING') throw new Error(`import ended before the kill: ${row.status}`);
        return row.status === 'ACTIVE' && (row.processed ?? 0) >= 200;
      },
      30_000,
      20,
    );
    const victim = workers.find((worker) => ranJob(worker, job.id))!;
    const survivor = workers.find((worker) => worker !== victim)!;
    expect(victim).toBeDefined();
    const beforeKill = (await jobRow(env.sql, job.id)).processed!;
    expect(beforeKill).toBeLessThan(fixture.expected.messages);
    victim.kill('SIGKILL');
    await victim.exited;
    const eventsAtKill = sub.results.length;

    const final = await waitFor(
      'the job to complete on the surviving worker',
      async () => {
        const row = await jobRow(env.sql, job.id);
        if (row.status === 'FAILED' || row.status === 'CANCELLED') throw new Error(`job ended ${row.status}: ${row.error}`);
        return row.status === 'COMPLETED' ? row : null;
      },
      60_000,
      100,
    );
    expect(ranJob(survivor, job.id)).toBe(true);
    expect(final.attempts).toBe(2);
    expect(final.processed).toBe(fixture.expected.messages);
    expect(final.result).toMatchObject({ total: fixture.expected.messages, malformed: fixture.expected.malformed });

    // The subscriber saw the second attempt run and the terminal event.
    await waitFor(
      'the subscription to complete',
      async () => {
        await Promise.race([sub.done, new Promise((resolve) => setTimeout(resolve, 100))]);
        return sub.results.at(-1)?.data?.jobProgress.status === 'COMPLETED';
      },
      15_000,
      0,
    );
    const after = sub.results.slice(eventsAtKill).map((result) => result.data!.jobProgress);
    expect(after.some((event) => event.status === 'ACTIVE')).toBe(true);
    expect(after.at(-1)).toMatchObject({ status: 'COMPLETED', progress: 100, processed: fixture.expected.messages });
    expect(sub.results.every((result) => !result.errors)).toBe(true);

    // Dedup held across the two attempts: each message once, each stored message with its attachments once.
    const stored = await env.one<{ messages: number; attachments: number; declared: number }>(
      `SELECT count(*)::int AS messages,
              (SELECT count(*)::int FROM message_attachment a JOIN message m ON m.id = a.message_id WHERE m.account_id = $1) AS attachments,
              coalesce(sum(attachment_count), 0)::int AS declared
         FROM message WHERE account_id = $1`,
      [accountId],
    );
    expect(stored.messages).toBe(fixture.expected.unique);
    expect(stored.attachments).toBe(stored.declared);

    // Every pack the job wrote is one its rows refer to: one the killed attempt wrote and never
    // recorded was removed by the second; every message reads back as stored.
    const storage = new BlobStorage(env.vars.STORAGE_DIR!);
    const packs = await storage.list(messagePackPlace(accountId, { jobId: job.id, run: 1, attempt: 2 }).folder);
    const rows = await env.sql<StoredBlob>('SELECT blob_key, blob_offset, size FROM message WHERE account_id = $1', [accountId]);
    expect(packs.sort()).toEqual([...new Set(rows.map((row) => row.blob_key))].sort());
    for (const row of rows) expect((await readStoredBlob(storage, row)).subarray(0, 5).toString()).toMatch(/^[\x21-\x7e]+/);
    sub.close();
  }, 120_000);
});
