import { type Client, createClient } from 'graphql-sse';

/** Where the API answers: the origin that served the page. */
const GRAPHQL_PATH = '/graphql';
const SSE_PATH = '/graphql/stream';

/** A GraphQL error as the API coded it (`extensions.code`), or NETWORK when no answer came. */
export class GraphQLRequestError extends Error {
  constructor(
    message: string,
    readonly code: string,
    /** RATE_LIMITED: seconds until trying again can succeed. */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
    this.name = 'GraphQLRequestError';
  }
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string; retryAfter?: number } }[];
}

function firstError(response: GraphQLResponse<unknown>): GraphQLRequestError | null {
  const error = response.errors?.[0];
  return error ? new GraphQLRequestError(error.message, error.extensions?.code ?? 'INTERNAL', error.extensions?.retryAfter ?? null) : null;
}

/**
 * A query or mutation over HTTP. Files go as a GraphQL multipart request: each is named by the
 * variable path it fills (`variables.file`), and the variable itself is sent as null.
 */
export async function request<T>(
  token: string,
  document: string,
  variables: Record<string, unknown> = {},
  files: Map<string, File> = new Map(),
): Promise<T> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${token}`,
    accept: 'application/graphql-response+json, application/json',
  };
  let body: BodyInit;
  if (files.size) {
    const form = new FormData();
    form.append('operations', JSON.stringify({ query: document, variables }));
    const paths = [...files.keys()];
    form.append('map', JSON.stringify(Object.fromEntries(paths.map((path, index) => [String(index), [path]]))));
    paths.forEach((path, index) => form.append(String(index), files.get(path)!));
    body = form;
  } else {
    headers['content-type'] = 'application/json';
    body = JSON.stringify({ query: document, variables });
  }
  let response: Response;
  try {
    response = await fetch(GRAPHQL_PATH, { method: 'POST', headers, body });
  } catch {
    throw new GraphQLRequestError('the API did not answer', 'NETWORK');
  }
  let payload: GraphQLResponse<T>;
  try {
    payload = (await response.json()) as GraphQLResponse<T>;
  } catch {
    throw new GraphQLRequestError(
      `the API answered ${response.status} without a GraphQL result`,
      response.status >= 500 ? 'NETWORK' : 'BAD_REQUEST',
    );
  }
  const error = firstError(payload);
  if (error) throw error;
  if (!payload.data) throw new GraphQLRequestError('the API answered without data', 'INTERNAL');
  return payload.data;
}

/** What a subscription reports besides its events. */
export interface SubscriptionSink<T> {
  /** The server accepted the stream (its response arrived). */
  connected?(): void;
  next(data: T): void;
  /** The stream ended with a GraphQL error (a coded refusal) or a dropped connection (NETWORK). */
  error(error: GraphQLRequestError): void;
  complete(): void;
}

/**
 * One subscription over SSE (graphql-sse, distinct connections: one stream per subscription, so
 * it works behind any load balancer). It does not retry by itself: `ResumableStream` reconnects
 * with the position it reached, which a blind retry would not know.
 */
export function subscribe<T>(token: string, document: string, variables: Record<string, unknown>, sink: SubscriptionSink<T>): () => void {
  const client: Client = createClient({
    url: SSE_PATH,
    headers: () => ({ authorization: `Bearer ${token}` }),
    retryAttempts: 0,
    singleConnection: false,
    on: { connected: () => !disposed && sink.connected?.() },
  });
  let disposed = false;
  const dispose = client.subscribe<T>(
    { query: document, variables },
    {
      next: (result) => {
        if (disposed) return;
        const error = firstError(result as GraphQLResponse<unknown>);
        if (error) {
          // An error result ends the subscription here; the server's `complete` that follows is not a second ending.
          disposed = true;
          client.dispose();
          sink.error(error);
        } else if (result.data) sink.next(result.data as T);
      },
      error: (error) => {
        if (disposed) return;
        disposed = true;
        client.dispose();
        void refusalOf(error).then((refusal) => sink.error(refusal));
      },
      complete: () => {
        if (disposed) return;
        disposed = true;
        sink.complete();
        client.dispose();
      },
    },
  );
  return () => {
    disposed = true;
    dispose();
    client.dispose();
  };
}

/**
 * What ended a stream: a refusal the API coded (an answer other than 200 carries GraphQL errors,
 * e.g. UNAUTHENTICATED), or NETWORK for a connection that failed or dropped.
 */
async function refusalOf(error: unknown): Promise<GraphQLRequestError> {
  if (Array.isArray(error)) return firstError({ errors: error as never }) ?? new GraphQLRequestError('the stream failed', 'INTERNAL');
  const response = (error as { response?: Response }).response;
  if (response && response.status < 500) {
    const coded = await response
      .json()
      .then((body: GraphQLResponse<unknown>) => firstError(body))
      .catch(() => null);
    if (coded) return coded;
  }
  return new GraphQLRequestError(error instanceof Error ? error.message : 'the stream dropped', 'NETWORK');
}
