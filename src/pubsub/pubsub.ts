import { RedisPubSub } from 'graphql-redis-subscriptions';
import { createRedis } from '../queue/redis.js';
import { topics, type JobEventMessage, type Topic } from './topics.js';

/** A live stream of one topic's messages; `return()` unsubscribes. */
export interface TopicStream<T> extends AsyncIterableIterator<T> {
  /** Resolves once Redis has confirmed the subscription, so nothing published afterwards is missed. */
  ready: Promise<void>;
  return(): Promise<IteratorResult<T>>;
}

/** Buffered messages per stream before the slowest consumer is cut off rather than grow without bound. */
const MAX_BUFFERED = 10_000;

/**
 * Typed publish/subscribe over Redis, shared by the API and the worker. One Redis SUBSCRIBE per
 * channel per process, however many local subscribers (graphql-redis-subscriptions counts them).
 */
/** A subscriber that does not read its events fast enough is cut off rather than buffered without bound. */
export class SubscriberTooSlowError extends Error {
  constructor() {
    super('subscriber too slow: its events were not read in time; subscribe again (jobProgress sends the current state first)');
    this.name = 'SubscriberTooSlowError';
  }
}

export class JobPubSub {
  private readonly engine: RedisPubSub;

  constructor(
    redisUrl: string,
    private readonly prefix: string,
  ) {
    this.engine = new RedisPubSub({
      // Events are announcements; the row is the record. While Redis is away a publish fails fast
      // (one retry) instead of queueing, so a request that announces a change never hangs on it.
      publisher: createRedis(redisUrl, { connectionName: `${prefix}:pub`, maxRetriesPerRequest: 1 }),
      subscriber: createRedis(redisUrl, { connectionName: `${prefix}:sub` }),
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

  /** Announces a job's new state to its own subscribers and to every dashboard, in one round trip. */
  async publishJobEvent(event: JobEventMessage): Promise<void> {
    await this.publishMany([
      [topics.job(event.job.id), event],
      [topics.allJobs(), event],
    ]);
  }

  /** Calls `onMessage` for each message until the returned function is called. */
  async listen<T>(topic: Topic<T>, onMessage: (payload: T) => void): Promise<() => void> {
    const id = await this.engine.subscribe<T>(this.channel(topic), onMessage);
    return () => this.engine.unsubscribe(id);
  }

  /** An async iterator over a topic; messages that arrive while nobody pulls are buffered. */
  stream<T>(topic: Topic<T>): TopicStream<T> {
    const buffered: T[] = [];
    let waiting: ((result: IteratorResult<T>) => void) | null = null;
    let done = false;
    let failure: Error | null = null;
    let subscriptionId: number | null = null;

    const finish = () => {
      if (done) return;
      done = true;
      if (subscriptionId !== null) this.engine.unsubscribe(subscriptionId);
      waiting?.({ value: undefined, done: true });
      waiting = null;
    };

    const ready = this.engine
      .subscribe<T>(this.channel(topic), (payload) => {
        if (done) return;
        if (waiting) {
          const resolve = waiting;
          waiting = null;
          resolve({ value: payload, done: false });
        } else if (buffered.length >= MAX_BUFFERED) {
          failure = new SubscriberTooSlowError();
          finish();
        } else {
          buffered.push(payload);
        }
      })
      .then((id) => {
        subscriptionId = id;
        if (done) this.engine.unsubscribe(id);
      });

    const stream: TopicStream<T> = {
      ready,
      next: async () => {
        await ready;
        const value = buffered.shift();
        if (value !== undefined) return { value, done: false };
        if (failure) throw failure;
        if (done) return { value: undefined, done: true };
        return new Promise<IteratorResult<T>>((resolve) => {
          waiting = resolve;
        });
      },
      return: async () => {
        finish();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return stream;
      },
    };
    return stream;
  }

  async close(): Promise<void> {
    await this.engine.close();
  }

  private channel(topic: Topic<unknown>): string {
    return `${this.prefix}:${topic.channel}`;
  }
}
