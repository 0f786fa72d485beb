import { createHash } from 'node:crypto';
import { isUuid } from '../engine/validation.js';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Archive, ArchiveFile } from '../db/entities/archive.entity.js';
import { pgArray } from '../db/sql.js';
import type { BlobStorage } from '../storage/blob-storage.js';
import { readStoredBlob, type StoredBlob } from './message-store.js';
import { sha256 } from './parse-message.js';

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

interface MessageRow extends StoredBlob {
  id: string;
  content_hash: string;
  has_archive: boolean;
}

interface AttachmentRow extends StoredBlob {
  message_id: string;
  content_hash: string;
  filename: string | null;
  content_type: string;
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

/**
 * Copies a message's EML and attachments; null when a source is gone, or is not what was stored
 * (its hash differs): a message deleted meanwhile has its part of a pack overwritten with zeros.
 */
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
    eml = await readStoredBlob(storage, message);
    parts = await Promise.all(attachments.map((attachment) => readStoredBlob(storage, attachment)));
  } catch (error) {
    if (isMissingFile(error)) return null;
    throw error;
  }
  if (sha256(eml) !== message.content_hash || parts.some((part, index) => sha256(part) !== attachments[index]!.content_hash)) return null;
  const files: ArchiveFile[] = [
    {
      kind: 'eml',
      key: archiveFileKey(accountId, archiveId, 'message.eml'),
      filename: `${archiveId}.eml`,
      contentType: 'message/rfc822',
      size: eml.length,
    },
    ...attachments.map(
      (attachment, index): ArchiveFile => ({
        kind: 'attachment',
        key: archiveFileKey(accountId, archiveId, `attachment-${index}`),
        filename: attachment.filename,
        contentType: attachment.content_type,
        size: parts[index]!.length,
      }),
    ),
  ];
  await Promise.all([storage.put(files[0]!.key, eml), ...parts.map((content, index) => storage.put(files[index + 1]!.key, content))]);
  return {
    messageId: message.id,
    archiveId,
    size: files.reduce((sum, file) => sum + file.size, 0),
    contentHash: message.content_hash,
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
    `SELECT m.id, m.blob_key, m.blob_offset, m.size, m.content_hash, EXISTS (SELECT 1 FROM archive a WHERE a.message_id = m.id) AS has_archive
       FROM message m WHERE m.account_id = ? AND m.id = ANY(?::uuid[])`,
    [account.id, pgArray(chunk)],
    'all',
  );
  result.missing += chunk.length - messages.length;
  result.skipped += messages.filter((message) => message.has_archive).length;
  const todo = messages.filter((message) => !message.has_archive);

  const attachments: AttachmentRow[] = todo.length
    ? await connection.execute(
        'SELECT message_id, filename, content_type, blob_key, blob_offset, size, content_hash FROM message_attachment WHERE message_id = ANY(?::uuid[]) ORDER BY message_id, blob_key, blob_offset',
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
      params.push(
        copy.archiveId,
        account.id,
        account.ownerId,
        copy.messageId,
        copy.size,
        copy.contentHash,
        JSON.stringify(copy.files),
        now,
      );
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

/** Maps an `archive` row (snake_case, as `SELECT *` or RETURNING gives it) to an Archive. */
function rowToArchive(row: Record<string, unknown>): Archive {
  return {
    id: String(row.id),
    accountId: String(row.account_id),
    ownerId: String(row.owner_id),
    messageId: String(row.message_id),
    size: Number(row.size),
    contentHash: String(row.content_hash),
    files: (row.files as ArchiveFile[]) ?? [],
    encrypted: Boolean(row.encrypted),
    createdAt: row.created_at as Date,
    deletedAt: (row.deleted_at as Date | null) ?? null,
  };
}

/** The archive with this id, or null (also for an id that is not a UUID). Access is the caller's to check. */
export async function findArchive(em: EntityManager, id: string): Promise<Archive | null> {
  if (!isUuid(id)) return null;
  const rows: Record<string, unknown>[] = await em.getConnection().execute('SELECT * FROM archive WHERE id = ?', [id], 'all');
  return rows[0] ? rowToArchive(rows[0]) : null;
}

/**
 * Moves an archive to the trash (`trashed`) or takes it out; null when the row is gone.
 * Trashing twice keeps the first instant: the purge clock does not restart.
 */
export async function setArchiveTrashed(em: EntityManager, id: string, trashed: boolean): Promise<Archive | null> {
  const rows: Record<string, unknown>[] = await em
    .getConnection()
    .execute(`UPDATE archive SET deleted_at = ${trashed ? 'COALESCE(deleted_at, now())' : 'NULL'} WHERE id = ? RETURNING *`, [id], 'all');
  return rows[0] ? rowToArchive(rows[0]) : null;
}

/** Options of `listArchives`. */
export interface ArchiveListOptions {
  accountId: string;
  /** true: only trashed archives; false: only those not in the trash. */
  inTrash: boolean;
  /** Only encrypted (true) or unencrypted (false) archives; both when null or omitted. */
  encrypted?: boolean | null;
  /** Keyset position: only archives strictly older than this `(created_at, id)`. `createdAt` is PostgreSQL's microsecond text. */
  after?: { createdAt: string; id: string } | null;
  /** Most rows returned. */
  limit: number;
}

/**
 * An account's archives, most recent first (`created_at DESC, id DESC`). Each row carries its
 * `created_at` as PostgreSQL prints it (`cursor_ts`, microseconds included) for a keyset cursor.
 * Access to the account is the caller's to check.
 */
export async function listArchives(
  em: EntityManager,
  options: ArchiveListOptions,
): Promise<{ id: string; cursor_ts: string; node: Archive }[]> {
  const clauses = ['account_id = ?', options.inTrash ? 'deleted_at IS NOT NULL' : 'deleted_at IS NULL'];
  const params: unknown[] = [options.accountId];
  if (options.encrypted != null) {
    clauses.push('encrypted = ?');
    params.push(options.encrypted);
  }
  if (options.after) {
    clauses.push('(created_at, id) < (?::timestamptz, ?::uuid)');
    params.push(options.after.createdAt, options.after.id);
  }
  const rows: (Record<string, unknown> & { id: string; cursor_ts: string })[] = await em
    .getConnection()
    .execute(
      `SELECT *, created_at::text AS cursor_ts FROM archive WHERE ${clauses.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT ?`,
      [...params, options.limit],
      'all',
    );
  return rows.map((row) => ({ id: row.id, cursor_ts: row.cursor_ts, node: rowToArchive(row) }));
}
