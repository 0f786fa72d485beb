import { callerOf, mayAccess } from '../../auth/access.js';
import type { OVERLAP_POLICIES } from '../../db/entities/schedule-setting.entity.js';
import { enqueueJob } from '../../engine/enqueue.js';
import {
  checkTimezone,
  type EffectiveSchedule,
  lastRunOf,
  loadRuleSchedules,
  loadSystemSchedules,
  nextRunOf,
  type ScheduleChange,
  saveScheduleSetting,
  scheduleTag,
} from '../../engine/schedules.js';
import { findJobType, jobCatalogue } from '../../jobs/registry.js';
import { cronPatternProblem, RUN_RULE_TYPE, SYSTEM_OWNER } from '../../jobs/rule-schedules.js';
import { topics } from '../../pubsub/topics.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { graphqlError } from '../errors.js';
import { enqueueDeps } from './enqueue.js';
import { JobRef, JobTypeNameRef } from './job.js';

const OverlapPolicyRef = builder.enumType('OverlapPolicy', {
  description: 'What a tick does while the previous run of its schedule is still queued or running.',
  values: {
    SKIP_IF_RUNNING: { value: 'SKIP_IF_RUNNING', description: 'Skip this tick.' },
    ALLOW: { value: 'ALLOW', description: 'Start another run beside it.' },
  } satisfies Record<(typeof OVERLAP_POLICIES)[number], unknown>,
});

/** A schedule's last run, read once for `lastJob` and `lastRunAt` alike (schedules are loaded per request). */
const lastRuns = new WeakMap<EffectiveSchedule, ReturnType<typeof lastRunOf>>();
function lastRun(ctx: GraphQLContext, schedule: EffectiveSchedule): ReturnType<typeof lastRunOf> {
  let run = lastRuns.get(schedule);
  if (!run) {
    run = lastRunOf(ctx.em, schedule);
    lastRuns.set(schedule, run);
  }
  return run;
}

const ScheduleRef = builder.objectRef<EffectiveSchedule>('Schedule').implement({
  description:
    "A cron schedule that starts jobs: one of the catalogue's (id as declared, e.g. `apply-retention-daily`; runs owned by the system) or a saved rule's (`rule:<ruleId>`; runs owned by the rule's owner). Every run it starts carries the tag `schedule:<id>`.",
  fields: (t) => ({
    id: t.exposeID('id'),
    jobType: t.field({ type: JobTypeNameRef, resolve: (schedule) => schedule.jobType }),
    cron: t.exposeString('cron', { description: 'Cron pattern: 5 fields, or 6 with seconds first.' }),
    timezone: t.exposeString('timezone', { description: 'IANA time zone the pattern is read in.' }),
    enabled: t.exposeBoolean('enabled', { description: 'A disabled schedule does not fire; `runScheduleNow` still runs it.' }),
    overlap: t.field({ type: OverlapPolicyRef, resolve: (schedule) => schedule.overlap }),
    ruleId: t.exposeID('ruleId', { nullable: true, description: "The rule, for a rule's schedule." }),
    nextRunAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When it fires next; null while disabled.',
      resolve: (schedule) => nextRunOf(schedule),
    }),
    lastJob: t.field({
      type: JobRef,
      nullable: true,
      description: 'The newest run it started (by a tick or by hand).',
      resolve: (schedule, _args, ctx) => lastRun(ctx, schedule),
    }),
    lastRunAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When its newest run was started.',
      resolve: async (schedule, _args, ctx) => (await lastRun(ctx, schedule))?.createdAt ?? null,
    }),
  }),
});

const ScheduleInputRef = builder.inputType('ScheduleInput', {
  description: 'A change of a schedule; an omitted field keeps its value, null returns it to the declared default.',
  fields: (t) => ({
    cron: t.string({ required: false, description: 'Cron pattern: 5 fields, or 6 with seconds first.' }),
    timezone: t.string({ required: false, description: 'IANA time zone, e.g. `Europe/Paris`.' }),
    enabled: t.boolean({ required: false }),
    overlap: t.field({ type: OverlapPolicyRef, required: false }),
  }),
});

/** Every schedule the caller may see: an admin, the catalogue's and every rule's; a user, their rules'. */
async function visibleSchedules(ctx: GraphQLContext): Promise<EffectiveSchedule[]> {
  const caller = callerOf(ctx.viewer);
  const { config } = ctx.services;
  const rules = await loadRuleSchedules(ctx.em, caller.isAdmin ? null : caller.ownerId, config, RUN_RULE_TYPE);
  if (!caller.isAdmin) return rules;
  return [...(await loadSystemSchedules(ctx.em, jobCatalogue, config, SYSTEM_OWNER)), ...rules];
}

/** The schedule, if the caller may see it; otherwise NOT_FOUND, as for a missing one. */
async function visibleSchedule(ctx: GraphQLContext, id: string): Promise<EffectiveSchedule> {
  const schedule = (await visibleSchedules(ctx)).find((candidate) => candidate.id === id);
  if (!schedule || !mayAccess(callerOf(ctx.viewer), schedule.ownerId === SYSTEM_OWNER ? null : schedule.ownerId)) {
    throw graphqlError('NOT_FOUND', `schedule ${id.slice(0, 100)} not found`);
  }
  return schedule;
}

/** Schedule ids are names (`apply-retention-daily`, `rule:<uuid>`), not UUIDs: a String argument, not an ID one. */
const scheduleIdArg = (t: Parameters<Parameters<typeof builder.mutationFields>[0]>[0]) =>
  t.arg.string({ required: true, description: 'A `Schedule.id`, e.g. `apply-retention-daily` or `rule:<ruleId>`.' });

builder.queryField('schedules', (t) =>
  t.field({
    type: [ScheduleRef],
    description: "The schedules the caller may see: for an admin, the catalogue's and every saved rule's; for a user, their rules'.",
    resolve: (_root, _args, ctx) => visibleSchedules(ctx),
  }),
);

builder.mutationFields((t) => ({
  updateSchedule: t.field({
    type: ScheduleRef,
    authScopes: { admin: true },
    description:
      "Changes a catalogue schedule at run time on every sidecar (no restart): the change is kept in PostgreSQL and wins over the declaration and SCHEDULE_OVERRIDES; each tick still fires once. Admins only. A rule's schedule is changed with `updateRule`.",
    args: { id: scheduleIdArg(t), input: t.arg({ type: ScheduleInputRef, required: true }) },
    resolve: async (_root, { id, input }, ctx) => {
      const current = await visibleSchedule(ctx, String(id));
      if (current.ruleId) throw graphqlError('BAD_USER_INPUT', "a rule's schedule is changed with updateRule(id, { schedule, enabled })");
      const change: ScheduleChange = {};
      if (input.timezone !== undefined) {
        if (input.timezone !== null) checkTimezone(input.timezone);
        change.timezone = input.timezone;
      }
      if (input.cron !== undefined) change.cron = input.cron === null ? null : input.cron.trim();
      const cron = change.cron ?? current.cron;
      const problem =
        change.cron !== undefined || change.timezone !== undefined ? cronPatternProblem(cron, change.timezone ?? current.timezone) : null;
      if (problem) throw graphqlError('BAD_USER_INPUT', `cron: ${problem}`);
      if (input.enabled !== undefined) change.enabled = input.enabled;
      if (input.overlap !== undefined) change.overlap = input.overlap as ScheduleChange['overlap'];
      await saveScheduleSetting(ctx.em, current.id, change);
      await ctx.services.pubsub.publish(topics.schedules(), { scheduleId: current.id }).catch(() => {});
      ctx.services.logger.info({ schedule: current.id, by: ctx.viewer.id, change }, 'schedule changed');
      return visibleSchedule(ctx, current.id);
    },
  }),
  runScheduleNow: t.field({
    type: JobRef,
    description:
      "Starts one run of a schedule now, as a tick would (trigger SCHEDULE, tagged `schedule:<id>`), whether or not it is enabled. An admin runs any schedule; a user their rules'.",
    args: { id: scheduleIdArg(t) },
    resolve: async (_root, { id }, ctx) => {
      const schedule = await visibleSchedule(ctx, String(id));
      const declaration = findJobType(schedule.jobType);
      if (!declaration) throw graphqlError('BAD_USER_INPUT', `job type ${schedule.jobType} is no longer in the catalogue`);
      return enqueueJob(enqueueDeps(ctx), {
        declaration,
        args: schedule.input,
        ownerId: schedule.ownerId,
        isAdmin: schedule.ownerId === SYSTEM_OWNER,
        trigger: 'SCHEDULE',
        options: { tags: [scheduleTag(schedule.id)] },
        // Started by hand: a user's run counts against their quotas like any enqueue.
        admit: () => ctx.services.quotas.checkEnqueue(ctx.em, callerOf(ctx.viewer)),
      });
    },
  }),
}));
