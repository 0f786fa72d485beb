import { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { ExecutionResult, GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { pushedResults, type ResultSink, type SubscriptionResults } from '../graphql/shared-subscription-execution.js';

/** A comment line sent this often keeps proxies from closing a quiet stream (as yoga's SSE does). */
const KEEP_ALIVE_MS = 12_000;

/**
 * Subscriptions over yoga's SSE (`/graphql` with `Accept: text/event-stream`) in place of yoga's
 * own SSE result processor, in the same format (distinct connections mode of GraphQL over SSE):
 * - results are written as they come (`SubscriptionResults.push`), the shared JSON of each result
 *   in one frame, instead of each being pulled through a web stream per subscriber; past
 *   `bufferBytes` waiting to go out they wait in the subscription's queue instead;
 * - served by Node's HTTP server (yoga's `res` in the server context), frames go straight to the
 *   response, and the response body only ends it: a stream between the two (its push, `data`
 *   event and flow control) was about 4% of a replica's CPU in the fan-out bench (in-process, as
 *   with `yoga.fetch`, the body carries the frames);
 * - every frame whose result carries a stream position (`extensions.cursor`) has it as its `id:`,
 *   so an `EventSource` (or a fetch-based client that keeps the last id) sends it back as
 *   `Last-Event-ID` when it reconnects, and the subscription resumes there.
 */
export function useSseSubscriptions(bufferBytes: number): Plugin {
  return {
    onResultProcess({ request, result, resultProcessor, setResultProcessor, serverContext }) {
      if (!resultProcessor || !(Symbol.asyncIterator in Object(result))) return;
      const results = pushedResults(request);
      // For a subscription's stream of results, yoga's only processor is SSE: this one takes its place.
      if (!results) return;
      const response = nodeResponseOf(serverContext);
      const socket = clientSocketOf(serverContext);
      setResultProcessor(
        (_result, fetchAPI) => eventStream(result as AsyncIterable<ExecutionResult>, results, fetchAPI, bufferBytes, response, socket),
        'text/event-stream',
      );
    },
  };
}

function nodeResponseOf(serverContext: unknown): ServerResponse | undefined {
  const response = (serverContext as { res?: unknown } | undefined)?.res;
  return response instanceof ServerResponse ? response : undefined;
}

/**
 * The client's connection, when Node's HTTP server serves the request. A response queued behind
 * another on a pipelining connection never hears that its client went away (its `close` comes
 * only once it is the connection's current response), so a stream also ends when the connection
 * closes; the request's own `close` means only that its body was read.
 */
export function clientSocketOf(serverContext: unknown): Socket | undefined {
  const request = (serverContext as { req?: unknown } | undefined)?.req;
  return request instanceof IncomingMessage ? request.socket : undefined;
}

/** Calls `gone` once `socket` closes (in a microtask if it has); returns what stops that. */
export function whenSocketCloses(socket: Socket | undefined, gone: () => void): () => void {
  if (!socket) return () => {};
  if (socket.destroyed) {
    queueMicrotask(gone);
    return () => {};
  }
  socket.once('close', gone);
  return () => socket.off('close', gone);
}

function eventStream(
  iterable: AsyncIterable<ExecutionResult>,
  results: SubscriptionResults,
  fetchAPI: { Response: typeof Response },
  bufferBytes: number,
  response: ServerResponse | undefined,
  socket: Socket | undefined,
): Response {
  let keepAlive: NodeJS.Timeout | undefined;
  let started = false;
  const body = new Readable({
    highWaterMark: bufferBytes,
    // Nothing starts before the response is read (its head is written by then): a client gone
    // before that leaves nothing running. Later, the client has read what was waiting: write again.
    read: () => (started ? results.resume() : start()),
    // The client went away (or the stream failed): the iterator envelop wraps ours in ends it all.
    destroy: (error, callback) => {
      clearInterval(keepAlive);
      Promise.resolve(iterable[Symbol.asyncIterator]().return?.()).then(
        () => callback(error),
        () => callback(error),
      );
    },
  });
  body.once(
    'close',
    whenSocketCloses(socket, () => body.destroy()),
  );
  const resume = () => results.resume();
  /** Writes a frame; false once `bufferBytes` wait to go out (the body, or the response, calls `resume` when they have). */
  const write = response
    ? (frame: Buffer | string) => {
        if (response.write(frame) || response.writableLength < bufferBytes) return true;
        response.once('drain', resume);
        return false;
      }
    : (frame: Buffer | string) => body.push(frame);
  const pending = () => (response ? response.writableLength : body.readableLength);
  const sink: ResultSink = {
    write: (result, json) => write(frameOf(result, json)),
    end: () => {
      clearInterval(keepAlive);
      write('event: complete\ndata:\n\n');
      body.push(null);
    },
    // Its client would otherwise wait on a stream that sends nothing more; cut, it reconnects.
    // Destroyed without the error: nothing listens for the body's 'error', which would end the process.
    fail: () => {
      body.destroy();
      response?.destroy();
    },
  };
  const start = () => {
    started = true;
    // A first comment, because some browsers do not report a response before its first bytes.
    write(':\n\n');
    keepAlive = setInterval(() => {
      if (pending() === 0) write(':\n\n');
    }, KEEP_ALIVE_MS);
    results.push(sink);
  };
  return new fetchAPI.Response(body as never, {
    status: 200,
    headers: { 'Content-Type': 'text/event-stream', Connection: 'keep-alive', 'Cache-Control': 'no-cache', 'Content-Encoding': 'none' },
  });
}

const frames = new WeakMap<ExecutionResult, Buffer>();

/** A result's SSE frame, encoded once however many subscribers share the result. */
function frameOf(result: ExecutionResult, json: string): Buffer {
  let frame = frames.get(result);
  if (!frame) {
    frame = Buffer.from(`event: next\ndata: ${serialised(result, json)}${idLine(result)}\n\n`);
    frames.set(result, frame);
  }
  return frame;
}

function idLine(result: ExecutionResult): string {
  const cursor = result.extensions?.cursor;
  return typeof cursor === 'string' ? `\nid: ${cursor}` : '';
}

/** The shared JSON, unless the result carries yoga's internal fields (`http`, `unexpected`), which clients never see. */
function serialised(result: ExecutionResult, json: string): string {
  const internal = (extensions: Record<string, unknown> | undefined) => extensions && ('http' in extensions || 'unexpected' in extensions);
  if (!internal(result.extensions) && !result.errors?.some((error) => internal(error.extensions))) return json;
  const { http: _http, unexpected: _unexpected, ...extensions } = result.extensions ?? {};
  return JSON.stringify({
    ...result,
    errors: result.errors?.map((error: GraphQLError) => {
      const { http: _h, unexpected: _u, ...rest } = error.extensions ?? {};
      return { ...error.toJSON(), extensions: Object.keys(rest).length ? rest : undefined };
    }),
    extensions: Object.keys(extensions).length ? extensions : undefined,
  });
}
