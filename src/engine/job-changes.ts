import type { EntityManager } from '@mikro-orm/postgresql';
import type { JobRecord, JobStatus } from '../db/entities/job.entity.js';
import { type RowKey, type Snapshot, parseSnapshot, snapshotParams } from '../realtime/stream-position.js';
import { type JobScope, whereOf } from './job-history.js';
import { rowToJob } from './job-store.js';

/** One job changed after a position, in its state now. */
export interface JobChange {
  job: JobRecord;
  key: RowKey;
  /** The job's status at the position the read started from; null when it was created after it. */
  statusAtBase: JobStatus | null;
}

export interface JobChangePage {
  /** The snapshot this statement read at; a batch's first page makes it the batch's target. */
  snapshot: Snapshot;
  changes: JobChange[];
}

export interface JobChangeRead extends JobScope {
  /** Rows whose writer this snapshot does not see. */
  base: Snapshot;
  /** Only rows whose writer this snapshot sees (a batch's later pages); null: whatever is committed now. */
  target: Snapshot | null;
  /** Only rows after this key. */
  after: RowKey | null;
  limit: number;
  /** The position `statusAtBase` is taken at, when not `base`. */
  statusBase?: Snapshot;
}

type Row = Record<string, unknown> & {
  snapshot: string;
  id: string | null;
  change_xid_text: string;
  created_since: boolean;
  first_status_before: JobStatus | null;
};

/**
 * Jobs whose current row was written by a transaction `base` does not see, oldest writer first
 * (`change_xid, id`), with each job's status at `base` (or `statusBase`). The rows a snapshot misses are those
 * written from its `xmax` on, plus those of the transactions it lists as running; the two ranges
 * are read as two index scans and merged, so a long-running transaction elsewhere (an old
 * `xmin`) costs nothing. The statement's own snapshot comes back with the rows.
 */
export async function readJobChanges(em: EntityManager, read: JobChangeRead): Promise<JobChangePage> {
  const [baseXmax, baseXip] = snapshotParams(read.base);
  const [statusXmax, statusXip] = snapshotParams(read.statusBase ?? read.base);
  const clauses: string[] = [];
  const params: unknown[] = [];
  if (read.target) {
    const [targetXmax, targetXip] = snapshotParams(read.target);
    clauses.push('change_xid < ?::xid8', 'NOT (change_xid = ANY(?::xid8[]))');
    params.push(targetXmax, targetXip);
  }
  if (read.after) {
    clauses.push('(change_xid, id) > (?::xid8, ?::uuid)');
    params.push(String(read.after.xid), read.after.id);
  }
  const scope = whereOf(read);
  if (scope.where) {
    clauses.push(scope.where);
    params.push(...scope.params);
  }
  const narrowing = clauses.map((clause) => ` AND ${clause}`).join('');
  const branch = (missed: string) => `(SELECT * FROM job WHERE ${missed}${narrowing} ORDER BY change_xid, id LIMIT ?)`;
  const rows: Row[] = await em.getConnection().execute(
    // Per job, log ids follow its updates (each is drawn under the row's lock); xids need not.
    // `c.id + 0`: no index gives that order, so the planner reads the job's few changes by
    // job_status_change_job_idx and sorts them, whatever its statistics say. Walking the primary
    // key in order until the job's rows turned up cost 6 ms a job (2.3 s a page) on a table that
    // had grown since it was last analyzed.
    `SELECT s.snapshot, p.*, p.change_xid::text AS change_xid_text,
            (p.created_xid >= ?::xid8 OR p.created_xid = ANY(?::xid8[])) AS created_since,
            (SELECT c.status_before FROM job_status_change c
              WHERE c.job_id = p.id AND (c.change_xid >= ?::xid8 OR c.change_xid = ANY(?::xid8[]))
              ORDER BY c.id + 0 LIMIT 1) AS first_status_before
       FROM (SELECT pg_current_snapshot()::text AS snapshot) s
       LEFT JOIN LATERAL (
         SELECT * FROM (${branch('change_xid >= ?::xid8')} UNION ALL ${branch('change_xid = ANY(?::xid8[])')}) missed
          ORDER BY change_xid, id LIMIT ?
       ) p ON true`,
    [statusXmax, statusXip, statusXmax, statusXip, baseXmax, ...params, read.limit, baseXip, ...params, read.limit, read.limit],
    'all',
    em.getTransactionContext(),
  );
  const snapshot = parseSnapshot(rows[0]!.snapshot, Date.now());
  if (!snapshot) throw new Error(`unexpected snapshot text ${rows[0]!.snapshot}`);
  const changes: JobChange[] = [];
  for (const row of rows) {
    if (row.id === null) continue;
    const job = rowToJob(row);
    changes.push({
      job,
      key: { xid: BigInt(row.change_xid_text), id: job.id },
      statusAtBase: row.created_since ? null : (row.first_status_before ?? job.status),
    });
  }
  return { snapshot, changes };
}

/** The snapshot PostgreSQL would read at now: the position of "everything committed so far". */
export async function currentSnapshot(em: EntityManager): Promise<Snapshot> {
  const [row] = await em.getConnection().execute<{ snapshot: string }[]>('SELECT pg_current_snapshot()::text AS snapshot', [], 'all');
  const snapshot = parseSnapshot(row!.snapshot, Date.now());
  if (!snapshot) throw new Error(`unexpected snapshot text ${row!.snapshot}`);
  return snapshot;
}

/** Forgets status changes older than the stream keeps (cursors older than that are refused). */
export async function pruneStatusChanges(em: EntityManager, olderThanMs: number): Promise<number> {
  const result = await em
    .getConnection()
    .execute(`DELETE FROM job_status_change WHERE at < now() - make_interval(secs => ?)`, [olderThanMs / 1000], 'run');
  return Number((result as { affectedRows?: number }).affectedRows ?? 0);
}

/** One job as it is now, with the snapshot of the read and the key of its last change. */
export async function readJobNow(em: EntityManager, id: string): Promise<{ job: JobRecord; key: RowKey; snapshot: Snapshot } | null> {
  const rows: Row[] = await em
    .getConnection()
    .execute('SELECT pg_current_snapshot()::text AS snapshot, change_xid::text AS change_xid_text, * FROM job WHERE id = ?', [id], 'all');
  const row = rows[0];
  if (!row) return null;
  const snapshot = parseSnapshot(row.snapshot, Date.now());
  if (!snapshot) throw new Error(`unexpected snapshot text ${row.snapshot}`);
  const job = rowToJob(row);
  return { job, key: { xid: BigInt(row.change_xid_text), id: job.id }, snapshot };
}
