import type { Config } from '../../config/env.js';
import { randomUUID } from 'node:crypto';
import { callerOf, ownerFilter } from '../../auth/access.js';
import { Rule } from '../../db/entities/rule.entity.js';
import { loadOwnedAccount } from '../../jobs/access.js';
import { InvalidInputError, NotFoundError } from '../../engine/errors.js';
import { displayNameSchema, parseInput } from '../../engine/validation.js';
import { nextFireTime } from '../../engine/schedules.js';
import { cronPatternProblem, syncRuleSchedule } from '../../jobs/rule-schedules.js';
import { findMessagesInOrder } from '../../mail/message-search.js';
import { compileRule, type CompiledRule } from '../../mail/rules/compile-rule.js';
import { InvalidRuleError } from '../../mail/rules/invalid-rule-error.js';
import { parseRuleActions, type RULE_ACTION_TYPES, type RuleAction } from '../../mail/rules/rule-actions.js';
import type { RuleCondition, RuleConditions } from '../../mail/rules/rule-conditions.js';
import { compileSavedRule, countScheduledRules, listAccountRules, listRules, loadOwnedRule } from '../../mail/rules/rule-store.js';
import { QuotaExceededError } from '../../engine/owner-quotas.js';
import { RuleTestBudget, scanRuleMatches } from '../../mail/rules/scan-rule.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { MessageRef } from './message.js';

const RuleMatchRef = builder.enumType('RuleMatch', {
  values: {
    ALL: { description: 'Every condition must hold.' },
    ANY: { description: 'At least one condition must hold.' },
  } as const,
});

const RULE_FIELDS = {
  FROM: { kind: 'text', description: 'Sender address. Operators CONTAINS, EQUALS, MATCHES; value: text.' },
  TO: { kind: 'text', description: 'Any recipient address (To and Cc). Operators CONTAINS, EQUALS, MATCHES; value: text.' },
  SUBJECT: { kind: 'text', description: 'Subject (empty when missing). Operators CONTAINS, EQUALS, MATCHES; value: text.' },
  AGE_DAYS: {
    kind: 'number',
    description: 'Age in days by the Date header (never holds for undated mail). Operators GT, LT; value: a number, e.g. "30" or "0.5".',
  },
  SIZE: { kind: 'number', description: 'Raw size in bytes. Operators GT, LT; value: a number, e.g. "1048576".' },
  HAS_ATTACHMENTS: { kind: 'boolean', description: 'No operator (or EQUALS); value: "true" or "false".' },
  IS_READ: { kind: 'boolean', description: 'No operator (or EQUALS); value: "true" or "false".' },
  LABEL: { kind: 'label', description: 'Operators HAS, NOT_HAS; value: the label name (exact).' },
} as const;
type RuleFieldName = keyof typeof RULE_FIELDS;

const RuleFieldRef = builder.enumType('RuleField', {
  description: 'What a condition tests; each value says which operators and values it takes.',
  values: Object.fromEntries(Object.entries(RULE_FIELDS).map(([name, { description }]) => [name, { description }])) as Record<
    RuleFieldName,
    { description: string }
  >,
});

const RULE_OPERATORS = ['CONTAINS', 'EQUALS', 'MATCHES', 'GT', 'LT', 'HAS', 'NOT_HAS'] as const;
const RuleOperatorRef = builder.enumType('RuleOperator', {
  description:
    'Text tests are case-insensitive; MATCHES is a regular expression in RE2 syntax (no backreferences or lookaround, at most 500 characters).',
  values: RULE_OPERATORS,
});

const RuleActionTypeRef = builder.enumType('RuleActionType', {
  values: {
    ARCHIVE: { description: 'Marks the message archived (archiveMails copies messages into archive storage).' },
    TRASH: { description: 'Moves the message to the trash.' },
    DELETE: { description: 'Deletes the message for good; cannot be combined with other actions.' },
    LABEL: { description: 'Adds `label`.' },
    MARK_READ: { description: 'Marks the message read.' },
  } satisfies Record<(typeof RULE_ACTION_TYPES)[number], unknown>,
});

/** A condition as clients read and write it: the value is always text, parsed per field. */
interface RuleConditionView {
  field: RuleFieldName;
  op: (typeof RULE_OPERATORS)[number] | null;
  value: string;
}

const RuleConditionRef = builder.objectRef<RuleConditionView>('RuleCondition').implement({
  description: 'One condition; the same shape as `RuleConditionInput`, so a rule read back can be sent again.',
  fields: (t) => ({
    field: t.field({ type: RuleFieldRef, resolve: (c) => c.field }),
    op: t.field({ type: RuleOperatorRef, nullable: true, resolve: (c) => c.op }),
    value: t.exposeString('value'),
  }),
});

const RuleConditionsRef = builder.objectRef<{ match: 'ALL' | 'ANY'; conditions: RuleConditionView[] }>('RuleConditions').implement({
  fields: (t) => ({
    match: t.field({ type: RuleMatchRef, resolve: (c) => c.match }),
    conditions: t.field({ type: [RuleConditionRef], resolve: (c) => c.conditions }),
  }),
});

const RuleActionRef = builder.objectRef<RuleAction>('RuleAction').implement({
  fields: (t) => ({
    type: t.field({ type: RuleActionTypeRef, resolve: (a) => a.type }),
    label: t.string({ nullable: true, description: 'The label LABEL adds.', resolve: (a) => a.label ?? null }),
  }),
});

function conditionsView(stored: Record<string, unknown>): { match: 'ALL' | 'ANY'; conditions: RuleConditionView[] } {
  const list = Array.isArray(stored.conditions) ? (stored.conditions as Record<string, unknown>[]) : [];
  return {
    match: stored.match === 'ANY' ? 'ANY' : 'ALL',
    conditions: list.map((c) => ({
      field: c.field as RuleFieldName,
      op: (c.op as RuleConditionView['op']) ?? null,
      value: typeof c.value === 'string' ? c.value : String(c.value),
    })),
  };
}

function nextRunAt(rule: Rule, tz: string): Date | null {
  if (!rule.enabled || !rule.schedule) return null;
  return nextFireTime(rule.schedule, tz);
}

export const RuleRef = builder.objectRef<Rule>('Rule').implement({
  description: "A saved rule: conditions over an account's messages and actions applied to each match, by `runRule` or by its schedule.",
  fields: (t) => ({
    id: t.exposeID('id'),
    accountId: t.exposeID('accountId'),
    ownerId: t.exposeString('ownerId'),
    name: t.exposeString('name'),
    conditions: t.field({ type: RuleConditionsRef, resolve: (r) => conditionsView(r.conditions) }),
    actions: t.field({
      type: [RuleActionRef],
      description: 'Applied in this order to every match.',
      resolve: (r) => r.actions as unknown as RuleAction[],
    }),
    schedule: t.exposeString('schedule', {
      nullable: true,
      description:
        "Cron pattern in the server's SCHEDULE_TZ (5 fields, or 6 with seconds first); each fire runs the rule with trigger RULE.",
    }),
    enabled: t.exposeBoolean('enabled', { description: 'A disabled rule keeps its schedule but does not fire; runRule still runs it.' }),
    nextRunAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the schedule fires next; null without a schedule or while disabled.',
      resolve: (r, _args, ctx) => nextRunAt(r, ctx.services.config.SCHEDULE_TZ),
    }),
    lastRunAt: t.field({ type: 'DateTime', nullable: true, description: 'When a run last completed.', resolve: (r) => r.lastRunAt }),
    createdAt: t.field({ type: 'DateTime', resolve: (r) => r.createdAt }),
    updatedAt: t.field({ type: 'DateTime', resolve: (r) => r.updatedAt }),
  }),
});

const RuleConditionInputRef = builder.inputType('RuleConditionInput', {
  description:
    'One condition. `value` is text for every field: numbers ("30", "1048576") and booleans ("true", "false") are parsed per field.',
  fields: (t) => ({
    field: t.field({ type: RuleFieldRef, required: true }),
    op: t.field({ type: RuleOperatorRef, required: false, description: 'Required except for HAS_ATTACHMENTS and IS_READ.' }),
    value: t.string({ required: true }),
  }),
});

const RuleConditionsInputRef = builder.inputType('RuleConditionsInput', {
  fields: (t) => ({
    match: t.field({ type: RuleMatchRef, required: false, defaultValue: 'ALL' }),
    conditions: t.field({ type: [RuleConditionInputRef], required: true, description: 'At least one, at most 100.' }),
  }),
});

const RuleActionInputRef = builder.inputType('RuleActionInput', {
  fields: (t) => ({
    type: t.field({ type: RuleActionTypeRef, required: true }),
    label: t.string({ required: false, description: 'Required for LABEL, refused for the others.' }),
  }),
});

const CreateRuleInputRef = builder.inputType('CreateRuleInput', {
  fields: (t) => ({
    accountId: t.id({ required: true }),
    name: t.string({ required: true }),
    conditions: t.field({ type: RuleConditionsInputRef, required: true }),
    actions: t.field({ type: [RuleActionInputRef], required: true, description: 'At least one, at most 10; applied in order.' }),
    schedule: t.string({ required: false, description: 'Cron pattern (5 fields, or 6 with seconds first) in SCHEDULE_TZ.' }),
    enabled: t.boolean({ required: false, defaultValue: true }),
  }),
});

const UpdateRuleInputRef = builder.inputType('UpdateRuleInput', {
  description: 'Omitted fields keep their value.',
  fields: (t) => ({
    name: t.string({ required: false }),
    conditions: t.field({ type: RuleConditionsInputRef, required: false }),
    actions: t.field({ type: [RuleActionInputRef], required: false }),
    schedule: t.string({ required: false, description: 'A new cron pattern; null removes the schedule.' }),
    enabled: t.boolean({ required: false }),
  }),
});

type ConditionsInput = {
  match?: 'ALL' | 'ANY' | null;
  conditions: { field: RuleFieldName; op?: RuleConditionView['op'] | null; value: string }[];
};

const NUMBER = /^\s*(\d+(\.\d*)?|\.\d+)\s*$/;

/** Turns the GraphQL input into the engine's `RuleConditions` and validates them with it. */
function toRuleConditions(input: ConditionsInput): RuleConditions {
  const conditions = input.conditions.map((c, index): RuleCondition => {
    const problem = (message: string) => new InvalidRuleError(message, index);
    const kind = RULE_FIELDS[c.field].kind;
    if (kind === 'boolean') {
      if (c.op != null && c.op !== 'EQUALS') throw problem(`${c.field} takes no operator (or EQUALS)`);
      const text = c.value.trim().toLowerCase();
      if (text !== 'true' && text !== 'false') throw problem(`value must be "true" or "false" for ${c.field}, got "${c.value}"`);
      return { field: c.field, value: text === 'true' } as RuleCondition;
    }
    if (c.op == null) throw problem(`${c.field} needs an operator`);
    if (kind === 'number') {
      if (!NUMBER.test(c.value)) throw problem(`value must be a non-negative number for ${c.field}, got "${c.value}"`);
      return { field: c.field, op: c.op, value: Number(c.value) } as RuleCondition;
    }
    return { field: c.field, op: c.op, value: c.value } as RuleCondition;
  });
  const rule: RuleConditions = { match: input.match ?? 'ALL', conditions };
  compileRule(rule);
  return rule;
}

/** Runs a validation step, turning the engine's errors into BAD_USER_INPUT with its message. */
function validated<T>(what: string, step: () => T): T {
  try {
    return step();
  } catch (error) {
    if (error instanceof InvalidRuleError) throw new InvalidInputError(`${what}: ${error.message}`);
    throw error;
  }
}

function checkName(name: string): string {
  return parseInput(displayNameSchema, name);
}

/**
 * A scheduled rule's runs are started by the system, outside the enqueue quota, so how many an
 * owner may have is the bound (MAX_SCHEDULED_RULES_PER_OWNER), whoever writes the rule.
 */
async function checkScheduledRuleQuota(ctx: GraphQLContext, ownerId: string, ruleId: string | null): Promise<void> {
  const max = ctx.services.config.MAX_SCHEDULED_RULES_PER_OWNER;
  if (max > 0 && (await countScheduledRules(ctx.em, ownerId, ruleId)) >= max) {
    throw new QuotaExceededError(
      `at most ${max} enabled rules with a schedule per owner (MAX_SCHEDULED_RULES_PER_OWNER); remove or disable one first`,
      60,
    );
  }
}

function checkSchedule(schedule: string, config: Config): string {
  const problem = cronPatternProblem(schedule, config.SCHEDULE_TZ, config.RULE_SCHEDULE_MIN_INTERVAL_SECONDS);
  if (problem) throw new InvalidInputError(problem);
  return schedule.trim();
}

/**
 * Brings the rule's job scheduler in line with its committed row. A Redis failure is not the
 * client's: the row is the record, and the sidecar re-syncs rule schedules periodically.
 */
async function syncSchedule(ctx: GraphQLContext, rule: Pick<Rule, 'id' | 'schedule' | 'enabled'>): Promise<void> {
  try {
    await syncRuleSchedule(ctx.services.queues, ctx.services.config, rule);
  } catch (error) {
    ctx.services.logger.warn({ err: error, ruleId: rule.id }, 'rule schedule not synced; the sidecar will retry');
  }
}

builder.mutationFields((t) => ({
  createRule: t.field({
    type: RuleRef,
    description: 'Saves a rule on one of your accounts; with a schedule, it runs by itself (trigger RULE).',
    args: { input: t.arg({ type: CreateRuleInputRef, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const account = await loadOwnedAccount(ctx.em, String(input.accountId), callerOf(ctx.viewer));
      const name = checkName(input.name);
      const conditions = validated('conditions', () => toRuleConditions(input.conditions as ConditionsInput));
      const actions = validated('actions', () => parseRuleActions(input.actions));
      // The quota first: an owner at it cannot make the server parse patterns for nothing.
      if (input.schedule != null && (input.enabled ?? true)) await checkScheduledRuleQuota(ctx, account.ownerId, null);
      const schedule = input.schedule == null ? null : checkSchedule(input.schedule, ctx.services.config);
      const now = new Date();
      const rule = ctx.em.create(Rule, {
        id: randomUUID(),
        accountId: account.id,
        // A rule belongs with its account, also when an admin writes it.
        ownerId: account.ownerId,
        name,
        conditions: conditions as unknown as Record<string, unknown>,
        actions: actions as unknown as Record<string, unknown>[],
        schedule,
        enabled: input.enabled ?? true,
        lastRunAt: null,
        createdAt: now,
        updatedAt: now,
      });
      await ctx.em.flush();
      if (rule.schedule) await syncSchedule(ctx, rule);
      return rule;
    },
  }),
  updateRule: t.field({
    type: RuleRef,
    args: { id: t.arg.id({ required: true }), input: t.arg({ type: UpdateRuleInputRef, required: true }) },
    resolve: async (_root, { id, input }, ctx) => {
      const rule = await loadOwnedRule(ctx.em, String(id), callerOf(ctx.viewer));
      const before = { schedule: rule.schedule, enabled: rule.enabled };
      if (input.name != null) rule.name = checkName(input.name);
      if (input.conditions != null) {
        const conditions = validated('conditions', () => toRuleConditions(input.conditions as ConditionsInput));
        rule.conditions = conditions as unknown as Record<string, unknown>;
      }
      if (input.actions != null) {
        const actions = validated('actions', () => parseRuleActions(input.actions));
        rule.actions = actions as unknown as Record<string, unknown>[];
      }
      // Omitted keeps the schedule, an explicit null removes it. The quota is checked before the pattern.
      const scheduled = input.schedule === undefined ? Boolean(rule.schedule) : input.schedule !== null;
      const enabled = input.enabled ?? rule.enabled;
      if (scheduled && enabled && !(before.schedule && before.enabled)) await checkScheduledRuleQuota(ctx, rule.ownerId, rule.id);
      if (input.schedule === null) rule.schedule = null;
      else if (input.schedule !== undefined) rule.schedule = checkSchedule(input.schedule, ctx.services.config);
      rule.enabled = enabled;
      rule.updatedAt = new Date();
      await ctx.em.flush();
      if (before.schedule !== rule.schedule || before.enabled !== rule.enabled) await syncSchedule(ctx, rule);
      return rule;
    },
  }),
  deleteRule: t.field({
    type: RuleRef,
    description:
      'Deletes the rule and its schedule; returns it as it was. A run still queued fails with "rule … no longer exists" and changes nothing.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, ctx) => {
      const rule = await loadOwnedRule(ctx.em, String(id), callerOf(ctx.viewer));
      const snapshot = { ...rule };
      await ctx.em.remove(rule).flush();
      if (snapshot.schedule) await syncSchedule(ctx, { id: snapshot.id, schedule: null, enabled: false });
      return snapshot as Rule;
    },
  }),
}));

interface RulePreview {
  accountId: string;
  scanned: number;
  matched: number;
  conditionTests: number;
  partial: boolean;
  sampleIds: string[];
}

/**
 * The condition tests left to the previews of one request: aliases of `previewRule` share them,
 * so one request cannot multiply the work by repeating the field.
 */
const previewBudgets = new WeakMap<GraphQLContext, RuleTestBudget>();

function previewBudget(ctx: GraphQLContext): RuleTestBudget {
  let budget = previewBudgets.get(ctx);
  if (!budget) {
    budget = new RuleTestBudget(ctx.services.config.RULE_PREVIEW_MAX_TESTS);
    previewBudgets.set(ctx, budget);
  }
  return budget;
}

const RulePreviewRef = builder.objectRef<RulePreview>('RulePreview').implement({
  description:
    'What a run would match now, computed without a job. Unless `partial`, `matched` is what runRule reports as `matched`; a partial preview counts the newest messages only.',
  fields: (t) => ({
    accountId: t.exposeID('accountId'),
    scanned: t.exposeInt('scanned', {
      description: 'Messages evaluated (those not in the trash), newest first: at most RULE_PREVIEW_MAX_MESSAGES.',
    }),
    matched: t.exposeInt('matched', { description: 'Matches among the `scanned` messages.' }),
    partial: t.exposeBoolean('partial', {
      description:
        'True when the preview stopped before the oldest messages: at RULE_PREVIEW_MAX_MESSAGES, or when the previews of this request ran RULE_PREVIEW_MAX_TESTS condition tests.',
    }),
    conditionTests: t.exposeInt('conditionTests', {
      description: "Condition tests this preview counted against the request's budget: one per condition, one per recipient for TO.",
    }),
    sample: t.field({
      type: [MessageRef],
      description: 'The first matches, newest first, up to `sampleSize`.',
      resolve: (preview, _args, ctx) => findMessagesInOrder(ctx.em, preview.sampleIds),
    }),
  }),
});

builder.queryFields((t) => ({
  rules: t.field({
    type: [RuleRef],
    description: "Saved rules of one account, or all of yours (an admin's: everyone's) without `accountId`, oldest first.",
    args: { accountId: t.arg.id({ required: false }) },
    resolve: async (_root, { accountId }, ctx) => {
      if (accountId != null) {
        const account = await loadOwnedAccount(ctx.em, String(accountId), callerOf(ctx.viewer));
        return listAccountRules(ctx.em, account.id);
      }
      return listRules(ctx.em, ownerFilter(callerOf(ctx.viewer)));
    },
  }),
  rule: t.field({
    type: RuleRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) =>
      loadOwnedRule(ctx.em, String(id), callerOf(ctx.viewer)).catch((error: unknown) => {
        if (error instanceof NotFoundError) return null;
        throw error;
      }),
  }),
  previewRule: t.field({
    type: RulePreviewRef,
    description:
      'Counts the messages a rule would match, without a job and without changing anything; examines the newest RULE_PREVIEW_MAX_MESSAGES at most (see `partial`). Give `ruleId` for a saved rule, or `accountId` and `conditions` to try conditions before saving them.',
    args: {
      ruleId: t.arg.id({ required: false }),
      accountId: t.arg.id({ required: false }),
      conditions: t.arg({ type: RuleConditionsInputRef, required: false }),
      sampleSize: t.arg.int({ required: false, defaultValue: 10, description: 'Matches returned in `sample`, 0 to 100.' }),
    },
    resolve: async (_root, args, ctx) => {
      const sampleSize = args.sampleSize ?? 10;
      if (!Number.isInteger(sampleSize) || sampleSize < 0 || sampleSize > 100)
        throw new InvalidInputError('sampleSize must be between 0 and 100');
      let accountId: string;
      let matcher: CompiledRule;
      if (args.ruleId != null) {
        if (args.accountId != null || args.conditions != null)
          throw new InvalidInputError('give ruleId, or accountId and conditions, not both');
        const rule = await loadOwnedRule(ctx.em, String(args.ruleId), callerOf(ctx.viewer));
        matcher = validated('rule', () => compileSavedRule(rule)).matcher;
        accountId = rule.accountId;
      } else {
        if (args.accountId == null || args.conditions == null) throw new InvalidInputError('give ruleId, or accountId and conditions');
        const account = await loadOwnedAccount(ctx.em, String(args.accountId), callerOf(ctx.viewer));
        const conditions = validated('conditions', () => toRuleConditions(args.conditions as ConditionsInput));
        matcher = compileRule(conditions);
        accountId = account.id;
      }
      const preview: RulePreview = { accountId, scanned: 0, matched: 0, conditionTests: 0, partial: false, sampleIds: [] };
      const scan = scanRuleMatches(ctx.em, accountId, matcher, new Date(), {
        newestFirst: true,
        maxMessages: ctx.services.config.RULE_PREVIEW_MAX_MESSAGES,
        budget: previewBudget(ctx),
      });
      for await (const batch of scan) {
        preview.scanned += batch.scanned;
        preview.matched += batch.matchedIds.length;
        preview.conditionTests += batch.tests;
        if (batch.stoppedBy !== null) preview.partial = true;
        if (preview.sampleIds.length < sampleSize)
          preview.sampleIds.push(...batch.matchedIds.slice(0, sampleSize - preview.sampleIds.length));
      }
      return preview;
    },
  }),
}));
