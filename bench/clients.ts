/**
 * GraphQL clients for the benchmark: plain HTTP requests, and the real graphql-sse / graphql-ws clients.
 *
 * Queries and mutations go through `node:http` with kept-alive connections rather than `fetch`:
 * undici's fetch cost this process about a millisecond of CPU per request, on the same two cores
 * as the API it measures, where the raw side's clients (pg, ioredis) cost a fraction of that.
 */
import { Agent, request } from 'node:http';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import WebSocket from 'ws';

export interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

/** Kept-alive connections, as many as the most clients a scenario runs at once. */
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

export function gql<T = Record<string, any>>(
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<GraphQLResponse<T>> {
  return send<T>(url, token, JSON.stringify({ query, variables }));
}

/** A POST of a JSON body that is not a GraphQL request (a baseline's own endpoint), over the same kept-alive connections. */
export function postJson<T>(url: string, body: unknown): Promise<T> {
  return send<T>(url, null, JSON.stringify(body)) as Promise<T>;
}

/**
 * One POST; sent again, once, when a kept-alive connection turned out closed (the server ends
 * idle ones after 5 s, and may do so just as the request leaves: Node's own advice is to retry).
 */
function send<T>(url: string, token: string | null, body: string, retried = false): Promise<GraphQLResponse<T>> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as GraphQLResponse<T>);
          } catch (error) {
            reject(new Error(`HTTP ${response.statusCode}: not JSON (${String(error)})`));
          }
        });
        response.on('error', reject);
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (req.reusedSocket && error.code === 'ECONNRESET' && !retried) send<T>(url, token, body, true).then(resolve, reject);
      else reject(error);
    });
    req.end(body);
  });
}

export async function gqlOk<T = Record<string, any>>(
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  const result = await gql<T>(url, token, query, variables);
  if (result.errors?.length || !result.data) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
  return result.data;
}

/** Milliseconds since the epoch with sub-millisecond precision. */
export const now = (): number => performance.timeOrigin + performance.now();

/** One received subscription result, stamped on arrival. */
export interface Received<T> {
  value: T;
  receivedAt: number;
}

export interface LiveSubscription<T> {
  received: Received<T>[];
  errors: unknown[];
  /** Settles when the server completes the subscription (or it fails). */
  done: Promise<void>;
  close(): void;
}

function sink<T>(field: string) {
  const received: Received<T>[] = [];
  const errors: unknown[] = [];
  let settle!: () => void;
  const done = new Promise<void>((resolve) => (settle = resolve));
  return {
    received,
    errors,
    done,
    next: (result: GraphQLResponse<Record<string, T>>) => {
      if (result.errors?.length) errors.push(result.errors);
      else received.push({ value: result.data![field]!, receivedAt: now() });
    },
    error: (error: unknown) => {
      errors.push(error);
      settle();
    },
    complete: () => settle(),
  };
}

/** A subscription over its own SSE connection (graphql-sse's distinct connections mode). */
export function subscribeSse<T>(
  url: string,
  token: string,
  field: string,
  query: string,
  variables: Record<string, unknown>,
): LiveSubscription<T> {
  const client = createSseClient({ url, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  const s = sink<T>(field);
  const dispose = client.subscribe<Record<string, T>>({ query, variables }, s as never);
  return {
    received: s.received,
    errors: s.errors,
    done: s.done.finally(() => client.dispose()),
    close: () => {
      dispose();
      client.dispose();
    },
  };
}

/** A WebSocket connection (graphql-ws protocol) that can carry many subscriptions. */
export function wsConnection(url: string, token: string): WsClient {
  return createWsClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
    lazy: true,
  });
}

export function subscribeWs<T>(client: WsClient, field: string, query: string, variables: Record<string, unknown>): LiveSubscription<T> {
  const s = sink<T>(field);
  const dispose = client.subscribe<Record<string, T>>({ query, variables }, s as never);
  return { received: s.received, errors: s.errors, done: s.done, close: dispose };
}
