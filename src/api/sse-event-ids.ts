import type { ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { sharedJson } from '../graphql/shared-subscription-execution.js';

type Serialisable = ExecutionResult & { stringify?: (result: ExecutionResult) => string };

/**
 * Over yoga's SSE (`/graphql` with `Accept: text/event-stream`), every frame whose result carries
 * a stream position (`extensions.cursor`) gets it as the SSE `id:` too, so an `EventSource` (or a
 * fetch-based client that keeps the last id) sends it back as `Last-Event-ID` when it reconnects
 * and the subscription resumes there. SSE fields may come in any order within a frame, so the
 * `id:` line follows the `data:` line yoga writes; the JSON itself is serialised once per result
 * however many subscribers share it.
 */
export function useSseEventIds(): Plugin {
  return {
    onResultProcess({ request, result, setResult }) {
      if (!(Symbol.asyncIterator in Object(result))) return;
      if (!request.headers.get('accept')?.includes('text/event-stream')) return;
      setResult(withEventIds(result as AsyncIterable<Serialisable>));
    },
  };
}

function withEventIds(results: AsyncIterable<Serialisable>): AsyncIterableIterator<Serialisable> {
  const iterator = results[Symbol.asyncIterator]();
  const framed: AsyncIterableIterator<Serialisable> = {
    next() {
      return iterator.next().then((next): IteratorResult<Serialisable> => {
        if (next.done) return next;
        const result = next.value;
        const cursor = result.extensions?.cursor;
        if (typeof cursor !== 'string') return next;
        const value: Serialisable = {
          ...result,
          // yoga hands back our own object unless it had to strip internals from errors.
          stringify: (sanitised) => `${sanitised === value ? sharedJson(result) : JSON.stringify(sanitised)}\nid: ${cursor}`,
        };
        return { done: false, value };
      });
    },
    async return() {
      await iterator.return?.();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return framed;
    },
  };
  return framed;
}
