import type { IncomingMessage, Server } from 'node:http';
import { type DocumentNode, getOperationAST, GraphQLError, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { CloseCode, handleProtocols, makeServer, type Context, type SubscribePayload } from 'graphql-ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Viewer } from '../auth/tokens.js';
import type { GraphQLContext } from '../graphql/context.js';
import { graphqlError, rateLimitedError, transportError } from '../graphql/errors.js';
import { pushedResults, type ResultSink, type SubscriptionResults } from '../graphql/shared-subscription-execution.js';
import type { Services } from '../services.js';
import { authenticate, type JobwireYoga } from './yoga.js';

/** The GraphQL-over-WebSocket endpoint attached to the API's HTTP server. */
export interface GraphQLWebSocket {
  /** Closes every socket (1001 Going away) and stops accepting new ones. */
  close(): Promise<void>;
}

/** What graphql-ws keeps per socket beside the protocol state. */
interface SocketExtra {
  socket: WebSocket;
  request: IncomingMessage;
  /** The caller, authenticated once at `connection_init`; every operation on the socket runs as them. */
  viewer: Viewer | null;
  /** Ids of this socket's subscription operations, open or being set up (MAX_SUBSCRIPTIONS_PER_CONNECTION). */
  subscriptions: Set<string>;
}

type SocketContext = Context<Record<string, unknown>, SocketExtra>;
type Enveloped = ReturnType<JobwireYoga['getEnveloped']>;

/**
 * graphql-ws on `/graphql` of `server`, executing through `yoga`'s envelop (schema, graphql-armor
 * limits, error masking), with:
 * - authentication once, at `connection_init`: the bearer token from `connectionParams.authorization`
 *   (or `Authorization`), else the upgrade request's `Authorization` header. No or a bad token closes
 *   the socket with 4403 Forbidden and the reason (graphql-ws clients may retry 4403 with fresh
 *   connection params; 4401 is the protocol's "subscribe before ack" and is fatal to them).
 * - a socket that sends no `connection_init` within WS_CONNECTION_INIT_TIMEOUT_MS closed with 4408;
 *   a message over WS_MAX_PAYLOAD_BYTES closes its socket with 1009.
 * - every refusal of one operation (syntax, validation, limits, access, quotas, an expired token)
 *   an `error` message for that operation id with `extensions.code`; the socket and its other
 *   operations go on.
 */
export function attachGraphQLWebSocket(server: Server, yoga: JobwireYoga, services: Services): GraphQLWebSocket {
  const { config, logger } = services;
  /** The envelop each operation was prepared with, and a subscription's stream already started in onSubscribe (with its id and socket). */
  const prepared = new WeakMap<
    object,
    { enveloped: Enveloped; stream?: AsyncIterable<ExecutionResult>; id?: string; socket?: WebSocket; ended?: () => void }
  >();

  const refuse = (id: string, errors: readonly GraphQLError[], logged = false): readonly GraphQLError[] => {
    const coded = errors.length ? errors : [graphqlError('INTERNAL_SERVER_ERROR' as never, 'Unexpected error.')];
    if (!logged) logger.debug({ operationId: id, codes: coded.map((e) => e.extensions.code) }, 'WebSocket operation refused');
    return coded;
  };

  const protocol = makeServer<Record<string, unknown>, SocketExtra>({
    connectionInitWaitTimeout: config.WS_CONNECTION_INIT_TIMEOUT_MS,
    onConnect: async (ctx) => {
      const params = ctx.connectionParams;
      const fromParams =
        typeof params?.authorization === 'string'
          ? params.authorization
          : typeof params?.Authorization === 'string'
            ? params.Authorization
            : null;
      try {
        ctx.extra.viewer = await authenticate(services, fromParams ?? ctx.extra.request.headers.authorization);
        return true;
      } catch (error) {
        const reason = error instanceof Error ? error.message : 'invalid token';
        logger.debug({ reason }, 'WebSocket connection refused');
        // Closed here to give the reason; graphql-ws's own close (4403 "Forbidden") then does nothing.
        ctx.extra.socket.close(CloseCode.Forbidden, closeReason(reason));
        return false;
      }
    },
    onSubscribe: async (ctx, id, payload) => {
      // Ids are echoed in every message and kept per operation: a huge one would pin memory.
      if (id.length > MAX_OPERATION_ID_LENGTH) {
        logger.debug({ length: id.length }, 'WebSocket closed: operation id too long');
        ctx.extra.socket.close(CloseCode.BadRequest, `operation ids are at most ${MAX_OPERATION_ID_LENGTH} characters`);
        return [new GraphQLError('operation id too long', { extensions: { code: 'BAD_USER_INPUT' } })];
      }
      // graphql-ws forgets an id on the client's `complete` at once, even while its subscription is
      // still being set up here; a new operation under that id would then take the id's place, and
      // the first subscription would run on, out of reach of any `complete` or close. The id stays
      // taken until its subscription has ended, and reusing it before is the duplicate it is.
      if (ctx.extra.subscriptions.has(id)) {
        logger.debug({ operationId: id }, 'WebSocket closed: operation id reused before its subscription ended');
        ctx.extra.socket.close(CloseCode.SubscriberAlreadyExists, closeReason(`Subscriber for ${id} already exists`));
        return [new GraphQLError('operation id in use', { extensions: { code: 'BAD_USER_INPUT' } })];
      }
      try {
        return await prepare(ctx, id, payload);
      } catch (error) {
        ctx.extra.subscriptions.delete(id);
        logger.error({ err: error, operationId: id }, 'unexpected error preparing a WebSocket operation');
        return refuse(id, [], true);
      }
    },
    execute: (args) => prepared.get(args.contextValue as object)!.enveloped.execute(args) as never,
    subscribe: (args) => {
      const entry = prepared.get(args.contextValue as object)!;
      if (!entry.stream) return entry.enveloped.subscribe(args) as never;
      // Results are written to the socket as they come; graphql-ws's own iteration then only sends `complete`.
      const results = pushedResults(args.contextValue as object);
      return pushingFromFirstNext(
        entry.stream,
        results ? () => results.push(socketSink(entry.socket!, entry.id!, results, config.SUBSCRIPTION_SEND_BUFFER_BYTES)) : null,
        entry.ended!,
      ) as never;
    },
    onNext: (_ctx, _id, _payload, _args, result) => forSocket(result),
    onComplete: (ctx, id) => {
      ctx.extra.subscriptions.delete(id);
    },
  });

  /** Parses, validates and (for a subscription) starts one operation, or says why not. */
  async function prepare(ctx: SocketContext, id: string, payload: SubscribePayload): Promise<ExecutionArgs | readonly GraphQLError[]> {
    const viewer = ctx.extra.viewer!;
    const enveloped = yoga.getEnveloped({ req: ctx.extra.request, socket: ctx.extra.socket, params: payload });
    let document: DocumentNode;
    try {
      document = enveloped.parse(payload.query);
    } catch (error) {
      return refuse(id, [transportError(error, 'GRAPHQL_PARSE_FAILED')]);
    }
    let invalid: readonly GraphQLError[];
    try {
      invalid = enveloped.validate(enveloped.schema, document);
    } catch (error) {
      // graphql-armor's limits (depth, aliases, cost, directives) throw from inside validation.
      if (!(error instanceof GraphQLError)) throw error;
      invalid = [error];
    }
    if (invalid.length)
      return refuse(
        id,
        invalid.map((error) => transportError(error, 'GRAPHQL_VALIDATION_FAILED')),
      );
    const operation = getOperationAST(document, payload.operationName);
    if (!operation) {
      return refuse(id, [graphqlError('BAD_USER_INPUT', 'could not tell which operation to run: send one, or name it in operationName')]);
    }
    if (viewer.exp * 1000 <= Date.now())
      return refuse(id, [graphqlError('UNAUTHENTICATED', 'token expired; connect again with a fresh token')]);

    const contextValue: GraphQLContext = { viewer, services, em: services.orm.em.fork() };
    const args: ExecutionArgs = {
      schema: enveloped.schema,
      document,
      operationName: payload.operationName,
      variableValues: payload.variables,
      contextValue,
    };
    if (operation.operation !== 'subscription') {
      prepared.set(contextValue, { enveloped });
      return args;
    }

    // Counted synchronously, before anything is awaited, so a burst cannot overshoot the cap.
    const max = config.MAX_SUBSCRIPTIONS_PER_CONNECTION;
    if (ctx.extra.subscriptions.size >= max) {
      return refuse(id, [rateLimitedError(`too many subscriptions on this connection: at most ${max}; end one first`, 1)]);
    }
    ctx.extra.subscriptions.add(id);
    // Started here rather than by graphql-ws so that a refusal (access, quota, bad variables) is
    // an `error` message for this operation instead of a `next` carrying errors.
    const result = (await enveloped.subscribe(args)) as ExecutionResult | AsyncIterable<ExecutionResult>;
    if (!isAsyncIterable(result)) {
      ctx.extra.subscriptions.delete(id);
      const errors = (result.errors ?? []).map((error: GraphQLError) => transportError(error, 'BAD_USER_INPUT'));
      // Quota refusals are logged where they are decided, for both transports.
      return refuse(id, errors, errors.length > 0 && errors.every((e: GraphQLError) => e.extensions.code === 'RATE_LIMITED'));
    }
    // Ended by graphql-ws's `complete` (onComplete), or by its return(): a `complete` from the client
    // while this was being set up, or the socket's close.
    const ended = () => ctx.extra.subscriptions.delete(id);
    prepared.set(contextValue, { enveloped, stream: result, id, socket: ctx.extra.socket, ended });
    return args;
  }

  const wsServer = new WebSocketServer({
    server,
    path: '/graphql',
    maxPayload: config.WS_MAX_PAYLOAD_BYTES,
    handleProtocols: (protocols) => handleProtocols(protocols),
  });
  wsServer.on('error', (error) => logger.error({ err: error }, 'WebSocket server error'));
  wsServer.on('connection', (socket, request) => {
    // Protocol errors (a message over maxPayload: 1009, a bad frame: 1002) are the client's; ws has
    // already closed the socket with the right code.
    socket.on('error', (error) => logger.debug({ reason: error.message }, 'WebSocket closed on a protocol error'));
    // Pinged every WS_KEEP_ALIVE_MS. A pong travels behind whatever the client has yet to read, so
    // a client behind on a busy stream answers late: it is alive while it takes what is sent (the
    // bytes its connection's kernel buffer accepted grow; Node's own buffer does not count), and is
    // dropped once it neither answers nor takes anything.
    const connection = request.socket;
    const accepted = () => connection.bytesWritten - connection.writableLength;
    const keepAliveMs = config.WS_KEEP_ALIVE_MS;
    let pongWait: NodeJS.Timeout | null = null;
    const ping = () => {
      socket.ping();
      // Read after the ping: the ping's own bytes are not the client taking anything.
      const acceptedAtPing = accepted();
      pongWait = setTimeout(() => (accepted() > acceptedAtPing ? ping() : socket.terminate()), keepAliveMs);
    };
    const keepAlive = setInterval(() => {
      if (socket.readyState === socket.OPEN && pongWait === null) ping();
    }, keepAliveMs);
    socket.on('pong', () => {
      if (pongWait) clearTimeout(pongWait);
      pongWait = null;
    });
    const closed = protocol.opened(
      {
        protocol: socket.protocol,
        send: (data) =>
          new Promise<void>((resolve, reject) => {
            if (socket.readyState !== socket.OPEN) return resolve();
            // A write that fails because the client went away meanwhile is no error of the server's.
            socket.send(data, (error) => (error && socket.readyState === socket.OPEN ? reject(error) : resolve()));
          }),
        close: (code, reason) => socket.close(code, reason),
        onMessage: (handle) =>
          socket.on('message', async (data) => {
            try {
              await handle(String(data));
            } catch (error) {
              logger.error({ err: error }, 'unexpected error handling a WebSocket message');
              socket.close(CloseCode.InternalServerError, 'Internal server error');
            }
          }),
      },
      { socket, request, viewer: null, subscriptions: new Set() },
    );
    socket.once('close', (code, reason) => {
      clearInterval(keepAlive);
      if (pongWait) clearTimeout(pongWait);
      void closed(code, String(reason)).catch((error: unknown) => logger.error({ err: error }, 'error closing a WebSocket'));
    });
  });

  return {
    async close() {
      for (const client of wsServer.clients) client.close(1001, 'Going away');
      await new Promise<void>((resolve, reject) => wsServer.close((error) => (error ? reject(error) : resolve())));
    },
  };
}

/** Results over a socket have no HTTP status: the `http` extension yoga adds is for HTTP only. Undefined: send as it is. */
function forSocket(result: ExecutionResult): ExecutionResult | undefined {
  return result.errors?.some((error) => error.extensions?.http)
    ? { ...result, errors: result.errors.map((error) => transportError(error, 'BAD_USER_INPUT')) }
    : undefined;
}

/**
 * `stream`, with `start` (if any) called at its first `next()`: graphql-ws asks for it only once it
 * knows the client did not complete the operation meanwhile, so nothing is written for a completed
 * one. `ended` is called when graphql-ws returns it.
 */
function pushingFromFirstNext(
  stream: AsyncIterable<ExecutionResult>,
  start: (() => void) | null,
  ended: () => void,
): AsyncIterableIterator<ExecutionResult> {
  const iterator = stream[Symbol.asyncIterator]();
  let started = false;
  const pushing: AsyncIterableIterator<ExecutionResult> = {
    next() {
      if (!started) {
        started = true;
        start?.();
      }
      return iterator.next();
    },
    return: async () => {
      ended();
      return (await iterator.return?.()) ?? { done: true, value: undefined };
    },
    [Symbol.asyncIterator]: () => pushing,
  };
  return pushing;
}

/**
 * Writes subscription `id`'s results to `socket` as graphql-ws `next` messages: the shared JSON,
 * encoded once for every socket, between this subscription's head and closing brace. Past
 * `bufferBytes` waiting to go out, it stops until the socket has sent the frame that crossed the line.
 */
function socketSink(socket: WebSocket, id: string, results: SubscriptionResults, bufferBytes: number): ResultSink {
  const head = Buffer.from(`{"id":${JSON.stringify(id)},"type":"next","payload":`);
  const resume = () => results.resume();
  return {
    write(result, json) {
      // A closing socket ends the subscription through graphql-ws; until then its results go nowhere.
      if (socket.readyState !== socket.OPEN) return true;
      const own = forSocket(result);
      const payload = own ? Buffer.from(JSON.stringify(own)) : sharedBytes(result, json);
      const frame = Buffer.concat([head, payload, CLOSING_BRACE], head.length + payload.length + 1);
      const behind = socket.bufferedAmount + frame.length > bufferBytes;
      // Bytes go out as a binary frame unless told otherwise; graphql-ws speaks text.
      socket.send(frame, { binary: false }, behind ? resume : undefined);
      return !behind;
    },
    // graphql-ws learns of both from the iteration it waits on, and answers `complete` or an error.
    end() {},
    fail() {},
  };
}

const CLOSING_BRACE = Buffer.from('}');
const encoded = new WeakMap<ExecutionResult, Buffer>();

/** A shared result's JSON as UTF-8, encoded once however many sockets it goes to. */
function sharedBytes(result: ExecutionResult, json: string): Buffer {
  let bytes = encoded.get(result);
  if (!bytes) {
    bytes = Buffer.from(json);
    encoded.set(result, bytes);
  }
  return bytes;
}

/** Longest operation id a client may use; graphql-ws clients use UUIDs or counters. */
const MAX_OPERATION_ID_LENGTH = 128;

function isAsyncIterable(value: unknown): value is AsyncIterable<ExecutionResult> {
  return typeof Object(value)[Symbol.asyncIterator] === 'function';
}

/** A close reason fits in 123 bytes of UTF-8. */
function closeReason(reason: string): string {
  let text = reason;
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -2);
  return text;
}
