import { GraphQLError } from 'graphql';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { createFetch } from '@whatwg-node/fetch';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { bearerToken, InvalidTokenError, type Viewer } from '../auth/tokens.js';
import type { GraphQLContext } from '../graphql/context.js';
import { graphqlError, toClientError } from '../graphql/errors.js';
import { useInputGuards, useRequestParseErrors } from '../graphql/input-guards.js';
import { useOneSnapshotPerStreamAnchor } from '../graphql/one-snapshot-per-stream-anchor.js';
import { useSecretInputs } from '../graphql/secret-inputs.js';
import { buildSchema } from '../graphql/schema/index.js';
import { listSetting } from '../config/env.js';
import { serializeError } from '../observability/logger.js';
import { operationSpans } from '../observability/tracing.js';
import { GRAPHIQL_EXAMPLE, GRAPHIQL_VERSION, renderJobwireGraphiQL } from './graphiql.js';
import { useGraphQLSSE } from './graphql-sse.js';
import { refusalResponse } from './refusal-response.js';
import { useSseSubscriptions } from './sse-subscriptions.js';
import { useUploadAdmission, useUploadBodyLimit } from './upload-body-limit.js';
import { useSharedSubscriptionExecution } from '../graphql/shared-subscription-execution.js';
import type { Services } from '../services.js';

/** Operation spans, when tracing is on (see src/observability/tracing.ts). */
const tracingPlugin = await operationSpans();

/** Resolves the caller from a bearer token; every operation needs one. */
export async function authenticate(services: Services, authorization: string | null | undefined): Promise<Viewer> {
  const token = bearerToken(authorization);
  if (!token) throw graphqlError('UNAUTHENTICATED', 'missing bearer token (Authorization: Bearer <jwt>; `npm run token` mints one)');
  try {
    return await services.tokens.verify(token);
  } catch (error) {
    throw graphqlError('UNAUTHENTICATED', error instanceof InvalidTokenError ? error.message : 'invalid token');
  }
}

export type JobwireYoga = YogaServerInstance<Record<string, unknown>, GraphQLContext>;

/** The GraphQL server as a value: tests call `yoga.fetch(...)` without a port. */
export function createJobwireYoga(services: Services): JobwireYoga {
  const { config, logger } = services;
  const maskError = (error: unknown, message = 'Unexpected error.') => toClientError(error, message, logger);
  return createYoga<Record<string, unknown>, GraphQLContext>({
    schema: buildSchema(),
    graphqlEndpoint: '/graphql',
    cors: corsPolicy(listSetting(config.CORS_ORIGINS)),
    landingPage: false,
    fetchAPI: createFetch({ formDataLimits: { fileSize: config.MAX_UPLOAD_BYTES, files: 1, fieldSize: 1_000_000 } }),
    // Uploads only, by our own plugin below (yoga's applies to every request; see useUploadBodyLimit).
    maxRequestBodySize: false,
    graphiql: config.GRAPHIQL ? { title: 'Jobwire', defaultQuery: GRAPHIQL_EXAMPLE, subscriptionsProtocol: 'SSE' } : false,
    renderGraphiQL: (options) => renderJobwireGraphiQL(options, GRAPHIQL_VERSION),
    context: async ({ request, connectionParams }: { request: Request; connectionParams?: Record<string, unknown> }) => {
      const header =
        request.headers.get('authorization') ??
        (typeof connectionParams?.authorization === 'string' ? connectionParams.authorization : null) ??
        (typeof connectionParams?.Authorization === 'string' ? connectionParams.Authorization : null);
      const viewer = await authenticate(services, header);
      return {
        viewer,
        services,
        em: services.orm.em.fork() as GraphQLContext['em'],
        lastEventId: request.headers.get('last-event-id'),
      };
    },
    // isDev off: yoga would otherwise attach the original error (and the input it quotes) to responses.
    maskedErrors: { maskError, isDev: false },
    plugins: [
      ...(tracingPlugin ? [tracingPlugin] : []),
      useTokenBeforeCsrfCheck(),
      // An Authorization header already forces a CORS preflight, so it counts as the CSRF header.
      useCSRFPrevention({ requestHeaders: ['x-graphql-yoga-csrf', 'authorization'] }),
      // yoga's own 25 MB cap would undercut MAX_UPLOAD_BYTES; the margin is for the operations and map fields.
      useUploadAdmission(services),
      useUploadBodyLimit(config.MAX_UPLOAD_BYTES + 2_000_000),
      useGraphQLSSE(services),
      useSharedSubscriptionExecution(maskError),
      useSseSubscriptions(config.SUBSCRIPTION_SEND_BUFFER_BYTES),
      useRequestParseErrors(),
      useInputGuards(),
      useSecretInputs(),
      useOneSnapshotPerStreamAnchor(),
      EnvelopArmorPlugin({
        maxDepth: { n: 12 },
        maxAliases: { n: 15 },
        costLimit: { maxCost: 5000 },
        maxDirectives: { n: 20 },
        maxTokens: { n: 2000 },
      }),
    ],
    logging: {
      debug: (...args) => logger.debug(args.map(String).join(' ')),
      info: (...args) => logger.info(args.map(String).join(' ')),
      warn: (...args) => logger.warn(args.map(String).join(' ')),
      // Unexpected errors are logged where they are masked; the rest are the caller's mistakes.
      // Logged as data, through the error serializer, so a database error's SQL (user values) stays out.
      error: (...args) => logger.debug({ errors: args.map(refusalForLog) }, 'refused GraphQL request'),
    },
  });
}

/**
 * An event stream opened without a token, as a browser's `EventSource` opens one (it cannot send
 * headers), is told what it lacks: without this, the CSRF check would answer first, with a
 * missing CSRF header, which sends its author the wrong way.
 */
function useTokenBeforeCsrfCheck(): Plugin {
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (url.pathname !== '/graphql' || request.method !== 'GET' || request.headers.has('authorization')) return;
      if (!request.headers.get('accept')?.includes('text/event-stream')) return;
      const message =
        'missing bearer token (Authorization: Bearer <jwt>); a browser EventSource cannot send it: use a fetch-based SSE reader, or graphql-sse at /graphql/stream';
      endResponse(refusalResponse(fetchAPI, 401, 'UNAUTHENTICATED', message));
    },
  };
}

/**
 * CORS for the origins in CORS_ORIGINS only; any other origin (and every origin when the list is
 * empty) gets no CORS headers, so browsers keep it same-origin. Tokens travel in the Authorization
 * header, never in cookies, so credentials are never allowed.
 */
function corsPolicy(allowedOrigins: string[]) {
  return (request: Request) => {
    const origin = request.headers.get('origin');
    if (!origin || !allowedOrigins.includes(origin)) return false as never;
    return {
      origin: [origin],
      credentials: false,
      methods: ['GET', 'POST', 'OPTIONS'],
      allowedHeaders: ['authorization', 'content-type', 'accept', 'x-graphql-yoga-csrf', 'last-event-id'],
      maxAge: 600,
    };
  };
}

/**
 * A refused request's error as logged: the caller's mistake, so its message and code, without a
 * stack (and without the error it wraps, whose message may quote what the caller sent); anything
 * else through the error serializer, which keeps a database error's SQL (user values) out.
 */
function refusalForLog(arg: unknown): unknown {
  if (arg instanceof GraphQLError) return { message: arg.message, code: arg.extensions?.code };
  return arg instanceof Error ? serializeError((arg as { originalError?: unknown }).originalError ?? arg) : String(arg);
}
