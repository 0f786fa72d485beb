import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../observability/logger.js';

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

/**
 * Logs a connection's outage as one warning when it starts and one line when it ends. Without a
 * listener, ioredis prints every failed reconnect to stderr as an "Unhandled error event", twice a
 * second, outside the JSON log.
 */
export function reportOutages(connection: Redis, logger: Logger): Redis {
  let down = false;
  connection.on('error', (error: Error) => {
    if (down) return;
    down = true;
    logger.warn({ connection: connection.options.connectionName, reason: error.message }, 'Redis unreachable; reconnecting');
  });
  connection.on('ready', () => {
    if (!down) return;
    down = false;
    logger.info({ connection: connection.options.connectionName }, 'Redis reachable again');
  });
  return connection;
}
