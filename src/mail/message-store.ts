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
 * Where one attempt of one job writes packs for one account. A pack holds the raw bytes and the
 * attachments of one stored batch: one file per batch instead of one per message and attachment
 * (creating files was most of an import's CPU time on a journaling disk). A folder per job and the
 * attempt in each name let a later attempt find what a crashed one wrote but never recorded.
 */
export interface PackPlace {
  folder: string;
  attempt: number;
}

export function messagePackPlace(accountId: string, jobId: string, attempt: number): PackPlace {
  return { folder: `messages/${accountId}/packs/${jobId}`, attempt };
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

// PostgreSQL text cannot hold NUL; some real-world mail carries it in bodies.
function clean(text: string | null): string | null {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: PostgreSQL text cannot hold NUL, so it is removed on purpose
  return text === null || !text.includes('\u0000') ? text : text.replace(/\u0000/g, '');
}

/**
 * Stores a batch of messages for one account: the messages not already held, and their
 * attachments, written as one pack, then one multi-row INSERT that skips messages
 * already present (same Message-ID, else same content hash), then their attachments. A crash before
 * the INSERT leaves an unrecorded pack, which {@link removeUnrecordedPacks} finds; no message is
 * stored twice.
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

  const packKey = `${place.folder}/${place.attempt}-${randomUUID()}.pack`;
  const offsets = await storage.putParts(
    packKey,
    [...unique.values()].flatMap(({ raw, parsed }) => [raw, ...parsed.attachments.map((attachment) => attachment.content)]),
  );
  try {
    const insertedIds = await insertRows(em, account, unique, packKey, offsets);
    if (insertedIds === 0) await storage.delete(packKey);
    return { inserted: insertedIds, duplicates: batch.length - insertedIds };
  } catch (error) {
    await storage.delete(packKey).catch(() => {});
    throw error;
  }
}

/** The rows of a batch whose bytes are in `packKey` at `offsets` (each message, then its attachments). */
async function insertRows(
  em: EntityManager,
  account: { id: string; ownerId: string },
  unique: Map<string, IncomingMessage>,
  packKey: string,
  offsets: number[],
): Promise<number> {
  const now = new Date();
  let part = 0;
  const rows = [...unique.entries()].map(([key, { parsed }]) => {
    const row = { id: randomUUID(), key, parsed, offset: offsets[part]!, attachmentOffsets: [] as number[] };
    part++;
    for (let index = 0; index < parsed.attachments.length; index++) row.attachmentOffsets.push(offsets[part++]!);
    return row;
  });
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
      parsed.from?.address ?? null,
      clean(parsed.from?.name ?? null),
      pgArray(parsed.to),
      pgArray(parsed.cc),
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
        attachment.contentType,
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
  return insertedIds.size;
}

/**
 * Removes the packs earlier attempts of this job wrote and no row refers to: an attempt that
 * crashed between its pack and its INSERT. Run before the attempt writes its own.
 */
export async function removeUnrecordedPacks(em: EntityManager, storage: BlobStorage, place: PackPlace): Promise<number> {
  const earlier = (await storage.list(place.folder)).filter((key) => {
    const attempt = Number.parseInt(key.slice(place.folder.length + 1), 10);
    return attempt < place.attempt;
  });
  if (earlier.length === 0) return 0;
  const unreferenced = await unreferencedBlobs(em, earlier);
  await Promise.all(unreferenced.map((key) => storage.delete(key)));
  return unreferenced.length;
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
