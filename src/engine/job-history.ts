import type { EntityManager } from '@mikro-orm/postgresql';
import type { JobRecord, JobStatus } from '../db/entities/job.entity.js';
import { pgArray, runBound } from '../db/sql.js';
import { rowToJob } from './job-store.js';

/** Most ids one filter may name. */
export const MAX_FILTER_IDS = 100;

/**
 * Most jobs `countJobHistory` counts: past it, the count stops and says this number ("at least"),
 * as search engines' total hits do. An exact count walks one index entry per matching job: the
 * bench's admin count of 50,000 FAILED jobs (of a million) took 12 ms at p50 and 37 ms at p99 on
 * a 2-core machine, over the 20 ms a page may take; 10,000 entries take a fifth of that.
 * `jobCounts` stays exact, for a dashboard that needs the whole number.
 */
export const TOTAL_COUNT_CAP = 10_000;

/** Which jobs a history listing holds; every field narrows it, omitted fields do not. */
export interface JobHistoryFilter {
  /** Only these jobs (at most `MAX_FILTER_IDS`); an empty list matches nothing. */
  ids?: string[] | null;
  types?: string[] | null;
  statuses?: JobStatus[] | null;
  accountId?: string | null;
  /** Inclusive. */
  createdAfter?: Date | null;
  /** Exclusive. */
  createdBefore?: Date | null;
  /** Inclusive: jobs whose row changed at or after this instant. */
  updatedAfter?: Date | null;
  /** Jobs holding every one of these tags. */
  tags?: string[] | null;
}

/** The keyset orders of a history listing, both newest first. */
export const JOB_ORDERS = ['CREATED_AT', 'UPDATED_AT'] as const;
export type JobOrder = (typeof JOB_ORDERS)[number];

/** The timestamp column each order walks, with `id` as the tie-breaker. */
const ORDER_COLUMNS: Record<JobOrder, 'created_at' | 'updated_at'> = { CREATED_AT: 'created_at', UPDATED_AT: 'updated_at' };

/** Who may be counted or listed, and which of their jobs. */
export interface JobScope {
  /** Only this owner's jobs; null: every owner's (for admins). */
  ownerId: string | null;
  filter?: JobHistoryFilter | null;
}

/** Options of `listJobHistory`. */
export interface JobHistoryOptions extends JobScope {
  /** Default `CREATED_AT`. */
  order?: JobOrder;
  /**
   * Keyset position: only jobs strictly older than this `(timestamp, id)` in the listing's order.
   * `at` is PostgreSQL's microsecond text of `created_at` or `updated_at`.
   */
  after?: { at: string; id: string } | null;
  /** Most rows returned. */
  limit: number;
}

/** The WHERE clause of a scope, with `?` placeholders (columns unqualified: one `job` table in the FROM). */
export function whereOf({ ownerId, filter }: JobScope): { where: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  const oneOf = (column: string, values: readonly unknown[]) => {
    clauses.push(`${column} IN (${values.map(() => '?').join(', ')})`);
    params.push(...values);
  };
  if (ownerId !== null) {
    clauses.push('owner_id = ?');
    params.push(ownerId);
  }
  if (filter?.ids) {
    if (filter.ids.length) oneOf('id', filter.ids);
    else clauses.push('false');
  }
  if (filter?.types?.length) oneOf('type', filter.types);
  if (filter?.statuses?.length) oneOf('status', filter.statuses);
  if (filter?.accountId) {
    clauses.push('account_id = ?');
    params.push(filter.accountId);
  }
  if (filter?.createdAfter) {
    clauses.push('created_at >= ?');
    params.push(filter.createdAfter);
  }
  if (filter?.createdBefore) {
    clauses.push('created_at < ?');
    params.push(filter.createdBefore);
  }
  if (filter?.updatedAfter) {
    clauses.push('updated_at >= ?');
    params.push(filter.updatedAfter);
  }
  if (filter?.tags?.length) {
    clauses.push('tags @> ?::text[]');
    params.push(pgArray(filter.tags));
  }
  return { where: clauses.join(' AND '), params };
}

/**
 * Job history from PostgreSQL, newest first (`created_at DESC, id DESC`, or `updated_at` for
 * `UPDATED_AT`). Each row carries its order's timestamp as PostgreSQL prints it (`cursor_ts`), with
 * the microseconds a JS Date would drop, so a cursor built from it resumes exactly after that row.
 * `snapshot` is the statement's own snapshot (`pg_current_snapshot()`, also for an empty page): the
 * stream position the page reflects.
 */
export async function listJobHistory(
  em: EntityManager,
  options: JobHistoryOptions,
): Promise<{ snapshot: string; rows: { id: string; cursor_ts: string; node: JobRecord }[] }> {
  const { after, limit } = options;
  const column = ORDER_COLUMNS[options.order ?? 'CREATED_AT'];
  const scope = whereOf(options);
  const clauses = scope.where ? [scope.where] : [];
  const params = [...scope.params];
  if (after) {
    clauses.push(`(${column}, id) < (?::timestamptz, ?::uuid)`);
    params.push(after.at, after.id);
  }
  const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
  const rows: (Record<string, unknown> & { snapshot: string; cursor_ts: string; id: string | null })[] = await runBound(
    em,
    `SELECT s.snapshot, page.* FROM (SELECT pg_current_snapshot()::text AS snapshot) s
       LEFT JOIN LATERAL (SELECT *, ${column}::text AS cursor_ts FROM job ${where} ORDER BY ${column} DESC, id DESC LIMIT ?) page ON true`,
    [...params, limit],
  );
  return {
    snapshot: rows[0]!.snapshot,
    rows: rows.filter((row) => row.id !== null).map((row) => ({ id: row.id!, cursor_ts: row.cursor_ts, node: rowToJob(row) })),
  };
}

/**
 * How many jobs a scope holds, counting at most `cap` (default `TOTAL_COUNT_CAP`): the count walks
 * the same indexes as the listing and stops once it reaches the cap.
 */
export async function countJobHistory(em: EntityManager, scope: JobScope, cap = TOTAL_COUNT_CAP): Promise<number> {
  const { where, params } = whereOf(scope);
  const [row] = await runBound<{ n: number }>(
    em,
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM job ${where ? `WHERE ${where}` : ''} LIMIT ?) AS matching`,
    [...params, cap],
  );
  return row?.n ?? 0;
}

/** The number of jobs of one type in one status. */
export interface JobCountRow {
  type: string;
  status: JobStatus;
  count: number;
}

/** Jobs of a scope grouped by type and status (exact, no cap), ordered by type then status. */
export async function countJobsByTypeAndStatus(em: EntityManager, scope: JobScope): Promise<JobCountRow[]> {
  const { where, params } = whereOf(scope);
  const rows = await runBound<{ type: string; status: JobStatus; count: number }>(
    em,
    `SELECT type, status, count(*)::int AS count FROM job ${where ? `WHERE ${where}` : ''} GROUP BY type, status ORDER BY type, status`,
    params,
  );
  return rows.map((row) => ({ type: row.type, status: row.status, count: Number(row.count) }));
}

/** Jobs that ended in one minute: how many completed and how many failed. */
export interface ThroughputRow {
  /** The minute's start. */
  minute: Date;
  completed: number;
  failed: number;
}

/** Most minutes one throughput query covers: a day. */
export const MAX_THROUGHPUT_MINUTES = 1440;

/**
 * Completed and failed jobs of a scope per minute of `finished_at`, over the last `minutes`
 * minutes (the current one included), oldest first; minutes without any are left out. A finished
 * row's `updated_at` (the database's clock) is not before its `finished_at` (the worker's clock)
 * but for clock skew, so a bound on `updated_at`, a minute wider, lets the (owner, updated_at)
 * indexes find the rows instead of every finished job ever.
 */
export async function countFinishedPerMinute(em: EntityManager, scope: JobScope, minutes: number): Promise<ThroughputRow[]> {
  const { where, params } = whereOf(scope);
  const rows = await runBound<{ minute: Date; completed: number; failed: number }>(
    em,
    `WITH since AS (SELECT date_trunc('minute', now()) - make_interval(mins => ?) AS at)
     SELECT date_trunc('minute', finished_at) AS minute,
            count(*) FILTER (WHERE status = 'COMPLETED')::int AS completed,
            count(*) FILTER (WHERE status = 'FAILED')::int AS failed
       FROM job, since
      WHERE ${where ? `${where} AND ` : ''}status IN ('COMPLETED', 'FAILED') AND updated_at >= since.at - interval '1 minute' AND finished_at >= since.at
      GROUP BY 1 ORDER BY 1`,
    [minutes - 1, ...params],
  );
  return rows.map((row) => ({ minute: new Date(row.minute), completed: Number(row.completed), failed: Number(row.failed) }));
}
