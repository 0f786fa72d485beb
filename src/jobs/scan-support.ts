import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { z } from 'zod';
import { pgArray } from '../db/sql.js';
import { accountOfNewJob } from './access.js';
import type { JobContext, PreparedJob } from '../engine/define-job.js';

/** The privacy scans that store rows in `finding`. */
export const SCAN_KINDS = ['TRACKING', 'PII'] as const;
export type ScanKind = (typeof SCAN_KINDS)[number];

/** The payload every account scan takes. */
export function accountScanInput(id: string) {
  return z.object({ accountId: z.guid().describe('The account whose messages are scanned.') }).meta({ id });
}

/** Mutation arguments of every account scan. */
export const accountScanArgs = z.object({ accountId: z.guid().describe('The account to scan.') });

/** The API-side step every account scan shares: the caller must own the account (or be an admin), which the insert checks. */
export async function prepareAccountScan(args: { accountId: string }): Promise<PreparedJob<{ accountId: string }>> {
  const accountId = accountOfNewJob(args.accountId);
  return { input: { accountId }, accountId };
}

/** What a scan covers: the account's non-trashed messages stored up to `at`. */
export interface ScanScope {
  accountId: string;
  /** PostgreSQL's `now()` when the scan started, as text (full precision). */
  at: string;
  /** Messages in scope when the scan started. */
  total: number;
}

/**
 * Fixes the scope of a scan. Messages imported while it runs are left for the next run, so
 * `processed` does not run past `total` and a batch never sees a message twice.
 */
export async function scanScope(em: EntityManager, accountId: string): Promise<ScanScope> {
  const [row] = (await em
    .getConnection()
    .execute(
      'SELECT count(*)::int AS total, now()::text AS at FROM message WHERE account_id = ? AND deleted_at IS NULL',
      [accountId],
      'all',
    )) as { total: number; at: string }[];
  return { accountId, at: row!.at, total: row!.total };
}

/**
 * The messages in scope, `batchSize` at a time, in id order (keyset, so each query is an index
 * range however far the scan is). `columns` is a constant SQL select list that includes `id`.
 * Checks for cancellation before each batch.
 */
export async function* messageBatches<Row extends { id: string }>(
  ctx: JobContext,
  scope: ScanScope,
  columns: string,
  batchSize: number,
): AsyncGenerator<Row[]> {
  const connection = ctx.em.getConnection();
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    ctx.checkpoint();
    const rows: Row[] = await connection.execute(
      `SELECT ${columns} FROM message
        WHERE account_id = ? AND deleted_at IS NULL AND created_at <= ?::timestamptz AND id > ?::uuid
        ORDER BY id LIMIT ?`,
      [scope.accountId, scope.at, after, batchSize],
      'all',
    );
    if (rows.length === 0) return;
    yield rows;
    if (rows.length < batchSize) return;
    after = rows[rows.length - 1]!.id;
  }
}

/**
 * Lets the event loop run, then checks for cancellation. Called before each message: a batch can
 * hold many large bodies, and until the loop runs neither the lock renewal nor a cancel request
 * is seen.
 */
export async function betweenMessages(ctx: Pick<JobContext, 'checkpoint'>): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  ctx.checkpoint();
}

/** One finding as a scan produces it, before it is stored. */
export interface FindingDraft {
  messageId: string;
  kind: string;
  subtype: string | null;
  detail: string;
  host: string | null;
  source: string;
  sender: string | null;
}

/** Cuts a string to at most `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(value: string, maxBytes: number): string {
  if (Buffer.byteLength(value, 'utf8') <= maxBytes) return value;
  let out = '';
  let bytes = 0;
  for (const ch of value) {
    const size = Buffer.byteLength(ch, 'utf8');
    if (bytes + size > maxBytes) break;
    out += ch;
    bytes += size;
  }
  return out;
}

/** Cuts a string to at most `maxChars` characters (code points, as varchar(n) counts them). */
function clip(value: string, maxChars: number): string {
  return value.length <= maxChars ? value : [...value].slice(0, maxChars).join('');
}

// detail and source are part of the unique index, whose entries must stay under ~2.7 kB.
const MAX_DETAIL_BYTES = 1_200;
const MAX_SOURCE_CHARS = 255;
const MAX_HOST_CHARS = 255;
const MAX_SENDER_CHARS = 320;
/** Rows per INSERT; 9 parameters each stays far below PostgreSQL's 65,535. */
const INSERT_CHUNK = 1_000;

/** Fits a draft into the column sizes and drops duplicates of the unique key (message, kind, detail, source). */
export function normalizeFindings(drafts: readonly FindingDraft[]): FindingDraft[] {
  const seen = new Set<string>();
  const out: FindingDraft[] = [];
  for (const draft of drafts) {
    const finding: FindingDraft = {
      messageId: draft.messageId,
      kind: draft.kind,
      subtype: draft.subtype === null ? null : clip(draft.subtype, 64),
      detail: truncateUtf8(draft.detail, MAX_DETAIL_BYTES),
      host: draft.host === null ? null : clip(draft.host, MAX_HOST_CHARS),
      source: clip(draft.source, MAX_SOURCE_CHARS),
      sender: draft.sender === null ? null : clip(draft.sender, MAX_SENDER_CHARS),
    };
    const key = [finding.messageId, finding.kind, finding.detail, finding.source].join('\u0000');
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(finding);
  }
  return out;
}

/**
 * Makes the stored `scan` findings of `messageIds` exactly `findings` (already normalized), in one
 * transaction: new ones are inserted (ON CONFLICT DO NOTHING on the unique key, so a re-run adds
 * nothing twice and unchanged findings keep their id and `createdAt`), and those the messages no
 * longer have are deleted. Returns how many rows were added and removed.
 */
export async function replaceMessageFindings(
  em: EntityManager,
  account: { id: string; ownerId: string },
  scan: ScanKind,
  messageIds: readonly string[],
  findings: readonly FindingDraft[],
): Promise<{ added: number; removed: number }> {
  if (messageIds.length === 0) return { added: 0, removed: 0 };
  return em.transactional(async (tem) => {
    const connection = tem.getConnection();
    const trx = tem.getTransactionContext();
    const now = new Date();
    let added = 0;
    for (let start = 0; start < findings.length; start += INSERT_CHUNK) {
      const chunk = findings.slice(start, start + INSERT_CHUNK);
      const params: unknown[] = [];
      for (const f of chunk) {
        params.push(
          randomUUID(),
          account.id,
          account.ownerId,
          f.messageId,
          scan,
          f.kind,
          f.subtype,
          f.detail,
          f.host,
          f.source,
          f.sender,
          now,
        );
      }
      const inserted: { id: string }[] = await connection.execute(
        `INSERT INTO finding (id, account_id, owner_id, message_id, scan, kind, subtype, detail, host, source, sender, created_at)
         VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}
         ON CONFLICT ON CONSTRAINT finding_unique DO NOTHING RETURNING id`,
        params,
        'all',
        trx,
      );
      added += inserted.length;
    }
    const removed: { id: string }[] = await connection.execute(
      `DELETE FROM finding f
        WHERE f.scan = ? AND f.message_id = ANY(?::uuid[])
          AND NOT EXISTS (
            SELECT 1 FROM unnest(?::uuid[], ?::text[], ?::text[], ?::text[]) AS k(message_id, kind, detail, source)
             WHERE k.message_id = f.message_id AND k.kind = f.kind AND k.detail = f.detail AND k.source = f.source)
        RETURNING f.id`,
      [
        scan,
        pgArray(messageIds),
        pgArray(findings.map((f) => f.messageId)),
        pgArray(findings.map((f) => f.kind)),
        pgArray(findings.map((f) => f.detail)),
        pgArray(findings.map((f) => f.source)),
      ],
      'all',
      trx,
    );
    return { added, removed: removed.length };
  });
}

/**
 * Deletes the account's `scan` findings whose message is gone or in the trash: a scan covers
 * non-trashed messages only, so what it left behind for those is stale.
 */
export async function pruneOrphanFindings(em: EntityManager, accountId: string, scan: ScanKind): Promise<number> {
  const removed: { id: string }[] = await em.getConnection().execute(
    `DELETE FROM finding f
      WHERE f.account_id = ? AND f.scan = ?
        AND NOT EXISTS (SELECT 1 FROM message m WHERE m.id = f.message_id AND m.deleted_at IS NULL)
      RETURNING f.id`,
    [accountId, scan],
    'all',
  );
  return removed.length;
}
