/**
 * A sidecar's background pass (reconciling, sweeping expired jobs): one run at a time, the next
 * `intervalMs` after the previous one ended, a failed run logged and retried at the next tick.
 * `close` stops the timer and waits for a run in progress.
 */
export class PeriodicTask {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly run: () => Promise<unknown>,
    private readonly intervalMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Starts ticking; the first run comes after `firstDelayMs`. (Default: one interval) */
  start(firstDelayMs = this.intervalMs): void {
    const tick = () => {
      this.running = this.run()
        .then(() => undefined)
        .catch(this.onError)
        .finally(() => {
          this.running = null;
          if (this.timer) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    this.timer = setTimeout(tick, firstDelayMs);
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}
