import type { AnyJobDeclaration } from '../../engine/define-job.js';
import { jobCatalogue } from '../../jobs/registry.js';
import { scheduleOverrides } from '../../config/env.js';
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
    rateLimit: t.field({ type: RateLimitRef, nullable: true, resolve: (d) => d.options.rateLimit }),
    timeoutMs: t.int({ resolve: (d) => d.options.timeoutMs }),
    removeOnComplete: t.int({
      description: 'Completed jobs kept in Redis (PostgreSQL keeps all).',
      resolve: (d) => d.options.removeOnComplete,
    }),
    removeOnFail: t.int({ description: 'Failed jobs kept in Redis.', resolve: (d) => d.options.removeOnFail }),
    schedules: t.field({
      type: [ScheduleRef],
      resolve: (d, _args, ctx) => {
        const overrides = scheduleOverrides(ctx.services.config);
        return (d.schedules ?? []).map((s) => ({
          id: s.id,
          cron: overrides.get(s.id) ?? s.cron,
          timezone: ctx.services.config.SCHEDULE_TZ,
        }));
      },
    }),
  }),
});

builder.queryField('jobTypes', (t) =>
  t.field({ type: [JobTypeInfoRef], description: 'The job catalogue.', resolve: () => [...jobCatalogue] }),
);
