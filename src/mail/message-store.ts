import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { pgArray, runBound } from '../db/sql.js';
import type { BlobStorage } from '../storage/blob-storage.js';
import { dedupKey, type ParsedMessage } from './parse-message.js';

/** A parsed message with its raw bytes, ready to be stored. */
export interface IncomingMessage {
  raw: Buffer;
  parsed: ParsedMessage;
}

export interface StoreResult {
  inserted: number;
  duplicates: number;
}

/**
 * Where one attempt of one job writes packs for one account, and which attempt it is. A pack holds
 * the raw bytes and the attachments of one stored batch: one file per batch instead of one per
 * message and attachment (creating files was most of an import's CPU time on a journaling disk).
 * A folder per job and the run and attempt in each name let a later attempt find what an earlier
 * one wrote but never recorded; the job's row fences the attempts (see {@link storeMessages}).
 */
export interface PackPlace {
  folder: string;
  jobId: string;
  run: number;
  attempt: number;
}

export function messagePackPlace(accountId: string, job: { jobId: string; run: number; attempt: number }): PackPlace {
  return { folder: messagePackFolder(accountId, job.jobId), jobId: job.jobId, run: job.run, attempt: job.attempt };
}

/** A pack's name: `<run>.<attempt>-<uuid>.pack`. */
function packKeyFor(place: PackPlace): string {
  return `${place.folder}/${place.run}.${place.attempt}-${randomUUID()}.pack`;
}

/** Whether a pack of `place`'s folder was written by an attempt before `place`'s. */
function writtenBefore(key: string, place: PackPlace): boolean {
  const match = /^(\d+)\.(\d+)-/.exec(key.slice(place.folder.length + 1));
  if (!match) return false;
  const [run, attempt] = [Number(match[1]), Number(match[2])];
  return run < place.run || (run === place.run && attempt < place.attempt);
}

/** The batch of an attempt that is no longer the job's current one: a newer attempt has the job. */
export class SupersededAttemptError extends Error {
  constructor(place: PackPlace) {
    super(
      `attempt ${place.attempt} of run ${place.run} of job ${place.jobId} is no longer the job's current attempt; its batch was not stored`,
    );
    this.name = 'SupersededAttemptError';
  }
}

/** Where a stored message's or attachment's bytes are: `size` bytes at `blob_offset` (null: a blob of its own). */
export interface StoredBlob {
  blob_key: string;
  blob_offset: number | null;
  size: number;
}

/** A stored message's or attachment's bytes, or the first `maxBytes` of them. */
export async function readStoredBlob(storage: BlobStorage, stored: StoredBlob, maxBytes = stored.size): Promise<Buffer> {
  const length = Math.min(stored.size, maxBytes);
  const bytes = await storage.getRange(stored.blob_key, stored.blob_offset ?? 0, length);
  if (bytes.length < length)
    throw new Error(`blob ${stored.blob_key} ends before the ${length} bytes recorded at ${stored.blob_offset ?? 0}`);
  return bytes;
}

/** `text` cut to a column's length: one odd header must not fail its whole batch. */
function fitting(text: string | null, length: number): string | null {
  return text === null || text.length <= length ? text : text.slice(0, length);
}

// PostgreSQL text cannot hold NUL; some real-world mail carries it in bodies.
function clean(text: string | null): string | null {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: PostgreSQL text cannot hold NUL, so it is removed on purpose
  return text === null || !text.includes('\u0000') ? text : text.replace(/\u0000/g, '');
}

/**
 * Stores a batch of messages for one account: the messages not already held, and their
 * attachments, written as one pack, then recorded in one transaction (a multi-row INSERT that skips
 * messages already present, same Message-ID else same content hash, then their attachments).
 *
 * The transaction first takes a share lock on the job's row, still ACTIVE on this attempt: a
 * stalled attempt still running can no longer record a batch once a newer attempt has started
 * (the newer one's start waits for the lock), and the newer attempt's {@link removeUnrecordedPacks}
 * then sees every batch an older one recorded. A crash before the commit leaves an unrecorded pack
 * for that; no message is stored twice, and no row refers to bytes that are not there.
 */
export async function storeMessages(
  em: EntityManager,
  storage: BlobStorage,
  account: { id: string; ownerId: string },
  batch: IncomingMessage[],
  place: PackPlace,
): Promise<StoreResult> {
  if (batch.length === 0) return { inserted: 0, duplicates: 0 };
  // Within a batch, the first copy wins, exactly as across batches.
  const unique = new Map<string, IncomingMessage>();
  for (const message of batch) {
    const key = dedupKey(message.parsed);
    if (!unique.has(key)) unique.set(key, message);
  }
  // Messages already held are left out of the pack (a re-run after a crash holds most of its file);
  // one stored meanwhile by a concurrent import is still skipped by the INSERT below.
  const held = await runBound<{ dedup_key: string }>(
    em,
    'SELECT dedup_key FROM message WHERE account_id = ? AND dedup_key = ANY(?::text[])',
    [account.id, pgArray([...unique.keys()])],
  );
  for (const row of held) unique.delete(row.dedup_key);
  if (unique.size === 0) return { inserted: 0, duplicates: batch.length };

  const packKey = packKeyFor(place);
  const offsets = await storage.putParts(
    packKey,
    [...unique.values()].flatMap(({ raw, parsed }) => [raw, ...parsed.attachments.map((attachment) => attachment.content)]),
  );
  const rows = packedRows(unique, offsets);
  let inserted: Set<string>;
  try {
    inserted = await em.transactional(async (transaction) => {
      const current = await runBound(
        transaction,
        "SELECT 1 FROM job WHERE id = ? AND run = ? AND attempts = ? AND status = 'ACTIVE' FOR SHARE",
        [place.jobId, place.run, place.attempt],
      );
      if (current.length === 0) throw new SupersededAttemptError(place);
      return insertRows(transaction, account, rows, packKey);
    });
  } catch (error) {
    // Nothing of the batch was recorded: the pack goes, unless (commit outcome unknown) a row refers to it.
    const unreferenced = await unreferencedBlobs(em, [packKey]).catch(() => []);
    if (unreferenced.length > 0) await storage.delete(packKey).catch(() => {});
    throw error;
  }
  if (inserted.size === 0) {
    await storage.delete(packKey);
    await storage.deleteFolderIfEmpty(place.folder);
  } else {
    // A message a concurrent import stored first is in this pack too, and no row refers to its part:
    // overwritten now, so that deleting that message later leaves no copy of it behind.
    const orphaned = rows.filter((row) => !inserted.has(row.id));
    await Promise.all(
      orphaned.flatMap((row) => [
        storage.zeroRange(packKey, row.offset, row.parsed.size),
        ...row.parsed.attachments.map((attachment, index) => storage.zeroRange(packKey, row.attachmentOffsets[index]!, attachment.size)),
      ]),
    );
  }
  return { inserted: inserted.size, duplicates: batch.length - inserted.size };
}

interface PackedRow {
  id: string;
  key: string;
  parsed: ParsedMessage;
  /** Where the message's raw bytes start in the pack. */
  offset: number;
  /** Where each of its attachments starts in the pack. */
  attachmentOffsets: number[];
}

/** The batch's rows, with where each message and attachment starts in the pack (each message, then its attachments). */
function packedRows(unique: Map<string, IncomingMessage>, offsets: number[]): PackedRow[] {
  let part = 0;
  return [...unique.entries()].map(([key, { parsed }]) => {
    const row: PackedRow = { id: randomUUID(), key, parsed, offset: offsets[part++]!, attachmentOffsets: [] };
    for (let index = 0; index < parsed.attachments.length; index++) row.attachmentOffsets.push(offsets[part++]!);
    return row;
  });
}

/** Inserts the rows whose bytes are in `packKey`; the ids of the messages inserted (not already held). */
async function insertRows(
  em: EntityManager,
  account: { id: string; ownerId: string },
  rows: PackedRow[],
  packKey: string,
): Promise<Set<string>> {
  const now = new Date();
  const columns = [
    'id',
    'account_id',
    'owner_id',
    'dedup_key',
    'message_id',
    'content_hash',
    'subject',
    'from_address',
    'from_name',
    'to_addresses',
    'cc_addresses',
    'date',
    'size',
    'headers',
    'text_body',
    'html_body',
    'attachment_count',
    'blob_key',
    'blob_offset',
    'created_at',
  ];
  const params: unknown[] = [];
  for (const { id, key, parsed, offset } of rows) {
    params.push(
      id,
      account.id,
      account.ownerId,
      key,
      parsed.messageId,
      parsed.contentHash,
      clean(parsed.subject),
      fitting(clean(parsed.from?.address ?? null), 320),
      clean(parsed.from?.name ?? null),
      pgArray(parsed.to.map((address) => clean(address)!)),
      pgArray(parsed.cc.map((address) => clean(address)!)),
      parsed.date,
      parsed.size,
      JSON.stringify(parsed.headers).replace(/\\u0000/g, ''),
      clean(parsed.textBody),
      clean(parsed.htmlBody),
      parsed.attachments.length,
      packKey,
      offset,
      now,
    );
  }
  const placeholders = rows.map(() => `(${columns.map(() => '?').join(', ')})`).join(', ');
  const inserted = await runBound<{ id: string }>(
    em,
    `INSERT INTO message (${columns.join(', ')}) VALUES ${placeholders} ON CONFLICT (account_id, dedup_key) DO NOTHING RETURNING id`,
    params,
  );

  const insertedIds = new Set(inserted.map((row) => row.id));
  const attachmentParams: unknown[] = [];
  let attachmentRows = 0;
  for (const { id, parsed, attachmentOffsets } of rows) {
    if (!insertedIds.has(id)) continue;
    parsed.attachments.forEach((attachment, index) => {
      attachmentRows++;
      attachmentParams.push(
        randomUUID(),
        id,
        clean(attachment.filename),
        fitting(clean(attachment.contentType), 255),
        attachment.size,
        attachment.contentHash,
        packKey,
        attachmentOffsets[index],
      );
    });
  }
  if (attachmentRows > 0) {
    await runBound(
      em,
      `INSERT INTO message_attachment (id, message_id, filename, content_type, size, content_hash, blob_key, blob_offset) VALUES ${Array.from(
        { length: attachmentRows },
        () => '(?, ?, ?, ?, ?, ?, ?, ?)',
      ).join(', ')}`,
      attachmentParams,
    );
  }
  return insertedIds;
}

/**
 * Removes the packs earlier attempts of this job wrote and no row refers to: an attempt that
 * crashed between its pack and its commit. Run when an attempt starts, before it writes its own;
 * an earlier attempt can record nothing any more (see {@link storeMessages}).
 */
export async function removeUnrecordedPacks(em: EntityManager, storage: BlobStorage, place: PackPlace): Promise<number> {
  return removeUnreferencedPacks(em, storage, place.folder, (key) => writtenBefore(key, place));
}

/**
 * Removes every pack of a job that has ended for good that no row refers to. Under a share lock on
 * the job's row, still final: a retry by hand, or an attempt starting, waits for it, so no attempt
 * can be about to record a pack removed here. A job no longer final is left alone.
 */
export async function removeUnrecordedPacksOfEndedJob(
  em: EntityManager,
  storage: BlobStorage,
  job: { accountId: string; jobId: string },
): Promise<number> {
  return em.transactional(async (transaction) => {
    const ended = await runBound(
      transaction,
      "SELECT 1 FROM job WHERE id = ? AND status IN ('COMPLETED', 'FAILED', 'CANCELLED') FOR SHARE",
      [job.jobId],
    );
    if (ended.length === 0) return 0;
    return removeUnreferencedPacks(transaction, storage, messagePackFolder(job.accountId, job.jobId), () => true);
  });
}

async function removeUnreferencedPacks(
  em: EntityManager,
  storage: BlobStorage,
  folder: string,
  candidate: (key: string) => boolean,
): Promise<number> {
  const packs = (await storage.list(folder)).filter(candidate);
  if (packs.length === 0) return 0;
  const unreferenced = await unreferencedBlobs(em, packs);
  await Promise.all(unreferenced.map((key) => storage.delete(key)));
  await storage.deleteFolderIfEmpty(folder);
  return unreferenced.length;
}

/** The folder of one job's packs for one account. */
export function messagePackFolder(accountId: string, jobId: string): string {
  return `messages/${accountId}/packs/${jobId}`;
}

/** Of these blob keys, those no message or attachment row refers to any more. */
export async function unreferencedBlobs(em: EntityManager, keys: readonly string[]): Promise<string[]> {
  const referenced = await runBound<{ blob_key: string }>(
    em,
    `SELECT blob_key FROM message WHERE blob_key = ANY(?::text[])
     UNION SELECT blob_key FROM message_attachment WHERE blob_key = ANY(?::text[])`,
    [pgArray(keys), pgArray(keys)],
  );
  const kept = new Set(referenced.map((row) => row.blob_key));
  return keys.filter((key) => !kept.has(key));
}
