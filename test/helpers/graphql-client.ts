import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import WebSocket from 'ws';

export interface GraphQLResponse<T = Record<string, any>> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

/** A plain `fetch` GraphQL call, as graphql-request or a script would make it. */
export async function gql<T = Record<string, any>>(
  url: string,
  token: string | null,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as GraphQLResponse<T>;
}

/** Like `gql`, but fails the test on any GraphQL error. */
export async function gqlOk<T = Record<string, any>>(
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  const result = await gql<T>(url, token, query, variables);
  if (result.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
  return result.data as T;
}

/** A multipart upload (GraphQL multipart request spec), as apollo-upload-client sends it. */
export async function gqlUpload<T = Record<string, any>>(
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown>,
  file: { path: string; content: Buffer; filename: string },
): Promise<GraphQLResponse<T>> {
  const form = new FormData();
  form.set('operations', JSON.stringify({ query, variables }));
  form.set('map', JSON.stringify({ 0: [`variables.${file.path}`] }));
  form.set('0', new Blob([new Uint8Array(file.content)], { type: 'application/mbox' }), file.filename);
  const response = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
  return (await response.json()) as GraphQLResponse<T>;
}

export type Transport = 'sse' | 'ws';

/** A live subscription collecting every result; `done` settles when the server completes it. */
export interface Subscription<T> {
  results: GraphQLResponse<T>[];
  done: Promise<void>;
  close(): void;
}

/** Subscribes with the real graphql-sse or graphql-ws client. */
export function subscribe<T = Record<string, any>>(
  transport: Transport,
  httpUrl: string,
  token: string,
  query: string,
  variables: Record<string, unknown> = {},
): Subscription<T> {
  const results: GraphQLResponse<T>[] = [];
  let dispose: () => void = () => {};
  const client =
    transport === 'sse'
      ? createSseClient({ url: httpUrl, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 })
      : createWsClient({
          url: httpUrl.replace(/^http/, 'ws'),
          webSocketImpl: WebSocket,
          connectionParams: { authorization: `Bearer ${token}` },
          retryAttempts: 0,
          lazy: true,
        });
  const done = new Promise<void>((resolve, reject) => {
    dispose = client.subscribe<T>(
      { query, variables },
      {
        next: (value) => void results.push(value as GraphQLResponse<T>),
        // graphql-ws reports refused operations as an array of GraphQL errors; keep their codes readable.
        error: (error) => reject(error instanceof Error ? error : new Error(JSON.stringify(error))),
        complete: () => resolve(),
      },
    );
  });
  const settled = done.finally(() => client.dispose());
  // A caller that closes the subscription itself need not await it.
  settled.catch(() => {});
  return {
    results,
    done: settled,
    close: () => {
      dispose();
      void client.dispose();
    },
  };
}
