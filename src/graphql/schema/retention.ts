import { z } from 'zod';
import { randomUUID } from 'node:crypto';
import { callerOf, ownerFilter } from '../../auth/access.js';
import { RetentionPolicy, type RetentionAction } from '../../db/entities/retention-policy.entity.js';
import { loadOwnedAccount } from '../../jobs/access.js';
import { InvalidInputError } from '../../engine/errors.js';
import { QuotaExceededError } from '../../engine/owner-quotas.js';
import { displayNameSchema, parseInput } from '../../engine/validation.js';
import { listAccountRetentionPolicies, listRetentionPolicies, loadOwnedPolicy, retentionActionSchema } from '../../mail/retention-store.js';
import { builder } from '../builder.js';
import { fieldType } from '../zod-to-graphql.js';

/** Oldest age a policy may name: a hundred years. */
const MAX_DAYS = 36_500;

// The same enum the apply_retention job's output uses, built once from its zod schema.
const RetentionActionRef = fieldType(retentionActionSchema, 'output', 'RetentionAction').type as never;

export const RetentionPolicyRef = builder.objectRef<RetentionPolicy>('RetentionPolicy').implement({
  description:
    'Messages older than `olderThanDays` (by their date, or by when they were stored when undated) get `action` each time applyRetention runs; the daily 03:00 run applies every enabled policy.',
  fields: (t) => ({
    id: t.exposeID('id'),
    ownerId: t.exposeString('ownerId'),
    accountId: t.exposeID('accountId', { nullable: true, description: 'The account it applies to; null: every account of its owner.' }),
    name: t.exposeString('name'),
    olderThanDays: t.exposeInt('olderThanDays'),
    action: t.field({ type: RetentionActionRef, resolve: (p) => p.action as never }),
    enabled: t.exposeBoolean('enabled'),
    createdAt: t.field({ type: 'DateTime', resolve: (p) => p.createdAt }),
    updatedAt: t.field({ type: 'DateTime', resolve: (p) => p.updatedAt }),
  }),
});

const CreateRetentionPolicyInputRef = builder.inputType('CreateRetentionPolicyInput', {
  fields: (t) => ({
    accountId: t.id({ required: false, description: 'Omit for every account of yours.' }),
    name: t.string({ required: true }),
    olderThanDays: t.int({ required: true, description: `1 to ${MAX_DAYS}.` }),
    action: t.field({ type: RetentionActionRef, required: true }),
    enabled: t.boolean({ required: false, defaultValue: true }),
  }),
});

const UpdateRetentionPolicyInputRef = builder.inputType('UpdateRetentionPolicyInput', {
  description: 'Omitted fields keep their value.',
  fields: (t) => ({
    accountId: t.id({ required: false, description: 'Another account of yours; null: every account of yours.' }),
    name: t.string({ required: false }),
    olderThanDays: t.int({ required: false }),
    action: t.field({ type: RetentionActionRef, required: false }),
    enabled: t.boolean({ required: false }),
  }),
});

function checkName(name: string): string {
  return parseInput(displayNameSchema, name);
}

const DAYS_MESSAGE = `olderThanDays must be an integer from 1 to ${MAX_DAYS}`;
const olderThanDaysSchema = z.number().int(DAYS_MESSAGE).min(1, DAYS_MESSAGE).max(MAX_DAYS, DAYS_MESSAGE);

function checkDays(days: number): number {
  return parseInput(olderThanDaysSchema, days);
}

builder.mutationFields((t) => ({
  createRetentionPolicy: t.field({
    type: RetentionPolicyRef,
    args: { input: t.arg({ type: CreateRetentionPolicyInputRef, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const name = checkName(input.name);
      const olderThanDays = checkDays(input.olderThanDays);
      // A policy on an account belongs with the account, also when an admin writes it.
      const account = input.accountId != null ? await loadOwnedAccount(ctx.em, String(input.accountId), callerOf(ctx.viewer)) : null;
      const ownerId = account?.ownerId ?? ctx.viewer.id;
      // The daily retention job applies every enabled policy of every owner: their number is its bound.
      const max = ctx.services.config.MAX_RETENTION_POLICIES_PER_OWNER;
      if (max > 0 && (await ctx.em.count(RetentionPolicy, { ownerId })) >= max) {
        throw new QuotaExceededError(
          `at most ${max} retention policies per owner (MAX_RETENTION_POLICIES_PER_OWNER); delete one first`,
          60,
        );
      }
      const now = new Date();
      const policy = ctx.em.create(RetentionPolicy, {
        id: randomUUID(),
        ownerId,
        accountId: account?.id ?? null,
        name,
        olderThanDays,
        action: input.action as RetentionAction,
        enabled: input.enabled ?? true,
        createdAt: now,
        updatedAt: now,
      });
      await ctx.em.flush();
      return policy;
    },
  }),
  updateRetentionPolicy: t.field({
    type: RetentionPolicyRef,
    args: { id: t.arg.id({ required: true }), input: t.arg({ type: UpdateRetentionPolicyInputRef, required: true }) },
    resolve: async (_root, { id, input }, ctx) => {
      const policy = await loadOwnedPolicy(ctx.em, String(id), callerOf(ctx.viewer));
      if (input.name != null) policy.name = checkName(input.name);
      if (input.olderThanDays != null) policy.olderThanDays = checkDays(input.olderThanDays);
      if (input.action != null) policy.action = input.action as RetentionAction;
      if (input.enabled != null) policy.enabled = input.enabled;
      if (input.accountId === null) {
        policy.accountId = null;
      } else if (input.accountId !== undefined) {
        const account = await loadOwnedAccount(ctx.em, String(input.accountId), callerOf(ctx.viewer));
        if (account.ownerId !== policy.ownerId)
          throw new InvalidInputError("a policy can only move to another account of the policy's owner");
        policy.accountId = account.id;
      }
      policy.updatedAt = new Date();
      await ctx.em.flush();
      return policy;
    },
  }),
  deleteRetentionPolicy: t.field({
    type: RetentionPolicyRef,
    description: 'Deletes the policy; returns it as it was.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, ctx) => {
      const policy = await loadOwnedPolicy(ctx.em, String(id), callerOf(ctx.viewer));
      const snapshot = { ...policy } as RetentionPolicy;
      await ctx.em.remove(policy).flush();
      return snapshot;
    },
  }),
}));

builder.queryField('retentionPolicies', (t) =>
  t.field({
    type: [RetentionPolicyRef],
    description:
      "Your retention policies (an admin's: everyone's), oldest first. With `accountId`: the policies that apply to that account, its own and those for every account.",
    args: { accountId: t.arg.id({ required: false }) },
    resolve: async (_root, { accountId }, ctx) => {
      if (accountId != null) {
        const account = await loadOwnedAccount(ctx.em, String(accountId), callerOf(ctx.viewer));
        return listAccountRetentionPolicies(ctx.em, account);
      }
      return listRetentionPolicies(ctx.em, ownerFilter(callerOf(ctx.viewer)));
    },
  }),
);
