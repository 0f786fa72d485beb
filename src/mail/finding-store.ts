import type { EntityManager } from '@mikro-orm/postgresql';
import type { Finding, Newsletter } from '../db/entities/finding.entity.js';
import type { TrackingSenderSummary } from './scanners/tracking.js';

/*
 * Reads of what the privacy scans stored (`newsletter`, `finding`). Every function takes an
 * account id whose access the caller has already checked.
 */

type FindingRow = Record<string, unknown> & { id: string; cursor_ts: string };

function rowToFinding(row: FindingRow): Finding {
  return {
    id: row.id,
    accountId: String(row.account_id),
    ownerId: String(row.owner_id),
    messageId: String(row.message_id),
    scan: String(row.scan),
    kind: String(row.kind),
    subtype: (row.subtype as string | null) ?? null,
    detail: String(row.detail),
    host: (row.host as string | null) ?? null,
    source: String(row.source),
    sender: (row.sender as string | null) ?? null,
    createdAt: new Date(row.created_at as string | Date),
  };
}

/** The account's newsletter senders as the last `scan_unsubscribe` found them, most messages first. */
export async function listNewsletters(em: EntityManager, accountId: string): Promise<Newsletter[]> {
  const rows: Record<string, unknown>[] = await em.getConnection().execute(
    `SELECT id, account_id, owner_id, sender, message_count, last_seen, unsubscribe_urls, mailtos, one_click, one_click_url, updated_at
       FROM newsletter WHERE account_id = ? ORDER BY message_count DESC, sender COLLATE "C", id`,
    [accountId],
    'all',
  );
  return rows.map(
    (row): Newsletter => ({
      id: String(row.id),
      accountId: String(row.account_id),
      ownerId: String(row.owner_id),
      sender: String(row.sender),
      messageCount: Number(row.message_count),
      lastSeen: row.last_seen === null ? null : new Date(row.last_seen as string | Date),
      unsubscribeUrls: (row.unsubscribe_urls as string[] | null) ?? [],
      mailtos: (row.mailtos as string[] | null) ?? [],
      oneClick: Boolean(row.one_click),
      oneClickUrl: (row.one_click_url as string | null) ?? null,
      updatedAt: new Date(row.updated_at as string | Date),
    }),
  );
}

/** Options of `listFindings`. */
export interface FindingListOptions {
  accountId: string;
  /** Only findings of this scan (`TRACKING`, `PII`); all when null or omitted. */
  scan?: string | null;
  /** Only findings of this kind (`PIXEL`, `CARD`, ...); all when null or omitted. */
  kind?: string | null;
  /** Keyset position: only findings strictly older than this `(created_at, id)`. `createdAt` is PostgreSQL's microsecond text. */
  after?: { createdAt: string; id: string } | null;
  /** Most rows returned. */
  limit: number;
}

/**
 * The account's stored findings of messages that still exist, newest first
 * (`created_at DESC, id DESC`). Each row carries its `created_at` as PostgreSQL prints it
 * (`cursor_ts`, microseconds included) for a keyset cursor.
 */
export async function listFindings(
  em: EntityManager,
  options: FindingListOptions,
): Promise<{ id: string; cursor_ts: string; node: Finding }[]> {
  let sql = 'f.account_id = ? AND EXISTS (SELECT 1 FROM message m WHERE m.id = f.message_id)';
  const params: unknown[] = [options.accountId];
  if (options.scan) {
    sql += ' AND f.scan = ?';
    params.push(options.scan);
  }
  if (options.kind) {
    sql += ' AND f.kind = ?';
    params.push(options.kind);
  }
  if (options.after) {
    sql += ' AND (f.created_at, f.id) < (?::timestamptz, ?::uuid)';
    params.push(options.after.createdAt, options.after.id);
  }
  const rows: FindingRow[] = await em
    .getConnection()
    .execute(
      `SELECT f.*, f.created_at::text AS cursor_ts FROM finding f WHERE ${sql} ORDER BY f.created_at DESC, f.id DESC LIMIT ?`,
      [...params, options.limit],
      'all',
    );
  return rows.map((row) => ({ id: row.id, cursor_ts: row.cursor_ts, node: rowToFinding(row) }));
}

/**
 * Tracking per sender from the stored TRACKING findings, over the account's non-trashed messages;
 * senders without any finding are left out. Most tracked messages first, then by sender.
 */
export async function summarizeStoredTracking(em: EntityManager, accountId: string): Promise<TrackingSenderSummary[]> {
  const rows: {
    sender: string;
    message_count: number;
    tracked_message_count: number;
    pixel_count: number;
    tracker_hosts: string[] | null;
    link_params: string[] | null;
  }[] = await em.getConnection().execute(
    `WITH scoped AS (
       SELECT m.id, lower(btrim(m.from_address)) AS sender
         FROM message m
        WHERE m.account_id = ? AND m.deleted_at IS NULL AND m.from_address IS NOT NULL AND btrim(m.from_address) <> ''
     ), tracked AS (
       SELECT s.sender,
              count(DISTINCT f.message_id)::int AS tracked_message_count,
              (count(*) FILTER (WHERE f.kind = 'PIXEL'))::int AS pixel_count,
              array_agg(DISTINCT f.detail) FILTER (WHERE f.kind = 'TRACKER_HOST') AS tracker_hosts,
              array_agg(DISTINCT f.detail) FILTER (WHERE f.kind = 'LINK_PARAM') AS link_params
         FROM scoped s JOIN finding f ON f.message_id = s.id
        WHERE f.account_id = ? AND f.scan = 'TRACKING'
        GROUP BY s.sender
     ), counts AS (
       SELECT sender, count(*)::int AS message_count FROM scoped GROUP BY sender
     )
     SELECT t.*, c.message_count FROM tracked t JOIN counts c USING (sender)`,
    [accountId, accountId],
    'all',
  );
  return rows
    .map((row) => ({
      sender: row.sender,
      messageCount: row.message_count,
      trackedMessageCount: row.tracked_message_count,
      pixelCount: row.pixel_count,
      trackerHosts: sortStrings(row.tracker_hosts ?? []),
      linkParams: sortStrings(row.link_params ?? []),
    }))
    .sort((a, b) => b.trackedMessageCount - a.trackedMessageCount || a.sender.localeCompare(b.sender));
}

/** The order `summarizeTrackingBySender` uses (code units), whatever the database collation. */
function sortStrings(values: readonly string[]): string[] {
  return [...values].sort();
}
