import { Redis, type RedisOptions } from 'ioredis';

/**
 * A Redis connection for BullMQ or pub/sub. `maxRetriesPerRequest: null` is what BullMQ workers
 * require, and it lets every client ride out a Redis restart instead of failing commands.
 */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    ...options,
  });
}
