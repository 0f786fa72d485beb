import { randomUUID } from 'node:crypto';
import { type DocumentNode, type GraphQLError, getOperationAST } from 'graphql';
import { type Response as SseResponse, TOKEN_HEADER_KEY, TOKEN_QUERY_KEY } from 'graphql-sse';
import { createHandler, type RequestContext } from 'graphql-sse/lib/use/fetch';
import type { Plugin, YogaInitialContext } from 'graphql-yoga';
import { bearerToken } from '../auth/tokens.js';
import { transportError } from '../graphql/errors.js';
import type { Services } from '../services.js';

/** Where graphql-sse clients connect, in both of its modes. */
export const SSE_STREAM_PATH = '/graphql/stream';

/** Stream reservations kept per replica (the oldest go first); each names the user who made it. */
const MAX_RESERVATIONS = 10_000;

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
 * The GraphQL over SSE protocol of graphql-sse at `/graphql/stream`, including its single
 * connection mode (reserve a stream with PUT, listen with GET, send operations with POST), which
 * yoga's built-in SSE on `/graphql` does not speak. Every request needs the bearer token; a
 * reserved stream belongs to the user who reserved it, and only that user may listen to it or
 * send operations into it. Operations run through yoga's envelop, so auth, input guards, limits,
 * quotas and error masking are the same as on `/graphql`. A stream lives on the replica that
 * reserved it: behind a load balancer, single connection mode needs sticky sessions (distinct
 * connections mode does not).
 */
export function useGraphQLSSE(services: Services): Plugin<YogaInitialContext> {
  const owners = new Map<string, string>();
  const serverContexts = new WeakMap<Request, unknown>();
  let handler: (request: Request, context?: RequestContext) => Promise<Response>;

  return {
    onYogaInit({ yoga }) {
      handler = createHandler(
        {
          async authenticate(req) {
            const token = bearerToken(req.headers.get('authorization'));
            const viewer = token ? await services.tokens.verify(token).catch(() => null) : null;
            if (!viewer)
              return refusal(401, 'Unauthorized', 'UNAUTHENTICATED', 'a valid bearer token is required (Authorization: Bearer <jwt>)');
            const streamToken = req.headers.get(TOKEN_HEADER_KEY) ?? new URL(req.url, 'http://local').searchParams.get(TOKEN_QUERY_KEY);
            if (!streamToken) {
              if (req.method !== 'PUT') return randomUUID();
              const reserved = randomUUID();
              if (owners.size >= MAX_RESERVATIONS) owners.delete(owners.keys().next().value!);
              owners.set(reserved, viewer.id);
              return reserved;
            }
            // Someone else's stream looks like one that does not exist.
            if (owners.get(streamToken) !== viewer.id) return refusal(404, 'Not Found', 'NOT_FOUND', 'no such event stream');
            return streamToken;
          },
          async onSubscribe(req, params) {
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
            // A refusal before execution (input guards, limits) comes back as errors without `data`.
            if (!(Symbol.asyncIterator in Object(result)) && !('data' in Object(result)))
              return { data: null, ...(result as object) } as never;
            return result as never;
          },
        },
        yoga.fetchAPI,
      );
    },
    onRequest({ request, url, endResponse, serverContext }) {
      if (url.pathname !== SSE_STREAM_PATH) return;
      serverContexts.set(request, serverContext);
      return handler(request).then(endResponse);
    },
  };
}
