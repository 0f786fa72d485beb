import { isValueError } from './sql.js';

/**
 * Group commit: requests made while writes are in flight go out together in the next one. A lone
 * request is written at once (after the current turn of the event loop, which gathers
 * what that turn asked for); a busy worker's concurrent jobs share one statement and one round trip
 * instead of one each. Up to `maxInFlight` writes run at once, so a batch never waits behind a
 * slow one while the database has a core to spare. Requests with the same key never share a
 * batch and are written one after another, in the order they were made. A batch refused for a
 * value in it is written again request by request, so only the request at fault fails; any other
 * failure fails the whole batch at once.
 */
export class GroupCommit<Request, Answer> {
  private pending: Entry<Request, Answer>[] = [];
  private inFlight = 0;
  private scheduled = false;
  /** Keys in a write now: their next request waits for it. */
  private readonly writingKeys = new Set<string>();

  /**
   * @param write writes a batch and answers each request, in order (after a value error, each request is written again alone)
   * @param keyOf requests with equal keys go in different batches, one after the other
   * @param options.maxBatch the most requests one write takes; options.maxInFlight the most writes at once
   */
  constructor(
    private readonly write: (requests: Request[]) => Promise<Answer[]>,
    private readonly keyOf: (request: Request) => string,
    private readonly options: { maxBatch?: number; maxInFlight?: number } = {},
  ) {}

  submit(request: Request): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.pending.push({ request, key: this.keyOf(request), resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.pending.length === 0 || this.inFlight >= (this.options.maxInFlight ?? 2)) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.writeNext();
    });
  }

  private async writeNext(): Promise<void> {
    const batch: Entry<Request, Answer>[] = [];
    const later: Entry<Request, Answer>[] = [];
    const keys = new Set<string>();
    for (const entry of this.pending) {
      if (batch.length < (this.options.maxBatch ?? 200) && !keys.has(entry.key) && !this.writingKeys.has(entry.key)) {
        keys.add(entry.key);
        batch.push(entry);
      } else later.push(entry);
    }
    this.pending = later;
    if (batch.length === 0) return;
    this.inFlight++;
    for (const key of keys) this.writingKeys.add(key);
    try {
      const answers = await this.write(batch.map((entry) => entry.request));
      batch.forEach((entry, i) => entry.resolve(answers[i] as Answer));
    } catch (error) {
      // One bad request (a value the statement refuses) must not fail the others: each goes again
      // alone. Any other failure (the database unreachable, a timeout) is every request's.
      if (batch.length === 1 || !isValueError(error)) for (const entry of batch) entry.reject(error);
      else for (const entry of batch) await this.write([entry.request]).then(([answer]) => entry.resolve(answer as Answer), entry.reject);
    } finally {
      this.inFlight--;
      for (const key of keys) this.writingKeys.delete(key);
      // More may have arrived meanwhile, and a write slot is free now.
      this.schedule();
    }
  }
}

interface Entry<Request, Answer> {
  request: Request;
  key: string;
  resolve: (answer: Answer) => void;
  reject: (error: unknown) => void;
}
