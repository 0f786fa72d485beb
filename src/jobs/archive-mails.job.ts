import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ArchiveFile } from '../db/entities/archive.entity.js';
import { pgArray } from '../db/sql.js';
import { messageFilterSchema, messageFilterSql } from '../mail/message-filter.js';
import type { BlobStorage } from '../storage/blob-storage.js';
import { loadOwnedAccount } from './access.js';
import { defineJob } from './define-job.js';
import { InvalidInputError, PermanentJobError } from './errors.js';

/** Messages copied per batch: one SELECT, parallel blob copies, one multi-row INSERT, one UPDATE. */
const BATCH_SIZE = 50;

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

const archiveInputSchema = z
  .object({
    accountId: z.uuid(),
    ids: z.array(z.uuid()).max(100_000).optional().describe('Archive these messages (of the account)...'),
    filter: messageFilterSchema.optional().describe('...or the messages matching this filter.'),
  })
  .meta({ id: 'ArchiveMailsInput' });

type ArchiveInput = z.infer<typeof archiveInputSchema>;

function checkInput(input: ArchiveInput): string | null {
  return (input.ids === undefined) === (input.filter === undefined) ? 'give exactly one of ids or filter' : null;
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

export const archiveMailsJob = defineJob({
  name: 'archive_mails',
  description:
    "Copies each picked message's raw EML and attachments into archive storage, records an `archive` row and marks the message archived. Messages already archived are skipped.",
  graphql: { mutation: 'archiveMails', typeName: 'ArchiveMailsJob' },
  unit: 'messages',
  args: z.object({ input: archiveInputSchema }),
  input: archiveInputSchema,
  output: z
    .object({
      matched: z.number().int().describe('Messages picked.'),
      archived: z.number().int().describe('Messages archived by this run.'),
      skipped: z.number().int().describe('Messages that already had an archive.'),
      missing: z.number().int().describe('Messages deleted since they were picked, or whose stored bytes are gone; not archived.'),
    })
    .meta({ id: 'ArchiveMailsOutput' }),
  async prepare({ input }, ctx) {
    const problem = checkInput(input);
    if (problem) throw new InvalidInputError(problem);
    const account = await loadOwnedAccount(ctx.em, input.accountId, ctx);
    return { input, accountId: account.id };
  },
  async handler(input, ctx) {
    const problem = checkInput(input);
    if (problem) throw new PermanentJobError(problem);
    // Access was checked when the job was queued (an admin may archive anyone's mail); here the
    // account only has to still exist.
    const account = await loadOwnedAccount(ctx.em, input.accountId, { ownerId: ctx.ownerId, isAdmin: true }).catch(() => {
      throw new PermanentJobError(`account ${input.accountId} no longer exists`);
    });
    const connection = ctx.em.getConnection();

    // Fixed up front: archiving changes what an `archived: false` filter matches.
    let ids: string[];
    if (input.ids) {
      const rows: { id: string }[] = await connection.execute(
        'SELECT id FROM message WHERE account_id = ? AND id = ANY(?::uuid[]) ORDER BY id',
        [account.id, pgArray(input.ids)],
        'all',
      );
      ids = rows.map((row) => row.id);
    } else {
      const where = messageFilterSql(account.id, input.filter);
      const rows: { id: string }[] = await connection.execute(`SELECT id FROM message WHERE ${where.sql} ORDER BY id`, where.params, 'all');
      ids = rows.map((row) => row.id);
    }
    ctx.progress({ processed: 0, total: ids.length, message: 'archiving' });

    const result = { matched: ids.length, archived: 0, skipped: 0, missing: 0 };
    for (let start = 0; start < ids.length; start += BATCH_SIZE) {
      ctx.checkpoint();
      const chunk = ids.slice(start, start + BATCH_SIZE);
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
            ctx.storage,
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
        result.archived += inserted.length;
        result.skipped += copied.length - inserted.length;
      }
      // Also repairs messages whose archive row a crashed run inserted without getting this far.
      await connection.execute(
        `UPDATE message m SET archived_at = now()
          WHERE m.id = ANY(?::uuid[]) AND m.archived_at IS NULL AND EXISTS (SELECT 1 FROM archive a WHERE a.message_id = m.id)`,
        [pgArray(messages.map((message) => message.id))],
        'run',
      );
      ctx.progress({ processed: Math.min(start + BATCH_SIZE, ids.length), message: 'archiving' });
    }
    ctx.progress({ processed: ids.length, total: ids.length, message: 'archived' });
    return result;
  },
});
