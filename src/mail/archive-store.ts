import { createHash } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { ArchiveFile } from '../db/entities/archive.entity.js';
import { pgArray } from '../db/sql.js';
import type { BlobStorage } from '../storage/blob-storage.js';

/**
 * An archive's id follows from its message's id, so a re-run after a crash between the blob copies
 * and the INSERT writes the same keys again instead of leaving a second copy nobody points to.
 */
export function archiveIdFor(messageId: string): string {
  const hash = createHash('sha256').update(`jobwire:archive:${messageId}`).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x80; // UUID version 8 (custom)
  hash[8] = (hash[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Blob key of one archived file: everything of an archive lives under `archives/<account>/<archive>/`. */
export function archiveFileKey(accountId: string, archiveId: string, name: string): string {
  return `archives/${accountId}/${archiveId}/${name}`;
}

interface MessageRow {
  id: string;
  blob_key: string;
  has_archive: boolean;
}

interface AttachmentRow {
  message_id: string;
  filename: string | null;
  content_type: string;
  blob_key: string;
}

/** A message's files copied into archive storage, ready for its `archive` row. */
interface CopiedMessage {
  messageId: string;
  archiveId: string;
  size: number;
  contentHash: string;
  files: ArchiveFile[];
}

function isMissingFile(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'ENOENT';
}

/** Copies a message's EML and attachments; null when a source blob is gone. */
async function copyMessage(
  storage: BlobStorage,
  accountId: string,
  message: MessageRow,
  attachments: AttachmentRow[],
): Promise<CopiedMessage | null> {
  const archiveId = archiveIdFor(message.id);
  let eml: Buffer;
  let parts: Buffer[];
  try {
    eml = await storage.get(message.blob_key);
    parts = await Promise.all(attachments.map((attachment) => storage.get(attachment.blob_key)));
  } catch (error) {
    if (isMissingFile(error)) return null;
    throw error;
  }
  const files: ArchiveFile[] = [
    { kind: 'eml', key: archiveFileKey(accountId, archiveId, 'message.eml'), filename: `${archiveId}.eml`, contentType: 'message/rfc822', size: eml.length },
    ...attachments.map((attachment, index): ArchiveFile => ({
      kind: 'attachment',
      key: archiveFileKey(accountId, archiveId, `attachment-${index}`),
      filename: attachment.filename,
      contentType: attachment.content_type,
      size: parts[index]!.length,
    })),
  ];
  await Promise.all([storage.put(files[0]!.key, eml), ...parts.map((content, index) => storage.put(files[index + 1]!.key, content))]);
  return {
    messageId: message.id,
    archiveId,
    size: files.reduce((sum, file) => sum + file.size, 0),
    contentHash: createHash('sha256').update(eml).digest('hex'),
    files,
  };
}

/** What archiving one batch did. */
export interface ArchiveBatchResult {
  /** Ids of messages archived by this call. */
  archived: string[];
  /** Messages that already had an archive. */
  skipped: number;
  /** Messages gone since they were picked, or whose stored bytes are gone. */
  missing: number;
}

/**
 * Archives one batch of an account's messages: copies each EML and its attachments into archive
 * storage, inserts the `archive` rows, marks the messages archived. Used by `archive_mails` and by
 * the ARCHIVE action of rules and retention policies, so "archived" always means a real copy.
 */
export async function archiveMessages(
  em: EntityManager,
  storage: BlobStorage,
  account: { id: string; ownerId: string },
  ids: readonly string[],
): Promise<ArchiveBatchResult> {
  const connection = em.getConnection();
  const result: ArchiveBatchResult = { archived: [], skipped: 0, missing: 0 };
  if (ids.length === 0) return result;
  const chunk = ids;
  const messages: MessageRow[] = await connection.execute(
    `SELECT m.id, m.blob_key, EXISTS (SELECT 1 FROM archive a WHERE a.message_id = m.id) AS has_archive
       FROM message m WHERE m.account_id = ? AND m.id = ANY(?::uuid[])`,
    [account.id, pgArray(chunk)],
    'all',
  );
  result.missing += chunk.length - messages.length;
  result.skipped += messages.filter((message) => message.has_archive).length;
  const todo = messages.filter((message) => !message.has_archive);

  const attachments: AttachmentRow[] = todo.length
    ? await connection.execute(
    'SELECT message_id, filename, content_type, blob_key FROM message_attachment WHERE message_id = ANY(?::uuid[]) ORDER BY message_id, blob_key',
    [pgArray(todo.map((message) => message.id))],
    'all',
      )
    : [];
  const copies = await Promise.all(
    todo.map((message) =>
      copyMessage(
    storage,
    account.id,
    message,
    attachments.filter((attachment) => attachment.message_id === message.id),
      ),
    ),
  );
  const copied = copies.filter((copy): copy is CopiedMessage => copy !== null);
  result.missing += copies.length - copied.length;

  if (copied.length > 0) {
    // Files first, then the row: a crash in between leaves files the re-run overwrites (same
    // keys), never a row whose files do not exist. A concurrent run that inserted first wins.
    const now = new Date();
    const params: unknown[] = [];
    for (const copy of copied) {
      params.push(copy.archiveId, account.id, account.ownerId, copy.messageId, copy.size, copy.contentHash, JSON.stringify(copy.files), now);
    }
    const inserted: { message_id: string }[] = await connection.execute(
      `INSERT INTO archive (id, account_id, owner_id, message_id, size, content_hash, files, encrypted, created_at)
       VALUES ${copied.map(() => '(?, ?, ?, ?, ?, ?, ?::jsonb, false, ?)').join(', ')}
       ON CONFLICT DO NOTHING RETURNING message_id`,
      params,
      'all',
    );
    result.archived.push(...inserted.map((row) => row.message_id));
    result.skipped += copied.length - inserted.length;
  }
  // Also repairs messages whose archive row a crashed run inserted without getting this far.
  await connection.execute(
    `UPDATE message m SET archived_at = now()
      WHERE m.id = ANY(?::uuid[]) AND m.archived_at IS NULL AND EXISTS (SELECT 1 FROM archive a WHERE a.message_id = m.id)`,
    [pgArray(messages.map((message) => message.id))],
    'run',
  );
  return result;
}
