import { createGraphQLError } from 'graphql-yoga';
import { GraphQLError } from 'graphql';
import { ForbiddenError, InvalidInputError, InvalidStateError, NotFoundError } from '../jobs/errors.js';
import { QueueUnavailableError } from '../queue/job-queues.js';

export type ErrorCode = 'BAD_USER_INPUT' | 'NOT_FOUND' | 'FORBIDDEN' | 'UNAUTHENTICATED' | 'QUEUE_UNAVAILABLE' | 'RATE_LIMITED';

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
  if (error instanceof QueueUnavailableError) return graphqlError('QUEUE_UNAVAILABLE', 'the job queue is unavailable; nothing was queued, try again');
  return null;
}
