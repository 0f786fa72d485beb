import type { EntityManager } from '@mikro-orm/postgresql';
import { Message } from '../db/entities/message.entity.js';
import { messageFilterSql, type MessageFilter } from './message-filter.js';

/*
 * Reads of stored messages for the API. Every function takes an account id (or message ids) whose
 * access the caller has already checked.
 */

type MessageRow = Record<string, unknown> & { id: string; cursor_ts: string };

function rowToMessage(row: MessageRow): Message {
  return {
    id: row.id,
    accountId: String(row.account_id),
    ownerId: String(row.owner_id),
    dedupKey: String(row.dedup_key),
    messageId: (row.message_id as string | null) ?? null,
    contentHash: String(row.content_hash),
    subject: (row.subject as string | null) ?? null,
    fromAddress: (row.from_address as string | null) ?? null,
    fromName: (row.from_name as string | null) ?? null,
    toAddresses: (row.to_addresses as string[]) ?? [],
    ccAddresses: (row.cc_addresses as string[]) ?? [],
    date: (row.date as Date | null) ?? null,
    size: Number(row.size),
    headers: (row.headers as Record<string, string>) ?? {},
    textBody: (row.text_body as string | null) ?? null,
    htmlBody: (row.html_body as string | null) ?? null,
    attachmentCount: Number(row.attachment_count),
    labels: (row.labels as string[]) ?? [],
    isRead: Boolean(row.is_read),
    isStarred: Boolean(row.is_starred),
    blobKey: String(row.blob_key),
    blobOffset: row.blob_offset === null || row.blob_offset === undefined ? null : Number(row.blob_offset),
    deletedAt: (row.deleted_at as Date | null) ?? null,
    archivedAt: (row.archived_at as Date | null) ?? null,
    createdAt: row.created_at as Date,
  };
}

/** Options of `searchMessages`. */
export interface MessageSearchOptions {
  /** Already parsed with `messageFilterSchema`; `{}` for the default (messages not in the trash). */
  filter: MessageFilter;
  /** Keyset position: only messages stored strictly before this `(created_at, id)`. `createdAt` is PostgreSQL's microsecond text. */
  after?: { createdAt: string; id: string } | null;
  /** Most rows returned. */
  limit: number;
}

/**
 * An account's messages matching the filter, most recently stored first (`created_at DESC, id DESC`).
 * Each row carries its `created_at` as PostgreSQL prints it (`cursor_ts`, microseconds included)
 * for a keyset cursor.
 */
export async function searchMessages(
  em: EntityManager,
  accountId: string,
  options: MessageSearchOptions,
): Promise<{ id: string; cursor_ts: string; node: Message }[]> {
  const where = messageFilterSql(accountId, options.filter);
  const params = [...where.params];
  let sql = where.sql;
  if (options.after) {
    sql += ' AND (created_at, id) < (?::timestamptz, ?::uuid)';
    params.push(options.after.createdAt, options.after.id);
  }
  const rows: MessageRow[] = await em
    .getConnection()
    .execute(
      `SELECT *, created_at::text AS cursor_ts FROM message WHERE ${sql} ORDER BY created_at DESC, id DESC LIMIT ?`,
      [...params, options.limit],
      'all',
    );
  return rows.map((row) => ({ id: row.id, cursor_ts: row.cursor_ts, node: rowToMessage(row) }));
}

/** The messages with these ids, in the order given; ids that match nothing are left out. */
export async function findMessagesInOrder(em: EntityManager, ids: readonly string[]): Promise<Message[]> {
  if (ids.length === 0) return [];
  const messages = await em.find(Message, { id: { $in: [...ids] } });
  const byId = new Map(messages.map((message) => [message.id, message]));
  return ids.map((id) => byId.get(id)).filter((message): message is Message => message !== undefined);
}
