import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import {
  ARCHIVE_MAILS,
  ARCHIVES,
  blobPath,
  STORED_BLOB,
  storedBytes,
  createAccount,
  download,
  errorCode,
  importMailbox,
  PURGE_ARCHIVE_TRASH,
  RESTORE_ARCHIVE,
  runJob,
  TRASH_ARCHIVE,
  UPDATE_SYSTEM_CONFIG,
} from '../helpers/archive-helpers.js';
import type { StoredBlob } from '../../src/mail/message-store.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let bob: string;
let admin: string;
let accountId: string;
let fixture: ReturnType<typeof buildMbox>;

interface ArchiveRow {
  id: string;
  message_id: string;
  owner_id: string;
  size: number;
  content_hash: string;
  encrypted: boolean;
  deleted_at: Date | null;
  files: { kind: string; key: string; filename: string | null; contentType: string; size: number; iv?: string }[];
}

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env);
  [alice, bob, admin] = await Promise.all([env.token('alice'), env.token('bob'), env.token('root', 'admin')]);
  accountId = await createAccount(system.url, alice, 'archive-me');
  fixture = buildMbox({ count: 40, attachmentEvery: 4, seed: 21 });
  await importMailbox(system.url, alice, accountId, fixture.mbox);
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

const archiveRows = (account: string) => env.sql<ArchiveRow>('SELECT * FROM archive WHERE account_id = $1 ORDER BY id', [account]);

/** Every file of every archive of the account holds exactly the bytes of the message's own blobs. */
async function expectFaithfulCopies(account: string): Promise<void> {
  for (const archive of await archiveRows(account)) {
    const message = await env.one<StoredBlob & { content_hash: string; account_id: string }>(
      `SELECT ${STORED_BLOB}, content_hash, account_id FROM message WHERE id = $1`,
      [archive.message_id],
    );
    const attachments = await env.sql<StoredBlob & { filename: string | null }>(
      `SELECT ${STORED_BLOB}, filename FROM message_attachment WHERE message_id = $1 ORDER BY blob_key, blob_offset`,
      [archive.message_id],
    );
    expect(archive.files.map((file) => file.kind)).toEqual(['eml', ...attachments.map(() => 'attachment')]);
    for (const file of archive.files) expect(file.key.startsWith(`archives/${account}/${archive.id}/`)).toBe(true);

    const eml = await storedBytes(env, message);
    expect((await readFile(blobPath(env, archive.files[0]!.key))).equals(eml)).toBe(true);
    expect(archive.content_hash).toBe(message.content_hash);
    let total = eml.length;
    for (const [index, attachment] of attachments.entries()) {
      const file = archive.files[index + 1]!;
      const original = await storedBytes(env, attachment);
      expect((await readFile(blobPath(env, file.key))).equals(original)).toBe(true);
      expect(file).toMatchObject({ filename: attachment.filename, size: original.length });
      total += original.length;
    }
    expect(archive.size).toBe(total);
    expect(archive.encrypted).toBe(false);
  }
}

describe('archive_mails', () => {
  it('archives the messages given by id: rows, identical files, archived_at, and downloads', async () => {
    const withAttachments = await env.sql<{ id: string }>(
      'SELECT id FROM message WHERE account_id = $1 AND attachment_count > 0 ORDER BY id LIMIT 2',
      [accountId],
    );
    const without = await env.sql<{ id: string }>(
      'SELECT id FROM message WHERE account_id = $1 AND attachment_count = 0 ORDER BY id LIMIT 3',
      [accountId],
    );
    const ids = [...withAttachments, ...without].map((row) => row.id);
    expect(ids).toHaveLength(5);

    const job = await runJob(system.url, alice, ARCHIVE_MAILS, { input: { accountId, ids } });
    expect(job).toMatchObject({ type: 'archive_mails', status: 'COMPLETED', processed: 5, total: 5 });
    expect(job.output).toEqual({ matched: 5, archived: 5, skipped: 0, missing: 0 });

    const archives = await archiveRows(accountId);
    expect(archives.map((archive) => archive.message_id).sort()).toEqual([...ids].sort());
    expect(archives.every((archive) => archive.owner_id === 'alice')).toBe(true);
    await expectFaithfulCopies(accountId);
    const archived = await env.sql<{ id: string }>('SELECT id FROM message WHERE account_id = $1 AND archived_at IS NOT NULL', [accountId]);
    expect(archived.map((row) => row.id).sort()).toEqual([...ids].sort());

    // Through the API: the Archive type, never a storage key; the download is the raw EML.
    const { archives: page } = await gqlOk<{ archives: any }>(system.url, alice, ARCHIVES, { accountId });
    expect(page.nodes).toHaveLength(5);
    const withFiles = page.nodes.find((node: any) => node.files.length > 1);
    expect(withFiles.files[0]).toMatchObject({ kind: 'EML', contentType: 'message/rfc822' });
    expect(withFiles.files[1]).toMatchObject({ kind: 'ATTACHMENT' });
    expect(withFiles.downloadUrl).toBe(`/archives/${withFiles.id}/eml`);
    expect(JSON.stringify(page)).not.toContain(`archives/${accountId}/`);
    const leak = await gql(system.url, alice, `query($a: ID!) { archives(accountId: $a) { nodes { files { key } } } }`, { a: accountId });
    expect(leak.errors?.[0]?.message).toMatch(/Cannot query field "key"/);

    const message = await env.one<StoredBlob>(`SELECT ${STORED_BLOB} FROM message WHERE id = $1`, [withFiles.messageId]);
    const file = await download(system.url, alice, withFiles.downloadUrl);
    expect(file.status).toBe(200);
    expect(file.contentType).toBe('message/rfc822');
    expect(file.body.equals(await storedBytes(env, message))).toBe(true);
  });

  it('archives by filter, skipping and counting what is already archived; a re-run adds nothing', async () => {
    const unique = fixture.expected.unique;
    const first = await runJob(system.url, alice, ARCHIVE_MAILS, { input: { accountId, filter: {} } });
    expect(first.output).toEqual({ matched: unique, archived: unique - 5, skipped: 5, missing: 0 });
    expect(first).toMatchObject({ processed: unique, total: unique });

    const again = await runJob(system.url, alice, ARCHIVE_MAILS, { input: { accountId, filter: {} } });
    expect(again.output).toEqual({ matched: unique, archived: 0, skipped: unique, missing: 0 });

    const { count, distinct } = await env.one<{ count: number; distinct: number }>(
      'SELECT count(*)::int AS count, count(DISTINCT message_id)::int AS distinct FROM archive WHERE account_id = $1',
      [accountId],
    );
    expect({ count, distinct }).toEqual({ count: unique, distinct: unique });
    const { unarchived } = await env.one<{ unarchived: number }>(
      'SELECT count(*)::int AS unarchived FROM message WHERE account_id = $1 AND archived_at IS NULL',
      [accountId],
    );
    expect(unarchived).toBe(0);
    await expectFaithfulCopies(accountId);

    // `archived: false` now matches nothing.
    const none = await runJob(system.url, alice, ARCHIVE_MAILS, { input: { accountId, filter: { archived: false } } });
    expect(none.output).toEqual({ matched: 0, archived: 0, skipped: 0, missing: 0 });
  });

  it('archives exactly what a narrower filter matches', async () => {
    const other = await createAccount(system.url, alice, 'filtered');
    const mbox = buildMbox({ count: 24, attachmentEvery: 3, seed: 5 });
    await importMailbox(system.url, alice, other, mbox.mbox);
    const job = await runJob(system.url, alice, ARCHIVE_MAILS, { input: { accountId: other, filter: { hasAttachments: true } } });
    expect(job.output).toEqual({ matched: mbox.expected.withAttachments, archived: mbox.expected.withAttachments, skipped: 0, missing: 0 });
    const { files } = await env.one<{ files: number }>(
      "SELECT count(*)::int AS files FROM archive, jsonb_array_elements(files) f WHERE account_id = $1 AND f->>'kind' = 'attachment'",
      [other],
    );
    const { attachments } = await env.one<{ attachments: number }>(
      'SELECT count(*)::int AS attachments FROM message_attachment a JOIN message m ON m.id = a.message_id WHERE m.account_id = $1',
      [other],
    );
    expect(files).toBe(attachments);
    await expectFaithfulCopies(other);
  });

  it('recovers from a crash between the archive row and archived_at, and re-archives a vanished row once', async () => {
    const account = await createAccount(system.url, alice, 'crashy');
    await importMailbox(system.url, alice, account, buildMbox({ count: 6, seed: 99 }).mbox);
    await runJob(system.url, alice, ARCHIVE_MAILS, { input: { accountId: account, filter: {} } });
    const [lost, unmarked] = await archiveRows(account);
    // A row lost after its files were written, and a message whose archived_at was never set.
    await env.sql('DELETE FROM archive WHERE id = $1', [lost!.id]);
    await env.sql('UPDATE message SET archived_at = NULL WHERE id = $1', [unmarked!.message_id]);

    const rerun = await runJob(system.url, alice, ARCHIVE_MAILS, { input: { accountId: account, filter: {} } });
    expect(rerun.output).toEqual({ matched: 6, archived: 1, skipped: 5, missing: 0 });
    const rows = await archiveRows(account);
    expect(rows).toHaveLength(6);
    expect(rows.find((row) => row.message_id === lost!.message_id)!.id).toBe(lost!.id);
    const { unarchived } = await env.one<{ unarchived: number }>(
      'SELECT count(*)::int AS unarchived FROM message WHERE account_id = $1 AND archived_at IS NULL',
      [account],
    );
    expect(unarchived).toBe(0);
    await expectFaithfulCopies(account);
  });

  it('refuses bad input with BAD_USER_INPUT and creates no job', async () => {
    const before = await env.one<{ count: number }>("SELECT count(*)::int AS count FROM job WHERE type = 'archive_mails'");
    expect(await errorCode(system.url, alice, ARCHIVE_MAILS, { input: { accountId } })).toBe('BAD_USER_INPUT');
    expect(await errorCode(system.url, alice, ARCHIVE_MAILS, { input: { accountId, ids: [], filter: {} } })).toBe('BAD_USER_INPUT');
    const after = await env.one<{ count: number }>("SELECT count(*)::int AS count FROM job WHERE type = 'archive_mails'");
    expect(after.count).toBe(before.count);
  });

  it('keeps other owners out: NOT_FOUND in GraphQL, 404 over HTTP, 401 without a token; admins see all', async () => {
    const [archive] = await archiveRows(accountId);
    expect(await errorCode(system.url, bob, ARCHIVE_MAILS, { input: { accountId, filter: {} } })).toBe('NOT_FOUND');
    expect(await errorCode(system.url, bob, ARCHIVES, { accountId })).toBe('NOT_FOUND');
    expect(await errorCode(system.url, bob, TRASH_ARCHIVE, { id: archive!.id })).toBe('NOT_FOUND');
    expect(await errorCode(system.url, bob, RESTORE_ARCHIVE, { id: archive!.id })).toBe('NOT_FOUND');
    const single = await gqlOk<{ archive: unknown }>(system.url, bob, `query($id: ID!) { archive(id: $id) { id } }`, { id: archive!.id });
    expect(single.archive).toBeNull();

    const url = `/archives/${archive!.id}/eml`;
    const asBob = await download(system.url, bob, url);
    expect(asBob.status).toBe(404);
    expect(JSON.parse(asBob.body.toString())).toEqual({ error: 'archive not found' });
    expect((await download(system.url, bob, `/archives/00000000-0000-4000-8000-000000000000/eml`)).status).toBe(404);
    expect((await download(system.url, null, url)).status).toBe(401);
    expect((await download(system.url, 'not-a-jwt', url)).status).toBe(401);
    expect((await download(system.url, admin, url)).status).toBe(200);
    expect((await gqlOk<{ archives: any }>(system.url, admin, ARCHIVES, { accountId, first: 1 })).archives.nodes).toHaveLength(1);
  });

  it('pages through archives with a keyset cursor', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const { archives }: { archives: any } = await gqlOk(system.url, alice, ARCHIVES, { accountId, first: 7, after });
      seen.push(...archives.nodes.map((node: any) => node.id));
      if (!archives.pageInfo.hasNextPage) break;
      after = archives.pageInfo.endCursor;
    }
    expect(seen).toHaveLength(fixture.expected.unique);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('trashes and restores an archive', async () => {
    const [archive] = await archiveRows(accountId);
    const { trashArchive } = await gqlOk<{ trashArchive: any }>(system.url, alice, TRASH_ARCHIVE, { id: archive!.id });
    expect(trashArchive).toMatchObject({ id: archive!.id, inTrash: true });
    expect(trashArchive.deletedAt).not.toBeNull();
    // Trashing again keeps the first instant, so the purge clock does not restart.
    const again = await gqlOk<{ trashArchive: any }>(system.url, alice, TRASH_ARCHIVE, { id: archive!.id });
    expect(again.trashArchive.deletedAt).toBe(trashArchive.deletedAt);

    const visible = (await gqlOk<{ archives: any }>(system.url, alice, ARCHIVES, { accountId, first: 200 })).archives.nodes;
    expect(visible.map((node: any) => node.id)).not.toContain(archive!.id);
    const trash = (await gqlOk<{ archives: any }>(system.url, alice, ARCHIVES, { accountId, filter: { inTrash: true } })).archives.nodes;
    expect(trash.map((node: any) => node.id)).toEqual([archive!.id]);

    const { restoreArchive } = await gqlOk<{ restoreArchive: any }>(system.url, alice, RESTORE_ARCHIVE, { id: archive!.id });
    expect(restoreArchive).toMatchObject({ id: archive!.id, inTrash: false, deletedAt: null });
    const { deleted_at } = await env.one<{ deleted_at: Date | null }>('SELECT deleted_at FROM archive WHERE id = $1', [archive!.id]);
    expect(deleted_at).toBeNull();
  });

  it('purge_archive_trash deletes long-trashed archives (files, then rows) only when enabled', async () => {
    const [old, recent, kept] = await archiveRows(accountId);
    await gqlOk(system.url, alice, TRASH_ARCHIVE, { id: old!.id });
    await gqlOk(system.url, alice, TRASH_ARCHIVE, { id: recent!.id });
    await env.sql("UPDATE archive SET deleted_at = now() - interval '40 days' WHERE id = $1", [old!.id]);
    const oldFiles = old!.files.map((file) => blobPath(env, file.key));
    expect(oldFiles.every((path) => existsSync(path))).toBe(true);

    expect(await errorCode(system.url, alice, PURGE_ARCHIVE_TRASH)).toBe('FORBIDDEN');
    const disabled = await runJob(system.url, admin, PURGE_ARCHIVE_TRASH);
    expect(disabled.output).toMatchObject({ enabled: false, purged: 0, filesDeleted: 0 });
    expect(await env.sql('SELECT id FROM archive WHERE id = $1', [old!.id])).toHaveLength(1);
    expect(oldFiles.every((path) => existsSync(path))).toBe(true);

    await gqlOk(system.url, admin, UPDATE_SYSTEM_CONFIG, { input: { archiveTrashPurgeEnabled: true } });
    const enabled = await runJob(system.url, admin, PURGE_ARCHIVE_TRASH);
    expect(enabled.output).toMatchObject({ enabled: true, purged: 1, filesDeleted: old!.files.length });
    expect(await env.sql('SELECT id FROM archive WHERE id = $1', [old!.id])).toHaveLength(0);
    expect(oldFiles.some((path) => existsSync(path))).toBe(false);
    // Trashed too recently, or not trashed: untouched.
    for (const survivor of [recent!, kept!]) {
      expect(await env.sql('SELECT id FROM archive WHERE id = $1', [survivor.id])).toHaveLength(1);
      expect(survivor.files.every((file) => existsSync(blobPath(env, file.key)))).toBe(true);
    }
    expect((await download(system.url, alice, `/archives/${old!.id}/eml`)).status).toBe(404);
    await gqlOk(system.url, admin, UPDATE_SYSTEM_CONFIG, { input: { archiveTrashPurgeEnabled: false } });
  });

  it('stops at a checkpoint when cancelled mid-run, without duplicates, and a re-run finishes the rest', async () => {
    const account = await createAccount(system.url, alice, 'big');
    const big = buildMbox({ count: 1500, attachmentEvery: 0, seed: 3 });
    await importMailbox(system.url, alice, account, big.mbox);
    const { archiveMails } = await gqlOk<{ archiveMails: { id: string } }>(system.url, alice, ARCHIVE_MAILS, {
      input: { accountId: account, filter: {} },
    });
    await waitFor(
      'archiving to make progress',
      async () =>
        (await env.one<{ processed: number | null }>('SELECT processed FROM job WHERE id = $1', [archiveMails.id])).processed! > 0,
      30_000,
      5,
    );
    await gqlOk(system.url, alice, `mutation($id: ID!) { cancelJob(id: $id) { id } }`, { id: archiveMails.id });
    const cancelled = await waitFor('the job to end CANCELLED', async () => {
      const row = await env.one<{ status: string }>('SELECT status FROM job WHERE id = $1', [archiveMails.id]);
      return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(row.status) ? row : null;
    });
    expect(cancelled.status).toBe('CANCELLED');

    const { count, distinct } = await env.one<{ count: number; distinct: number }>(
      'SELECT count(*)::int AS count, count(DISTINCT message_id)::int AS distinct FROM archive WHERE account_id = $1',
      [account],
    );
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThan(big.expected.unique);
    expect(distinct).toBe(count);
    const { marked } = await env.one<{ marked: number }>(
      'SELECT count(*)::int AS marked FROM message WHERE account_id = $1 AND archived_at IS NOT NULL',
      [account],
    );
    expect(marked).toBe(count);

    const rerun = await runJob(system.url, alice, ARCHIVE_MAILS, { input: { accountId: account, filter: {} } });
    expect(rerun.output).toEqual({ matched: big.expected.unique, archived: big.expected.unique - count, skipped: count, missing: 0 });
  });
});
