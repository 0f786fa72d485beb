import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { JobRecord } from '../db/entities/job.entity.js';
import { type AnyJobDeclaration, releaseJobInput } from '../engine/define-job.js';
import { queueOptions } from '../engine/enqueue.js';
import { pruneStatusChanges } from '../engine/job-changes.js';
import { applyJobTypePauses } from '../engine/job-type-control.js';
import { closeOrphanedAttempts, rowToJob, STALLED_ERROR, toEventMessage, updateJob } from '../engine/job-store.js';
import { topics } from '../pubsub/topics.js';
import type { Services } from '../services.js';
import { PeriodicTask } from './periodic-task.js';

/** Rows changed more recently than this are left alone: their enqueue or progress is in flight. */
const GRACE_MS = 5_000;
const BATCH = 500;
/** A job the queue lost or gave up on while an attempt was open: nothing will ever finish that attempt. */
const stalled = { outcome: 'STALLED', error: STALLED_ERROR } as const;

/**
 * Redis is a cache of work; PostgreSQL is the record. Every period, one sidecar (a Redis lock
 * decides which) looks for PENDING, DELAYED or ACTIVE rows whose BullMQ job no longer exists
 * (Redis flushed or failed over) and re-enqueues each under the same id, or fails it with a clear
 * error when it has no attempt left, or cancels it when that was asked. It also forgets status
 * changes older than stream cursors may be, closes attempts a race left open on ended jobs, and
 * pauses (or resumes) each type's queue as PostgreSQL records it.
 */
export class Reconciler {
  private readonly task: PeriodicTask;
  private readonly lockValue = randomUUID();

  constructor(
    private readonly services: Services,
    private readonly declarations: readonly AnyJobDeclaration[],
  ) {
    this.task = new PeriodicTask(
      () => this.reconcileOnce(),
      services.config.RECONCILE_INTERVAL_MS,
      (error) => services.logger.warn({ err: error }, 'reconcile pass failed'),
    );
  }

  start(): void {
    this.task.start(Math.min(1_000, this.services.config.RECONCILE_INTERVAL_MS));
  }

  close(): Promise<void> {
    return this.task.close();
  }

  /** One pass; returns how many rows it repaired. */
  async reconcileOnce(): Promise<number> {
    const { config, queues, orm, logger } = this.services;
    // With Redis away there is nothing to reconcile against (and its outage is reported already).
    if (queues.connection.status !== 'ready') return 0;
    const lockKey = `${config.REDIS_PREFIX}:reconciler-lock`;
    const acquired = await queues.connection.set(lockKey, this.lockValue, 'PX', config.RECONCILE_INTERVAL_MS, 'NX');
    if (acquired !== 'OK') return 0;

    const em = orm.em.fork() as EntityManager;
    // The status log serves stream cursors up to STREAM_RETENTION_HOURS old (an hour's margin).
    await pruneStatusChanges(em, (config.STREAM_RETENTION_HOURS + 1) * 3_600_000);
    await closeOrphanedAttempts(em, GRACE_MS);
    const repausedTypes = await applyJobTypePauses(
      em,
      queues,
      this.declarations.map((declaration) => declaration.name),
      GRACE_MS,
    );
    for (const type of repausedTypes) {
      logger.warn({ type }, 'reconciled the paused state of a job type');
      // Dashboards learn of a pause that reached the queue only now (Redis was away when it was made).
      await this.services.pubsub.publish(topics.jobTypes(), { type }).catch(() => {});
    }
    let repaired = 0;
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      const rows: Record<string, unknown>[] = await em
        .getConnection()
        .execute(
          `SELECT * FROM job WHERE status IN ('PENDING', 'DELAYED', 'ACTIVE') AND updated_at < ? AND id > ? ORDER BY id LIMIT ?`,
          [new Date(Date.now() - GRACE_MS), after, BATCH],
          'all',
        );
      if (rows.length === 0) break;
      after = String(rows[rows.length - 1]!.id);
      for (const row of rows) {
        const job = rowToJob(row);
        const declaration = this.declarations.find((candidate) => candidate.name === job.type);
        if (!declaration) continue;
        const queued = await queues.get(job.type).getJob(job.id);
        // Still queued or running: BullMQ owns it. Failed in BullMQ while the row says otherwise:
        // the worker gave up while it could not write the row (database unreachable), so the row
        // must end FAILED too instead of waiting forever for a worker that will never come.
        const gaveUp = queued?.finishedOn !== undefined && (await queued!.getState()) === 'failed';
        if (queued && !gaveUp) continue;

        let updated: JobRecord | null;
        if (gaveUp) {
          updated = await updateJob(
            em,
            job.id,
            { status: 'FAILED', error: 'every attempt failed while the database was unreachable', finishedAt: new Date() },
            [job.status],
            { outcome: 'FAILED', error: 'the attempt failed while the database was unreachable' },
          );
        } else if (job.cancelRequestedAt) {
          updated = await updateJob(em, job.id, { status: 'CANCELLED', finishedAt: new Date() }, [job.status], stalled);
        } else if (job.attempts >= job.maxAttempts) {
          updated = await updateJob(
            em,
            job.id,
            { status: 'FAILED', error: 'the job queue lost this job and it has no attempt left', finishedAt: new Date() },
            [job.status],
            stalled,
          );
        } else {
          // A job delayed by its owner (or waiting out a backoff) keeps waiting until its runAt.
          const delayMs = job.runAt ? Math.max(0, job.runAt.getTime() - Date.now()) : 0;
          updated = await updateJob(
            em,
            job.id,
            {
              status: delayMs > 0 ? 'DELAYED' : 'PENDING',
              message: 're-enqueued: the job queue had lost it',
              runAt: delayMs > 0 ? job.runAt : null,
            },
            [job.status],
            stalled,
          );
          if (updated) await queues.add(job.type, job.id, job.payload, queueOptions(declaration, config, job, delayMs));
        }
        if (updated) {
          repaired++;
          logger.warn(
            { jobId: job.id, type: job.type, status: updated.status },
            gaveUp ? 'reconciled a job the queue had failed' : 'reconciled a job missing from the queue',
          );
          await this.services.pubsub.publishJobEvent(toEventMessage(updated)).catch(() => {});
          if (updated.status === 'FAILED' || updated.status === 'CANCELLED') {
            await releaseJobInput(declaration, updated, this.services, (error) =>
              logger.warn({ jobId: job.id, err: error }, 'could not release the input of a reconciled job'),
            );
          }
        }
      }
    }
    return repaired;
  }
}
