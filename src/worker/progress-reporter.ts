import type { ProgressReport } from '../engine/define-job.js';

/** The coalesced state a flush writes. */
export interface ProgressState {
  processed: number | null;
  total: number | null;
  message: string | null;
  progress: number;
}

/**
 * Coalesces a handler's reports: at most one flush per `intervalMs`, always with the latest state,
 * and `close()` flushes whatever is pending so the last report is never dropped. Flushes run one
 * at a time, in order; a failing flush is reported and does not stop the job.
 */
export class ProgressReporter {
  private state: ProgressState = { processed: null, total: null, message: null, progress: 0 };
  private dirty = false;
  private lastFlushAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly flush: (state: ProgressState) => Promise<void>,
    private readonly intervalMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  report(report: ProgressReport): void {
    const next = { ...this.state };
    if (report.processed !== undefined) next.processed = report.processed;
    if (report.total !== undefined) next.total = report.total;
    if (report.message !== undefined) next.message = report.message;
    if (next.total && next.total > 0 && next.processed !== null) {
      next.progress = Math.min(100, Math.max(0, (next.processed / next.total) * 100));
    }
    this.state = next;
    this.dirty = true;
    this.schedule();
  }

  /** The latest reported state, flushed or not. */
  get current(): ProgressState {
    return this.state;
  }

  /** Flushes what is pending and stops the timer. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.dirty) this.enqueueFlush();
    await this.chain;
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = this.lastFlushAt + this.intervalMs - Date.now();
    if (wait <= 0) {
      this.enqueueFlush();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.dirty) this.enqueueFlush();
    }, wait);
  }

  private enqueueFlush(): void {
    this.dirty = false;
    this.lastFlushAt = Date.now();
    const snapshot = this.state;
    this.chain = this.chain.then(() => this.flush(snapshot)).catch(this.onError);
  }
}
