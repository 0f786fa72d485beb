import type { EntityManager } from '@mikro-orm/postgresql';
import type { JobScope } from '../engine/job-history.js';
import { currentSnapshot, readJobChanges } from '../engine/job-changes.js';
import { slowSubscribersCutOff } from '../observability/metrics.js';
import { feedEvent, type FeedEvent, type FeedListener, type JobChangeFeed, type StreamEvent } from './job-change-feed.js';
import { includes, type PositionCodec, type RowKey, type Snapshot, type StreamPosition } from './stream-position.js';

/** A subscriber that does not read its events fast enough is cut off rather than buffered without bound. */
export class SubscriberTooSlowError extends Error {
  constructor() {
    super('subscriber too slow: its events were not read in time; subscribe again with the last cursor as `after`');
    this.name = 'SubscriberTooSlowError';
  }
}

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
  positions: PositionCodec;
  em: EntityManager;
  /** What the catch-up reads (the owner, and the filter's fields SQL can apply). */
  scope: JobScope;
  /** Whether the caller gets an event: access and the whole filter. */
  accepts: (event: FeedEvent) => boolean;
  /** The only jobs `accepts` can say yes to, when the filter names them: the feed offers it no others. */
  jobIds?: readonly string[];
  /** Where the client is; null: from now. */
  from: StreamPosition | null;
  /** Sent before anything else (a job's current state). */
  first?: StreamEvent[];
  /** The stream ends right after an event this says yes to (a job's terminal status). */
  endsAfter?: (event: StreamEvent) => boolean;
  /** Events, and bytes of them (see `queuedBytesOf`), waiting for a slow client before it is cut off. */
  maxQueued: number;
  maxQueuedBytes: number;
  /** Rows per catch-up statement. */
  pageSize?: number;
  /** Ends the stream at once, even while it waits for a change. */
  signal: AbortSignal;
}

const DONE: IteratorResult<never> = { done: true, value: undefined };

const jsonLengths = new WeakMap<object, number>();

/**
 * About what a waiting event holds: its job's JSON, measured once per job state, and only for an
 * event that has to wait (one written at once is never measured).
 */
function queuedBytesOf(event: StreamEvent): number {
  let length = jsonLengths.get(event.job);
  if (length === undefined) {
    length = JSON.stringify(event.job).length;
    jsonLengths.set(event.job, length);
  }
  return length;
}

/** Pages of jobs past a catch-up's target read to hold their statuses (500 each). */
const MAX_HOLD_PAGES = 20;

/**
 * An event stream that can also hand its events over synchronously: while a `next()` is pending
 * and nothing is queued, each event goes to `take` (when set) instead of settling that `next()`,
 * which stays pending for the next event `take` refuses (returns false for) or the end.
 */
export interface HandsOff<T> {
  handOffTo(take: ((value: T) => boolean) | null): void;
}

export function handsOff<T>(iterator: object): iterator is HandsOff<T> {
  return typeof (iterator as Partial<HandsOff<T>>).handOffTo === 'function';
}

/**
 * The changes after `from` that the caller may see, then live ones, each once, in the order of
 * their positions. It reads what it missed by itself (the latest state of each changed job,
 * page by page at one snapshot), then joins the replica's feed at exactly the position its reads
 * reached: every change is in its reads or in the feed after that position, never both.
 *
 * Live, it is a plain iterator over a queue the feed fills (no async generator): a delivery to
 * each of thousands of subscribers is then one resolved promise, not a generator's several.
 */
export function followJobChanges(follow: FollowJobChanges): AsyncIterableIterator<StreamEvent> {
  const { feed, signal } = follow;
  const queue: StreamEvent[] = [...(follow.first ?? [])];
  /** Of the live events waiting in `queue`. */
  let queuedBytes = 0;
  let waiting: ((result: IteratorResult<StreamEvent>) => void) | null = null;
  /** Cut off as too slow; the error is made when the client reads, so it pins nothing of the feed's frames meanwhile. */
  let tooSlow = false;
  let ended = false;
  let joined = false;
  let take: ((event: StreamEvent) => boolean) | null = null;
  /**
   * Jobs a catch-up read left out because they changed again past the position it read to: the
   * client still holds their status from before, which the next event about each must give as
   * `previousStatus` (the feed, or the next read, would give the status at that position, which
   * the client never saw).
   */
  const heldStatus = new Map<string, FeedEvent['previousStatus']>();
  /** The event with `previousStatus` as this client knows it. */
  const asKnown = <E extends StreamEvent>(event: E): E => {
    if (heldStatus.size === 0 || !heldStatus.has(event.job.id)) return event;
    const previousStatus = heldStatus.get(event.job.id)!;
    heldStatus.delete(event.job.id);
    return { ...event, previousStatus };
  };

  const end = () => {
    if (ended) return;
    ended = true;
    queue.length = 0;
    queuedBytes = 0;
    feed.leave(listener);
    signal.removeEventListener('abort', end);
    catchUp.return(undefined).catch(() => {});
    const resolve = waiting;
    waiting = null;
    resolve?.(DONE);
  };
  const emit = (event: StreamEvent): IteratorResult<StreamEvent> => {
    if (follow.endsAfter?.(event)) end();
    return { done: false, value: event };
  };
  const listener: FeedListener = {
    jobIds: follow.jobIds,
    deliver(shared) {
      if (ended || tooSlow) return;
      const event = asKnown(shared);
      if (!follow.accepts(event)) return;
      if (waiting && queue.length === 0) {
        if (take?.(event)) {
          if (follow.endsAfter?.(event)) end();
          return;
        }
        const resolve = waiting;
        waiting = null;
        resolve(emit(event));
      } else {
        const bytes = queuedBytesOf(event);
        if (queue.length >= follow.maxQueued || queuedBytes + bytes > follow.maxQueuedBytes) {
          // What was queued is dropped at once; the client gets the error when it reads again.
          tooSlow = true;
          queue.length = 0;
          queuedBytes = 0;
          feed.leave(listener);
          slowSubscribersCutOff.inc();
        } else {
          queue.push(event);
          queuedBytes += bytes;
        }
      }
    },
  };
  signal.addEventListener('abort', end, { once: true });

  /** Everything `base` missed and `target` sees, after `after`, as events. */
  async function* readMissed(base: Snapshot, target: Snapshot, after: RowKey | null): AsyncGenerator<FeedEvent> {
    const limit = follow.pageSize ?? 500;
    // Continuing a read the client dropped out of, the jobs it got before the drop are not known here.
    const whole = after === null;
    const read = new Set<string>();
    for (;;) {
      const page = await readJobChanges(follow.em, { ...follow.scope, base, target, after, limit });
      for (const change of page.changes) {
        read.add(change.job.id);
        const event = asKnown(feedEvent(follow.positions, change, base, target));
        if (follow.accepts(event)) yield event;
      }
      if (page.changes.length < limit) break;
      after = page.changes[page.changes.length - 1]!.key;
    }
    if (whole) await holdStatusOfJobsPast(base, target, read);
  }

  /**
   * A job whose row is already past `target` when read is not in a read up to `target`: its state
   * at `target` is gone, and what comes next about it (from the next read, or the feed, which
   * takes over at `target`) says its status at `target`. The client holds its status at `base`
   * (null: a job new to it), or an earlier one still held: remembered here, for `asKnown`.
   */
  async function holdStatusOfJobsPast(base: Snapshot, target: Snapshot, read: ReadonlySet<string>): Promise<void> {
    const limit = follow.pageSize ?? 500;
    let after: RowKey | null = null;
    // Each page is read now, and a row written again meanwhile comes again later: a bound, should
    // writers outpace the reads.
    for (let pages = 0; pages < MAX_HOLD_PAGES; pages++) {
      const page = await readJobChanges(follow.em, { ...follow.scope, base: target, statusBase: base, target: null, after, limit });
      for (const change of page.changes) {
        if (!read.has(change.job.id) && !heldStatus.has(change.job.id)) heldStatus.set(change.job.id, change.statusAtBase);
      }
      if (page.changes.length < limit) return;
      after = page.changes[page.changes.length - 1]!.key;
    }
  }

  /** The catch-up: yields what the client missed, and returns once the listener has joined the feed. */
  async function* catchUpThenJoin(): AsyncGenerator<FeedEvent> {
    if (!follow.from) {
      while (!ended) {
        const tail = await feed.tail();
        if (ended || feed.join(listener, tail)) return;
      }
      return;
    }
    const { base, partial } = follow.from;
    let position = base;
    if (partial) {
      yield* readMissed(base, partial.target, partial.after);
      position = partial.target;
    }
    while (!ended) {
      const tail = await feed.tail();
      if (ended || feed.join(listener, position)) return;
      if (includes(tail, position)) {
        yield* readMissed(position, tail, null);
        position = tail;
      } else {
        // The client is ahead of this replica's feed (its cursor is newer): let the feed pass it.
        await feed.nextBatch();
      }
    }
  }
  const catchUp = catchUpThenJoin();

  const iterator: AsyncIterableIterator<StreamEvent> & HandsOff<StreamEvent> = {
    handOffTo(taker) {
      take = taker;
    },
    next(): Promise<IteratorResult<StreamEvent>> {
      if (ended) return Promise.resolve(DONE);
      // The first events and what the catch-up reads come before anything the feed hands over.
      const first = !joined && follow.first?.length ? queue.shift() : undefined;
      if (first) return Promise.resolve(emit(first));
      if (!joined) {
        return catchUp.next().then(
          (result) => {
            if (!result.done) return emit(result.value);
            joined = true;
            return iterator.next();
          },
          (error: unknown) => {
            end();
            throw error;
          },
        );
      }
      const event = queue.shift();
      if (event) {
        queuedBytes = Math.max(0, queuedBytes - queuedBytesOf(event));
        return Promise.resolve(emit(event));
      }
      if (tooSlow) {
        end();
        return Promise.reject(new SubscriberTooSlowError());
      }
      return new Promise((resolve) => {
        waiting = resolve;
      });
    },
    return(): Promise<IteratorResult<StreamEvent>> {
      end();
      return Promise.resolve(DONE);
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
