import { type GraphQLRequestError, subscribe } from './graphql';

/**
 * `live`: the stream is open; `reconnecting`: it dropped and the page is getting it back (also
 * before the first connection); `stopped`: the API refused it for good (see `onRefused`).
 */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'stopped';

export interface ResumableStreamOptions<T> {
  token: string;
  document: string;
  /** The operation's variables for a (re)connection that resumes after `after` (null: from now). */
  variables(after: string | null): Record<string, unknown>;
  /** The position to start after; null: from now. */
  after: string | null;
  /** The stream position an event carries. */
  cursorOf(data: T): string;
  onEvent(data: T): void;
  onState?(state: ConnectionState): void;
  /**
   * The API refused the operation for a reason a retry cannot mend (the token, the input, a
   * cursor too old to resume from): the stream stops.
   */
  onRefused?(error: GraphQLRequestError): void;
  /**
   * The server ended the stream, as a finished job's log or progress does. Without it, an ended
   * stream is taken as a drop (a replica shutting down ends its streams) and resumed.
   */
  onComplete?(): void;
}

/** Waits between reconnection attempts: quick at first, then every few seconds. */
const RETRY_DELAYS_MS = [250, 500, 1_000, 2_000, 4_000];

/**
 * Refusals a retry cannot mend. Everything else (a dropped connection, a replica that is starting,
 * a database blip masked as an internal error, SUBSCRIBER_TOO_SLOW, QUEUE_UNAVAILABLE) is resumed
 * from the last cursor; RATE_LIMITED after the time it names.
 */
const FINAL_CODES = new Set([
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'BAD_USER_INPUT',
  'NOT_FOUND',
  'BAD_REQUEST',
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'CURSOR_EXPIRED',
]);

/**
 * A subscription that survives dropped connections without losing an event: it remembers the
 * cursor of the last event it handed out and, when the stream drops (a replica restarts, the
 * network blinks), reconnects with `after: <that cursor>`, so the server sends every change made
 * meanwhile before going live again. Returns the function that stops it.
 */
export function resumableStream<T>(options: ResumableStreamOptions<T>): () => void {
  let after = options.after;
  let stopped = false;
  let failures = 0;
  let dispose: (() => void) | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;

  const connect = () => {
    timer = null;
    if (stopped) return;
    dispose = subscribe<T>(options.token, options.document, options.variables(after), {
      connected: () => {
        failures = 0;
        options.onState?.('live');
      },
      next: (data) => {
        after = options.cursorOf(data);
        options.onEvent(data);
      },
      error: (error) => {
        if (stopped) return;
        if (FINAL_CODES.has(error.code)) {
          stopped = true;
          options.onState?.('stopped');
          options.onRefused?.(error);
          return;
        }
        retry(error.code === 'RATE_LIMITED' && error.retryAfter ? error.retryAfter * 1_000 : null);
      },
      complete: () => {
        if (stopped) return;
        if (options.onComplete) {
          stopped = true;
          options.onComplete();
        } else retry(null);
      },
    });
  };

  const retry = (delayMs: number | null) => {
    if (timer) return;
    options.onState?.('reconnecting');
    const delay = delayMs ?? RETRY_DELAYS_MS[Math.min(failures, RETRY_DELAYS_MS.length - 1)]!;
    failures += 1;
    timer = setTimeout(connect, delay);
  };

  options.onState?.('connecting');
  connect();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    dispose?.();
  };
}
