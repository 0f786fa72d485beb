import { RedisPubSub } from 'graphql-redis-subscriptions';
import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { createRedis, RedisOutages } from '../queue/redis.js';
import { topics, type JobEventMessage, type Topic } from './topics.js';

/**
 * Typed publish/subscribe over Redis, shared by the API and the worker. One Redis SUBSCRIBE per
 * channel per process, however many local listeners (graphql-redis-subscriptions counts them).
 * Subscriptions read job changes from PostgreSQL (src/realtime); here a job event only rings the
 * change feed's bell.
 */
export class JobPubSub {
  private readonly engine: RedisPubSub;
  /** Job events announced while a pipeline is in flight: they go out together in the next one. */
  private waiting: { events: readonly JobEventMessage[]; settle: (error?: unknown) => void }[] = [];
  private announcing = false;
  private closed = false;

  constructor(
    redisUrl: string,
    private readonly prefix: string,
    logger: Logger,
  ) {
    const outages = new RedisOutages(logger, `${prefix}:pubsub`);
    this.engine = new RedisPubSub({
      // Events are announcements; the row is the record. While Redis is away a publish fails fast
      // (one retry) instead of queueing, so a request that announces a change never hangs on it.
      publisher: outages.watch(createRedis(redisUrl, { connectionName: `${prefix}:pub`, maxRetriesPerRequest: 1 })),
      // No ready check (INFO) on the subscriber: a SUBSCRIBE sent while the connection shakes hands
      // can reach Redis before it, which then fails and drops the connection (ioredis#2037, fixed in
      // ioredis 6). SUBSCRIBE needs no check: Redis takes it while it loads its data.
      subscriber: quietUnsubscribes(outages.watch(createRedis(redisUrl, { connectionName: `${prefix}:sub`, enableReadyCheck: false }))),
    });
  }

  async publish<T>(topic: Topic<T>, payload: T): Promise<void> {
    await this.engine.publish(this.channel(topic), payload);
  }

  /** Publishes several messages in one round trip. */
  async publishMany(messages: Array<[Topic<unknown>, unknown]>): Promise<void> {
    if (messages.length === 0) return;
    const pipeline = this.engine.getPublisher().pipeline();
    for (const [topic, payload] of messages) pipeline.publish(this.channel(topic), JSON.stringify(payload));
    await pipeline.exec();
  }

  /** Announces a job's new state on its own channel and rings the change feed, in one round trip. */
  async publishJobEvent(event: JobEventMessage): Promise<void> {
    await this.publishJobEvents([event]);
  }

  /**
   * Announces jobs' new states, each on its own channel, and rings the change feed. One pipeline
   * is in flight at a time; what is announced meanwhile goes out in the next, with one ring for
   * all of it: a busy process sends one write every round trip, not one per change, and every
   * announcement leaves in the order it was made. Resolves once its pipeline was answered.
   */
  publishJobEvents(events: readonly JobEventMessage[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiting.push({ events, settle: (error) => (error === undefined ? resolve() : reject(error)) });
      if (!this.announcing) void this.announceWaiting();
    });
  }

  private async announceWaiting(): Promise<void> {
    this.announcing = true;
    while (this.waiting.length > 0) {
      const batch = this.waiting;
      this.waiting = [];
      const events = batch.flatMap((entry) => entry.events);
      try {
        await this.publishMany([
          ...events.map((event): [Topic<unknown>, unknown] => [topics.job(event.job.id), event]),
          [topics.jobChanges(), { changes: events.length }],
        ]);
        for (const entry of batch) entry.settle();
      } catch (error) {
        for (const entry of batch) entry.settle(error ?? new Error('publish failed'));
      }
    }
    this.announcing = false;
  }

  /** Calls `onMessage` for each message until the returned function is called. */
  async listen<T>(topic: Topic<T>, onMessage: (payload: T) => void): Promise<() => void> {
    const id = await this.engine.subscribe<T>(this.channel(topic), onMessage);
    // A listener that stops once the connections are closed (a subscription ending during shutdown) has nothing to undo.
    return () => {
      if (!this.closed) this.engine.unsubscribe(id);
    };
  }

  /** Closes the connections once the announcements made so far have gone out (or failed). */
  async close(): Promise<void> {
    while (this.announcing) await new Promise((resolve) => setImmediate(resolve));
    this.closed = true;
    await this.engine.close();
  }

  private channel(topic: Topic<unknown>): string {
    return `${this.prefix}:${topic.channel}`;
  }
}

/**
 * graphql-redis-subscriptions sends its UNSUBSCRIBEs without waiting for them: one that fails (the
 * connection closing at shutdown, Redis away) would be an unhandled rejection, which ends the process.
 * The subscription is over either way: a channel left subscribed has no listener left.
 */
function quietUnsubscribes(subscriber: Redis): Redis {
  for (const method of ['unsubscribe', 'punsubscribe'] as const) {
    const send = subscriber[method].bind(subscriber) as (...channels: string[]) => Promise<unknown>;
    subscriber[method] = ((...channels: string[]) => {
      const sent = send(...channels);
      sent.catch(() => {});
      return sent;
    }) as never;
  }
  return subscriber;
}
