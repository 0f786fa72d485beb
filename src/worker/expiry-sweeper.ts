import type { EntityManager } from '@mikro-orm/postgresql';
import { type AnyJobDeclaration, releaseJobInput } from '../engine/define-job.js';
import { expireJobs, toEventMessage } from '../engine/job-store.js';
import type { Services } from '../services.js';
import { PeriodicTask } from './periodic-task.js';

/** Jobs one sweep ends at most; a larger backlog is taken in the next sweeps. */
const SWEEP_LIMIT = 500;

/**
 * Ends the jobs that waited past their `expiresAt` without starting (CANCELLED, "expired before it
 * started"), every EXPIRY_SWEEP_INTERVAL_MS, on every sidecar: the statement skips rows another
 * sweep holds, so each job ends once. A worker that takes an expired job ends it too, so a job
 * never runs after its expiry whether or not a sweep saw it first.
 */
export class ExpirySweeper {
  private readonly task: PeriodicTask;

  constructor(
    private readonly services: Services,
    private readonly declarations: readonly AnyJobDeclaration[],
  ) {
    this.task = new PeriodicTask(
      () => this.sweepOnce(),
      services.config.EXPIRY_SWEEP_INTERVAL_MS,
      (error) => services.logger.warn({ err: error }, 'expiry sweep failed'),
    );
  }

  start(): void {
    this.task.start();
  }

  close(): Promise<void> {
    return this.task.close();
  }

  /** One sweep; returns how many jobs it ended. */
  async sweepOnce(): Promise<number> {
    const { orm, queues, pubsub, logger } = this.services;
    const expired = await expireJobs(orm.em.fork() as EntityManager, { limit: SWEEP_LIMIT });
    for (const job of expired) {
      // A worker taking it now finds the row final and skips it; removing it spares that.
      await queues
        .get(job.type)
        .remove(job.id)
        .catch(() => 0);
      await pubsub.publishJobEvent(toEventMessage(job)).catch(() => {});
      const declaration = this.declarations.find((candidate) => candidate.name === job.type);
      await releaseJobInput(declaration, job, this.services, (error) =>
        logger.warn({ jobId: job.id, err: error }, 'could not release the input of an expired job'),
      );
    }
    if (expired.length) logger.info({ count: expired.length }, 'jobs expired before they started');
    return expired.length;
  }
}
