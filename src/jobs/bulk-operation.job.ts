import { z } from 'zod';
import { pgArray } from '../db/sql.js';
import { rawMessageKey } from '../mail/message-store.js';
import { messageFilterSchema, messageFilterSql } from '../mail/message-filter.js';
import { loadOwnedAccount } from './access.js';
import { defineJob } from './define-job.js';
import { InvalidInputError, PermanentJobError } from './errors.js';

const BATCH_SIZE = 500;

export const BULK_ACTIONS = [
  'TRASH',
  'RESTORE',
  'DELETE',
  'MARK_READ',
  'MARK_UNREAD',
  'STAR',
  'UNSTAR',
  'ADD_LABEL',
  'REMOVE_LABEL',
] as const;

const bulkActionSchema = z.enum(BULK_ACTIONS).meta({ id: 'BulkAction' });

/** The UPDATE each non-destructive action makes; `?` is the label when the action takes one. */
const UPDATES: Record<Exclude<(typeof BULK_ACTIONS)[number], 'DELETE'>, string> = {
  TRASH: 'deleted_at = COALESCE(deleted_at, now())',
  RESTORE: 'deleted_at = NULL',
  MARK_READ: 'is_read = true',
  MARK_UNREAD: 'is_read = false',
  STAR: 'is_starred = true',
  UNSTAR: 'is_starred = false',
  ADD_LABEL: 'labels = CASE WHEN ? = ANY(labels) THEN labels ELSE array_append(labels, ?) END',
  REMOVE_LABEL: 'labels = array_remove(labels, ?)',
};

const bulkInputSchema = z
  .object({
    accountId: z.uuid(),
    action: bulkActionSchema,
    ids: z.array(z.uuid()).max(100_000).optional().describe('Pick these messages (of the account)...'),
    filter: messageFilterSchema.optional().describe('...or the messages matching this filter.'),
    label: z.string().min(1).max(100).optional().describe('The label, for ADD_LABEL and REMOVE_LABEL.'),
  })
  .meta({ id: 'BulkOperationInput' });

type BulkInput = z.infer<typeof bulkInputSchema>;

function checkInput(input: BulkInput): string | null {
  if ((input.ids === undefined) === (input.filter === undefined)) return 'give exactly one of ids or filter';
  const needsLabel = input.action === 'ADD_LABEL' || input.action === 'REMOVE_LABEL';
  if (needsLabel && !input.label) return `${input.action} needs a label`;
  if (!needsLabel && input.label) return `${input.action} takes no label`;
  return null;
}

export const bulkOperationJob = defineJob({
  name: 'bulk_operation',
  description: 'Applies one action to many messages of an account, picked by ids or by a filter, in batches.',
  graphql: { mutation: 'bulkOperation', typeName: 'BulkOperationJob' },
  unit: 'messages',
  args: z.object({ input: bulkInputSchema }),
  input: bulkInputSchema,
  output: z
    .object({
      action: bulkActionSchema,
      matched: z.number().int().describe('Messages picked.'),
      affected: z.number().int().describe('Messages changed (already-matching ones are not counted).'),
    })
    .meta({ id: 'BulkOperationOutput' }),
  async prepare({ input }, ctx) {
    const problem = checkInput(input);
    if (problem) throw new InvalidInputError(problem);
    const account = await loadOwnedAccount(ctx.em, input.accountId, ctx);
    return { input, accountId: account.id };
  },
  async handler(input, ctx) {
    const problem = checkInput(input);
    if (problem) throw new PermanentJobError(problem);
    const connection = ctx.em.getConnection();

    // The selection is fixed up front, so an action that changes what the filter matches (TRASH
    // with a filter on non-trashed mail) neither skips nor repeats messages between batches.
    let ids: string[];
    if (input.ids) {
      const rows: { id: string }[] = await connection.execute(
        'SELECT id FROM message WHERE account_id = ? AND id = ANY(?::uuid[]) ORDER BY id',
        [input.accountId, pgArray(input.ids)],
        'all',
      );
      ids = rows.map((row) => row.id);
    } else {
      const where = messageFilterSql(input.accountId, input.filter);
      const rows: { id: string }[] = await connection.execute(`SELECT id FROM message WHERE ${where.sql} ORDER BY id`, where.params, 'all');
      ids = rows.map((row) => row.id);
    }
    ctx.progress({ processed: 0, total: ids.length, message: `${input.action.toLowerCase()}: starting` });

    let affected = 0;
    for (let start = 0; start < ids.length; start += BATCH_SIZE) {
      ctx.checkpoint();
      const chunk = ids.slice(start, start + BATCH_SIZE);
      if (input.action === 'DELETE') {
        const deleted: { id: string; content_hash: string }[] = await connection.execute(
          'DELETE FROM message WHERE account_id = ? AND id = ANY(?::uuid[]) RETURNING id, content_hash',
          [input.accountId, pgArray(chunk)],
          'all',
        );
        const attachments: { blob_key: string }[] = await connection.execute(
          'DELETE FROM message_attachment WHERE message_id = ANY(?::uuid[]) RETURNING blob_key',
          [pgArray(deleted.map((row) => row.id))],
          'all',
        );
        await Promise.all([
          ...deleted.map((row) => ctx.storage.delete(rawMessageKey(input.accountId, row.content_hash))),
          ...attachments.map((row) => ctx.storage.delete(row.blob_key)),
        ]);
        affected += deleted.length;
      } else {
        const set = UPDATES[input.action];
        const labelParams = input.action === 'ADD_LABEL' ? [input.label, input.label] : input.action === 'REMOVE_LABEL' ? [input.label] : [];
        const changed: { id: string }[] = await connection.execute(
          `UPDATE message SET ${set} WHERE account_id = ? AND id = ANY(?::uuid[]) AND NOT (${changedAlready(input.action)}) RETURNING id`,
          [...labelParams, input.accountId, pgArray(chunk), ...(input.action.endsWith('LABEL') ? [input.label] : [])],
          'all',
        );
        affected += changed.length;
      }
      ctx.progress({ processed: Math.min(start + BATCH_SIZE, ids.length), message: `${input.action.toLowerCase()}` });
    }
    return { action: input.action, matched: ids.length, affected };
  },
});

/** True for rows the action would not change, so `affected` counts real changes only. */
function changedAlready(action: Exclude<(typeof BULK_ACTIONS)[number], 'DELETE'>): string {
  switch (action) {
    case 'TRASH':
      return 'deleted_at IS NOT NULL';
    case 'RESTORE':
      return 'deleted_at IS NULL';
    case 'MARK_READ':
      return 'is_read';
    case 'MARK_UNREAD':
      return 'NOT is_read';
    case 'STAR':
      return 'is_starred';
    case 'UNSTAR':
      return 'NOT is_starred';
    case 'ADD_LABEL':
      return '? = ANY(labels)';
    case 'REMOVE_LABEL':
      return 'NOT (? = ANY(labels))';
  }
}
