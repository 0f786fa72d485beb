/**
 * Runs `flush` at most once per `intervalMs` after something changed, and once more on `close()`
 * if anything changed since the last run, so the last change is never lost. Runs never overlap and
 * happen in order; a failing run is reported to `onError` and does not stop later ones.
 */
export class ThrottledFlush {
  private dirty = false;
  private lastFlushAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly flush: () => Promise<void>,
    private readonly intervalMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Something changed: a run is due within `intervalMs`. */
  touch(): void {
    this.dirty = true;
    if (this.timer) return;
    const wait = this.lastFlushAt + this.intervalMs - Date.now();
    if (wait <= 0) {
      this.run();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.dirty) this.run();
    }, wait);
  }

  /** Runs once more if anything changed, waits for every run, and stops the timer. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.dirty) this.run();
    await this.chain;
  }

  private run(): void {
    this.dirty = false;
    this.lastFlushAt = Date.now();
    this.chain = this.chain.then(this.flush).catch(this.onError);
  }
}
