import type { EntityManager } from '@mikro-orm/postgresql';
import { type AnyJobDeclaration, releaseJobInput } from '../engine/define-job.js';
import { expireJobs, toEventMessage } from '../engine/job-store.js';
import type { Services } from '../services.js';

/** Jobs one sweep ends at most; a larger backlog is taken in the next sweeps. */
const SWEEP_LIMIT = 500;

/**
 * Ends the jobs that waited past their `expiresAt` without starting (CANCELLED, "expired before it
 * started"), every EXPIRY_SWEEP_INTERVAL_MS, on every sidecar: the statement skips rows another
 * sweep holds, so each job ends once. A worker that takes an expired job ends it too, so a job
 * never runs after its expiry whether or not a sweep saw it first.
 */
export class ExpirySweeper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly services: Services,
    private readonly declarations: readonly AnyJobDeclaration[],
  ) {}

  start(): void {
    const tick = () => {
      this.running = this.sweepOnce()
        .then(() => undefined)
        .catch((error) => this.services.logger.warn({ err: error }, 'expiry sweep failed'))
        .finally(() => {
          this.running = null;
          if (this.timer) this.timer = setTimeout(tick, this.services.config.EXPIRY_SWEEP_INTERVAL_MS);
        });
    };
    this.timer = setTimeout(tick, this.services.config.EXPIRY_SWEEP_INTERVAL_MS);
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One sweep; returns how many jobs it ended. */
  async sweepOnce(): Promise<number> {
    const { orm, queues, pubsub, storage, logger } = this.services;
    const expired = await expireJobs(orm.em.fork() as EntityManager, { limit: SWEEP_LIMIT });
    for (const job of expired) {
      // A worker taking it now finds the row final and skips it; removing it spares that.
      await queues
        .get(job.type)
        .remove(job.id)
        .catch(() => 0);
      await pubsub.publishJobEvent(toEventMessage(job)).catch(() => {});
      const declaration = this.declarations.find((candidate) => candidate.name === job.type);
      await releaseJobInput(declaration, job.payload, storage, (error) =>
        logger.warn({ jobId: job.id, err: error }, 'could not release the input of an expired job'),
      );
    }
    if (expired.length) logger.info({ count: expired.length }, 'jobs expired before they started');
    return expired.length;
  }
}
