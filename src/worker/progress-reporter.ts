import type { ProgressReport } from '../engine/define-job.js';
import { MAX_METADATA_BYTES, serialisedBytes, storableJson } from '../engine/json-values.js';
import { ThrottledFlush } from './throttled-flush.js';

/** The coalesced state a flush writes; `metadata` only once the handler set some. */
export interface ProgressState {
  processed: number | null;
  total: number | null;
  message: string | null;
  progress: number;
  metadata?: Record<string, unknown>;
}

/**
 * Coalesces a handler's reports and metadata patches: at most one flush per `intervalMs`, always
 * with the latest state, and `close()` flushes whatever is pending so the last report is never
 * dropped. Flushes run one at a time, in order; a failing flush is reported and does not stop the job.
 */
export class ProgressReporter {
  private state: ProgressState = { processed: null, total: null, message: null, progress: 0 };
  private readonly flushes: ThrottledFlush;

  constructor(
    flush: (state: ProgressState) => Promise<void>,
    intervalMs: number,
    onError: (error: unknown) => void,
    /** The job's metadata when the attempt started: patches merge into it. */
    private metadata: Record<string, unknown> = {},
  ) {
    this.flushes = new ThrottledFlush(() => flush(this.state), intervalMs, onError);
  }

  report(report: ProgressReport): void {
    const next = { ...this.state };
    if (report.processed !== undefined) next.processed = report.processed;
    if (report.total !== undefined) next.total = report.total;
    if (report.message !== undefined) next.message = report.message;
    if (next.total && next.total > 0 && next.processed !== null) {
      next.progress = Math.min(100, Math.max(0, (next.processed / next.total) * 100));
    }
    this.state = next;
    this.flushes.touch();
  }

  /**
   * Merges `patch` into the job's metadata (shallow: a key given replaces the old value), as plain
   * JSON PostgreSQL stores. Refused, returning false, when the result would exceed
   * MAX_METADATA_BYTES serialised or the patch has no JSON object form.
   */
  setMetadata(patch: Record<string, unknown>): boolean {
    const stored = storableJson(patch);
    if (stored === null || typeof stored !== 'object' || Array.isArray(stored)) return false;
    const merged = { ...this.metadata, ...(stored as Record<string, unknown>) };
    if (serialisedBytes(merged) > MAX_METADATA_BYTES) return false;
    this.metadata = merged;
    this.state = { ...this.state, metadata: merged };
    this.flushes.touch();
    return true;
  }

  /** The latest reported state, flushed or not. */
  get current(): ProgressState {
    return this.state;
  }

  /** Flushes what is pending and stops the timer. */
  close(): Promise<void> {
    return this.flushes.close();
  }
}
