import type { EntityManager } from '@mikro-orm/postgresql';
import { z } from 'zod';
import { pgArray } from '../db/sql.js';

/** Which messages of an account a query or bulk job picks. Every field narrows the selection. */
export const messageFilterSchema = z
  .object({
    fromContains: z.string().max(320).optional().describe('Sender address contains this text (case-insensitive).'),
    subjectContains: z.string().max(500).optional().describe('Subject contains this text (case-insensitive).'),
    before: z.iso.datetime({ offset: true }).optional().describe('Sent before this instant (ISO 8601).'),
    after: z.iso.datetime({ offset: true }).optional().describe('Sent at or after this instant (ISO 8601).'),
    isRead: z.boolean().optional(),
    isStarred: z.boolean().optional(),
    label: z.string().max(100).optional().describe('Has this label.'),
    hasAttachments: z.boolean().optional(),
    inTrash: z.boolean().optional().describe('true: only trashed messages; false (default): only messages not in the trash.'),
    archived: z.boolean().optional(),
  })
  .meta({ id: 'MessageFilter' });

export type MessageFilter = z.infer<typeof messageFilterSchema>;

function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * A WHERE clause (with `?` placeholders) for the messages of one account matching the filter.
 * Column names are unqualified, for `FROM message`.
 */
export function messageFilterSql(accountId: string, filter: MessageFilter = {}): { sql: string; params: unknown[] } {
  const clauses = ['account_id = ?'];
  const params: unknown[] = [accountId];
  if (filter.fromContains) {
    clauses.push('from_address ILIKE ?');
    params.push(likePattern(filter.fromContains));
  }
  if (filter.subjectContains) {
    clauses.push('subject ILIKE ?');
    params.push(likePattern(filter.subjectContains));
  }
  if (filter.before) {
    clauses.push('date < ?');
    params.push(new Date(filter.before));
  }
  if (filter.after) {
    clauses.push('date >= ?');
    params.push(new Date(filter.after));
  }
  if (filter.isRead !== undefined) {
    clauses.push('is_read = ?');
    params.push(filter.isRead);
  }
  if (filter.isStarred !== undefined) {
    clauses.push('is_starred = ?');
    params.push(filter.isStarred);
  }
  if (filter.label) {
    clauses.push('? = ANY(labels)');
    params.push(filter.label);
  }
  if (filter.hasAttachments !== undefined) clauses.push(filter.hasAttachments ? 'attachment_count > 0' : 'attachment_count = 0');
  clauses.push(filter.inTrash ? 'deleted_at IS NOT NULL' : 'deleted_at IS NULL');
  if (filter.archived !== undefined) clauses.push(filter.archived ? 'archived_at IS NOT NULL' : 'archived_at IS NULL');
  return { sql: clauses.join(' AND '), params };
}

/**
 * The ids of an account's messages picked by explicit ids or by a filter, fixed up front: an action
 * that changes what the filter matches (TRASH with a filter on non-trashed mail) then neither skips
 * nor repeats messages between batches. Ids of other accounts are dropped.
 */
export async function selectMessageIds(
  em: EntityManager,
  accountId: string,
  pick: { ids?: readonly string[]; filter?: MessageFilter },
): Promise<string[]> {
  const connection = em.getConnection();
  const rows: { id: string }[] = pick.ids
    ? await connection.execute(
        'SELECT id FROM message WHERE account_id = ? AND id = ANY(?::uuid[]) ORDER BY id',
        [accountId, pgArray(pick.ids)],
        'all',
      )
    : await (async () => {
        const where = messageFilterSql(accountId, pick.filter);
        return connection.execute(`SELECT id FROM message WHERE ${where.sql} ORDER BY id`, where.params, 'all');
      })();
  return rows.map((row) => row.id);
}
