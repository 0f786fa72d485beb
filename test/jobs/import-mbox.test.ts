import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gqlOk, gqlUpload, subscribe } from '../helpers/graphql-client.js';
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

async function importFile(accountId: string, mbox: Buffer, options?: Record<string, unknown>) {
  const response = await gqlUpload<{ importMbox: any }>(system.url, token, IMPORT_MBOX, { accountId, file: null, options }, {
    path: 'file',
    content: mbox,
    filename: 'inbox.mbox',
  });
  expect(response.errors).toBeUndefined();
  return response.data!.importMbox;
}

describe('import_mbox', () => {
  it('imports every valid message, counts malformed ones, and reports progress up to COMPLETED', async () => {
    const fixture = buildMbox({ count: 120, malformed: 2, duplicates: 3, attachmentEvery: 4, seed: 7 });
    const accountId = await createAccount('inbox');
    const job = await importFile(accountId, fixture.mbox);
    expect(job).toMatchObject({ type: 'import_mbox', status: 'PENDING', trigger: 'API', input: { accountId, filename: 'inbox.mbox' } });

    const sub = subscribe<{ jobProgress: any }>('sse', system.url, token, JOB_PROGRESS, { jobId: job.id });
    await sub.done;
    const events = sub.results.map((r) => r.data!.jobProgress);
    expect(events.at(-1)).toMatchObject({ status: 'COMPLETED', error: null, progress: 100, processed: fixture.expected.messages, total: fixture.expected.messages });
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
    await waitFor('first import', async () => (await gqlOk<{ job: any }>(system.url, token, JOB, { id: first.id })).job.status === 'COMPLETED');
    const second = await importFile(accountId, fixture.mbox);
    const done = await waitFor('second import', async () => {
      const job = (await gqlOk<{ job: any }>(system.url, token, JOB, { id: second.id })).job;
      return job.status === 'COMPLETED' ? job : null;
    });
    expect(done.output).toMatchObject({ imported: 0, duplicates: fixture.expected.unique });
    const { count } = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM message WHERE account_id = $1', [accountId]);
    expect(count).toBe(fixture.expected.unique);
  });

  it("refuses another owner's account with NOT_FOUND and creates no job", async () => {
    const bobToken = await env.token('bob');
    const bobAccount = await createAccount('bob-inbox', bobToken);
    const response = await gqlUpload(system.url, token, IMPORT_MBOX, { accountId: bobAccount, file: null }, {
      path: 'file',
      content: buildMbox({ count: 2 }).mbox,
      filename: 'x.mbox',
    });
    expect(response.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const rows = await env.sql("SELECT id FROM job WHERE payload->>'accountId' = $1", [bobAccount]);
    expect(rows).toHaveLength(0);
  });
});
