import { z } from 'zod';
import { RETENTION_ACTIONS, type RetentionAction, type RetentionPolicy } from '../db/entities/retention-policy.entity.js';
import { applyMessageAction } from '../mail/message-actions.js';
import { enabledRetentionPolicies, loadOwnedPolicy, retentionActionSchema } from '../mail/retention-store.js';
import { defineJob, MAINTENANCE_OPTIONS } from '../engine/define-job.js';
import { ForbiddenError, InvalidInputError } from '../engine/errors.js';
import { loadJobPolicy } from './job-subjects.js';

const BATCH_SIZE = 500;
const DAY_MS = 86_400_000;

const applyRetentionInputSchema = z
  .object({
    policyId: z.guid().optional().describe('Run only this policy (even when disabled).'),
    allOwners: z.boolean().optional().describe("Admins only: every owner's enabled policies, as the daily schedule does."),
  })
  .meta({ id: 'ApplyRetentionInput' });

/**
 * Which messages a policy picks, as a WHERE clause over `message`: those of its account (or of all
 * its owner's accounts) older than the cutoff, by `date`, or by when they were stored when
 * undated. Trashed messages are left alone except by DELETE.
 */
function policyScope(policy: RetentionPolicy, cutoff: Date): { sql: string; params: unknown[] } {
  const clauses = policy.accountId
    ? ['account_id = ?', 'account_id IN (SELECT id FROM account WHERE owner_id = ?)']
    : ['account_id IN (SELECT id FROM account WHERE owner_id = ?)'];
  const params: unknown[] = policy.accountId ? [policy.accountId, policy.ownerId] : [policy.ownerId];
  clauses.push('COALESCE(date, created_at) < ?');
  params.push(cutoff);
  if (policy.action !== 'DELETE') clauses.push('deleted_at IS NULL');
  return { sql: clauses.join(' AND '), params };
}

const policyResultSchema = z
  .object({
    policyId: z.guid(),
    name: z.string(),
    action: retentionActionSchema,
    cutoff: z.string().describe('Messages dated before this instant were picked (ISO 8601).'),
    matched: z.number().int(),
    affected: z.number().int(),
  })
  .meta({ id: 'RetentionPolicyResult' });

export const applyRetentionJob = defineJob({
  name: 'apply_retention',
  description:
    "Applies retention policies: messages older than a policy's `olderThanDays` (by date, or by when they were stored when undated) are trashed, marked archived or deleted. Without arguments it runs the caller's enabled policies; scheduled daily at 03:00 for every owner's.",
  graphql: { mutation: 'applyRetention', typeName: 'ApplyRetentionJob' },
  unit: 'messages',
  args: applyRetentionInputSchema,
  input: applyRetentionInputSchema,
  output: z
    .object({
      policies: z.number().int().describe('Policies applied.'),
      matched: z.number().int().describe('Messages the policies picked (a message picked by two policies counts twice).'),
      affected: z.number().int().describe('Messages changed or deleted.'),
      results: z.array(policyResultSchema).describe('One entry per policy, in the order applied.'),
    })
    .meta({ id: 'ApplyRetentionOutput' }),
  options: MAINTENANCE_OPTIONS,
  schedules: [{ id: 'apply-retention-daily', cron: '0 3 * * *', input: { allOwners: true }, overlap: 'SKIP_IF_RUNNING' }],
  async prepare(args, ctx) {
    if (args.allOwners && !ctx.isAdmin) throw new ForbiddenError('applyRetention with allOwners needs the admin role');
    if (args.policyId) {
      if (args.allOwners) throw new InvalidInputError('give policyId or allOwners, not both');
      const policy = await loadOwnedPolicy(ctx.em, args.policyId, ctx);
      return { input: { policyId: policy.id }, accountId: policy.accountId };
    }
    return { input: args.allOwners ? { allOwners: true } : {}, accountId: null };
  },
  async handler(input, ctx) {
    const policies = input.policyId
      ? [await loadJobPolicy(ctx.em, input.policyId)]
      : await enabledRetentionPolicies(ctx.em, input.allOwners ? null : ctx.ownerId);
    const connection = ctx.em.getConnection();
    const now = Date.now();
    const plans = await Promise.all(
      policies.map(async (policy) => {
        const cutoff = new Date(now - policy.olderThanDays * DAY_MS);
        const scope = policyScope(policy, cutoff);
        const [{ count }] = (await connection.execute(
          `SELECT count(*)::int AS count FROM message WHERE ${scope.sql}`,
          scope.params,
          'all',
        )) as [{ count: number }];
        return { policy, cutoff, scope, count };
      }),
    );
    const total = plans.reduce((sum, plan) => sum + plan.count, 0);
    ctx.progress({
      processed: 0,
      total,
      message: `applying ${policies.length} retention ${policies.length === 1 ? 'policy' : 'policies'}`,
    });
    ctx.log.info(`applying ${policies.length} retention ${policies.length === 1 ? 'policy' : 'policies'} to ${total} messages`, {
      policies: policies.length,
      total,
    });

    const summary = { policies: policies.length, matched: 0, affected: 0, results: [] as z.infer<typeof policyResultSchema>[] };
    let processed = 0;
    for (const { policy, cutoff, scope } of plans) {
      if (!(RETENTION_ACTIONS as readonly string[]).includes(policy.action)) {
        ctx.log.warn(`policy ${policy.id} skipped: unknown action ${policy.action}`, { policyId: policy.id, action: policy.action });
        continue;
      }
      const result = {
        policyId: policy.id,
        name: policy.name,
        action: policy.action as RetentionAction,
        cutoff: cutoff.toISOString(),
        matched: 0,
        affected: 0,
      };
      let after: string | null = null;
      for (;;) {
        ctx.checkpoint();
        const rows: { id: string; account_id: string }[] = await connection.execute(
          `SELECT id, account_id FROM message WHERE ${scope.sql}${after ? ' AND id > ?::uuid' : ''} ORDER BY id LIMIT ?`,
          [...scope.params, ...(after ? [after] : []), BATCH_SIZE],
          'all',
        );
        if (rows.length === 0) break;
        after = rows[rows.length - 1]!.id;
        const byAccount = new Map<string, string[]>();
        for (const row of rows) byAccount.set(row.account_id, [...(byAccount.get(row.account_id) ?? []), row.id]);
        for (const [accountId, ids] of byAccount) {
          result.affected += (await applyMessageAction(ctx.em, ctx.storage, accountId, ids, policy.action)).length;
        }
        result.matched += rows.length;
        processed += rows.length;
        ctx.progress({ processed, total: Math.max(total, processed), message: `policy "${policy.name}": ${policy.action.toLowerCase()}` });
        if (rows.length < BATCH_SIZE) break;
      }
      summary.matched += result.matched;
      summary.affected += result.affected;
      summary.results.push(result);
    }
    ctx.progress({ processed, total: processed, message: `${summary.matched} matched, ${summary.affected} changed` });
    ctx.log.info(`${summary.matched} messages matched, ${summary.affected} changed`, {
      policies: summary.results.length,
      matched: summary.matched,
      affected: summary.affected,
    });
    return summary;
  },
});
