import { setImmediate } from 'node:timers/promises';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { CompiledRule } from './compile-rule.js';
import type { RuleMessageView } from './rule-conditions.js';

/** Messages read per query while evaluating a rule. (Default for {@link scanRuleMatches}: 500) */
export const RULE_SCAN_BATCH_SIZE = 500;

/** Why a scan stopped before it had examined every message: the message cap or the test budget. */
export type RuleScanLimit = 'MESSAGES' | 'TESTS';

/** One batch of a scan: how many messages were evaluated and which of them matched. */
export interface RuleScanBatch {
  scanned: number;
  matchedIds: string[];
  /** Condition tests charged for this batch (see {@link CompiledRule.cost}). */
  tests: number;
  /** Set on the last batch when a limit ended the scan with messages left unexamined. */
  stoppedBy: RuleScanLimit | null;
}

/**
 * Condition tests a scan may still charge. One budget can be shared by several scans (a request's
 * previews), so together they stay within it.
 */
export class RuleTestBudget {
  /** Tests charged so far. */
  spent = 0;

  /** @param limit Most tests that may be charged. (Default: no limit) */
  constructor(readonly limit = Number.POSITIVE_INFINITY) {}
}

/** Options of {@link scanRuleMatches}. */
export interface RuleScanOptions {
  /** Messages read per query. (Default: RULE_SCAN_BATCH_SIZE, 500) */
  batchSize?: number;
  /** Walk the most recently stored messages first instead of in id order. (Default: false) */
  newestFirst?: boolean;
  /** Most messages examined; past it the scan stops with `stoppedBy: 'MESSAGES'`. (Default: no limit) */
  maxMessages?: number;
  /** Tests the scan may charge; a message it cannot afford ends the scan with `stoppedBy: 'TESTS'`. (Default: no limit) */
  budget?: RuleTestBudget;
  /** Called after each pause for the event loop; a throw ends the scan (a job passes its checkpoint). (Default: none) */
  onPause?: () => void;
}

/** Condition tests run between two pauses for the event loop: tens of milliseconds at most. */
export const RULE_SCAN_PAUSE_EVERY_TESTS = 5_000;

interface ViewRow {
  id: string;
  /** `created_at` as text, exact to the microsecond, for the newest-first walk's key. */
  created_key: string;
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
const VIEW_COLUMNS =
  'id, from_address, to_addresses, cc_addresses, subject, date, size, attachment_count, labels, is_read, created_at::text AS created_key';

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
 * Evaluates a rule over an account's messages not in the trash, one batch per query, and yields
 * each batch's matches. The walk is keyed (on the id, or on the storing time and id when newest
 * first), so a consumer may change or delete the yielded messages before asking for the next batch
 * without skipping or repeating any. A preview and a run that walk the same messages at the same
 * `now` find the same matches.
 *
 * The evaluation pauses for the event loop every {@link RULE_SCAN_PAUSE_EVERY_TESTS} tests and
 * between batches, so a large mailbox or a costly rule does not stall other work on the process.
 */
export async function* scanRuleMatches(
  em: EntityManager,
  accountId: string,
  rule: CompiledRule,
  now: Date,
  options: RuleScanOptions = {},
): AsyncGenerator<RuleScanBatch> {
  const { batchSize = RULE_SCAN_BATCH_SIZE, newestFirst = false, maxMessages = Number.POSITIVE_INFINITY, budget, onPause } = options;
  const connection = em.getConnection();
  const order = newestFirst ? 'ORDER BY created_at DESC, id DESC' : 'ORDER BY id';
  let after: ViewRow | null = null;
  let examined = 0;
  let sincePause = 0;
  const pause = async () => {
    sincePause = 0;
    await setImmediate();
    onPause?.();
  };
  for (;;) {
    if (after !== null) await pause();
    const left = maxMessages - examined;
    // One row past the cap tells whether the cap left messages out.
    const limit = Math.min(batchSize, left + 1);
    const keyed = after === null ? '' : newestFirst ? ' AND (created_at, id) < (?::timestamptz, ?::uuid)' : ' AND id > ?::uuid';
    const key = after === null ? [] : newestFirst ? [after.created_key, after.id] : [after.id];
    const rows: ViewRow[] = await connection.execute(
      `SELECT ${VIEW_COLUMNS} FROM message WHERE account_id = ? AND deleted_at IS NULL${keyed} ${order} LIMIT ?`,
      [accountId, ...key, limit],
      'all',
    );
    if (rows.length === 0) return;
    const batch: RuleScanBatch = { scanned: 0, matchedIds: [], tests: 0, stoppedBy: rows.length > left ? 'MESSAGES' : null };
    for (const row of rows.slice(0, left)) {
      const view = toView(row);
      const cost = rule.cost(view);
      if (budget) {
        if (budget.spent + cost > budget.limit) {
          batch.stoppedBy = 'TESTS';
          break;
        }
        budget.spent += cost;
      }
      batch.tests += cost;
      batch.scanned++;
      if (rule.matches(view, now)) batch.matchedIds.push(row.id);
      sincePause += cost;
      if (sincePause >= RULE_SCAN_PAUSE_EVERY_TESTS) await pause();
    }
    examined += batch.scanned;
    after = rows[rows.length - 1]!;
    yield batch;
    if (batch.stoppedBy !== null || rows.length < limit) return;
  }
}
