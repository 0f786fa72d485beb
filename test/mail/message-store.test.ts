/**
 * Message storage (src/mail/message-store.ts): a stored batch is one pack, each message and
 * attachment a slice of it that reads back byte for byte; a deleted message's bytes are gone at
 * once, its pack once nothing refers to it; packs a crashed attempt left unrecorded are found by
 * the next attempt.
 */
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initOrm, type Orm } from '../../src/db/orm.js';
import { archiveMessages } from '../../src/mail/archive-store.js';
import { applyMessageAction } from '../../src/mail/message-actions.js';
import {
  type IncomingMessage,
  messagePackPlace,
  type PackPlace,
  readStoredBlob,
  removeUnrecordedPacks,
  removeUnrecordedPacksOfEndedJob,
  type StoredBlob,
  storeMessages,
  SupersededAttemptError,
} from '../../src/mail/message-store.js';
import { dedupKey, parseMessage } from '../../src/mail/parse-message.js';
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

function rawMessage(index: number, attachment?: string, attachmentType = 'text/plain'): Buffer {
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
      `Content-Type: ${attachmentType}; name="note.txt"`,
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

/** A job row ACTIVE on `run`/`attempt`, as the worker's start leaves it; the place its attempt writes packs to. */
async function activeJob(accountId: string, run = 1, attempt = 1): Promise<PackPlace> {
  const jobId = randomUUID();
  await env.sql(
    `INSERT INTO job (id, type, status, run, attempts, max_attempts, payload, trigger, owner_id, created_at, updated_at)
     VALUES ($1, 'import_mbox', 'ACTIVE', $2, $3, 3, '{}', 'API', 'alice', now(), now())`,
    [jobId, run, attempt],
  );
  return messagePackPlace(accountId, { jobId, run, attempt });
}

/** The job's next attempt has started, as the worker's start leaves its row; its place. */
async function nextAttempt(place: PackPlace, run = place.run, attempt = run === place.run ? place.attempt + 1 : 1): Promise<PackPlace> {
  await env.sql('UPDATE job SET run = $2, attempts = $3 WHERE id = $1', [place.jobId, run, attempt]);
  return { ...place, run, attempt };
}

/** Storage whose pack writes wait, once written, until the test lets them go on. */
class GatedStorage extends BlobStorage {
  private release!: () => void;
  private readonly gate = new Promise<void>((resolve) => {
    this.release = resolve;
  });
  readonly written: Promise<void>;
  private markWritten!: () => void;
  constructor(root: string) {
    super(root);
    this.written = new Promise((resolve) => {
      this.markWritten = resolve;
    });
  }
  override async putParts(key: string, parts: readonly Uint8Array[]): Promise<number[]> {
    const offsets = await super.putParts(key, parts);
    this.markWritten();
    await this.gate;
    return offsets;
  }
  open(): void {
    this.release();
  }
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
    const place = await activeJob(account.id);
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
    const place = await activeJob(account.id);
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
    const place = await activeJob(account.id);
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

  it('makes no archive of a message deleted while it is being copied (its part of the pack reads as zeros)', async () => {
    const account = await newAccount();
    await storeMessages(orm.em.fork(), storage, account, await incoming([rawMessage(1), rawMessage(2)]), await activeJob(account.id));
    const [victim] = await messageRows(account.id);
    // The DELETE commits between the archive's SELECT and its read of the bytes.
    class DeletingStorage extends BlobStorage {
      override async getRange(key: string, offset: number, length: number): Promise<Buffer> {
        await applyMessageAction(orm.em.fork(), storage, account.id, [victim!.id], 'DELETE');
        return super.getRange(key, offset, length);
      }
    }
    const result = await archiveMessages(orm.em.fork(), new DeletingStorage(env.vars.STORAGE_DIR!), account, [victim!.id]);
    expect(result).toEqual({ archived: [], skipped: 0, missing: 1 });
    expect(await env.sql('SELECT id FROM archive WHERE message_id = $1', [victim!.id])).toEqual([]);
  });

  it('still reads, archives and deletes a message stored as a blob of its own, as before packs', async () => {
    const account = await newAccount();
    const raw = rawMessage(1);
    const key = `messages/${account.id}/legacy.eml`;
    await storage.put(key, raw);
    const id = randomUUID();
    await env.sql(
      `INSERT INTO message (id, account_id, owner_id, dedup_key, content_hash, size, headers, blob_key, created_at)
       VALUES ($1, $2, 'alice', 'sha:legacy', $3, $4, '{}', $5, now())`,
      [id, account.id, createHash('sha256').update(raw).digest('hex'), raw.length, key],
    );
    const [row] = await messageRows(account.id);
    expect((await readStoredBlob(storage, row!)).equals(raw)).toBe(true);
    expect((await archiveMessages(orm.em.fork(), storage, account, [id])).archived).toEqual([id]);
    await applyMessageAction(orm.em.fork(), storage, account.id, [id], 'DELETE');
    expect(await storage.exists(key)).toBe(false);
  });
});

describe('attempts of one job', () => {
  it("removes what earlier attempts wrote and never recorded, and nothing recorded or this attempt's", async () => {
    const account = await newAccount();
    const first = await activeJob(account.id);
    await storeMessages(orm.em.fork(), storage, account, await incoming([rawMessage(1)]), first);
    const [recorded] = await storage.list(first.folder);
    // A crash between a pack and its commit, as the first attempt would have left it.
    const orphan = `${first.folder}/1.1-${randomUUID()}.pack`;
    await storage.putParts(orphan, [rawMessage(2)]);
    // The second attempt's own pack, written but not yet recorded.
    const second = await nextAttempt(first);
    const current = `${second.folder}/1.2-${randomUUID()}.pack`;
    await storage.putParts(current, [rawMessage(3)]);

    expect(await removeUnrecordedPacks(orm.em.fork(), storage, second)).toBe(1);
    expect((await storage.list(first.folder)).sort()).toEqual([recorded, current].sort());
    expect(await removeUnrecordedPacks(orm.em.fork(), storage, second)).toBe(0);
  });

  it("removes an unrecorded pack of an earlier run's later attempt (a retry by hand starts at attempt 1)", async () => {
    const account = await newAccount();
    const third = await activeJob(account.id, 1, 3);
    const orphan = `${third.folder}/1.3-${randomUUID()}.pack`;
    await storage.putParts(orphan, [rawMessage(1)]);
    const retried = await nextAttempt(third, 2);
    expect(await removeUnrecordedPacks(orm.em.fork(), storage, retried)).toBe(1);
    expect(await storage.exists(orphan)).toBe(false);
  });

  it('refuses the batch of an attempt a newer one superseded, and leaves neither rows nor a pack', async () => {
    const account = await newAccount();
    const stale = await activeJob(account.id);
    await nextAttempt(stale);
    await expect(storeMessages(orm.em.fork(), storage, account, await incoming([rawMessage(1)]), stale)).rejects.toBeInstanceOf(
      SupersededAttemptError,
    );
    expect(await messageRows(account.id)).toEqual([]);
    expect(await storage.list(stale.folder)).toEqual([]);
  });

  it("never lets a stalled attempt record a pack the newer attempt's clean-up already removed", async () => {
    const account = await newAccount();
    const stale = await activeJob(account.id);
    const gated = new GatedStorage(env.vars.STORAGE_DIR!);
    const storing = storeMessages(orm.em.fork(), gated, account, await incoming([rawMessage(1)]), stale);
    await gated.written;
    // The newer attempt starts and cleans up while the stalled one's pack waits for its INSERT.
    const newer = await nextAttempt(stale);
    expect(await removeUnrecordedPacks(orm.em.fork(), storage, newer)).toBe(1);
    gated.open();
    await expect(storing).rejects.toBeInstanceOf(SupersededAttemptError);
    expect(await messageRows(account.id)).toEqual([]);
  });
});

describe('the clean-up once a job has ended', () => {
  it('removes unrecorded packs only while the job is final, and keeps recorded ones', async () => {
    const account = await newAccount();
    const place = await activeJob(account.id);
    await storeMessages(orm.em.fork(), storage, account, await incoming([rawMessage(1)]), place);
    const [recorded] = await storage.list(place.folder);
    // An attempt of the job, still ACTIVE, has written this pack and not yet committed it.
    const inFlight = `${place.folder}/1.1-${randomUUID()}.pack`;
    await storage.putParts(inFlight, [rawMessage(2)]);
    const ended = { accountId: account.id, jobId: place.jobId };

    expect(await removeUnrecordedPacksOfEndedJob(orm.em.fork(), storage, ended)).toBe(0);
    expect(await storage.exists(inFlight)).toBe(true);
    await env.sql("UPDATE job SET status = 'COMPLETED' WHERE id = $1", [place.jobId]);
    expect(await removeUnrecordedPacksOfEndedJob(orm.em.fork(), storage, ended)).toBe(1);
    expect(await storage.list(place.folder)).toEqual([recorded]);
  });
});

describe('messages with odd headers', () => {
  it('keys a Message-ID by its hash only when its key would not fit the column or its index', () => {
    const id = (length: number, unit = 'a') => unit.repeat(length);
    expect(dedupKey({ messageId: id(1_020), contentHash: 'h' })).toBe(`mid:${id(1_020)}`);
    expect(dedupKey({ messageId: id(1_021), contentHash: 'h' })).toMatch(/^mid-sha:[0-9a-f]{64}$/);
    // 950 characters of three bytes each: within the column, past the index's 2,704 bytes.
    expect(dedupKey({ messageId: id(950, '漢'), contentHash: 'h' })).toMatch(/^mid-sha:/);
  });

  it('stores a batch holding a very long non-ASCII Message-ID, an encoded NUL in a sender and a Message-ID', async () => {
    const account = await newAccount();
    const longId = Buffer.from(
      ['From: a@example.com', 'Subject: long id', `Message-ID: <${'漢'.repeat(950)}@example.com>`, '', 'body', ''].join('\r\n'),
    );
    const nulSender = Buffer.from(
      [
        'From: <x=?utf-8?q?=00?=@example.com>',
        'Subject: nul sender',
        'Message-ID: <nul=?utf-8?q?=00?=id@example.com>',
        '',
        'body',
        '',
      ].join('\r\n'),
    );
    const raws = [rawMessage(1), longId, nulSender];
    expect(await storeMessages(orm.em.fork(), storage, account, await incoming(raws), await activeJob(account.id))).toEqual({
      inserted: 3,
      duplicates: 0,
    });
    const rows = await messageRows(account.id);
    for (const row of rows) expect((await readStoredBlob(storage, row)).equals(raws.find((raw) => raw.includes(row.subject))!)).toBe(true);
  });
});

describe('concurrent imports into one account', () => {
  it('overwrites the part of a pack whose message another import stored first, so deleting it leaves no copy', async () => {
    const account = await newAccount();
    const [x, y] = await incoming([rawMessage(100, 'x attachment'), rawMessage(101)]);
    const gated = new GatedStorage(env.vars.STORAGE_DIR!);
    const slow = activeJob(account.id).then((place) => storeMessages(orm.em.fork(), gated, account, [x!, y!], place));
    await gated.written;
    // Another import stores X while the first one's pack (X and Y) waits for its INSERT.
    expect(await storeMessages(orm.em.fork(), storage, account, [x!], await activeJob(account.id))).toEqual({ inserted: 1, duplicates: 0 });
    gated.open();
    expect(await slow).toEqual({ inserted: 1, duplicates: 1 });

    const rows = await messageRows(account.id);
    const yRow = rows.find((row) => row.subject === 'message 101')!;
    const xRow = rows.find((row) => row.subject === 'message 100')!;
    expect((await readStoredBlob(storage, yRow)).equals(y!.raw)).toBe(true);
    expect((await storage.get(yRow.blob_key)).includes('Body of message 100.')).toBe(false);
    await applyMessageAction(orm.em.fork(), storage, account.id, [xRow.id], 'DELETE');
    expect(await storage.exists(xRow.blob_key)).toBe(false);
  });

  it('stores a message whose attachment type is longer than its column, cut to fit, with its bytes', async () => {
    const account = await newAccount();
    const raws = [rawMessage(1), rawMessage(2, 'odd type', `application/x-${'a'.repeat(300)}`)];
    expect(await storeMessages(orm.em.fork(), storage, account, await incoming(raws), await activeJob(account.id))).toEqual({
      inserted: 2,
      duplicates: 0,
    });
    const [attachment] = await env.sql<StoredBlob & { content_type: string }>(
      'SELECT a.content_type, a.blob_key, a.blob_offset, a.size FROM message_attachment a JOIN message m ON m.id = a.message_id WHERE m.account_id = $1',
      [account.id],
    );
    expect(attachment!.content_type).toHaveLength(255);
    expect((await readStoredBlob(storage, attachment!)).toString()).toBe('odd type');
  });
});
