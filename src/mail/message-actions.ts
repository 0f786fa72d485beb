import type { EntityManager } from '@mikro-orm/postgresql';
import { pgArray, runBound } from '../db/sql.js';
import type { BlobStorage } from '../storage/blob-storage.js';
import { archiveMessages } from './archive-store.js';
import { type StoredBlob, unreferencedBlobs } from './message-store.js';

/** Everything bulk operations, rules and retention policies can do to messages. */
export const MESSAGE_ACTIONS = [
  'TRASH',
  'RESTORE',
  'DELETE',
  'ARCHIVE',
  'MARK_READ',
  'MARK_UNREAD',
  'STAR',
  'UNSTAR',
  'ADD_LABEL',
  'REMOVE_LABEL',
] as const;

export type MessageAction = (typeof MESSAGE_ACTIONS)[number];
type UpdateAction = Exclude<MessageAction, 'DELETE' | 'ARCHIVE'>;

/**
 * The UPDATE each non-destructive action makes, and the condition of rows it would leave as they
 * are (skipped, so `affected` counts real changes only). Every `?` is the label.
 */
const UPDATES: Record<UpdateAction, { set: string; unchanged: string }> = {
  TRASH: { set: 'deleted_at = COALESCE(deleted_at, now())', unchanged: 'deleted_at IS NOT NULL' },
  RESTORE: { set: 'deleted_at = NULL', unchanged: 'deleted_at IS NULL' },
  MARK_READ: { set: 'is_read = true', unchanged: 'is_read' },
  MARK_UNREAD: { set: 'is_read = false', unchanged: 'NOT is_read' },
  STAR: { set: 'is_starred = true', unchanged: 'is_starred' },
  UNSTAR: { set: 'is_starred = false', unchanged: 'NOT is_starred' },
  ADD_LABEL: { set: 'labels = CASE WHEN ? = ANY(labels) THEN labels ELSE array_append(labels, ?) END', unchanged: '? = ANY(labels)' },
  REMOVE_LABEL: { set: 'labels = array_remove(labels, ?)', unchanged: 'NOT (? = ANY(labels))' },
};

/** Whether the action needs a label. */
export function actionTakesLabel(action: MessageAction): boolean {
  return action === 'ADD_LABEL' || action === 'REMOVE_LABEL';
}

const placeholders = (sql: string): number => sql.split('?').length - 1;

/**
 * Deletes the bytes of deleted rows: a blob of its own at once; a pack once no row refers to it,
 * and until then the deleted rows' parts of it are overwritten with zeros, so that a deleted
 * message's content is gone at once even while the rest of its batch stays.
 */
async function deleteStoredBlobs(em: EntityManager, storage: BlobStorage, rows: readonly StoredBlob[]): Promise<void> {
  const own = rows.filter((row) => row.blob_offset === null).map((row) => row.blob_key);
  const packs = [...new Set(rows.filter((row) => row.blob_offset !== null).map((row) => row.blob_key))];
  const emptied = new Set(packs.length > 0 ? await unreferencedBlobs(em, packs) : []);
  await Promise.all([
    ...[...own, ...emptied].map((key) => storage.delete(key)),
    ...rows
      .filter((row) => row.blob_offset !== null && !emptied.has(row.blob_key))
      .map((row) => storage.zeroRange(row.blob_key, row.blob_offset!, row.size)),
  ]);
  // A job's pack folder goes with its last pack.
  const folders = new Set([...emptied].map((key) => key.slice(0, key.lastIndexOf('/'))));
  await Promise.all([...folders].map((folder) => storage.deleteFolderIfEmpty(folder)));
}

/**
 * Applies one action to the listed messages of one account and returns the ids it changed;
 * ids of other accounts are ignored. DELETE removes the rows, their attachment rows, then their
 * bytes (rows first: a crash leaves unreferenced bytes, never rows pointing at missing ones).
 */
export async function applyMessageAction(
  em: EntityManager,
  storage: BlobStorage,
  accountId: string,
  ids: readonly string[],
  action: MessageAction,
  label?: string | null,
): Promise<string[]> {
  if (ids.length === 0) return [];
  if (action === 'DELETE') {
    // Rows in one transaction, then their bytes: a crash between leaves bytes nobody refers to,
    // never a row whose bytes are gone or an attachment row without its message.
    const { deleted, attachments } = await em.transactional(async (transaction) => {
      const deleted = await runBound<StoredBlob & { id: string }>(
        transaction,
        'DELETE FROM message WHERE account_id = ? AND id = ANY(?::uuid[]) RETURNING id, blob_key, blob_offset, size',
        [accountId, pgArray(ids)],
      );
      const attachments =
        deleted.length === 0
          ? []
          : await runBound<StoredBlob>(
              transaction,
              'DELETE FROM message_attachment WHERE message_id = ANY(?::uuid[]) RETURNING blob_key, blob_offset, size',
              [pgArray(deleted.map((row) => row.id))],
            );
      return { deleted, attachments };
    });
    if (deleted.length === 0) return [];
    await deleteStoredBlobs(em, storage, [...deleted, ...attachments]);
    return deleted.map((row) => row.id);
  }
  if (action === 'ARCHIVE') {
    // A real copy into archive storage, exactly as `archive_mails` makes it.
    const owner = await runBound<{ owner_id: string }>(em, 'SELECT owner_id FROM account WHERE id = ?', [accountId]);
    if (!owner[0]) return [];
    return (await archiveMessages(em, storage, { id: accountId, ownerId: owner[0].owner_id }, ids)).archived;
  }
  if (actionTakesLabel(action) && !label) throw new Error(`${action} needs a label`);
  const { set, unchanged } = UPDATES[action];
  const changed = await runBound<{ id: string }>(
    em,
    `UPDATE message SET ${set} WHERE account_id = ? AND id = ANY(?::uuid[]) AND NOT (${unchanged}) RETURNING id`,
    [...Array(placeholders(set)).fill(label), accountId, pgArray(ids), ...Array(placeholders(unchanged)).fill(label)],
  );
  return changed.map((row) => row.id);
}
