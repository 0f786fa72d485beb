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

/** Blob key of a message's raw bytes: content-addressed, so a re-run writes the same file again. */
export function rawMessageKey(accountId: string, contentHash: string): string {
  return `messages/${accountId}/${contentHash}.eml`;
}

export function attachmentKey(accountId: string, messageHash: string, index: number): string {
  return `messages/${accountId}/${messageHash}.att-${index}`;
}

// PostgreSQL text cannot hold NUL; some real-world mail carries it in bodies.
function clean(text: string | null): string | null {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: PostgreSQL text cannot hold NUL, so it is removed on purpose
  return text === null || !text.includes('\u0000') ? text : text.replace(/\u0000/g, '');
}

/**
 * Stores a batch of messages for one account: blobs first, then one multi-row INSERT that skips
 * messages already present (same Message-ID, else same content hash), then their attachments.
 * A crash anywhere leaves at most blobs that a re-run overwrites; no message is stored twice.
 */
export async function storeMessages(
  em: EntityManager,
  storage: BlobStorage,
  account: { id: string; ownerId: string },
  batch: IncomingMessage[],
): Promise<StoreResult> {
  if (batch.length === 0) return { inserted: 0, duplicates: 0 };
  // Within a batch, the first copy wins, exactly as across batches.
  const unique = new Map<string, IncomingMessage>();
  for (const message of batch) {
    const key = dedupKey(message.parsed);
    if (!unique.has(key)) unique.set(key, message);
  }

  await Promise.all(
    [...unique.values()].flatMap(({ raw, parsed }) => [
      storage.put(rawMessageKey(account.id, parsed.contentHash), raw),
      ...parsed.attachments.map((attachment, index) =>
        storage.put(attachmentKey(account.id, parsed.contentHash, index), attachment.content),
      ),
    ]),
  );

  const now = new Date();
  const rows = [...unique.entries()].map(([key, { parsed }]) => ({ id: randomUUID(), key, parsed }));
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
    'created_at',
  ];
  const params: unknown[] = [];
  for (const { id, key, parsed } of rows) {
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
      rawMessageKey(account.id, parsed.contentHash),
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
  for (const { id, parsed } of rows) {
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
        attachmentKey(account.id, parsed.contentHash, index),
      );
    });
  }
  if (attachmentRows > 0) {
    await runBound(
      em,
      `INSERT INTO message_attachment (id, message_id, filename, content_type, size, content_hash, blob_key) VALUES ${Array.from(
        { length: attachmentRows },
        () => '(?, ?, ?, ?, ?, ?, ?)',
      ).join(', ')}`,
      attachmentParams,
    );
  }
  return { inserted: insertedIds.size, duplicates: batch.length - insertedIds.size };
}
