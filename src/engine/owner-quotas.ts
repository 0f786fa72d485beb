import type { EntityManager } from '@mikro-orm/postgresql';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Config } from '../config/env.js';
import type { Logger } from '../observability/logger.js';

/** A quota refusal; `retryAfterSeconds` says when trying again can succeed. */
export class QuotaExceededError extends Error {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
    this.name = 'QuotaExceededError';
  }
}

/** Who is asking; admins are exempt from the per-owner quotas. */
export interface QuotaSubject {
  ownerId: string;
  isAdmin: boolean;
}

/** How soon to suggest a retry when the owner has too many jobs still running. */
const UNFINISHED_RETRY_AFTER_SECONDS = 30;

/**
 * Per-owner limits on what the API lets one user start, shared by every replica: the enqueue rate
 * (a window per owner in Redis) and the number of jobs not yet finished (counted in PostgreSQL, the
 * record). Schedules and rules do not pass through here: they are the system's own work.
 */
export class OwnerQuotas {
  private readonly limiter: RateLimiterRedis | null;

  constructor(
    redis: Redis,
    private readonly config: Config,
    private readonly logger: Logger,
  ) {
    this.limiter =
      config.ENQUEUE_RATE_MAX > 0
        ? new RateLimiterRedis({
            storeClient: redis,
            keyPrefix: `${config.REDIS_PREFIX}:quota:enqueue`,
            points: config.ENQUEUE_RATE_MAX,
            duration: Math.max(1, Math.round(config.ENQUEUE_RATE_WINDOW_MS / 1000)),
          })
        : null;
  }

  /**
   * Throws QuotaExceededError when `subject` may not enqueue one more job now. `unfinishedCap:
   * false` checks the rate only: for a job that only ends others (`cancelJobs`), which an owner at
   * the cap must still be able to start.
   */
  async checkEnqueue(em: EntityManager, subject: QuotaSubject, { unfinishedCap = true } = {}): Promise<void> {
    if (subject.isAdmin) return;
    await this.consumeEnqueueRate(subject.ownerId);
    if (unfinishedCap) await this.checkUnfinished(em, subject.ownerId);
  }

  /** Throws QuotaExceededError when the owner has MAX_UNFINISHED_JOBS_PER_OWNER jobs not finished yet. */
  async checkUnfinished(em: EntityManager, ownerId: string): Promise<void> {
    const max = this.config.MAX_UNFINISHED_JOBS_PER_OWNER;
    if (max > 0 && (await this.unfinishedJobs(em, ownerId, max)) >= max) {
      throw new QuotaExceededError(
        `you have ${max} jobs that are not finished yet (MAX_UNFINISHED_JOBS_PER_OWNER); wait for some to finish or cancel them`,
        UNFINISHED_RETRY_AFTER_SECONDS,
      );
    }
  }

  /** The owner's jobs still PENDING, DELAYED or ACTIVE, counted up to `cap` (the index makes it cheap). */
  async unfinishedJobs(em: EntityManager, ownerId: string, cap: number): Promise<number> {
    const rows: { count: string }[] = await em
      .getConnection()
      .execute(
        `SELECT count(*) AS count FROM (SELECT 1 FROM job WHERE owner_id = ? AND status IN ('PENDING', 'DELAYED', 'ACTIVE') LIMIT ?) unfinished`,
        [ownerId, cap],
        'all',
      );
    return Number(rows[0]?.count ?? 0);
  }

  /** Enqueues left in the owner's current window, or null when the rate is not limited. */
  async remainingEnqueues(ownerId: string): Promise<number | null> {
    if (!this.limiter) return null;
    const state = await this.limiter.get(ownerId).catch(() => null);
    return state ? Math.max(0, state.remainingPoints) : this.config.ENQUEUE_RATE_MAX;
  }

  private async consumeEnqueueRate(ownerId: string): Promise<void> {
    if (!this.limiter) return;
    try {
      await this.limiter.consume(ownerId, 1);
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) {
        throw new QuotaExceededError(
          `at most ${this.config.ENQUEUE_RATE_MAX} jobs per ${this.config.ENQUEUE_RATE_WINDOW_MS / 1000} s (ENQUEUE_RATE_MAX); try again later`,
          rejection.msBeforeNext / 1000,
        );
      }
      // Redis is down: the enqueue itself will report QUEUE_UNAVAILABLE, so the quota does not add a second error.
      this.logger.warn({ err: rejection }, 'enqueue rate quota unavailable; allowing the request');
    }
  }
}
