import type { EntityManager } from '@mikro-orm/postgresql';
import type { JobScope } from '../engine/job-history.js';
import { currentSnapshot, readJobChanges } from '../engine/job-changes.js';
import { SubscriberTooSlowError } from '../pubsub/pubsub.js';
import { feedEvent, type FeedEvent, type FeedListener, type JobChangeFeed } from './job-change-feed.js';
import { includes, positionAt, type RowKey, type Snapshot, type StreamPosition } from './stream-position.js';

/** A cursor older than the stream keeps: the client must take a fresh snapshot (`jobs { streamCursor }`). */
export class CursorExpiredError extends Error {
  constructor(hours: number) {
    super(`after: the cursor is older than the ${hours} hours the stream keeps; query jobs again and subscribe with its streamCursor`);
    this.name = 'CursorExpiredError';
  }
}

/** A cursor that names transactions PostgreSQL has not started: not one this API wrote. */
export class InvalidCursorError extends Error {
  constructor() {
    super('after: not a cursor returned by this API');
    this.name = 'InvalidCursorError';
  }
}

/**
 * Refuses a position the stream cannot resume from: older than the change log keeps
 * (CursorExpiredError), or naming transactions that have not started (InvalidCursorError).
 */
export async function checkResumable(em: EntityManager, position: StreamPosition, retentionMs: number): Promise<void> {
  if (Date.now() - position.base.takenAt > retentionMs) throw new CursorExpiredError(Math.round(retentionMs / 3_600_000));
  if (!includes(await currentSnapshot(em), position.partial?.target ?? position.base)) throw new InvalidCursorError();
}

export interface FollowJobChanges {
  feed: JobChangeFeed;
  em: EntityManager;
  /** What the catch-up reads (the owner, and the filter's fields SQL can apply). */
  scope: JobScope;
  /** Whether the caller gets an event: access and the whole filter. */
  accepts: (event: FeedEvent) => boolean;
  /** Where the client is; null: from now. */
  from: StreamPosition | null;
  maxQueued: number;
  retentionMs: number;
  /** Rows per catch-up statement. */
  pageSize?: number;
  /** Ends the stream at once, even while it waits for a change (an async generator's `return()` would wait). */
  signal: AbortSignal;
}

/**
 * The changes after `from` that the caller may see, then live ones, each once, in the order of
 * their positions. It reads what it missed by itself (the latest state of each changed job,
 * page by page at one snapshot), then joins the replica's feed at exactly the position its reads
 * reached: every change is in its reads or in the feed after that position, never both.
 */
export async function* followJobChanges(follow: FollowJobChanges): AsyncGenerator<FeedEvent> {
  const { feed } = follow;
  const queue: FeedEvent[] = [];
  let wakeUp: (() => void) | null = null;
  let failure: Error | null = null;
  const listener: FeedListener = {
    deliver(event) {
      if (failure || !follow.accepts(event)) return;
      if (queue.length >= follow.maxQueued) {
        failure = new SubscriberTooSlowError();
        queue.length = 0;
        feed.leave(listener);
      } else {
        queue.push(event);
      }
      wakeUp?.();
      wakeUp = null;
    },
  };

  /** Everything `base` missed and `target` sees, after `after`, as events. */
  async function* readMissed(base: Snapshot, target: Snapshot, after: RowKey | null): AsyncGenerator<FeedEvent> {
    const limit = follow.pageSize ?? 500;
    for (;;) {
      const page = await readJobChanges(follow.em, { ...follow.scope, base, target, after, limit });
      for (const change of page.changes) {
        const event = feedEvent(change, base, target);
        if (follow.accepts(event)) yield event;
      }
      if (page.changes.length < limit) return;
      after = page.changes[page.changes.length - 1]!.key;
    }
  }

  const stop = () => {
    feed.leave(listener);
    wakeUp?.();
  };
  follow.signal.addEventListener('abort', stop, { once: true });
  try {
    if (!follow.from) {
      while (!feed.join(listener, await feed.tail()));
    } else {
      const { base, partial } = follow.from;
      let position = base;
      if (partial) {
        yield* readMissed(base, partial.target, partial.after);
        position = partial.target;
      }
      while (!follow.signal.aborted) {
        const tail = await feed.tail();
        if (feed.join(listener, position)) break;
        if (includes(tail, position)) {
          yield* readMissed(position, tail, null);
          position = positionAt(tail).base;
        } else {
          // The client is ahead of this replica's feed (its cursor is newer): let the feed pass it.
          await feed.nextBatch();
        }
      }
    }
    while (!follow.signal.aborted) {
      const event = queue.shift();
      if (event) {
        yield event;
        continue;
      }
      if (failure) throw failure;
      await new Promise<void>((resolve) => {
        wakeUp = resolve;
      });
    }
  } finally {
    follow.signal.removeEventListener('abort', stop);
    feed.leave(listener);
  }
}
