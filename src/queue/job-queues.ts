import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { bullTelemetry } from '../observability/tracing.js';
import { createRedis, RedisOutages } from './redis.js';

/** How long an enqueue waits for Redis before it gives up and reports the queue unavailable. */
const ADD_TIMEOUT_MS = 5_000;

export class QueueUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`the job queue is unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'QueueUnavailableError';
  }
}

/**
 * Waits for a Redis command at most ADD_TIMEOUT_MS: a request must fail fast with
 * QueueUnavailableError rather than hang while Redis is away.
 */
export async function withRedisDeadline<T>(work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from Redis within ${ADD_TIMEOUT_MS} ms`)), ADD_TIMEOUT_MS);
      }),
    ]);
  } catch (error) {
    throw new QueueUnavailableError(error);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One BullMQ queue per job type, so each type has its own concurrency, rate limit and counts.
 * All queues share one Redis connection.
 */
export class JobQueues {
  private readonly queues = new Map<string, Queue>();
  private readonly outages: RedisOutages;
  readonly connection: Redis;

  constructor(
    redisUrl: string,
    readonly prefix: string,
    logger: Logger,
  ) {
    this.outages = new RedisOutages(logger, `${prefix}:queues`);
    // One retry per command: an API request should fail fast rather than hang while Redis is away.
    this.connection = this.outages.watch(createRedis(redisUrl, { maxRetriesPerRequest: 1, connectionName: `${prefix}:queues` }));
  }

  get(name: string): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: this.connection, prefix: this.prefix, ...bullTelemetry() });
      queue.on('error', this.outages.errors('queue error', { queue: name }));
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** Adds a job, bounded in time; throws QueueUnavailableError when Redis does not take it. */
  async add(queueName: string, jobId: string, data: unknown, options: JobsOptions): Promise<void> {
    await withRedisDeadline(this.get(queueName).add(queueName, data, { ...options, jobId }));
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    this.connection.disconnect();
  }
}
