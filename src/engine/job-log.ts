import type { EntityManager } from '@mikro-orm/postgresql';
import type { JobStatus, LogLevel } from '../db/entities/job.entity.js';
import { toDate } from './job-store.js';

/** A line a handler logged, as stored and as `Job.logs` and `jobLogs` return it. */
export interface JobLogEntry {
  /** `job_log.id`: the line's place in the job's log (a bigint, as text). */
  id: string;
  run: number;
  attempt: number;
  at: Date;
  level: LogLevel;
  message: string;
  fields: Record<string, unknown> | null;
}

/** A line on its way to the database. */
export type NewJobLogEntry = Omit<JobLogEntry, 'id'>;

/**
 * Appends lines to a job's log in one statement and keeps the log within `maxLines`: the oldest
 * lines beyond it (older ones first, then the start of this batch) are deleted, and the job's
 * `log_lines_dropped` counts them, plus `alreadyDropped` (lines the writer dropped before writing).
 */
export async function appendJobLog(
  em: EntityManager,
  jobId: string,
  lines: readonly NewJobLogEntry[],
  maxLines: number,
  alreadyDropped = 0,
): Promise<void> {
  if (lines.length === 0 && alreadyDropped === 0) return;
  const kept = lines.slice(-maxLines);
  const droppedFromBatch = lines.length - kept.length + alreadyDropped;
  await em.getConnection().execute(
    `WITH input AS (
       SELECT * FROM jsonb_to_recordset(?::jsonb) AS x(run int, attempt int, at timestamptz, level text, message text, fields jsonb)),
     inserted AS (
       INSERT INTO job_log (job_id, run, attempt, at, level, message, fields)
       SELECT ?, run, attempt, at, level, message, fields FROM input),
     -- Of the lines already there, the newest (maxLines - batch) stay; the statement cannot see its own inserts.
     cutoff AS (SELECT id FROM job_log WHERE job_id = ? ORDER BY id DESC OFFSET ? LIMIT 1),
     dropped AS (DELETE FROM job_log WHERE job_id = ? AND id <= (SELECT id FROM cutoff) RETURNING 1)
     UPDATE job SET log_lines_dropped = log_lines_dropped + ? + (SELECT count(*) FROM dropped)
      WHERE id = ? AND (? > 0 OR EXISTS (SELECT 1 FROM dropped))`,
    [JSON.stringify(kept), jobId, jobId, maxLines - kept.length, jobId, droppedFromBatch, jobId, droppedFromBatch],
    'run',
  );
}

/** A page of a job's log, with what a reader needs to know about the job in the same snapshot. */
export interface JobLogPage {
  /** Null when the job does not exist. */
  job: { status: JobStatus; ownerId: string; logLinesDropped: number } | null;
  lines: JobLogEntry[];
}

/** Up to `limit` lines of a job's log after line `afterId` (oldest first), read with the job's status in one snapshot. */
export async function readJobLog(em: EntityManager, jobId: string, afterId: string | null, limit: number): Promise<JobLogPage> {
  const rows: Record<string, unknown>[] = await em.getConnection().execute(
    `SELECT j.status, j.owner_id, j.log_lines_dropped, l.id::text AS line_id, l.run, l.attempt, l.at, l.level, l.message, l.fields
       FROM job j
       LEFT JOIN LATERAL (SELECT * FROM job_log WHERE job_id = j.id AND id > ? ORDER BY id LIMIT ?) l ON true
      WHERE j.id = ?
      ORDER BY l.id`,
    [afterId ?? '0', limit, jobId],
    'all',
  );
  const first = rows[0];
  if (!first) return { job: null, lines: [] };
  return {
    job: { status: first.status as JobStatus, ownerId: String(first.owner_id), logLinesDropped: Number(first.log_lines_dropped) },
    lines: rows
      .filter((row) => row.line_id !== null)
      .map((row) => ({
        id: String(row.line_id),
        run: Number(row.run),
        attempt: Number(row.attempt),
        at: toDate(row.at)!,
        level: row.level as LogLevel,
        message: String(row.message),
        fields: (row.fields as Record<string, unknown> | null) ?? null,
      })),
  };
}
