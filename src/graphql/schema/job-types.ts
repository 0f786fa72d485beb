import type { JobTypeState } from '../../db/entities/job-type-state.entity.js';
import type { AnyJobDeclaration } from '../../engine/define-job.js';
import { loadJobTypeStates, setJobTypePaused } from '../../engine/job-type-control.js';
import { loadSystemSchedules } from '../../engine/schedules.js';
import { SYSTEM_OWNER } from '../../jobs/rule-schedules.js';
import { findJobType, jobCatalogue } from '../../jobs/registry.js';
import { type JobTypeChangeMessage, topics } from '../../pubsub/topics.js';
import type { GraphQLContext } from '../context.js';
import { graphqlError } from '../errors.js';
import { JobTypeNameRef } from './job.js';
import { eventOrExpiry, guardSubscription, takeSubscriptionSlot } from './subscriptions.js';
import { builder } from '../builder.js';

const BackoffRef = builder.objectRef<{ type: string; delayMs: number }>('Backoff').implement({
  fields: (t) => ({ type: t.exposeString('type', { description: '`exponential` or `fixed`.' }), delayMs: t.exposeInt('delayMs') }),
});

const RateLimitRef = builder.objectRef<{ max: number; durationMs: number }>('RateLimit').implement({
  fields: (t) => ({ max: t.exposeInt('max'), durationMs: t.exposeInt('durationMs') }),
});

const ScheduleRef = builder.objectRef<{ id: string; cron: string; timezone: string }>('JobSchedule').implement({
  fields: (t) => ({ id: t.exposeString('id'), cron: t.exposeString('cron'), timezone: t.exposeString('timezone') }),
});

const JobTypeInfoRef = builder.objectRef<AnyJobDeclaration>('JobTypeInfo').implement({
  description: 'A job type of the catalogue with its effective options.',
  fields: (t) => ({
    name: t.exposeString('name'),
    description: t.exposeString('description'),
    mutation: t.string({ resolve: (d) => d.graphql.mutation }),
    graphqlType: t.string({ resolve: (d) => d.graphql.typeName }),
    unit: t.exposeString('unit', { description: 'What processed/total count.' }),
    attempts: t.int({ resolve: (d) => d.options.attempts }),
    backoff: t.field({ type: BackoffRef, resolve: (d) => d.options.backoff }),
    priority: t.int({ nullable: true, resolve: (d) => d.options.priority }),
    concurrency: t.int({ description: 'Jobs one worker process runs at once.', resolve: (d) => d.options.concurrency }),
    globalConcurrency: t.int({
      nullable: true,
      description: 'Jobs running at once across all workers.',
      resolve: (d) => d.options.globalConcurrency,
    }),
    ownerConcurrency: t.int({
      nullable: true,
      description:
        "Jobs of this type one owner may have running at once across all workers; an owner's next one waits PENDING (no attempt used) while other owners' jobs run. Null: no limit.",
      resolve: (d) => d.options.ownerConcurrency,
    }),
    rateLimit: t.field({ type: RateLimitRef, nullable: true, resolve: (d) => d.options.rateLimit }),
    timeoutMs: t.int({ resolve: (d) => d.options.timeoutMs }),
    removeOnComplete: t.int({
      description: 'Completed jobs kept in Redis (PostgreSQL keeps all).',
      resolve: (d) => d.options.removeOnComplete,
    }),
    removeOnFail: t.int({ description: 'Failed jobs kept in Redis.', resolve: (d) => d.options.removeOnFail }),
    paused: t.loadable({
      type: 'Boolean',
      description: 'Paused by `pauseJobType`: its queued jobs wait (PENDING), running ones finish, until `resumeJobType`.',
      ...pausedState((state) => Boolean(state?.pausedAt)),
    }),
    pausedAt: t.loadable({
      type: 'DateTime',
      nullable: true,
      description: 'When it was paused; null while it runs.',
      ...pausedState((state) => state?.pausedAt ?? null),
    }),
    schedules: t.field({
      type: [ScheduleRef],
      description: 'Its schedules with the settings in effect (see `schedules` for more).',
      resolve: (d, _args, ctx) => loadSystemSchedules(ctx.em, [d], ctx.services.config, SYSTEM_OWNER),
    }),
  }),
});

builder.queryField('jobTypes', (t) =>
  t.field({ type: [JobTypeInfoRef], description: 'The job catalogue.', resolve: () => [...jobCatalogue] }),
);

/**
 * A `JobTypeInfo` field read from the type's recorded state: one query for every type a result
 * selects, never cached (a subscription keeps its context across events).
 */
function pausedState<T>(pick: (state: JobTypeState | undefined) => T) {
  return {
    loaderOptions: { cache: false },
    load: async (types: string[], ctx: GraphQLContext) => {
      const states = await loadJobTypeStates(ctx.em, types);
      return types.map((type) => pick(states.get(type)));
    },
    resolve: (declaration: AnyJobDeclaration) => declaration.name,
  };
}

/** Pauses or resumes a type and tells every `jobTypeChanged` subscriber. */
async function setPaused(ctx: GraphQLContext, type: string, paused: boolean): Promise<AnyJobDeclaration> {
  const declaration = findJobType(type);
  if (!declaration) throw graphqlError('BAD_USER_INPUT', `unknown job type ${type}`);
  const { services } = ctx;
  await setJobTypePaused(ctx.em, services.queues, type, paused ? ctx.viewer.id : null);
  await services.pubsub.publish(topics.jobTypes(), { type }).catch(() => {});
  services.logger.info({ type, by: ctx.viewer.id }, paused ? 'job type paused' : 'job type resumed');
  return declaration;
}

builder.mutationFields((t) => ({
  pauseJobType: t.field({
    type: JobTypeInfoRef,
    authScopes: { admin: true },
    description:
      'Pauses a job type on every sidecar: its queued jobs wait (PENDING, also new ones), running ones finish; schedules still enqueue. Admins only. Pausing a paused type changes nothing.',
    args: { type: t.arg({ type: JobTypeNameRef, required: true }) },
    resolve: (_root, { type }, ctx) => setPaused(ctx, type, true),
  }),
  resumeJobType: t.field({
    type: JobTypeInfoRef,
    authScopes: { admin: true },
    description: 'Resumes a paused job type: its waiting jobs start. Admins only.',
    args: { type: t.arg({ type: JobTypeNameRef, required: true }) },
    resolve: (_root, { type }, ctx) => setPaused(ctx, type, false),
  }),
}));

builder.subscriptionField('jobTypeChanged', (t) =>
  t.field({
    type: JobTypeInfoRef,
    description: 'A job type as it is after each pause or resume, for dashboards.',
    subscribe: async (_root, _args, ctx) => {
      const lease = await takeSubscriptionSlot(ctx, 'jobTypeChanged');
      return guardSubscription(ctx, 'jobTypeChanged', lease, (signal) => followJobTypeChanges(ctx, signal));
    },
    resolve: (event) => findJobType(eventOrExpiry(event).type)!,
  }),
);

/** Each type change announced on pub/sub, until `signal` fires. */
async function* followJobTypeChanges(ctx: GraphQLContext, signal: AbortSignal): AsyncGenerator<JobTypeChangeMessage> {
  const waiting: JobTypeChangeMessage[] = [];
  let wake: (() => void) | null = null;
  const stop = await ctx.services.pubsub.listen(topics.jobTypes(), (message) => {
    if (findJobType(message.type)) waiting.push(message);
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener('abort', onAbort);
  try {
    while (!signal.aborted) {
      const next = waiting.shift();
      if (next) {
        yield next;
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = null;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    stop();
  }
}
