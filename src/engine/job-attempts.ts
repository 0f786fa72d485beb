import type { EntityManager } from '@mikro-orm/postgresql';
import type { JobAttempt } from '../db/entities/job.entity.js';
import { toDate } from './job-store.js';

// Attempts are opened by `startJobs` and closed by the update that ends them (see `AttemptEnd` in job-store.ts).

/** Every attempt of these jobs, oldest first, across their runs. */
export async function listAttemptsOfJobs(em: EntityManager, jobIds: readonly string[]): Promise<JobAttempt[]> {
  if (jobIds.length === 0) return [];
  const rows: Record<string, unknown>[] = await em
    .getConnection()
    .execute(`SELECT * FROM job_attempt WHERE job_id IN (${jobIds.map(() => '?').join(', ')}) ORDER BY id`, [...jobIds], 'all');
  return rows.map((row) => ({
    id: String(row.id),
    jobId: String(row.job_id),
    run: Number(row.run),
    number: Number(row.number),
    startedAt: toDate(row.started_at)!,
    finishedAt: toDate(row.finished_at),
    outcome: (row.outcome as JobAttempt['outcome']) ?? null,
    error: (row.error as string | null) ?? null,
    worker: String(row.worker),
  }));
}
