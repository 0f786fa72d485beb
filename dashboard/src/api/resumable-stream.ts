import { GraphQLRequestError, subscribe } from './graphql';

/** `live`: the stream is open; `reconnecting`: it dropped and the page is getting it back. */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting';

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
  /** The API refused the operation (a coded error other than a dropped connection): no retry. */
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
        if (error.code !== 'NETWORK' && error.code !== 'SERVICE_UNAVAILABLE' && error.code !== 'QUEUE_UNAVAILABLE') {
          stopped = true;
          options.onRefused?.(error);
          return;
        }
        retry();
      },
      complete: () => {
        if (stopped) return;
        if (options.onComplete) {
          stopped = true;
          options.onComplete();
        } else retry();
      },
    });
  };

  const retry = () => {
    options.onState?.('reconnecting');
    const delay = RETRY_DELAYS_MS[Math.min(failures, RETRY_DELAYS_MS.length - 1)]!;
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

export { GraphQLRequestError };
