/**
 * Message storage (src/mail/message-store.ts): a stored batch is one pack, each message and
 * attachment a slice of it that reads back byte for byte; a deleted message's bytes are gone at
 * once, its pack once nothing refers to it; packs a crashed attempt left unrecorded are found by
 * the next attempt.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initOrm, type Orm } from '../../src/db/orm.js';
import { applyMessageAction } from '../../src/mail/message-actions.js';
import {
  type IncomingMessage,
  messagePackPlace,
  readStoredBlob,
  removeUnrecordedPacks,
  type StoredBlob,
  storeMessages,
} from '../../src/mail/message-store.js';
import { parseMessage } from '../../src/mail/parse-message.js';
import { BlobStorage } from '../../src/storage/blob-storage.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let orm: Orm;
let storage: BlobStorage;

beforeAll(async () => {
  env = await createTestEnv();
  orm = await initOrm(env.vars.DATABASE_URL!);
  storage = new BlobStorage(env.vars.STORAGE_DIR!);
});

afterAll(async () => {
  await orm?.close();
  await env?.cleanup();
});

function rawMessage(index: number, attachment?: string): Buffer {
  const headers = [
    `From: sender${index}@example.com`,
    'To: me@example.com',
    `Subject: message ${index}`,
    `Message-ID: <m${index}-${randomUUID()}@example.com>`,
  ];
  if (!attachment) return Buffer.from([...headers, '', `Body of message ${index}.`, ''].join('\r\n'));
  return Buffer.from(
    [
      ...headers,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain',
      '',
      `Body of message ${index}.`,
      '--b',
      'Content-Type: text/plain; name="note.txt"',
      'Content-Disposition: attachment; filename="note.txt"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from(attachment).toString('base64'),
      '--b--',
      '',
    ].join('\r\n'),
  );
}

async function incoming(raws: Buffer[]): Promise<IncomingMessage[]> {
  return Promise.all(raws.map(async (raw) => ({ raw, parsed: await parseMessage(raw) })));
}

async function newAccount(): Promise<{ id: string; ownerId: string }> {
  const account = { id: randomUUID(), ownerId: 'alice' };
  await env.sql('INSERT INTO account (id, owner_id, name, created_at) VALUES ($1, $2, $3, now())', [account.id, account.ownerId, 'packs']);
  return account;
}

const messageRows = (accountId: string) =>
  env.sql<StoredBlob & { id: string; subject: string }>(
    'SELECT id, subject, blob_key, blob_offset, size FROM message WHERE account_id = $1 ORDER BY subject',
    [accountId],
  );

describe('storeMessages', () => {
  it('writes a batch as one pack, each message and attachment a slice that reads back byte for byte', async () => {
    const account = await newAccount();
    const raws = [rawMessage(1), rawMessage(2, 'attached text, two'), rawMessage(3)];
    const place = messagePackPlace(account.id, randomUUID(), 1);
    const result = await storeMessages(orm.em.fork(), storage, account, await incoming(raws), place);
    expect(result).toEqual({ inserted: 3, duplicates: 0 });

    expect(await storage.list(place.folder)).toHaveLength(1);
    const rows = await messageRows(account.id);
    expect(new Set(rows.map((row) => row.blob_key)).size).toBe(1);
    for (const [index, row] of rows.entries()) expect((await readStoredBlob(storage, row)).equals(raws[index]!)).toBe(true);
    const [attachment] = await env.sql<StoredBlob>(
      'SELECT a.blob_key, a.blob_offset, a.size FROM message_attachment a JOIN message m ON m.id = a.message_id WHERE m.account_id = $1',
      [account.id],
    );
    expect((await readStoredBlob(storage, attachment!)).toString()).toBe('attached text, two');
  });

  it('leaves messages already held out of the pack, and writes none for a batch of only those', async () => {
    const account = await newAccount();
    const messages = await incoming([rawMessage(1), rawMessage(2)]);
    const place = messagePackPlace(account.id, randomUUID(), 1);
    await storeMessages(orm.em.fork(), storage, account, messages, place);
    const [pack] = await storage.list(place.folder);
    const packBytes = (await storage.get(pack!)).length;

    const again = await storeMessages(orm.em.fork(), storage, account, messages, place);
    expect(again).toEqual({ inserted: 0, duplicates: 2 });
    expect(await storage.list(place.folder)).toEqual([pack]);

    const more = await incoming([rawMessage(3)]);
    expect(await storeMessages(orm.em.fork(), storage, account, [...messages, ...more], place)).toEqual({ inserted: 1, duplicates: 2 });
    const packs = await storage.list(place.folder);
    expect(packs).toHaveLength(2);
    const second = packs.find((key) => key !== pack)!;
    expect((await storage.get(second)).equals(more[0]!.raw)).toBe(true);
    expect((await storage.get(pack!)).length).toBe(packBytes);
  });
});

describe('deleting packed messages', () => {
  it("overwrites a deleted message's bytes at once, keeps the others', and removes the pack with its last message", async () => {
    const account = await newAccount();
    const raws = [rawMessage(1), rawMessage(2, 'secret attachment'), rawMessage(3)];
    const place = messagePackPlace(account.id, randomUUID(), 1);
    await storeMessages(orm.em.fork(), storage, account, await incoming(raws), place);
    const rows = await messageRows(account.id);
    const [attachment] = await env.sql<StoredBlob>('SELECT blob_key, blob_offset, size FROM message_attachment WHERE message_id = $1', [
      rows[1]!.id,
    ]);

    expect(await applyMessageAction(orm.em.fork(), storage, account.id, [rows[1]!.id], 'DELETE')).toEqual([rows[1]!.id]);
    const pack = rows[0]!.blob_key;
    const zeroed = async (stored: StoredBlob) =>
      (await storage.getRange(pack, stored.blob_offset!, stored.size)).every((byte) => byte === 0);
    expect(await zeroed(rows[1]!)).toBe(true);
    expect(await zeroed(attachment!)).toBe(true);
    expect((await storage.get(pack)).includes('secret attachment')).toBe(false);
    expect((await readStoredBlob(storage, rows[0]!)).equals(raws[0]!)).toBe(true);
    expect((await readStoredBlob(storage, rows[2]!)).equals(raws[2]!)).toBe(true);

    await applyMessageAction(orm.em.fork(), storage, account.id, [rows[0]!.id, rows[2]!.id], 'DELETE');
    expect(await storage.exists(pack)).toBe(false);
    expect(await storage.list(place.folder)).toEqual([]);
  });

  it('still deletes a message stored as a blob of its own, as before packs', async () => {
    const account = await newAccount();
    const raw = rawMessage(1);
    const key = `messages/${account.id}/legacy.eml`;
    await storage.put(key, raw);
    const id = randomUUID();
    await env.sql(
      `INSERT INTO message (id, account_id, owner_id, dedup_key, content_hash, size, headers, blob_key, created_at)
       VALUES ($1, $2, 'alice', 'sha:legacy', 'legacy', $3, '{}', $4, now())`,
      [id, account.id, raw.length, key],
    );
    const [row] = await messageRows(account.id);
    expect((await readStoredBlob(storage, row!)).equals(raw)).toBe(true);
    await applyMessageAction(orm.em.fork(), storage, account.id, [id], 'DELETE');
    expect(await storage.exists(key)).toBe(false);
  });
});

describe('removeUnrecordedPacks', () => {
  it("removes what earlier attempts wrote and never recorded, and nothing recorded or this attempt's", async () => {
    const account = await newAccount();
    const jobId = randomUUID();
    const first = messagePackPlace(account.id, jobId, 1);
    await storeMessages(orm.em.fork(), storage, account, await incoming([rawMessage(1)]), first);
    const [recorded] = await storage.list(first.folder);
    // A crash between a pack and its INSERT, as the first attempt would have left it.
    const orphan = `${first.folder}/1-${randomUUID()}.pack`;
    await storage.putParts(orphan, [rawMessage(2)]);
    // The second attempt's own pack, written but not yet recorded.
    const second = messagePackPlace(account.id, jobId, 2);
    const current = `${second.folder}/2-${randomUUID()}.pack`;
    await storage.putParts(current, [rawMessage(3)]);

    expect(await removeUnrecordedPacks(orm.em.fork(), storage, second)).toBe(1);
    expect((await storage.list(first.folder)).sort()).toEqual([recorded, current].sort());
    expect(await removeUnrecordedPacks(orm.em.fork(), storage, second)).toBe(0);
  });
});
