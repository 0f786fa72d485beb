import { callerOf, mayAccess } from '../../auth/access.js';
import { eventJob, isTerminal, toEventMessage } from '../../engine/job-store.js';
import type { TopicStream } from '../../pubsub/pubsub.js';
import { SubscriptionLeases, type SubscriptionLease } from '../../pubsub/subscription-leases.js';
import { topics, type JobEventMessage } from '../../pubsub/topics.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { graphqlError, rateLimitedError } from '../errors.js';
import { checkJobFilter, JobFilterRef, JobRef, JobStatusRef, loadVisibleJob, type JobFilterInput } from './job.js';
import { subscriptionGauge } from '../../observability/metrics.js';
import type { Services } from '../../services.js';

export const JobProgressEventRef = builder.objectRef<JobEventMessage>('JobProgressEvent').implement({
  description:
    'A change of a job: its whole public state after the change. Select `job { id ... }` to update a normalized client cache (by `__typename` and `id`); `previousStatus` says what the status was before, so counts per status can follow the stream.',
  fields: (t) => ({
    jobId: t.id({ resolve: (e) => e.job.id }),
    type: t.string({ resolve: (e) => e.job.type }),
    status: t.field({ type: JobStatusRef, resolve: (e) => e.job.status }),
    previousStatus: t.field({
      type: JobStatusRef,
      nullable: true,
      description: 'The status before this change; the same as `status` when only progress moved; null when the job was just created.',
      resolve: (e) => (e.job.version === 0 ? null : (e.job.previousStatus ?? e.job.status)),
    }),
    progress: t.float({ resolve: (e) => e.job.progress }),
    processed: t.int({ nullable: true, resolve: (e) => e.job.processed }),
    total: t.int({ nullable: true, resolve: (e) => e.job.total }),
    message: t.string({ nullable: true, resolve: (e) => e.job.message }),
    error: t.string({ nullable: true, resolve: (e) => e.job.error }),
    result: t.field({ type: 'JSON', nullable: true, resolve: (e) => e.job.result ?? null }),
    at: t.field({ type: 'DateTime', description: 'When the change was made.', resolve: (e) => e.job.updatedAt }),
    job: t.field({
      type: JobRef,
      description: 'The job after this change, as its concrete type (typed `input` and `output`); read from the event, not the database.',
      resolve: (e) => eventJob(e),
    }),
  }),
});

/** One lease store per process (per services object), so its refresh timer covers every subscription. */
const leaseStores = new WeakMap<Services, SubscriptionLeases>();

/**
 * Takes one of the caller's MAX_SUBSCRIPTIONS_PER_USER slots, shared by every replica and both
 * transports, or refuses with RATE_LIMITED. Admins and a cap of 0 take none. If Redis cannot be
 * asked, the subscription goes ahead uncounted: the cap protects the system, it is not a reason
 * to lose live views while Redis is away.
 */
async function takeSubscriptionSlot(ctx: GraphQLContext, kind: string): Promise<SubscriptionLease | null> {
  const { config, logger, queues } = ctx.services;
  const max = config.MAX_SUBSCRIPTIONS_PER_USER;
  if (max === 0 || callerOf(ctx.viewer).isAdmin) return null;
  let store = leaseStores.get(ctx.services);
  if (!store) {
    store = new SubscriptionLeases(queues.connection, config.REDIS_PREFIX);
    leaseStores.set(ctx.services, store);
  }
  let outcome: Awaited<ReturnType<SubscriptionLeases['acquire']>>;
  try {
    outcome = await store.acquire(ctx.viewer.id, max);
  } catch (error) {
    logger.warn(
      { owner: ctx.viewer.id, kind, reason: error instanceof Error ? error.message : String(error) },
      'subscription not counted: Redis unavailable',
    );
    return null;
  }
  if (outcome.granted) return outcome.lease;
  logger.debug({ owner: ctx.viewer.id, kind, open: outcome.open, limit: max }, 'subscription refused: per-user cap');
  throw rateLimitedError(`too many open subscriptions: at most ${max} per user; end one and try again`, outcome.retryAfterMs / 1000);
}

/** Yielded in place of an event when the caller's token has expired; `resolve` turns it into the error. */
const TOKEN_EXPIRED = Symbol('token expired');
type Expirable<T> = T | typeof TOKEN_EXPIRED;

/**
 * Wraps a subscription's event source so that (1) it delivers one UNAUTHENTICATED error and ends
 * when the caller's token expires, and (2) a client that goes away releases the Redis subscription
 * at once. A plain async generator cannot do (2): its `return()` waits for the pending `next()`,
 * which may never come for a quiet job, so the stream is closed directly here. Nothing is
 * subscribed before the first `next()`: a transport that drops a request before it starts
 * iterating (an SSE client gone during the subscribe call) then leaves nothing behind: the
 * caller's subscription lease is only kept alive once iteration starts, so it lapses by itself.
 */
function guardSubscription<T>(
  ctx: GraphQLContext,
  kind: string,
  lease: SubscriptionLease | null,
  open: () => { source: AsyncGenerator<T>; stream: TopicStream<unknown> },
): AsyncIterableIterator<Expirable<T>> {
  let opened: { source: AsyncGenerator<T>; stream: TopicStream<unknown>; expired: Promise<typeof TOKEN_EXPIRED> } | null = null;
  let finished = false;
  let expiryDelivered = false;
  let timer: NodeJS.Timeout | undefined;
  const done = { value: undefined, done: true } as const;
  const start = () => {
    const { source, stream } = open();
    lease?.keepAlive();
    subscriptionGauge.labels(kind).inc();
    const expired = new Promise<typeof TOKEN_EXPIRED>((resolve) => {
      timer = setTimeout(() => resolve(TOKEN_EXPIRED), Math.max(0, ctx.viewer.exp * 1000 - Date.now()));
    });
    return { source, stream, expired };
  };
  const finish = async () => {
    if (finished) return;
    finished = true;
    const releasing = lease?.release();
    if (opened) {
      clearTimeout(timer);
      subscriptionGauge.labels(kind).dec();
      await opened.stream.return();
      await opened.source.return(undefined);
    }
    await releasing;
  };
  const iterator: AsyncIterableIterator<Expirable<T>> = {
    async next() {
      if (finished || expiryDelivered) {
        await finish();
        return done;
      }
      opened ??= start();
      const next = await Promise.race([opened.source.next(), opened.expired]);
      if (next === TOKEN_EXPIRED) {
        expiryDelivered = true;
        return { value: TOKEN_EXPIRED, done: false };
      }
      if (next.done) await finish();
      return next;
    },
    async return() {
      await finish();
      return done;
    },
    async throw(error: unknown) {
      await finish();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}

function eventOrExpiry(event: Expirable<JobEventMessage>): JobEventMessage {
  if (event === TOKEN_EXPIRED) throw graphqlError('UNAUTHENTICATED', 'token expired; subscribe again with a fresh token');
  return event;
}

/** Current state from the database first, then live events, ending after a terminal status. */
async function* jobProgress(ctx: GraphQLContext, jobId: string, stream: TopicStream<JobEventMessage>): AsyncGenerator<JobEventMessage> {
  try {
    await stream.ready;
    const job = await loadVisibleJob(ctx, jobId);
    let version = job.version;
    yield toEventMessage(job);
    if (isTerminal(job.status)) return;
    for await (const event of stream) {
      // Events older than what was already sent (raced the first read) are dropped.
      if (event.job.version <= version) continue;
      version = event.job.version;
      yield event;
      if (isTerminal(event.job.status)) return;
    }
  } finally {
    await stream.return();
  }
}

/** Jobs whose last sent version a `jobEvents` subscriber remembers (the least recently updated are forgotten). */
const MAX_TRACKED_JOBS = 10_000;

function matches(ctx: GraphQLContext, filter: JobFilterInput | null | undefined, event: JobEventMessage): boolean {
  const { job } = event;
  if (!mayAccess(callerOf(ctx.viewer), job.ownerId)) return false;
  if (filter?.types?.length && !filter.types.includes(job.type)) return false;
  // A job leaving a watched status is news too: the dashboard must take it out of that status.
  if (
    filter?.statuses?.length &&
    !filter.statuses.includes(job.status) &&
    !(job.previousStatus && filter.statuses.includes(job.previousStatus))
  )
    return false;
  if (filter?.accountId && filter.accountId !== job.accountId) return false;
  if (filter?.ids && !filter.ids.includes(job.id)) return false;
  if (filter?.updatedAfter && new Date(job.updatedAt) < filter.updatedAfter) return false;
  if (filter?.createdAfter && new Date(job.createdAt) < filter.createdAfter) return false;
  if (filter?.createdBefore && new Date(job.createdAt) >= filter.createdBefore) return false;
  return true;
}

async function* jobEvents(
  ctx: GraphQLContext,
  filter: JobFilterInput | null | undefined,
  stream: TopicStream<JobEventMessage>,
): AsyncGenerator<JobEventMessage> {
  // Per job, the newest version sent: an event published late (the API's PENDING announcement
  // after a fast job already finished) must not put a dashboard back in the past.
  const sent = new Map<string, number>();
  try {
    for await (const event of stream) {
      const { id, version } = event.job;
      if (!matches(ctx, filter, event) || (sent.get(id) ?? -1) >= version) continue;
      sent.delete(id);
      sent.set(id, version);
      if (sent.size > MAX_TRACKED_JOBS) sent.delete(sent.keys().next().value!);
      yield event;
    }
  } finally {
    await stream.return();
  }
}

builder.subscriptionFields((t) => ({
  jobProgress: t.field({
    type: JobProgressEventRef,
    description: "One job's progress: its current state first, then live; completes after a terminal status.",
    args: { jobId: t.arg.id({ required: true }) },
    // Checked before the stream is returned, so a refusal is a plain GraphQL error on every transport.
    subscribe: async (_root, { jobId }, ctx) => {
      await loadVisibleJob(ctx, String(jobId));
      const lease = await takeSubscriptionSlot(ctx, 'jobProgress');
      return guardSubscription(ctx, 'jobProgress', lease, () => {
        // Subscribed before the row is read, so no event falls between the read and the subscription.
        const stream = ctx.services.pubsub.stream(topics.job(String(jobId)));
        return { source: jobProgress(ctx, String(jobId), stream), stream };
      });
    },
    resolve: eventOrExpiry,
  }),
  jobEvents: t.field({
    type: JobProgressEventRef,
    description:
      'Every change of every job the caller may see, for dashboards. With `filter.statuses`, a job is reported while it enters, stays in or leaves one of them (see `previousStatus`).',
    args: { filter: t.arg({ type: JobFilterRef, required: false }) },
    subscribe: async (_root, { filter }, ctx) => {
      checkJobFilter(filter as JobFilterInput | null);
      const lease = await takeSubscriptionSlot(ctx, 'jobEvents');
      return guardSubscription(ctx, 'jobEvents', lease, () => {
        const stream = ctx.services.pubsub.stream(topics.allJobs());
        return { source: jobEvents(ctx, filter as JobFilterInput | null, stream), stream };
      });
    },
    resolve: eventOrExpiry,
  }),
}));
