import { randomUUID } from 'node:crypto';
import { type DocumentNode, type ExecutionResult, type GraphQLError, getOperationAST } from 'graphql';
import {
  type Request as SseRequest,
  type RequestParams,
  type Response as SseResponse,
  TOKEN_HEADER_KEY,
  TOKEN_QUERY_KEY,
} from 'graphql-sse';
import { createHandler, type RequestContext } from 'graphql-sse/lib/use/fetch';
import type { Plugin, YogaInitialContext } from 'graphql-yoga';
import type { Socket } from 'node:net';
import { bearerToken } from '../auth/tokens.js';
import { transportError } from '../graphql/errors.js';
import { sharedJson } from '../graphql/shared-subscription-execution.js';
import type { Services } from '../services.js';
import { clientSocketOf, whenSocketCloses } from './sse-subscriptions.js';

/** Where graphql-sse clients connect, in both of its modes. */
export const SSE_STREAM_PATH = '/graphql/stream';

/** Reserved streams a replica holds for all users together. */
const MAX_RESERVATIONS = 10_000;

/** A stream reserved with PUT: who reserved it, and until when it may wait to be opened. */
interface Reservation {
  userId: string;
  expiry: NodeJS.Timeout | null;
}

/**
 * What one reserved stream was handed and has not yet sent to its client: graphql-sse keeps what
 * its client has not read in a list of its own, so this counts the results it was handed, in
 * order, and the stream's writer takes each back off as its frame goes out. Operations wait on it
 * (`drained`) before they take another result.
 */
class Backlog {
  private readonly sizes: number[] = [];
  private first = 0;
  bytes = 0;
  /** Operations waiting for the stream's client to read what it was handed. */
  private readonly waiting = new Set<Drain>();

  /**
   * Null while at most `bytes` wait to go out; otherwise a wait that settles once they do, or once
   * it is cancelled (its operation ended). A cancelled wait is let go at once: an operation held
   * back once per result for hours leaves nothing behind.
   */
  drained(bytes: number): Drain | null {
    if (this.bytes <= bytes) return null;
    let settle!: () => void;
    const drain: Drain = {
      bytes,
      promise: new Promise<void>((resolve) => {
        settle = resolve;
      }),
      settle: () => {
        this.waiting.delete(drain);
        settle();
      },
    };
    this.waiting.add(drain);
    return drain;
  }

  handed(bytes: number): void {
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  sent(): void {
    if (this.first === this.sizes.length) return;
    this.bytes -= this.sizes[this.first++]!;
    if (this.first === this.sizes.length) {
      this.sizes.length = 0;
      this.first = 0;
      this.bytes = 0;
    } else if (this.first > 1024 && this.first * 2 > this.sizes.length) {
      this.sizes.splice(0, this.first);
      this.first = 0;
    }
    if (this.waiting.size > 0) this.wake();
  }

  private wake(): void {
    for (const drain of this.waiting) if (this.bytes <= drain.bytes) drain.settle();
  }
}

/** An operation's wait for its stream's client to read (see `Backlog.drained`). */
interface Drain {
  bytes: number;
  promise: Promise<void>;
  /** Ends the wait (and forgets it). */
  settle(): void;
}

/** The first line of a result frame, after the end of the frame before it. */
const RESULT_FRAME = Buffer.from('\nevent: next\n');

/**
 * Counts the result frames in an event stream's chunks as they go out. Chunks are not frames:
 * under backpressure one chunk holds several, and a frame may be split across two. A frame is
 * counted by its first line, `event: next`, which no other line can be (a data line is one line
 * of JSON); the end of each chunk is kept for a line split across two.
 */
export class ResultFrameCounter {
  private seen = Buffer.from('\n');

  /** The result frames that begin in `chunk`. */
  in(chunk: Uint8Array): number {
    const text = Buffer.concat([this.seen, chunk]);
    let count = 0;
    for (let at = text.indexOf(RESULT_FRAME); at >= 0; at = text.indexOf(RESULT_FRAME, at + RESULT_FRAME.length)) count++;
    this.seen = text.subarray(Math.max(0, text.length - (RESULT_FRAME.length - 1)));
    return count;
  }
}

/** Where yoga serves GraphQL, and its SSE (distinct connections mode). */
const GRAPHQL_PATH = '/graphql';

const UNAUTHENTICATED_MESSAGE = 'a valid bearer token is required (Authorization: Bearer <jwt>)';

/** graphql-sse's distinct connections mode: an event stream asked for without a reserved stream's token. */
function isDistinctConnection(request: Request, streamToken: string | null): boolean {
  return !streamToken && request.headers.get('accept') === 'text/event-stream' && (request.method === 'GET' || request.method === 'POST');
}

function unauthenticated(fetchAPI: { Response: typeof Response }): Response {
  const [body, init] = refusal(401, 'Unauthorized', 'UNAUTHENTICATED', UNAUTHENTICATED_MESSAGE);
  return new fetchAPI.Response(body as string, init);
}

function refusal(status: number, statusText: string, code: string, message: string): SseResponse {
  return [
    JSON.stringify({ errors: [{ message, extensions: { code } }] }),
    { status, statusText, headers: { 'content-type': 'application/json' } },
  ];
}

/** A refused operation as graphql-sse expects a finished result: it recognises one by its `data` key. */
function coded(error: unknown, code: string): { data: null; errors: GraphQLError[] } {
  return { data: null, errors: [transportError(error, code)] };
}

/**
 * The GraphQL over SSE protocol of graphql-sse at `/graphql/stream`. Its single connection mode
 * (reserve a stream with PUT, listen with GET, send operations with POST), which yoga's SSE on
 * `/graphql` does not speak, runs here; its distinct connections mode, which is what `/graphql`
 * speaks, is handed to `/graphql` once its token is checked. Every request needs the bearer token; a
 * reserved stream belongs to the user who reserved it, and only that user may listen to it or
 * send operations into it; a user holds at most SSE_RESERVATIONS_PER_USER, one not opened within
 * SSE_UNOPENED_STREAM_MS is dropped, and one is freed when its stream closes. Operations run
 * through yoga's envelop, so auth, input guards, limits, quotas and error masking are the same as
 * on `/graphql`; a subscriber whose client does not read is cut off with SUBSCRIBER_TOO_SLOW at the
 * same bounds (see `bounded`). A stream lives on the replica that reserved it: behind a load
 * balancer, single connection mode needs sticky sessions (distinct connections mode does not).
 */
export function useGraphQLSSE(services: Services): Plugin<YogaInitialContext> {
  const { config } = services;
  const reservations = new Map<string, Reservation>();
  const reservedBy = new Map<string, number>();
  const serverContexts = new WeakMap<Request, unknown>();
  /** Requests this plugin makes itself to close a reserved stream nobody opened. */
  const internal = new WeakSet<Request>();
  /** By stream token: what each reserved stream's client has yet to read. */
  const backlogs = new Map<string, Backlog>();
  /**
   * By stream token, the operation ids whose subscriptions are being set up or running. graphql-sse
   * forgets an id on its DELETE at once, even while its subscription is still being set up; a new
   * operation under that id would then take the id's place, and the first would run on, out of
   * reach of any DELETE or of the stream's end. The id stays taken until its subscription has ended:
   * an operation sent under it before is refused (409), and the one it would have replaced ends.
   */
  const operationIds = new Map<string, Map<string, { deleted: boolean }>>();
  let handler: (request: Request, context?: RequestContext) => Promise<Response>;
  let fetchAPI: { Request: typeof Request; Response: typeof Response };

  const streamTokenOf = (request: Request) =>
    request.headers.get(TOKEN_HEADER_KEY) ?? new URL(request.url, 'http://local').searchParams.get(TOKEN_QUERY_KEY);
  // A reserved stream's backlog is made with its reservation: one that is gone keeps none.
  const backlogOf = (streamToken: string | null): Backlog => (streamToken && backlogs.get(streamToken)) || new Backlog();
  const forget = (streamToken: string) => {
    const reservation = reservations.get(streamToken);
    if (!reservation) return;
    if (reservation.expiry) clearTimeout(reservation.expiry);
    reservations.delete(streamToken);
    backlogs.delete(streamToken);
    operationIds.delete(streamToken);
    const held = (reservedBy.get(reservation.userId) ?? 1) - 1;
    if (held > 0) reservedBy.set(reservation.userId, held);
    else reservedBy.delete(reservation.userId);
  };
  /** Drops a reserved stream nobody opened: graphql-sse frees one (and ends its operations) only when its listener goes. */
  const expire = async (streamToken: string) => {
    const request = new fetchAPI.Request(`http://internal${SSE_STREAM_PATH}`, {
      method: 'GET',
      headers: { accept: 'text/event-stream', [TOKEN_HEADER_KEY]: streamToken },
    });
    internal.add(request);
    forget(streamToken);
    const response = await handler(request).catch(() => null);
    await response?.body?.cancel().catch(() => {});
  };
  /**
   * A stream's frames as they go out: each result frame takes its result off the backlog; the end
   * of a reserved stream frees its reservation.
   */
  const counted = (response: Response, backlog: Backlog, streamToken: string | null, socket: Socket | undefined): Response => {
    const frames = response.body!.getReader();
    const resultFrames = new ResultFrameCounter();
    // The client's connection closed (see `clientSocketOf`): the stream ends, and its operations with it.
    const stopWatchingSocket = whenSocketCloses(socket, () => {
      closed();
      void frames.cancel().catch(() => {});
    });
    const closed = () => {
      stopWatchingSocket();
      if (streamToken) forget(streamToken);
    };
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { done, value } = await frames.read();
        if (value) {
          for (let results = resultFrames.in(value); results > 0; results--) backlog.sent();
          controller.enqueue(value);
        }
        if (done) {
          closed();
          controller.close();
        }
      },
      async cancel(reason) {
        closed();
        await frames.cancel(reason);
      },
    });
    return new fetchAPI.Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
  /**
   * An operation's results as graphql-sse takes them: while its stream's client has more than
   * SUBSCRIPTION_SEND_BUFFER_BYTES yet to read, the next result is not taken, and the events wait
   * in the subscription's own queue, which cuts a client that stays behind off with
   * SUBSCRIBER_TOO_SLOW (as on the other transports). graphql-sse would otherwise print every
   * result into its stream's list as it comes: a few hundred streams nobody reads would hold
   * megabytes each.
   */
  const bounded = (
    results: AsyncIterable<ExecutionResult>,
    backlog: Backlog,
    ended: () => void,
  ): AsyncIterableIterator<ExecutionResult> => {
    const source = results[Symbol.asyncIterator]();
    let stopped = false;
    /** The wait `next()` is in, if any: ending the operation ends it (no long-lived promise to race, whose reactions would pile up). */
    let waiting: Drain | null = null;
    const done = async (): Promise<IteratorResult<ExecutionResult>> => {
      if (!stopped) {
        stopped = true;
        waiting?.settle();
        ended();
      }
      await source.return?.();
      return { done: true, value: undefined };
    };
    return {
      async next() {
        if (stopped) return { done: true, value: undefined };
        waiting = backlog.drained(config.SUBSCRIPTION_SEND_BUFFER_BYTES);
        if (waiting) await waiting.promise;
        waiting = null;
        if (stopped) return { done: true, value: undefined };
        const next = await source.next();
        if (next.done) {
          stopped = true;
          ended();
          return next;
        }
        backlog.handed(sharedJson(next.value).length);
        return next;
      },
      return: done,
      async throw(error) {
        await done();
        throw error;
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  };

  return {
    onYogaInit({ yoga }) {
      fetchAPI = yoga.fetchAPI;
      /** Parses, validates and starts one operation through yoga's envelop; `ended` is called when its subscription ends. */
      const startOperation = async (
        req: SseRequest<Request, RequestContext>,
        params: RequestParams,
        streamToken: string | null,
        ended: () => void,
      ) => {
        const enveloped = yoga.getEnveloped({ ...(serverContexts.get(req.raw) as object), request: req.raw, params });
        let document: DocumentNode;
        try {
          document = enveloped.parse(params.query);
        } catch (error) {
          return coded(error, 'GRAPHQL_PARSE_FAILED');
        }
        let invalid: readonly GraphQLError[];
        try {
          invalid = enveloped.validate(enveloped.schema, document);
        } catch (error) {
          return coded(error, 'GRAPHQL_VALIDATION_FAILED');
        }
        if (invalid.length > 0) return coded(invalid[0], 'GRAPHQL_VALIDATION_FAILED');
        let contextValue: unknown;
        try {
          contextValue = await enveloped.contextFactory();
        } catch (error) {
          return coded(error, 'UNAUTHENTICATED');
        }
        const args = {
          schema: enveloped.schema,
          document,
          contextValue,
          variableValues: params.variables,
          operationName: params.operationName,
        };
        const operation = getOperationAST(document, params.operationName);
        const result = await (operation?.operation === 'subscription' ? enveloped.subscribe : enveloped.execute)(args);
        if (Symbol.asyncIterator in Object(result)) {
          // Its stream closed (or lapsed) while this operation was being set up: nothing would ever read it.
          if (streamToken && !reservations.has(streamToken)) {
            void (result as AsyncIterableIterator<ExecutionResult>).return?.();
            return coded(new Error('no such event stream: it closed'), 'NOT_FOUND');
          }
          return bounded(result as AsyncIterable<ExecutionResult>, backlogOf(streamToken), ended) as never;
        }
        // A refusal before execution (input guards, limits) comes back as errors without `data`.
        if (!('data' in Object(result))) return { data: null, ...(result as object) } as never;
        return result as never;
      };
      handler = createHandler(
        {
          async authenticate(req) {
            if (internal.has(req.raw)) return streamTokenOf(req.raw)!;
            const token = bearerToken(req.headers.get('authorization'));
            const viewer = token ? await services.tokens.verify(token).catch(() => null) : null;
            if (!viewer) return refusal(401, 'Unauthorized', 'UNAUTHENTICATED', UNAUTHENTICATED_MESSAGE);
            const streamToken = streamTokenOf(req.raw);
            if (!streamToken) {
              if (req.method !== 'PUT') return randomUUID();
              if ((reservedBy.get(viewer.id) ?? 0) >= config.SSE_RESERVATIONS_PER_USER)
                return refusal(
                  429,
                  'Too Many Requests',
                  'RATE_LIMITED',
                  `at most ${config.SSE_RESERVATIONS_PER_USER} reserved event streams per user; close one (or let an unopened one lapse) first`,
                );
              if (reservations.size >= MAX_RESERVATIONS)
                return refusal(
                  503,
                  'Service Unavailable',
                  'RATE_LIMITED',
                  'this replica holds all the event streams it can; try again later',
                );
              const reserved = randomUUID();
              const expiry = setTimeout(() => void expire(reserved), config.SSE_UNOPENED_STREAM_MS);
              expiry.unref();
              reservations.set(reserved, { userId: viewer.id, expiry });
              backlogs.set(reserved, new Backlog());
              reservedBy.set(viewer.id, (reservedBy.get(viewer.id) ?? 0) + 1);
              return reserved;
            }
            // Someone else's stream looks like one that does not exist.
            const reservation = reservations.get(streamToken);
            if (reservation?.userId !== viewer.id) return refusal(404, 'Not Found', 'NOT_FOUND', 'no such event stream');
            return streamToken;
          },
          async onSubscribe(req, params) {
            const streamToken = streamTokenOf(req.raw);
            const operationId = String(params.extensions?.operationId ?? '');
            if (!streamToken || !operationId) return startOperation(req, params, streamToken, () => {});
            const taken = operationIds.get(streamToken) ?? new Map<string, { deleted: boolean }>();
            operationIds.set(streamToken, taken);
            const earlier = taken.get(operationId);
            if (earlier) {
              // graphql-sse let this id through, so the client deleted the earlier operation under it.
              earlier.deleted = true;
              return refusal(409, 'Conflict', 'BAD_USER_INPUT', 'Operation with ID already exists: its subscription has not ended yet');
            }
            const state = { deleted: false };
            taken.set(operationId, state);
            const ended = () => {
              if (taken.get(operationId) === state) taken.delete(operationId);
            };
            const result = await startOperation(req, params, streamToken, ended);
            if (!(Symbol.asyncIterator in Object(result))) ended();
            else if (state.deleted) {
              await (result as unknown as AsyncIterableIterator<ExecutionResult>).return?.();
              return [null, { status: 204, statusText: 'No Content' }];
            }
            return result;
          },
        },
        yoga.fetchAPI,
      );
    },
    async onRequest({ request, url, endResponse, serverContext, setRequest }) {
      if (url.pathname !== SSE_STREAM_PATH) return;
      if (isDistinctConnection(request, streamTokenOf(request))) {
        // Distinct connections mode is the protocol of SSE on /graphql: served there, where a
        // result's frame is encoded once for every stream and written as the client takes it
        // (graphql-sse would print every result again for each stream). The token is checked
        // here first, so a request without one is refused as in single connection mode.
        const token = bearerToken(request.headers.get('authorization'));
        if (!token || !(await services.tokens.verify(token).catch(() => null))) return endResponse(unauthenticated(fetchAPI));
        const forwarded = new URL(`${GRAPHQL_PATH}${url.search}`, request.url);
        const body = request.method === 'POST' ? await request.text() : undefined;
        return setRequest(
          new fetchAPI.Request(forwarded, { method: request.method, headers: request.headers, body, signal: request.signal }),
        );
      }
      serverContexts.set(request, serverContext);
      return handler(request).then((response) => {
        if (!response.body || !response.headers.get('content-type')?.startsWith('text/event-stream')) return endResponse(response);
        const streamToken = streamTokenOf(request);
        const reservation = streamToken ? reservations.get(streamToken) : undefined;
        if (streamToken && reservation) {
          // Opened: it lapses no more. A listener that went away frees it even if its stream is never read again.
          if (reservation.expiry) clearTimeout(reservation.expiry);
          reservation.expiry = null;
          request.signal?.addEventListener('abort', () => forget(streamToken), { once: true });
        }
        endResponse(counted(response, backlogOf(streamToken), streamToken, clientSocketOf(serverContext)));
      });
    },
  };
}
