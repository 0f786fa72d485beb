/**
 * Group commit: requests made while a write is in flight go out together in the next one. A quiet
 * worker's request is written at once (after the current turn of the event loop, which gathers
 * what that turn asked for); a busy worker's concurrent jobs share one statement and one round trip
 * instead of one each. Requests with the same key never share a batch, so each key's requests are
 * written one after another, in the order they were made.
 */
export class GroupCommit<Request, Answer> {
  private pending: { request: Request; resolve: (answer: Answer) => void; reject: (error: unknown) => void }[] = [];
  private writing = false;

  /**
   * @param write writes a batch and answers each request, in order (a throw fails the whole batch)
   * @param keyOf requests with equal keys go in different batches
   * @param maxBatch the most requests one write takes
   */
  constructor(
    private readonly write: (requests: Request[]) => Promise<Answer[]>,
    private readonly keyOf: (request: Request) => string,
    private readonly maxBatch = 200,
  ) {}

  submit(request: Request): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.pending.push({ request, resolve, reject });
      if (!this.writing) {
        this.writing = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch: typeof this.pending = [];
      const keys = new Set<string>();
      const later: typeof this.pending = [];
      for (const entry of this.pending) {
        const key = this.keyOf(entry.request);
        if (batch.length < this.maxBatch && !keys.has(key)) {
          keys.add(key);
          batch.push(entry);
        } else later.push(entry);
      }
      this.pending = later;
      try {
        const answers = await this.write(batch.map((entry) => entry.request));
        batch.forEach((entry, i) => entry.resolve(answers[i]!));
      } catch (error) {
        for (const entry of batch) entry.reject(error);
      }
    }
    this.writing = false;
  }
}
