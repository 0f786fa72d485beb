import { type EntityManager, IsolationLevel } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { currentSnapshot, type JobChange, readJobChanges } from '../engine/job-changes.js';
import { toEventMessage } from '../engine/job-store.js';
import type { JobEventMessage } from '../pubsub/topics.js';
import type { PositionCodec, RowKey, Snapshot } from './stream-position.js';

/**
 * A change as a subscription sends it: the job's state, its position in the stream, and the status
 * the client last knew the job in (left out only for a job's first state, read from its row).
 */
export type StreamEvent = JobEventMessage & { cursor: string; previousStatus?: JobChange['statusAtBase'] };

/** A change as the feed hands it out, with its status at the batch's start. */
export type FeedEvent = StreamEvent & { previousStatus: JobChange['statusAtBase'] };

/** Someone following the feed: it gets every event of every batch after the point it joined at. */
export interface FeedListener {
  deliver(event: FeedEvent): void;
  /** Only these jobs' events (a `jobProgress`, or a filter by `ids`); absent: every job's. */
  readonly jobIds?: readonly string[];
}

/**
 * The feed's listeners, indexed by the jobs they watch: an event goes to the listeners of every
 * job and to those of its own job only, so a replica where thousands each watch their own job
 * does one lookup per event, not one call per listener.
 */
class FeedListeners {
  private readonly all = new Set<FeedListener>();
  private readonly ofEveryJob = new Set<FeedListener>();
  private readonly byJob = new Map<string, Set<FeedListener>>();

  get size(): number {
    return this.all.size;
  }

  add(listener: FeedListener): void {
    if (this.all.has(listener)) return;
    this.all.add(listener);
    if (!listener.jobIds) return void this.ofEveryJob.add(listener);
    for (const id of listener.jobIds) {
      const watching = this.byJob.get(id);
      if (watching) watching.add(listener);
      else this.byJob.set(id, new Set([listener]));
    }
  }

  delete(listener: FeedListener): boolean {
    if (!this.all.delete(listener)) return false;
    if (!listener.jobIds) return this.ofEveryJob.delete(listener);
    for (const id of listener.jobIds) {
      const watching = this.byJob.get(id);
      if (watching?.delete(listener) && watching.size === 0) this.byJob.delete(id);
    }
    return true;
  }

  deliver(event: FeedEvent): void {
    for (const listener of this.ofEveryJob) listener.deliver(event);
    const watching = this.byJob.get(event.job.id);
    if (watching) for (const listener of watching) listener.deliver(event);
  }

  clear(): void {
    this.all.clear();
    this.ofEveryJob.clear();
    this.byJob.clear();
  }
}

/** One read of the feed: every change its `base` missed and its `target` sees. */
interface Batch {
  base: Snapshot;
  target: Snapshot | null;
  events: FeedEvent[];
  /** The key of the last row read, where a failed read continues. */
  lastKey: RowKey | null;
}

export interface JobChangeFeedOptions {
  em: EntityManager;
  positions: PositionCodec;
  logger: Logger;
  /** Rows per statement. */
  pageSize?: number;
  /** A read also happens this often while anyone listens, in case a doorbell was lost. */
  pollIntervalMs: number;
  /** Calls `ring` whenever a process announces a change; resolves to the function that stops it. */
  doorbell: (ring: () => void) => Promise<() => void>;
  /** Finished batches kept for listeners joining from a recent position, and their events at most. */
  keepBatches?: number;
  keepEvents?: number;
}

/** Events handed out in one turn of the event loop (see `handOut` in `JobChangeFeed`). */
const HAND_OUT_TURN = 64;

/**
 * One replica's tail of the job table: it reads every change after its position in batches (one
 * statement per page, for all listeners together) and hands each event to the listeners, then
 * moves its position to the batch's snapshot. PostgreSQL is the source; Redis pub/sub only rings
 * the bell (`wake`), and a timer reads anyway, so a lost message delays an event, never loses it.
 *
 * A listener joins at a position the feed has been at (`join`): the batches since then, kept for
 * a while, are handed to it first, so it continues exactly where its own catch-up stopped.
 */
export class JobChangeFeed {
  private readonly em: EntityManager;
  private readonly logger: Logger;
  private readonly pageSize: number;
  private readonly keepBatches: number;
  private readonly keepEvents: number;
  private position: Snapshot | null = null;
  private starting: Promise<Snapshot> | null = null;
  private current: Batch | null = null;
  private readonly finished: Batch[] = [];
  private readonly listeners = new FeedListeners();
  private reading = false;
  /** Bumped by `stop()`: a read begun before it hands nothing to anyone after it. */
  private generation = 0;
  private rang = false;
  private timer: NodeJS.Timeout | undefined;
  private stopListening: (() => void) | null = null;
  private batchWaiters: (() => void)[] = [];

  constructor(private readonly options: JobChangeFeedOptions) {
    this.em = options.em;
    this.logger = options.logger;
    this.pageSize = options.pageSize ?? 500;
    this.keepBatches = options.keepBatches ?? 64;
    this.keepEvents = options.keepEvents ?? 5_000;
  }

  /** The feed's position: every change it has handed out or is handing out comes after it. Starts the feed. */
  async tail(): Promise<Snapshot> {
    if (this.position) return this.position;
    this.starting ??= (async () => {
      this.stopListening ??= await this.options.doorbell(() => this.wake());
      const snapshot = await currentSnapshot(this.em);
      this.position ??= snapshot;
      this.starting = null;
      this.timer ??= setInterval(() => this.wake(), this.options.pollIntervalMs).unref();
      return this.position;
    })();
    try {
      return await this.starting;
    } catch (error) {
      this.starting = null;
      throw error;
    }
  }

  /**
   * Adds a listener that has seen everything `at` sees. Succeeds when `at` is a position the feed
   * has been at and still remembers: the events since are delivered to it at once, in order, and
   * all later ones as they are read. Returns false otherwise (the caller catches up to `tail()`
   * by itself and tries again).
   */
  join(listener: FeedListener, at: Snapshot): boolean {
    const batches = [...this.finished, ...(this.current ? [this.current] : [])];
    let from = batches.findIndex((batch) => batch.base.text === at.text);
    if (from < 0) {
      if (this.position?.text !== at.text) return false;
      from = batches.length;
    }
    // Added first: a listener cut off during the replay (too slow) leaves again at once.
    this.listeners.add(listener);
    for (const batch of batches.slice(from)) for (const event of batch.events) listener.deliver(event);
    return true;
  }

  /** Removes a listener; the last one to leave stops the feed (one that never joined changes nothing). */
  leave(listener: FeedListener): void {
    if (this.listeners.delete(listener) && this.listeners.size === 0) this.stop();
  }

  /** Resolves when the feed has finished its next batch (after a read it was asked for). */
  nextBatch(): Promise<void> {
    if (!this.position) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.batchWaiters.push(resolve));
    this.wake();
    return done;
  }

  /** Something changed: read soon. Reads never overlap; a ring during a read means one more read. */
  wake(): void {
    if (!this.position) return;
    if (this.reading) {
      this.rang = true;
      return;
    }
    this.reading = true;
    void this.readAll();
  }

  private async readAll(): Promise<void> {
    try {
      do {
        this.rang = false;
        await this.readBatch();
      } while (this.rang && this.position);
    } catch (error) {
      // The batch stays `current` with what it handed out so far, and the next read continues it.
      this.logger.warn({ err: error }, 'change feed read failed; retrying on the next change or tick');
    } finally {
      this.reading = false;
      const waiters = this.batchWaiters;
      this.batchWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private async readBatch(): Promise<void> {
    const base = this.position;
    if (!base) return;
    const generation = this.generation;
    // A batch a failed read left half done goes on from its last row: what it handed out stays handed out.
    const batch: Batch = this.current?.base === base ? this.current : { base, target: null, events: [], lastKey: null };
    this.current = batch;
    const read = (em: EntityManager) =>
      readJobChanges(em, { ownerId: null, base, target: batch.target, after: batch.lastKey, limit: this.pageSize });
    /**
     * Hands a page's changes out (none more once the feed stopped); false when the batch has more
     * pages. Every HAND_OUT_TURN events it lets the event loop turn: the HTTP responses the
     * events were written to send them only then, and a whole page of large events written in one
     * turn would back every SSE subscriber up past its send buffer, and a fast one off its queue.
     */
    const handOut = async (page: Awaited<ReturnType<typeof readJobChanges>>): Promise<boolean> => {
      batch.target ??= page.snapshot;
      for (const [handed, change] of page.changes.entries()) {
        if (handed > 0 && handed % HAND_OUT_TURN === 0) {
          await new Promise(setImmediate);
          if (generation !== this.generation) return false;
        }
        const event = feedEvent(this.options.positions, change, base, batch.target);
        batch.events.push(event);
        batch.lastKey = change.key;
        this.listeners.deliver(event);
      }
      return page.changes.length < this.pageSize;
    };
    // Most batches are one page: one statement, whose own snapshot is the batch's.
    let complete = false;
    if (batch.target === null) {
      const page = await read(this.em);
      if (generation !== this.generation) return; // stopped meanwhile: nobody is owed this read
      if (page.changes.length < this.pageSize) {
        complete = await handOut(page);
        if (generation !== this.generation) return;
      }
    }
    if (!complete) {
      // Several pages: one REPEATABLE READ transaction, so every page sees the batch's snapshot and
      // a job changed again while the pages are read is sent as it was at the snapshot, and its
      // next change in the next batch. (The full first page read above is read again in it.)
      const em = this.em.fork();
      await em.begin({ isolationLevel: IsolationLevel.REPEATABLE_READ, readOnly: true });
      try {
        for (;;) {
          const page = await read(em);
          if (generation !== this.generation) return;
          const last = await handOut(page);
          if (generation !== this.generation) return;
          if (last) break;
        }
      } finally {
        await em.rollback();
      }
    }
    if (this.position !== base) return; // stopped meanwhile
    this.current = null;
    // With nothing committed since, the position stands, but is now known current: cursors given
    // out from it age from now, so a quiet day does not make the next event's cursor expired.
    this.position = batch.target;
    if (batch.target!.text === base.text) return;
    this.finished.push(batch);
    let kept = this.finished.reduce((sum, b) => sum + b.events.length, 0);
    while (this.finished.length > this.keepBatches || (kept > this.keepEvents && this.finished.length > 1))
      kept -= this.finished.shift()!.events.length;
  }

  private stop(): void {
    this.generation++;
    const waiters = this.batchWaiters;
    this.batchWaiters = [];
    for (const resolve of waiters) resolve();
    clearInterval(this.timer);
    this.timer = undefined;
    this.stopListening?.();
    this.stopListening = null;
    this.position = null;
    this.current = null;
    this.finished.length = 0;
  }

  close(): void {
    this.listeners.clear();
    this.stop();
  }
}

/** A change read in a batch from `base` to `target`, as the event every listener gets. */
export function feedEvent(positions: PositionCodec, change: JobChange, base: Snapshot, target: Snapshot): FeedEvent {
  return {
    ...toEventMessage(change.job),
    cursor: positions.encode({ base, partial: { target, after: change.key } }),
    previousStatus: change.statusAtBase,
  };
}
