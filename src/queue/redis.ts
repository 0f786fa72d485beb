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

/** While an outage lasts, it is recalled this often; an error repeated within this long is counted, not logged again. */
const QUIET_MS = 60_000;

/**
 * The Redis outages of one role's connections (`queues`, `pubsub`, `workers`, `scheduler`), as a
 * few lines however long they last: one warning when the first connection loses Redis, one a
 * minute while it stays away, one info line once every connection is back. ioredis retries by
 * itself (createRedis's retryStrategy) and reports each failed attempt as an 'error' event;
 * without a listener it prints it to stderr as an "Unhandled error event", outside the JSON log.
 *
 * BullMQ's Queue and Worker forward every failed reconnect of their connections (a Worker's own
 * blocking connection too) as their 'error' event: {@link errors} takes those as part of the
 * outage, and logs any other error once a minute per message, with how often it repeated.
 */
export class RedisOutages {
  /** The watched connections that lost Redis and are not back yet. */
  private readonly lost = new Set<Redis>();
  /** When the outage began; 0 while Redis is reachable. */
  private since = 0;
  private failedAttempts = 0;
  private reason = '';
  private reminder: NodeJS.Timeout | null = null;
  private readonly quiet = new Map<string, { until: number; repeated: number }>();

  constructor(
    private readonly logger: Logger,
    readonly role: string,
  ) {}

  /** Reports `connection`'s outages as this role's; returns it. */
  watch(connection: Redis): Redis {
    connection.on('error', (error: Error) => this.down(connection, error));
    connection.on('ready', () => this.up(connection));
    // Closed for good (shutdown): nothing to wait for, and nothing to announce.
    connection.on('end', () => {
      this.lost.delete(connection);
      if (this.lost.size === 0) this.reset();
    });
    return connection;
  }

  /** Whether a connection of this role is waiting for Redis. */
  get isDown(): boolean {
    return this.since !== 0;
  }

  /** An 'error' listener for a BullMQ Queue or Worker on this role's connections. */
  errors(message: string, fields: Record<string, unknown> = {}): (error: Error) => void {
    return (error) => {
      // A failed (re)connect, retried by ioredis: the outage's report covers it.
      if (isConnectionError(error)) return;
      const key = `${message}\n${error.message}`;
      const now = Date.now();
      const seen = this.quiet.get(key);
      if (seen && now < seen.until) {
        seen.repeated++;
        return;
      }
      this.quiet.set(key, { until: now + QUIET_MS, repeated: 0 });
      this.logger.error({ ...fields, connection: this.role, err: error, ...(seen?.repeated ? { repeated: seen.repeated } : {}) }, message);
    };
  }

  private down(connection: Redis, error: Error): void {
    this.lost.add(connection);
    this.reason = error.message;
    if (this.since) {
      this.failedAttempts++;
      return;
    }
    this.since = Date.now();
    this.failedAttempts = 1;
    this.logger.warn({ connection: this.role, redis: address(connection), reason: this.reason }, 'Redis unreachable; reconnecting');
    this.reminder = setInterval(() => {
      this.logger.warn(
        {
          connection: this.role,
          redis: address(connection),
          reason: this.reason,
          downForMs: Date.now() - this.since,
          failedAttempts: this.failedAttempts,
        },
        'Redis still unreachable; reconnecting',
      );
    }, QUIET_MS);
    // An outage must not keep a process that is done alive.
    this.reminder.unref();
  }

  private up(connection: Redis): void {
    if (!this.lost.delete(connection) || this.lost.size > 0 || !this.since) return;
    this.logger.info(
      { connection: this.role, downForMs: Date.now() - this.since, failedAttempts: this.failedAttempts },
      'Redis reachable again',
    );
    this.reset();
  }

  private reset(): void {
    if (this.reminder) clearInterval(this.reminder);
    this.reminder = null;
    this.since = 0;
    this.failedAttempts = 0;
  }
}

/**
 * An error of the connection itself (refused, reset, timed out, name not resolved, closed, or a
 * command given up after its retries), not one Redis answered.
 */
export function isConnectionError(error: Error): boolean {
  return (
    typeof (error as NodeJS.ErrnoException).syscall === 'string' ||
    error.message === 'Connection is closed.' ||
    error.name === 'MaxRetriesPerRequestError'
  );
}

/** Where a connection goes, without the credentials a URL may carry. */
function address(connection: Redis): string {
  const { host, port, path } = connection.options;
  return path ?? `${host}:${port}`;
}

/** How long a start waits before it says what it waits for: a healthy Redis answers within it. */
const START_GRACE_MS = 1_000;

/**
 * Resolves once `connection` is ready. A process cannot start its work without Redis, and ioredis
 * keeps retrying, so this waits as long as it takes (a supervisor restarting the process would
 * wait the same): a Redis started after the process, or restarted during a deploy, lets it start
 * by itself. If Redis does not answer at once, it says so: one warning naming `what` waits and
 * where Redis is expected, one a minute while it waits, and one line when it goes on.
 */
export async function untilRedisReady(connection: Redis, logger: Logger, what: string): Promise<void> {
  if (connection.status === 'ready') return;
  const started = Date.now();
  const fields = () => ({ connection: connection.options.connectionName, redis: address(connection), waitedMs: Date.now() - started });
  let reminder: NodeJS.Timeout | undefined;
  let announced = false;
  const announce = setTimeout(() => {
    announced = true;
    logger.warn(fields(), `${what} waits for Redis`);
    reminder = setInterval(() => logger.warn(fields(), `${what} still waits for Redis`), QUIET_MS);
  }, START_GRACE_MS);
  try {
    await new Promise<void>((resolve, reject) => {
      const ready = () => {
        connection.off('end', ended);
        resolve();
      };
      const ended = () => {
        connection.off('ready', ready);
        reject(new Error(`the Redis connection ${connection.options.connectionName ?? ''} was closed before it was ready`));
      };
      connection.once('ready', ready);
      connection.once('end', ended);
    });
  } finally {
    clearTimeout(announce);
    clearInterval(reminder);
  }
  if (announced) logger.info(fields(), `Redis reachable; ${what} goes on`);
}
