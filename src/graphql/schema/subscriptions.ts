import { toEventMessage, isTerminal } from '../../jobs/job-store.js';
import { findJobType } from '../../jobs/registry.js';
import { topics, type JobEventMessage } from '../../pubsub/topics.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { graphqlError } from '../errors.js';
import { canSee, JobFilterRef, JobStatusRef, loadVisibleJob, type JobFilterInput } from './job.js';
import { subscriptionGauge } from '../../observability/metrics.js';

export const JobProgressEventRef = builder.objectRef<JobEventMessage>('JobProgressEvent').implement({
  description: "A job's full public state at one moment.",
  fields: (t) => ({
    jobId: t.exposeID('jobId'),
    type: t.exposeString('type'),
    status: t.field({ type: JobStatusRef, resolve: (e) => e.status }),
    progress: t.exposeFloat('progress'),
    processed: t.exposeInt('processed', { nullable: true }),
    total: t.exposeInt('total', { nullable: true }),
    message: t.exposeString('message', { nullable: true }),
    error: t.exposeString('error', { nullable: true }),
    result: t.field({ type: 'JSON', nullable: true, resolve: (e) => e.result ?? null }),
    at: t.field({ type: 'DateTime', resolve: (e) => e.at }),
  }),
});

/**
 * Ends a subscription with UNAUTHENTICATED when the caller's token expires, however long it has
 * been open, and always releases the underlying stream.
 */
async function* untilTokenExpiry<T>(ctx: GraphQLContext, source: AsyncIterator<T>, kind: string): AsyncGenerator<T> {
  const gauge = subscriptionGauge.labels(kind);
  gauge.inc();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(graphqlError('UNAUTHENTICATED', 'token expired; subscribe again with a fresh token')),
      Math.max(0, ctx.viewer.exp * 1000 - Date.now()),
    );
  });
  expired.catch(() => {});
  try {
    for (;;) {
      const next = await Promise.race([source.next(), expired]);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    clearTimeout(timer);
    gauge.dec();
    await source.return?.();
  }
}

/** Current state from the database first, then live events, ending after a terminal status. */
async function* jobProgress(ctx: GraphQLContext, jobId: string): AsyncGenerator<JobEventMessage> {
  await loadVisibleJob(ctx, jobId);
  // Subscribe before reading the row, so no event falls between the read and the subscription.
  const stream = ctx.services.pubsub.stream(topics.job(jobId));
  try {
    await stream.ready;
    const job = await loadVisibleJob(ctx, jobId);
    let version = job.version;
    yield toEventMessage(job);
    if (isTerminal(job.status)) return;
    for await (const event of stream) {
      // Events older than what was already sent (raced the first read) are dropped.
      if (event.version <= version) continue;
      version = event.version;
      yield event;
      if (isTerminal(event.status)) return;
    }
  } finally {
    await stream.return();
  }
}

function matches(ctx: GraphQLContext, filter: JobFilterInput | null | undefined, event: JobEventMessage): boolean {
  if (!canSee(ctx, event)) return false;
  if (filter?.types?.length && !filter.types.includes(event.type)) return false;
  if (filter?.statuses?.length && !filter.statuses.includes(event.status)) return false;
  if (filter?.accountId && filter.accountId !== event.accountId) return false;
  return true;
}

async function* jobEvents(ctx: GraphQLContext, filter: JobFilterInput | null | undefined): AsyncGenerator<JobEventMessage> {
  for (const type of filter?.types ?? []) {
    if (!findJobType(type)) throw graphqlError('BAD_USER_INPUT', `unknown job type: ${type}`);
  }
  const stream = ctx.services.pubsub.stream(topics.allJobs());
  try {
    for await (const event of stream) if (matches(ctx, filter, event)) yield event;
  } finally {
    await stream.return();
  }
}

builder.subscriptionFields((t) => ({
  jobProgress: t.field({
    type: JobProgressEventRef,
    description: "One job's progress: its current state first, then live; completes after a terminal status.",
    args: { jobId: t.arg.id({ required: true }) },
    subscribe: (_root, { jobId }, ctx) => untilTokenExpiry(ctx, jobProgress(ctx, String(jobId)), 'jobProgress'),
    resolve: (event) => event,
  }),
  jobEvents: t.field({
    type: JobProgressEventRef,
    description: 'Every change of every job the caller may see, for dashboards.',
    args: { filter: t.arg({ type: JobFilterRef, required: false }) },
    subscribe: (_root, { filter }, ctx) => untilTokenExpiry(ctx, jobEvents(ctx, filter as JobFilterInput | null), 'jobEvents'),
    resolve: (event) => event,
  }),
}));
