import { callerOf, mayAccess, ownerFilter } from '../../auth/access.js';
import { readJobNow } from '../../engine/job-changes.js';
import { isUuid } from '../../engine/validation.js';
import { eventJob, isTerminal, toEventMessage } from '../../engine/job-store.js';
import { CountedLeases, type Lease } from '../../queue/counted-leases.js';
import { checkResumable, type FollowJobChanges, followJobChanges, type HandsOff, handsOff } from '../../realtime/follow-job-changes.js';
import type { StreamEvent } from '../../realtime/job-change-feed.js';
import { hasSeen, positionAt, type StreamPosition } from '../../realtime/stream-position.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { graphqlError, rateLimitedError } from '../errors.js';
import { checkJobFilter, JobFilterRef, JobRef, JobStatusRef, type JobFilterInput } from './job.js';
import { subscriptionGauge } from '../../observability/metrics.js';
import type { Services } from '../../services.js';

export const JobProgressEventRef = builder.objectRef<StreamEvent>('JobProgressEvent').implement({
  description:
    'A change of a job: its whole public state after the change. Select `job { id ... }` to update a normalized client cache (by `__typename` and `id`); `previousStatus` says what the status was before, so counts per status can follow the stream.',
  fields: (t) => ({
    jobId: t.id({ resolve: (e) => e.job.id }),
    type: t.string({ resolve: (e) => e.job.type }),
    status: t.field({ type: JobStatusRef, resolve: (e) => e.job.status }),
    previousStatus: t.field({
      type: JobStatusRef,
      nullable: true,
      description:
        "The job's status at the subscriber's previous position (its previous event, or the cursor it resumed from): decrement that status's count and increment `status`'s. Null when the job did not exist then (it is new to the subscriber). Changes between two events are folded into the later one, so this is exact however many were folded.",
      resolve: (e) =>
        e.previousStatus !== undefined ? e.previousStatus : e.job.version === 0 ? null : (e.job.previousStatus ?? e.job.status),
    }),
    cursor: t.string({
      description:
        'The position of this event in the stream: pass it as `after` (or, over SSE, it is the `id:` a reconnect sends back as `Last-Event-ID`) to resume after it, missing nothing and repeating nothing.',
      resolve: (e) => e.cursor,
    }),
    progress: t.float({ resolve: (e) => e.job.progress }),
    processed: t.int({ nullable: true, resolve: (e) => e.job.processed }),
    total: t.int({ nullable: true, resolve: (e) => e.job.total }),
    message: t.string({ nullable: true, resolve: (e) => e.job.message }),
    error: t.string({ nullable: true, resolve: (e) => e.job.error }),
    result: t.field({ type: 'JSON', nullable: true, resolve: (e) => e.job.result ?? null }),
    at: t.field({ type: 'DateTime', description: 'When the change was made.', resolve: (e) => e.job.updatedAt }),
    tags: t.stringList({ description: "The job's tags.", resolve: (e) => e.job.tags ?? [] }),
    metadata: t.field({ type: 'JSON', description: "The job's metadata after the change.", resolve: (e) => e.job.metadata ?? {} }),
    job: t.field({
      type: JobRef,
      description: 'The job after this change, as its concrete type (typed `input` and `output`); read from the event, not the database.',
      resolve: (e) => eventJob(e),
    }),
  }),
});

/** One lease store per process (per services object), so its refresh timer covers every subscription. */
const leaseStores = new WeakMap<Services, CountedLeases>();

/**
 * Takes one of the caller's MAX_SUBSCRIPTIONS_PER_USER slots, shared by every replica and both
 * transports, or refuses with RATE_LIMITED. Admins and a cap of 0 take none. If Redis cannot be
 * asked, the subscription goes ahead uncounted: the cap protects the system, it is not a reason
 * to lose live views while Redis is away.
 */
export async function takeSubscriptionSlot(ctx: GraphQLContext, kind: string): Promise<Lease | null> {
  const { config, logger, queues } = ctx.services;
  const max = config.MAX_SUBSCRIPTIONS_PER_USER;
  if (max === 0 || callerOf(ctx.viewer).isAdmin) return null;
  let store = leaseStores.get(ctx.services);
  if (!store) {
    store = new CountedLeases(queues.connection, `${config.REDIS_PREFIX}:subs`);
    leaseStores.set(ctx.services, store);
  }
  let outcome: Awaited<ReturnType<CountedLeases['acquire']>>;
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
/** Yielded in place of an event when the source failed (a slow consumer cut off): the client gets the error as the last event. */
class StreamFailure {
  constructor(readonly error: unknown) {}
}
type Expirable<T> = T | typeof TOKEN_EXPIRED | StreamFailure;

/**
 * Wraps a subscription's event source so that (1) it delivers one UNAUTHENTICATED error and ends
 * when the caller's token expires, and (2) a client that goes away stops it at once. A plain async
 * generator cannot do (2): its `return()` waits for the pending `next()`, which may never come
 * for a quiet job, so the source gets an AbortSignal and is stopped through it. Nothing is
 * subscribed before the first `next()`: a transport that drops a request before it starts
 * iterating (an SSE client gone during the subscribe call) then leaves nothing behind: the
 * caller's subscription lease is only kept alive once iteration starts, so it lapses by itself.
 */
/** Longest delay setTimeout honours; a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function guardSubscription<T>(
  ctx: GraphQLContext,
  kind: string,
  lease: Lease | null,
  open: (signal: AbortSignal) => AsyncIterableIterator<T>,
): AsyncIterableIterator<Expirable<T>> & HandsOff<T> {
  let source: AsyncIterableIterator<T> | null = null;
  let taker: ((value: T) => boolean) | null = null;
  const stop = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let expired = false;
  let finished = false;
  let lastDelivered = false;
  const done: IteratorResult<never> = { value: undefined, done: true };
  const start = () => {
    lease?.keepAlive();
    subscriptionGauge.labels(kind).inc();
    // On expiry the source is stopped; its end then becomes the UNAUTHENTICATED error below.
    // A timer fires at most 2^31-1 ms ahead (about 24.8 days), so a later expiry re-arms it.
    const arm = () => {
      const left = Math.max(0, ctx.viewer.exp * 1000 - Date.now());
      timer = setTimeout(
        left > MAX_TIMER_MS
          ? arm
          : () => {
              expired = true;
              stop.abort();
            },
        Math.min(left, MAX_TIMER_MS),
      );
    };
    arm();
    const opened = open(stop.signal);
    if (taker && handsOff<T>(opened)) opened.handOffTo(taker);
    return opened;
  };
  const finish = async () => {
    if (finished) return;
    finished = true;
    const releasing = lease?.release();
    if (source) {
      clearTimeout(timer);
      subscriptionGauge.labels(kind).dec();
      stop.abort();
      await source.return?.();
    }
    await releasing;
  };
  /** One last event instead of the end: the expiry or the source's failure, as an error. */
  const last = (value: Expirable<T>): IteratorResult<Expirable<T>> => {
    lastDelivered = true;
    return { value, done: false };
  };
  const iterator: AsyncIterableIterator<Expirable<T>> & HandsOff<T> = {
    // Events pass through as they are; only the end (expiry, failure) goes through `next()`.
    handOffTo(take) {
      taker = take;
      if (source && handsOff<T>(source)) source.handOffTo(take);
    },
    next() {
      if (finished || lastDelivered) return finish().then(() => done);
      source ??= start();
      if (expired) return Promise.resolve(last(TOKEN_EXPIRED));
      return source.next().then(
        (next) => {
          if (!next.done) return next;
          if (expired) return last(TOKEN_EXPIRED);
          return finish().then(() => next);
        },
        (error: unknown) => last(new StreamFailure(error)),
      );
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

/** A subscription's `resolve`: the event, or the error that ends the stream in its place. */
export function eventOrExpiry<T>(event: Expirable<T>): T {
  if (event === TOKEN_EXPIRED)
    throw graphqlError(
      'UNAUTHENTICATED',
      'token expired; subscribe again with a fresh token (over WebSocket, on a new connection: a socket keeps the token it connected with)',
    );
  if (event instanceof StreamFailure) throw event.error;
  return event;
}

/**
 * Where a subscription resumes, checked: the SSE reconnect's Last-Event-ID wins over the `after`
 * it was first sent with.
 */
async function resumePosition(ctx: GraphQLContext, after: string | null | undefined): Promise<StreamPosition | null> {
  const cursor = ctx.lastEventId ?? after;
  if (cursor === null || cursor === undefined) return null;
  const position = ctx.services.positions.decode(cursor);
  if (!position) throw graphqlError('BAD_USER_INPUT', 'after: not a cursor returned by this API');
  await checkResumable(ctx.services.orm.em, position, ctx.services.config.STREAM_RETENTION_HOURS * 3_600_000);
  return position;
}

/** `resumePosition`, checked only once the caller holds a subscription slot, which a refusal gives back. */
async function resumeWithin(ctx: GraphQLContext, after: string | null | undefined, lease: Lease | null) {
  try {
    return await resumePosition(ctx, after);
  } catch (error) {
    await lease?.release();
    throw error;
  }
}

/** Follows the changes of the jobs in `filter` that the caller may see, from `from` on. */
function followVisibleChanges(
  ctx: GraphQLContext,
  filter: JobFilterInput | null,
  from: StreamPosition | null,
  signal: AbortSignal,
  options: Pick<FollowJobChanges, 'first' | 'endsAfter'> = {},
) {
  const { config, changeFeed, orm } = ctx.services;
  const caller = callerOf(ctx.viewer);
  return followJobChanges({
    feed: changeFeed,
    positions: ctx.services.positions,
    em: orm.em,
    // Statuses are matched in `accepts`, not in SQL: a job that left a watched status is news too.
    scope: { ownerId: ownerFilter(caller), filter: filter ? { ...filter, statuses: null, updatedAfter: null } : null },
    accepts: (event) => matches(ctx, filter, event),
    jobIds: filter?.ids ? [...filter.ids] : undefined,
    from,
    maxQueued: config.MAX_QUEUED_EVENTS_PER_SUBSCRIPTION,
    maxQueuedBytes: config.MAX_QUEUED_BYTES_PER_SUBSCRIPTION,
    signal,
    ...options,
  });
}

/**
 * One job: its current state first (or, resuming, whatever changed since the cursor), then each
 * change, ending after a terminal status. `now` is the job as read when the client subscribed.
 */
function jobProgress(
  ctx: GraphQLContext,
  now: NonNullable<Awaited<ReturnType<typeof readJobNow>>>,
  from: StreamPosition | null,
  signal: AbortSignal,
): AsyncIterableIterator<StreamEvent> {
  const first: StreamEvent[] = [];
  let position = from;
  if (!position || (isTerminal(now.job.status) && !hasSeen(position, now.key))) {
    position = positionAt(now.snapshot);
    first.push({ ...toEventMessage(now.job), cursor: ctx.services.positions.encode(position) });
  }
  if (isTerminal(now.job.status))
    return (async function* () {
      yield* first;
    })();
  return followVisibleChanges(ctx, { ids: [now.job.id] }, position, signal, { first, endsAfter: (event) => isTerminal(event.job.status) });
}

function matches(ctx: GraphQLContext, filter: JobFilterInput | null | undefined, event: StreamEvent): boolean {
  const { job } = event;
  const previousStatus = event.previousStatus !== undefined ? event.previousStatus : job.previousStatus;
  if (!mayAccess(callerOf(ctx.viewer), job.ownerId)) return false;
  if (filter?.types?.length && !filter.types.includes(job.type)) return false;
  // A job leaving a watched status is news too: the dashboard must take it out of that status.
  if (filter?.statuses?.length && !filter.statuses.includes(job.status) && !(previousStatus && filter.statuses.includes(previousStatus)))
    return false;
  if (filter?.accountId && filter.accountId !== job.accountId) return false;
  if (filter?.ids && !filter.ids.includes(job.id)) return false;
  if (filter?.updatedAfter && new Date(job.updatedAt) < filter.updatedAfter) return false;
  if (filter?.createdAfter && new Date(job.createdAt) < filter.createdAfter) return false;
  if (filter?.createdBefore && new Date(job.createdAt) >= filter.createdBefore) return false;
  if (filter?.tags?.length && !filter.tags.every((tag) => job.tags?.includes(tag))) return false;
  return true;
}

const afterArg = (t: Parameters<Parameters<typeof builder.subscriptionFields>[0]>[0]) =>
  t.arg.string({
    required: false,
    description:
      "Resume after this position: an event's `cursor`, or `jobs { streamCursor }`. Over SSE, a reconnect's `Last-Event-ID` header takes its place.",
  });

builder.subscriptionFields((t) => ({
  jobProgress: t.field({
    type: JobProgressEventRef,
    description:
      "One job's progress: its current state first, then each change; completes after a terminal status. With `after`, it sends only what changed since (and completes at once if the job ended before it).",
    args: { jobId: t.arg.id({ required: true }), after: afterArg(t) },
    // Checked before the stream is returned, so a refusal is a plain GraphQL error on every transport.
    subscribe: async (_root, { jobId, after }, ctx) => {
      // Read with its snapshot, so the stream goes on from exactly the state sent first; someone
      // else's job looks exactly like a missing one.
      const now = isUuid(String(jobId)) ? await readJobNow(ctx.services.orm.em, String(jobId)) : null;
      if (!now || !mayAccess(callerOf(ctx.viewer), now.job.ownerId)) throw graphqlError('NOT_FOUND', `job ${jobId} not found`);
      const lease = await takeSubscriptionSlot(ctx, 'jobProgress');
      const from = await resumeWithin(ctx, after, lease);
      return guardSubscription(ctx, 'jobProgress', lease, (signal) => jobProgress(ctx, now, from, signal));
    },
    resolve: eventOrExpiry,
  }),
  jobEvents: t.field({
    type: JobProgressEventRef,
    description:
      'Every change of every job the caller may see, for dashboards: from now, or, with `after`, first every change since that position (the latest state of each changed job), then live; never one twice, never one missing. With `filter.statuses`, a job is reported while it enters, stays in or leaves one of them (see `previousStatus`).',
    args: { filter: t.arg({ type: JobFilterRef, required: false }), after: afterArg(t) },
    subscribe: async (_root, { filter, after }, ctx) => {
      const checked = checkJobFilter(filter as JobFilterInput | null);
      const lease = await takeSubscriptionSlot(ctx, 'jobEvents');
      const from = await resumeWithin(ctx, after, lease);
      return guardSubscription(ctx, 'jobEvents', lease, (signal) => followVisibleChanges(ctx, checked, from, signal));
    },
    resolve: eventOrExpiry,
  }),
}));
