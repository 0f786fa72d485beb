import { createGraphQLError } from 'graphql-yoga';
import { GraphQLError } from 'graphql';
import type { Logger } from '../observability/logger.js';
import { ForbiddenError, InvalidInputError, InvalidStateError, NotFoundError } from '../engine/errors.js';
import { QuotaExceededError } from '../engine/owner-quotas.js';
import { CursorExpiredError, InvalidCursorError, SubscriberTooSlowError } from '../realtime/follow-job-changes.js';
import { QueueUnavailableError } from '../queue/job-queues.js';

export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'NOT_FOUND'
  | 'FORBIDDEN'
  | 'UNAUTHENTICATED'
  | 'QUEUE_UNAVAILABLE'
  | 'RATE_LIMITED'
  | 'SUBSCRIBER_TOO_SLOW'
  | 'CURSOR_EXPIRED';

export function graphqlError(code: ErrorCode, message: string): GraphQLError {
  return createGraphQLError(message, { extensions: { code } });
}

/** A quota refusal: `extensions.retryAfter` says in how many seconds trying again can succeed. */
export function rateLimitedError(message: string, retryAfterSeconds: number): GraphQLError {
  return createGraphQLError(message, { extensions: { code: 'RATE_LIMITED', retryAfter: Math.max(1, Math.ceil(retryAfterSeconds)) } });
}

/**
 * The one place domain errors become GraphQL errors. Anything not listed is unexpected and is
 * masked by yoga, so internals (SQL, paths, stack traces) never reach a client.
 */
export function toGraphQLError(error: unknown): GraphQLError | null {
  if (error instanceof GraphQLError && error.extensions?.code) return error;
  if (error instanceof InvalidInputError || error instanceof InvalidStateError) return graphqlError('BAD_USER_INPUT', error.message);
  if (error instanceof NotFoundError) return graphqlError('NOT_FOUND', error.message);
  if (error instanceof ForbiddenError) return graphqlError('FORBIDDEN', error.message);
  if (error instanceof SubscriberTooSlowError) return graphqlError('SUBSCRIBER_TOO_SLOW', error.message);
  if (error instanceof CursorExpiredError) return graphqlError('CURSOR_EXPIRED', error.message);
  if (error instanceof InvalidCursorError) return graphqlError('BAD_USER_INPUT', error.message);
  if (error instanceof QuotaExceededError) return rateLimitedError(error.message, error.retryAfterSeconds);
  if (error instanceof QueueUnavailableError)
    return graphqlError('QUEUE_UNAVAILABLE', 'the job queue is unavailable; nothing was queued, try again');
  return null;
}

/** Longest error message a client gets: messages may quote input, and input can be huge. */
const MAX_MESSAGE_LENGTH = 300;

/** PostgreSQL errors that can only mean the value sent was unusable (bad text, out-of-range date or number). */
const INPUT_SQLSTATES = new Set(['22P02', '22008', '22009', '22003', '22007', '22021', '22P05', '22001']);

function bounded(message: string): string {
  const plain = message.replace(ARMOR_LIMIT_PREFIX, '');
  return plain.length > MAX_MESSAGE_LENGTH ? `${plain.slice(0, MAX_MESSAGE_LENGTH)}…` : plain;
}

/** graphql-armor words every limit it enforces as a syntax error ("Syntax Error: Query Cost limit of 5000 exceeded…"): the query's syntax was fine. */
const ARMOR_LIMIT_PREFIX = /^Syntax Error: (?=[\w ]+ limit of \d+ exceeded)/;

/**
 * What a client sees of an error. GraphQL's own errors (syntax, validation, limits, variable
 * coercion) are the caller's and get a code; domain errors get theirs; anything else is logged
 * and masked. Messages are cut to a bounded length, so a huge input is never echoed back whole.
 */
export function toClientError(error: unknown, maskedMessage: string, logger: Logger): Error {
  if (error instanceof GraphQLError) {
    const original = error.originalError;
    if (error.extensions?.code && !original) return withMessage(error, bounded(error.message));
    // A scalar or enum refusing a variable: graphql-js wraps the thrown error in a GraphQLError.
    // An uncoded error raised while executing a field (it has a path) is ours, not the caller's.
    if ((!original && !error.path) || original instanceof GraphQLError) {
      const code = (original as GraphQLError | undefined)?.extensions?.code ?? error.extensions?.code ?? defaultCode(error);
      return withMessage(error, bounded(error.message), code as string);
    }
  }
  const original = (error as { originalError?: unknown }).originalError ?? error;
  const mapped = toGraphQLError(original);
  if (mapped) return withMessage(mapped, bounded(mapped.message));
  const sqlState = (original as { code?: unknown }).code;
  if (typeof sqlState === 'string' && INPUT_SQLSTATES.has(sqlState)) {
    return graphqlError('BAD_USER_INPUT', 'a value in the input is not valid (malformed or out of range)');
  }
  logger.error({ err: original }, 'unexpected error in a GraphQL operation');
  return createGraphQLError(maskedMessage, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}

/** Errors graphql-js and yoga raise before execution carry no code of their own. */
function defaultCode(error: GraphQLError): string {
  if (/^Variable "\$/.test(error.message)) return 'BAD_USER_INPUT';
  const status = (error.extensions?.http as { status?: number } | undefined)?.status;
  return status && status >= 400 && status < 500 ? 'BAD_REQUEST' : 'GRAPHQL_VALIDATION_FAILED';
}

/** The error as clients get it: bounded message, a code, and no `originalError` (which may quote the input). */
function withMessage(error: GraphQLError, message: string, code?: string): GraphQLError {
  const { originalError: _originalError, ...extensions } = error.extensions ?? {};
  if (message === error.message && !_originalError && (!code || extensions.code === code)) return error;
  return new GraphQLError(message, {
    nodes: error.nodes,
    path: error.path,
    extensions: { ...extensions, ...(code ? { code } : {}) },
  });
}

/**
 * An error as the socket transports (graphql-ws, graphql-sse) send it, outside yoga's masking:
 * `extensions.code` set (its own if it has one, else `code`), no HTTP-only or `originalError`
 * extensions, the message bounded.
 */
export function transportError(error: unknown, code: string): GraphQLError {
  const source = error instanceof GraphQLError ? error : new GraphQLError(error instanceof Error ? error.message : 'invalid operation');
  const { http: _http, originalError: _originalError, ...extensions } = source.extensions ?? {};
  return new GraphQLError(bounded(source.message), {
    nodes: source.nodes,
    path: source.path,
    extensions: { ...extensions, code: typeof extensions.code === 'string' ? extensions.code : code },
  });
}
