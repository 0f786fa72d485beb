import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredBlob } from '../../src/mail/message-store.js';
import { STORED_BLOB, storedBytes, storedBytesGone } from '../helpers/archive-helpers.js';
import { CREATE_ACCOUNT, IMPORT_MBOX, JOB } from '../helpers/fragments.js';
import { gql, gqlOk, gqlUpload } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const BULK = `mutation($input: BulkOperationInput!) { bulkOperation(input: $input) { id status input { action ids label } } }`;

let env: TestEnv;
let system: InProcessSystem;
let token: string;
let accountId: string;
let total: number;

async function run(input: Record<string, unknown>) {
  const { bulkOperation } = await gqlOk<{ bulkOperation: { id: string } }>(system.url, token, BULK, { input: { accountId, ...input } });
  return waitFor('bulk operation', async () => {
    const { job } = await gqlOk<{ job: any }>(system.url, token, JOB, { id: bulkOperation.id });
    return job.status === 'COMPLETED' || job.status === 'FAILED' ? job : null;
  });
}

const count = async (where: string, params: unknown[] = []) =>
  (await env.one<{ n: number }>(`SELECT count(*)::int AS n FROM message WHERE account_id = $1 AND ${where}`, [accountId, ...params])).n;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env);
  token = await env.token('alice');
  accountId = (await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, { name: 'bulk' })).createAccount.id;
  const fixture = buildMbox({ count: 1200, attachmentEvery: 10, seed: 77 });
  total = fixture.expected.unique;
  const { data } = await gqlUpload<{ importMbox: { id: string } }>(
    system.url,
    token,
    IMPORT_MBOX,
    { accountId, file: null },
    {
      path: 'file',
      content: fixture.mbox,
      filename: 'bulk.mbox',
    },
  );
  await waitFor(
    'import',
    async () => (await gqlOk<{ job: any }>(system.url, token, JOB, { id: data!.importMbox.id })).job.status === 'COMPLETED',
  );
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

describe('bulk_operation', () => {
  it('marks every message read over several batches, then counts only real changes', async () => {
    const first = await run({ action: 'MARK_READ', filter: {} });
    expect(first).toMatchObject({
      status: 'COMPLETED',
      processed: total,
      total,
      output: { action: 'MARK_READ', matched: total, affected: total },
      message: `mark_read: ${total} of ${total} changed`,
    });
    expect(await count('is_read')).toBe(total);
    const again = await run({ action: 'MARK_READ', filter: {} });
    expect(again.output).toEqual({ action: 'MARK_READ', matched: total, affected: 0 });
    expect(again.message).toBe(`mark_read: 0 of ${total} changed`);
  });

  it('completes on an account with no messages, with a final message that says so', async () => {
    const empty = (await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, { name: 'bulk-empty' })).createAccount
      .id;
    const job = await run({ accountId: empty, action: 'MARK_READ', filter: {} });
    expect(job).toMatchObject({
      status: 'COMPLETED',
      processed: 0,
      total: 0,
      message: 'no messages matched',
      output: { action: 'MARK_READ', matched: 0, affected: 0 },
    });
  });

  it('labels the messages picked by a filter, and only those', async () => {
    const expected = await count("from_address ILIKE '%github%'");
    expect(expected).toBeGreaterThan(0);
    const job = await run({ action: 'ADD_LABEL', label: 'ci', filter: { fromContains: 'github' } });
    expect(job.output).toEqual({ action: 'ADD_LABEL', matched: expected, affected: expected });
    expect(await count("'ci' = ANY(labels)")).toBe(expected);
    const removed = await run({ action: 'REMOVE_LABEL', label: 'ci', filter: { label: 'ci' } });
    expect(removed.output.affected).toBe(expected);
    expect(await count("'ci' = ANY(labels)")).toBe(0);
  });

  it('trashes and restores by ids, and deletes rows and blobs', async () => {
    const ids = (
      await env.sql<{ id: string; blob_key: string }>('SELECT id, blob_key FROM message WHERE account_id = $1 ORDER BY id LIMIT 5', [
        accountId,
      ])
    ).map((row) => row.id);
    expect((await run({ action: 'TRASH', ids })).output).toMatchObject({ matched: 5, affected: 5 });
    expect(await count('deleted_at IS NOT NULL')).toBe(5);
    const page = await gqlOk<{ messages: { nodes: { id: string }[] } }>(
      system.url,
      token,
      'query($a: ID!) { messages(accountId: $a, first: 200, filter: { inTrash: true }) { nodes { id } } }',
      { a: accountId },
    );
    expect(page.messages.nodes.map((n) => n.id).sort()).toEqual([...ids].sort());
    expect((await run({ action: 'RESTORE', ids: ids.slice(0, 2) })).output).toMatchObject({ matched: 2, affected: 2 });
    const stored = await env.sql<StoredBlob>(`SELECT ${STORED_BLOB} FROM message WHERE id = ANY($1::uuid[])`, [ids.slice(2)]);
    expect(await Promise.all(stored.map((row) => storedBytesGone(env, row)))).toEqual([false, false, false]);
    expect((await run({ action: 'DELETE', ids: ids.slice(2) })).output).toMatchObject({ matched: 3, affected: 3 });
    expect(await count('id = ANY($2::uuid[])', [ids.slice(2)])).toBe(0);
    expect(await Promise.all(stored.map((row) => storedBytesGone(env, row)))).toEqual([true, true, true]);
    // The other messages imported with them read back intact.
    const kept = await env.sql<StoredBlob>(`SELECT ${STORED_BLOB} FROM message WHERE account_id = $1`, [accountId]);
    expect(kept.length).toBeGreaterThan(0);
    for (const row of kept) expect((await storedBytes(env, row)).toString('latin1')).toMatch(/^From: |Message-ID: /m);
  });

  it('rejects contradictory input with BAD_USER_INPUT and queues nothing', async () => {
    const before = (await env.one<{ n: number }>("SELECT count(*)::int AS n FROM job WHERE type = 'bulk_operation'")).n;
    for (const input of [
      { action: 'STAR' },
      { action: 'STAR', ids: [], filter: {} },
      { action: 'ADD_LABEL', filter: {} },
      { action: 'STAR', label: 'x', filter: {} },
      // Every event of the job carries its input: more ids than this are picked by a filter.
      { action: 'STAR', ids: Array.from({ length: 10_001 }, () => randomUUID()) },
    ]) {
      const response = await gql(system.url, token, BULK, { input: { accountId, ...input } });
      expect(response.errors?.[0]?.extensions?.code, JSON.stringify(input)).toBe('BAD_USER_INPUT');
    }
    expect((await env.one<{ n: number }>("SELECT count(*)::int AS n FROM job WHERE type = 'bulk_operation'")).n).toBe(before);
  });

  it("cannot touch another owner's messages, even by id", async () => {
    const bob = await env.token('bob');
    const ids = (await env.sql<{ id: string }>('SELECT id FROM message WHERE account_id = $1 LIMIT 3', [accountId])).map((r) => r.id);
    const response = await gql(system.url, bob, BULK, { input: { accountId, action: 'DELETE', ids } });
    expect(response.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(await count('id = ANY($2::uuid[])', [ids])).toBe(3);
  });
});
