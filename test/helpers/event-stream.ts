/**
 * An `EventSource`-style reader of yoga's SSE on `/graphql` (GET, `Accept: text/event-stream`): it
 * keeps the last `id:` it saw and, like a browser's EventSource after a drop, can reconnect with
 * it as `Last-Event-ID`. Headers are allowed (a browser's EventSource cannot send Authorization;
 * fetch-based readers such as @microsoft/fetch-event-source can, and do the same).
 */
export interface SseFrame {
  id: string | null;
  event: string;
  data: string;
}

export interface EventStreamReader {
  frames: SseFrame[];
  /** The `id:` of the last frame that had one. */
  lastEventId: string | null;
  /** Settles when the server ends the stream (or the reader is dropped). */
  ended: Promise<void>;
  /** Drops the connection, as a network failure would. */
  drop(): void;
}

export function readEventStream(
  graphqlUrl: string,
  token: string,
  query: string,
  variables: Record<string, unknown> = {},
  lastEventId: string | null = null,
): EventStreamReader {
  const url = new URL(graphqlUrl);
  url.searchParams.set('query', query);
  url.searchParams.set('variables', JSON.stringify(variables));
  const abort = new AbortController();
  const reader: EventStreamReader = {
    frames: [],
    lastEventId,
    ended: Promise.resolve(),
    drop: () => abort.abort(),
  };
  reader.ended = (async () => {
    const response = await fetch(url, {
      headers: {
        accept: 'text/event-stream',
        authorization: `Bearer ${token}`,
        ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
      },
      signal: abort.signal,
    });
    if (!response.ok || !response.body) throw new Error(`SSE request failed: ${response.status} ${await response.text()}`);
    const decoder = new TextDecoder();
    let buffer = '';
    const body = response.body.getReader();
    for (;;) {
      const { done, value } = await body.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
        const frame: SseFrame = { id: null, event: 'message', data: '' };
        let hasField = false;
        for (const line of block.split('\n')) {
          if (line.startsWith(':') || line === '') continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          hasField = true;
          if (field === 'id') frame.id = value;
          else if (field === 'event') frame.event = value;
          else if (field === 'data') frame.data = frame.data ? `${frame.data}\n${value}` : value;
        }
        if (!hasField) continue;
        if (frame.id !== null) reader.lastEventId = frame.id;
        reader.frames.push(frame);
      }
    }
  })().catch((error: unknown) => {
    if (!abort.signal.aborted) throw error;
  });
  reader.ended.catch(() => {});
  return reader;
}

/** The `next` payloads of a reader's frames, parsed. */
export function nextPayloads<T = Record<string, any>>(reader: EventStreamReader): { data?: T; errors?: any[]; extensions?: any }[] {
  return reader.frames.filter((frame) => frame.event === 'next').map((frame) => JSON.parse(frame.data));
}
