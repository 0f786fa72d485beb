import type { EntityManager } from '@mikro-orm/postgresql';
import type { JobTypeState } from '../db/entities/job-type-state.entity.js';
import { type JobQueues, withRedisDeadline } from '../queue/job-queues.js';
import { toDate } from './job-store.js';

/**
 * Pausing a job type: PostgreSQL records it (the record survives a Redis flush), and BullMQ's
 * queue pause makes every sidecar stop taking that type's jobs: queued ones wait (PENDING),
 * running ones finish. The reconciler makes Redis agree with PostgreSQL on every pass.
 */

/** The recorded state of these types; a type without a row runs as declared (not paused). */
export async function loadJobTypeStates(em: EntityManager, types: readonly string[]): Promise<Map<string, JobTypeState>> {
  if (types.length === 0) return new Map();
  const rows: Record<string, unknown>[] = await em
    .getConnection()
    .execute(`SELECT * FROM job_type_state WHERE type IN (${types.map(() => '?').join(', ')})`, [...types], 'all');
  return new Map(
    rows.map((row) => [
      String(row.type),
      {
        type: String(row.type),
        pausedAt: toDate(row.paused_at),
        pausedBy: (row.paused_by as string | null) ?? null,
        changedAt: toDate(row.changed_at)!,
      },
    ]),
  );
}

/** Pauses (`pausedBy` given) or resumes (null) a type; returns its new state. Throws QueueUnavailableError when Redis is away. */
export async function setJobTypePaused(em: EntityManager, queues: JobQueues, type: string, pausedBy: string | null): Promise<JobTypeState> {
  const rows: Record<string, unknown>[] = await em.getConnection().execute(
    `INSERT INTO job_type_state (type, paused_at, paused_by, changed_at)
     VALUES (?, CASE WHEN ?::text IS NULL THEN NULL ELSE clock_timestamp() END, ?, clock_timestamp())
     ON CONFLICT (type) DO UPDATE SET
       changed_at = excluded.changed_at,
       -- Pausing a paused type keeps when (and by whom) it was first paused.
       paused_at = CASE WHEN excluded.paused_by IS NULL THEN NULL ELSE coalesce(job_type_state.paused_at, excluded.paused_at) END,
       paused_by = CASE WHEN excluded.paused_by IS NULL THEN NULL ELSE coalesce(job_type_state.paused_by, excluded.paused_by) END
     RETURNING *`,
    [type, pausedBy, pausedBy],
    'all',
  );
  const queue = queues.get(type);
  await withRedisDeadline(pausedBy === null ? queue.resume() : queue.pause());
  const row = rows[0]!;
  return { type, pausedAt: toDate(row.paused_at), pausedBy: (row.paused_by as string | null) ?? null, changedAt: toDate(row.changed_at)! };
}

/**
 * Makes each type's queue paused exactly when PostgreSQL says so; returns the types it changed. A
 * type changed less than `settleMs` ago is left alone: its pause or resume may still be on its
 * way to Redis. Redis is read before PostgreSQL, so the record read is never older than the queue state.
 */
export async function applyJobTypePauses(
  em: EntityManager,
  queues: JobQueues,
  types: readonly string[],
  settleMs: number,
): Promise<string[]> {
  const pausedInRedis = new Map<string, boolean>();
  for (const type of types) pausedInRedis.set(type, await queues.get(type).isPaused());
  const states = await loadJobTypeStates(em, types);
  const changed: string[] = [];
  for (const type of types) {
    const state = states.get(type);
    if (state && Date.now() - state.changedAt.getTime() < settleMs) continue;
    const paused = Boolean(state?.pausedAt);
    if (pausedInRedis.get(type) === paused) continue;
    const queue = queues.get(type);
    await (paused ? queue.pause() : queue.resume());
    changed.push(type);
  }
  return changed;
}
