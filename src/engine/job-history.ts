import type { EntityManager } from '@mikro-orm/postgresql';
import type { JobRecord, JobStatus } from '../db/entities/job.entity.js';
import { rowToJob } from './job-store.js';

/** Which jobs a history listing holds; every field narrows it, omitted fields do not. */
export interface JobHistoryFilter {
  types?: string[] | null;
  statuses?: JobStatus[] | null;
  accountId?: string | null;
  /** Inclusive. */
  createdAfter?: Date | null;
  /** Exclusive. */
  createdBefore?: Date | null;
}

/** Options of `listJobHistory`. */
export interface JobHistoryOptions {
  /** Only this owner's jobs; null: every owner's (for admins). */
  ownerId: string | null;
  filter?: JobHistoryFilter | null;
  /** Keyset position: only jobs strictly older than this `(created_at, id)`. `createdAt` is PostgreSQL's microsecond text. */
  after?: { createdAt: string; id: string } | null;
  /** Most rows returned. */
  limit: number;
}

/**
 * Job history from PostgreSQL, newest first (`created_at DESC, id DESC`). Each row carries its
 * `created_at` as PostgreSQL prints it (`cursor_ts`), with the microseconds a JS Date would drop,
 * so a cursor built from it resumes exactly after that row.
 */
export async function listJobHistory(
  em: EntityManager,
  options: JobHistoryOptions,
): Promise<{ id: string; cursor_ts: string; node: JobRecord }[]> {
  const { ownerId, filter, after, limit } = options;
  const clauses: string[] = [];
  const params: unknown[] = [];
  if (ownerId !== null) {
    clauses.push('owner_id = ?');
    params.push(ownerId);
  }
  if (filter?.types?.length) {
    clauses.push(`type IN (${filter.types.map(() => '?').join(', ')})`);
    params.push(...filter.types);
  }
  if (filter?.statuses?.length) {
    clauses.push(`status IN (${filter.statuses.map(() => '?').join(', ')})`);
    params.push(...filter.statuses);
  }
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
  if (after) {
    clauses.push('(created_at, id) < (?::timestamptz, ?::uuid)');
    params.push(after.createdAt, after.id);
  }
  const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
  const rows: (Record<string, unknown> & { cursor_ts: string; id: string })[] = await em
    .getConnection()
    .execute(
      `SELECT *, created_at::text AS cursor_ts FROM job ${where} ORDER BY created_at DESC, id DESC LIMIT ?`,
      [...params, limit],
      'all',
    );
  return rows.map((row) => ({ id: row.id, cursor_ts: row.cursor_ts, node: rowToJob(row) }));
}
