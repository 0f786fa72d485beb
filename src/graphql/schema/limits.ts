import { callerOf } from '../../auth/access.js';
import { builder } from '../builder.js';

interface Limits {
  exempt: boolean;
  enqueueRateMax: number | null;
  enqueueRateWindowMs: number;
  enqueuesRemaining: number | null;
  maxUnfinishedJobs: number | null;
  unfinishedJobs: number;
  maxSubscriptionsPerUser: number | null;
  maxSubscriptionsPerConnection: number;
  ruleScheduleMinIntervalSeconds: number;
  maxScheduledRules: number | null;
  maxRetentionPolicies: number | null;
  maxUploadBytes: number;
  maxMessageBytes: number;
}

const LimitsRef = builder.objectRef<Limits>('Limits').implement({
  description:
    'The quotas that apply to the caller, as the operator set them. A refusal is a RATE_LIMITED error with `extensions.retryAfter` (seconds). Null means unlimited.',
  fields: (t) => ({
    exempt: t.exposeBoolean('exempt', {
      description: 'Admins are exempt from the per-owner quotas (enqueue rate, unfinished jobs, subscriptions per user).',
    }),
    enqueueRateMax: t.exposeInt('enqueueRateMax', { nullable: true, description: 'Jobs you may enqueue per window (ENQUEUE_RATE_MAX).' }),
    enqueueRateWindowMs: t.exposeInt('enqueueRateWindowMs', { description: 'Length of the enqueue window (ENQUEUE_RATE_WINDOW_MS).' }),
    enqueuesRemaining: t.exposeInt('enqueuesRemaining', { nullable: true, description: 'Enqueues left in your current window.' }),
    maxUnfinishedJobs: t.exposeInt('maxUnfinishedJobs', {
      nullable: true,
      description: 'Jobs you may have PENDING, DELAYED or ACTIVE at once (MAX_UNFINISHED_JOBS_PER_OWNER).',
    }),
    unfinishedJobs: t.exposeInt('unfinishedJobs', { description: 'Your jobs not finished yet, counted up to the limit.' }),
    maxSubscriptionsPerUser: t.exposeInt('maxSubscriptionsPerUser', {
      nullable: true,
      description: 'Open subscriptions you may hold across every replica (MAX_SUBSCRIPTIONS_PER_USER).',
    }),
    maxSubscriptionsPerConnection: t.exposeInt('maxSubscriptionsPerConnection', {
      description: 'Open subscriptions on one WebSocket (MAX_SUBSCRIPTIONS_PER_CONNECTION).',
    }),
    ruleScheduleMinIntervalSeconds: t.exposeInt('ruleScheduleMinIntervalSeconds', {
      description: "Shortest interval between two runs of a rule's schedule (RULE_SCHEDULE_MIN_INTERVAL_SECONDS).",
    }),
    maxScheduledRules: t.exposeInt('maxScheduledRules', {
      nullable: true,
      description: 'Enabled rules with a schedule you may have (MAX_SCHEDULED_RULES_PER_OWNER); it applies to admins too.',
    }),
    maxRetentionPolicies: t.exposeInt('maxRetentionPolicies', {
      nullable: true,
      description: 'Retention policies you may have (MAX_RETENTION_POLICIES_PER_OWNER); it applies to admins too.',
    }),
    maxUploadBytes: t.exposeInt('maxUploadBytes', { description: 'Largest upload (MAX_UPLOAD_BYTES).' }),
    maxMessageBytes: t.exposeInt('maxMessageBytes', {
      description: 'Largest single message in an import (MAX_MESSAGE_BYTES); bigger ones are counted as malformed.',
    }),
  }),
});

builder.queryField('limits', (t) =>
  t.field({
    type: LimitsRef,
    description: 'The quotas that apply to you, and where you stand.',
    resolve: async (_root, _args, ctx) => {
      const { config, quotas } = ctx.services;
      const exempt = callerOf(ctx.viewer).isAdmin;
      const unfinishedCap = config.MAX_UNFINISHED_JOBS_PER_OWNER > 0 ? config.MAX_UNFINISHED_JOBS_PER_OWNER : 100_000;
      const positiveOrNull = (value: number) => (exempt || value === 0 ? null : value);
      return {
        exempt,
        enqueueRateMax: positiveOrNull(config.ENQUEUE_RATE_MAX),
        enqueueRateWindowMs: config.ENQUEUE_RATE_WINDOW_MS,
        enqueuesRemaining: exempt ? null : await quotas.remainingEnqueues(ctx.viewer.id),
        maxUnfinishedJobs: positiveOrNull(config.MAX_UNFINISHED_JOBS_PER_OWNER),
        unfinishedJobs: await quotas.unfinishedJobs(ctx.em, ctx.viewer.id, unfinishedCap),
        maxSubscriptionsPerUser: positiveOrNull(config.MAX_SUBSCRIPTIONS_PER_USER),
        maxSubscriptionsPerConnection: config.MAX_SUBSCRIPTIONS_PER_CONNECTION,
        ruleScheduleMinIntervalSeconds: config.RULE_SCHEDULE_MIN_INTERVAL_SECONDS,
        maxScheduledRules: config.MAX_SCHEDULED_RULES_PER_OWNER || null,
        maxRetentionPolicies: config.MAX_RETENTION_POLICIES_PER_OWNER || null,
        maxUploadBytes: config.MAX_UPLOAD_BYTES,
        maxMessageBytes: config.MAX_MESSAGE_BYTES,
      };
    },
  }),
);
