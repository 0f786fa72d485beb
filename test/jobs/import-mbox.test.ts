import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messagePackFolder } from '../../src/mail/message-store.js';
import { BlobStorage } from '../../src/storage/blob-storage.js';
import { gql, gqlOk, gqlUpload, subscribe } from '../helpers/graphql-client.js';
import { CREATE_ACCOUNT, IMPORT_MBOX, JOB, JOB_PROGRESS } from '../helpers/fragments.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let token: string;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env);
  token = await env.token('alice');
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

async function createAccount(name: string, as = token): Promise<string> {
  const data = await gqlOk<{ createAccount: { id: string } }>(system.url, as, CREATE_ACCOUNT, { name });
  return data.createAccount.id;
}

function upload(url: string, accountId: string, mbox: Buffer, options?: Record<string, unknown>) {
  return gqlUpload<{ importMbox: any }>(
    url,
    token,
    IMPORT_MBOX,
    { accountId, file: null, options },
    {
      path: 'file',
      content: mbox,
      filename: 'inbox.mbox',
    },
  );
}

async function importFile(accountId: string, mbox: Buffer, options?: Record<string, unknown>) {
  const response = await upload(system.url, accountId, mbox, options);
  expect(response.errors).toBeUndefined();
  return response.data!.importMbox;
}

/** Every file under the storage dir's `uploads/` (temporary files included), as `uploads/<name>`. */
async function uploadFiles(): Promise<string[]> {
  const dir = join(env.vars.STORAGE_DIR!, 'uploads');
  const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? [] : Promise.reject(error)));
  return names.map((name) => `uploads/${name}`).sort();
}

/** Upload files that appeared since `before` (the worker may remove older ones meanwhile). */
async function newUploadFiles(before: string[]): Promise<string[]> {
  return (await uploadFiles()).filter((name) => !before.includes(name));
}

const jobCount = async () => (await env.one<{ count: number }>('SELECT count(*)::int AS count FROM job')).count;

const SCAN_PII = `mutation($accountId: ID!, $options: EnqueueOptions) { scanPii(accountId: $accountId, options: $options) { id type } }`;
/** Long enough that the worker leaves these jobs (and their uploads) alone while the test looks. */
const LATER = { delayMs: 600_000 };

describe('import_mbox', () => {
  it('imports every valid message, counts malformed ones, and reports progress up to COMPLETED', async () => {
    const fixture = buildMbox({ count: 120, malformed: 2, duplicates: 3, attachmentEvery: 4, seed: 7 });
    const accountId = await createAccount('inbox');
    const job = await importFile(accountId, fixture.mbox);
    expect(job).toMatchObject({ type: 'import_mbox', status: 'PENDING', trigger: 'API', input: { accountId, filename: 'inbox.mbox' } });

    const sub = subscribe<{ jobProgress: any }>('sse', system.url, token, JOB_PROGRESS, { jobId: job.id });
    await sub.done;
    const events = sub.results.map((r) => r.data!.jobProgress);
    expect(events.at(-1)).toMatchObject({
      status: 'COMPLETED',
      error: null,
      progress: 100,
      processed: fixture.expected.messages,
      total: fixture.expected.messages,
    });
    for (let i = 1; i < events.length; i++) expect(events[i].progress).toBeGreaterThanOrEqual(events[i - 1].progress);

    const final = (await gqlOk<{ job: any }>(system.url, token, JOB, { id: job.id })).job;
    expect(final.output).toEqual({
      total: fixture.expected.messages,
      imported: fixture.expected.unique,
      duplicates: fixture.expected.valid - fixture.expected.unique,
      malformed: fixture.expected.malformed,
    });
    expect(final.attempts).toBe(1);
    const { count } = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM message WHERE account_id = $1', [accountId]);
    expect(count).toBe(fixture.expected.unique);
    const { withAttachments } = await env.one<{ withAttachments: number }>(
      'SELECT count(*)::int AS "withAttachments" FROM message WHERE account_id = $1 AND attachment_count > 0',
      [accountId],
    );
    expect(withAttachments).toBe(fixture.expected.withAttachments);
  });

  it('adds nothing on a re-import of the same file', async () => {
    const fixture = buildMbox({ count: 30, seed: 11 });
    const accountId = await createAccount('again');
    const first = await importFile(accountId, fixture.mbox);
    await waitFor(
      'first import',
      async () => (await gqlOk<{ job: any }>(system.url, token, JOB, { id: first.id })).job.status === 'COMPLETED',
    );
    await waitFor('the completed import to release its upload', async () => !(await uploadFiles()).includes(`uploads/${first.id}.mbox`));
    const second = await importFile(accountId, fixture.mbox);
    const done = await waitFor('second import', async () => {
      const job = (await gqlOk<{ job: any }>(system.url, token, JOB, { id: second.id })).job;
      return job.status === 'COMPLETED' ? job : null;
    });
    expect(done.output).toMatchObject({ imported: 0, duplicates: fixture.expected.unique });
    const { count } = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM message WHERE account_id = $1', [accountId]);
    expect(count).toBe(fixture.expected.unique);
    // The stored payload keeps the upload's storage path for the worker; clients never see it.
    const { job } = await gqlOk<{ job: { payload: Record<string, unknown> } }>(
      system.url,
      token,
      'query($id: ID!) { job(id: $id) { payload } }',
      {
        id: second.id,
      },
    );
    expect(Object.keys(job.payload).sort()).toEqual(['accountId', 'filename', 'size']);
  });

  it("refuses another owner's account with NOT_FOUND and creates no job", async () => {
    const bobToken = await env.token('bob');
    const bobAccount = await createAccount('bob-inbox', bobToken);
    const response = await gqlUpload(
      system.url,
      token,
      IMPORT_MBOX,
      { accountId: bobAccount, file: null },
      {
        path: 'file',
        content: buildMbox({ count: 2 }).mbox,
        filename: 'x.mbox',
      },
    );
    expect(response.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const rows = await env.sql("SELECT id FROM job WHERE payload->>'accountId' = $1", [bobAccount]);
    expect(rows).toHaveLength(0);
  });
});

describe('import_mbox uploads and idempotency', () => {
  it('deletes the upload once the job ends for good: cancelled while queued, or failed with no attempt left', async () => {
    const cancelledAccount = await createAccount('cancel-me');
    const cancelled = await importFile(cancelledAccount, buildMbox({ count: 3, seed: 31 }).mbox, LATER);
    expect(await uploadFiles()).toContain(`uploads/${cancelled.id}.mbox`);
    const { cancelJob } = await gqlOk<{ cancelJob: { status: string } }>(
      system.url,
      token,
      'mutation($id: ID!) { cancelJob(id: $id) { status } }',
      {
        id: cancelled.id,
      },
    );
    expect(cancelJob.status).toBe('CANCELLED');
    expect(await uploadFiles()).not.toContain(`uploads/${cancelled.id}.mbox`);

    // The account goes away before the import runs: a permanent failure, and the upload is useless.
    const doomedAccount = await createAccount('doomed');
    const failed = await importFile(doomedAccount, buildMbox({ count: 3, seed: 32 }).mbox, { delayMs: 1_000 });
    await env.sql('DELETE FROM account WHERE id = $1', [doomedAccount]);
    await waitFor(
      'the import to fail',
      async () => (await gqlOk<{ job: any }>(system.url, token, JOB, { id: failed.id })).job.status === 'FAILED',
    );
    await waitFor('the upload to be released', async () => !(await uploadFiles()).includes(`uploads/${failed.id}.mbox`));
  });

  it('removes a pack its attempts wrote and never recorded once it ends for good, and keeps the recorded ones', async () => {
    const accountId = await createAccount('unrecorded-packs');
    const storage = new BlobStorage(env.vars.STORAGE_DIR!);
    // A recorded pack from an earlier import into the account stays.
    const earlier = await importFile(accountId, buildMbox({ count: 3, seed: 41 }).mbox);
    await waitFor(
      'the first import',
      async () => (await gqlOk<{ job: any }>(system.url, token, JOB, { id: earlier.id })).job.status === 'COMPLETED',
    );
    const recorded = await storage.list(messagePackFolder(accountId, earlier.id));
    expect(recorded).toHaveLength(1);

    // What an attempt that crashed between its pack and its commit leaves in the job's folder.
    const job = await importFile(accountId, buildMbox({ count: 3, seed: 42 }).mbox, LATER);
    const folder = messagePackFolder(accountId, job.id);
    await storage.putParts(`${folder}/1.1-${randomUUID()}.pack`, [Buffer.from('From: a@example.com\r\n\r\nunrecorded\r\n')]);
    await gqlOk(system.url, token, 'mutation($id: ID!) { cancelJob(id: $id) { status } }', { id: job.id });
    expect(await storage.list(folder)).toEqual([]);
    expect(existsSync(join(env.vars.STORAGE_DIR!, folder))).toBe(false);
    expect(await storage.list(messagePackFolder(accountId, earlier.id))).toEqual(recorded);
  });

  it('answers a repeated idempotencyKey with the first job and keeps only the first upload', async () => {
    const accountId = await createAccount('idem');
    const before = await uploadFiles();
    const first = await importFile(accountId, buildMbox({ count: 3, seed: 21 }).mbox, { ...LATER, idempotencyKey: 'idem-1' });
    const second = await importFile(accountId, buildMbox({ count: 5, seed: 22 }).mbox, { ...LATER, idempotencyKey: 'idem-1' });
    expect(second.id).toBe(first.id);
    expect(second.input.size).toBe(first.input.size);
    expect(await newUploadFiles(before)).toEqual([`uploads/${first.id}.mbox`]);
    const rows = await env.sql('SELECT id FROM job WHERE idempotency_key = $1', ['idem-1']);
    expect(rows).toHaveLength(1);
  });

  it('keeps one upload when two requests race with the same idempotencyKey', async () => {
    const accountId = await createAccount('idem-race');
    const before = await uploadFiles();
    const [a, b] = await Promise.all([
      upload(system.url, accountId, buildMbox({ count: 3, seed: 23 }).mbox, { ...LATER, idempotencyKey: 'idem-race' }),
      upload(system.url, accountId, buildMbox({ count: 4, seed: 24 }).mbox, { ...LATER, idempotencyKey: 'idem-race' }),
    ]);
    expect(a.errors).toBeUndefined();
    expect(b.errors).toBeUndefined();
    expect(b.data!.importMbox.id).toBe(a.data!.importMbox.id);
    expect(await newUploadFiles(before)).toEqual([`uploads/${a.data!.importMbox.id}.mbox`]);
  });

  it('refuses an idempotencyKey already used for another job type with BAD_USER_INPUT, and changes nothing', async () => {
    const accountId = await createAccount('idem-types');
    // An upload first, then a scan under its key.
    const imported = await importFile(accountId, buildMbox({ count: 2, seed: 25 }).mbox, { ...LATER, idempotencyKey: 'idem-types-1' });
    const jobsBefore = await jobCount();
    const scan = await gql(system.url, token, SCAN_PII, { accountId, options: { idempotencyKey: 'idem-types-1' } });
    expect(scan.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(scan.errors?.[0]?.message).toMatch(/idempotencyKey "idem-types-1" was already used for a job of type import_mbox/);
    expect(scan.data?.scanPii ?? null).toBeNull();
    expect(await jobCount()).toBe(jobsBefore);

    // A scan first, then an upload under its key: refused, and the upload is not left behind.
    const scanned = await gqlOk<{ scanPii: { id: string } }>(system.url, token, SCAN_PII, {
      accountId,
      options: { ...LATER, idempotencyKey: 'idem-types-2' },
    });
    const uploadsBefore = await uploadFiles();
    const refused = await upload(system.url, accountId, buildMbox({ count: 2, seed: 26 }).mbox, { idempotencyKey: 'idem-types-2' });
    expect(refused.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(refused.errors?.[0]?.message).toMatch(/already used for a job of type scan_pii/);
    expect(await newUploadFiles(uploadsBefore)).toEqual([]);
    const rows = await env.sql<{ id: string; type: string }>('SELECT id, type FROM job WHERE idempotency_key = ANY($1) ORDER BY type', [
      ['idem-types-1', 'idem-types-2'],
    ]);
    expect(rows).toEqual([
      { id: imported.id, type: 'import_mbox' },
      { id: scanned.scanPii.id, type: 'scan_pii' },
    ]);
  });

  it('leaves nothing on disk when prepare refuses: unknown account, empty file', async () => {
    const accountId = await createAccount('refusals');
    const before = await uploadFiles();
    const jobsBefore = await jobCount();
    const missing = await upload(system.url, '00000000-0000-4000-8000-000000000000', buildMbox({ count: 2 }).mbox);
    expect(missing.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const empty = await upload(system.url, accountId, Buffer.alloc(0));
    expect(empty.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(empty.errors?.[0]?.message).toMatch(/empty/);
    expect(await newUploadFiles(before)).toEqual([]);
    expect(await jobCount()).toBe(jobsBefore);
  });

  it('discards the upload when the queue refuses the job; the row ends FAILED, not PENDING', async () => {
    const accountId = await createAccount('queue-down');
    // An API replica whose queue connection is gone: every add is refused.
    const cut = await startInProcess(env, { worker: false });
    await cut.apiServices.queues.close();
    try {
      const before = await uploadFiles();
      const refused = await upload(cut.url, accountId, buildMbox({ count: 3, seed: 27 }).mbox, { idempotencyKey: 'queue-down' });
      expect(refused.errors?.[0]?.extensions?.code).toBe('QUEUE_UNAVAILABLE');
      const rows = await env.sql<{ id: string; status: string }>('SELECT id, status FROM job WHERE account_id = $1', [accountId]);
      expect(rows).toHaveLength(1);
      expect(rows[0]!.status).toBe('FAILED');
      expect(await newUploadFiles(before)).toEqual([]);
    } finally {
      await cut.stop();
    }
  });
});

describe('import_mbox message size cap', () => {
  it('counts a message above MAX_MESSAGE_BYTES as malformed, with its index, and imports the others', async () => {
    const capped = await createTestEnv({ MAX_MESSAGE_BYTES: '16384' });
    const small = await startInProcess(capped);
    try {
      const aliceToken = await capped.token('alice');
      const accountId = (await gqlOk<{ createAccount: { id: string } }>(small.url, aliceToken, CREATE_ACCOUNT, { name: 'capped' }))
        .createAccount.id;
      const good = (n: number) => `From: a@example.com\r\nSubject: good ${n}\r\nMessage-ID: <good-${n}@example.com>\r\n\r\nhello ${n}\r\n`;
      const big = `From: a@example.com\r\nSubject: big\r\nMessage-ID: <big@example.com>\r\n\r\n${'x'.repeat(76).concat('\r\n').repeat(400)}`;
      const mbox = Buffer.from(
        [good(1), big, good(2)].map((m) => `From a@example.com Mon Jan  1 12:00:00 2024\n${m}\n`).join(''),
        'latin1',
      );
      const response = await gqlUpload<{ importMbox: any }>(
        small.url,
        aliceToken,
        IMPORT_MBOX,
        { accountId, file: null },
        {
          path: 'file',
          content: mbox,
          filename: 'capped.mbox',
        },
      );
      expect(response.errors).toBeUndefined();
      const id = response.data!.importMbox.id;
      const done = await waitFor('capped import', async () => {
        const row = (await capped.sql<{ status: string; result: any }>('SELECT status, result FROM job WHERE id = $1', [id]))[0];
        return row && ['COMPLETED', 'FAILED'].includes(row.status) ? row : null;
      });
      expect(done.status).toBe('COMPLETED');
      expect(done.result).toMatchObject({ total: 3, imported: 2, duplicates: 0, malformed: 1 });
      expect(done.result.errors).toEqual([
        { index: 1, error: expect.stringMatching(/larger than the 16384-byte limit \(MAX_MESSAGE_BYTES\)/) },
      ]);
      const subjects = await capped.sql<{ subject: string }>('SELECT subject FROM message WHERE account_id = $1 ORDER BY subject', [
        accountId,
      ]);
      expect(subjects.map((row) => row.subject)).toEqual(['good 1', 'good 2']);
    } finally {
      await small.stop();
      await capped.cleanup();
    }
  });
});
