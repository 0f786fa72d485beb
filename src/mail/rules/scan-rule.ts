import type { EntityManager } from '@mikro-orm/postgresql';
import type { CompiledRule } from './compile-rule.js';
import type { RuleMessageView } from './rule-conditions.js';

/** Messages read per query while evaluating a rule. (Default for {@link scanRuleMatches}: 500) */
export const RULE_SCAN_BATCH_SIZE = 500;

/** One batch of a scan: how many messages were evaluated and which of them matched. */
export interface RuleScanBatch {
  scanned: number;
  matchedIds: string[];
}

interface ViewRow {
  id: string;
  from_address: string | null;
  to_addresses: string[] | null;
  cc_addresses: string[] | null;
  subject: string | null;
  date: Date | null;
  size: number;
  attachment_count: number;
  labels: string[] | null;
  is_read: boolean;
}

// The columns a rule can test; bodies and headers are never read.
const VIEW_COLUMNS = 'id, from_address, to_addresses, cc_addresses, subject, date, size, attachment_count, labels, is_read';

function toView(row: ViewRow): RuleMessageView {
  return {
    from: row.from_address,
    to: [...(row.to_addresses ?? []), ...(row.cc_addresses ?? [])],
    subject: row.subject,
    date: row.date === null ? null : new Date(row.date),
    size: Number(row.size),
    hasAttachments: Number(row.attachment_count) > 0,
    labels: row.labels ?? [],
    isRead: Boolean(row.is_read),
  };
}

/** The messages a rule is evaluated over: the account's, except those in the trash. */
export async function countRuleCandidates(em: EntityManager, accountId: string): Promise<number> {
  const [row] = (await em
    .getConnection()
    .execute('SELECT count(*)::int AS count FROM message WHERE account_id = ? AND deleted_at IS NULL', [accountId], 'all')) as [
    { count: number },
  ];
  return row.count;
}

/**
 * Evaluates a rule over an account's messages not in the trash, in id order, one batch per query,
 * and yields each batch's matches. The walk is keyed on the id, so a consumer may change or delete
 * the yielded messages before asking for the next batch without skipping or repeating any.
 * A preview and a run that walk the same messages at the same `now` find the same matches.
 */
export async function* scanRuleMatches(
  em: EntityManager,
  accountId: string,
  rule: CompiledRule,
  now: Date,
  batchSize = RULE_SCAN_BATCH_SIZE,
): AsyncGenerator<RuleScanBatch> {
  const connection = em.getConnection();
  let after: string | null = null;
  for (;;) {
    const rows: ViewRow[] =
      after === null
        ? await connection.execute(
            `SELECT ${VIEW_COLUMNS} FROM message WHERE account_id = ? AND deleted_at IS NULL ORDER BY id LIMIT ?`,
            [accountId, batchSize],
            'all',
          )
        : await connection.execute(
            `SELECT ${VIEW_COLUMNS} FROM message WHERE account_id = ? AND deleted_at IS NULL AND id > ?::uuid ORDER BY id LIMIT ?`,
            [accountId, after, batchSize],
            'all',
          );
    if (rows.length === 0) return;
    after = rows[rows.length - 1]!.id;
    yield { scanned: rows.length, matchedIds: rows.filter((row) => rule.matches(toView(row), now)).map((row) => row.id) };
    if (rows.length < batchSize) return;
  }
}
