import { z } from 'zod';
import { applyMessageAction } from '../mail/message-actions.js';
import { InvalidRuleError } from '../mail/rules/invalid-rule-error.js';
import { messageActionOf } from '../mail/rules/rule-actions.js';
import { compileSavedRule, loadOwnedRule, markRuleRun } from '../mail/rules/rule-store.js';
import { countRuleCandidates, scanRuleMatches } from '../mail/rules/scan-rule.js';
import { defineJob } from '../engine/define-job.js';
import { PermanentJobError } from '../engine/errors.js';
import { loadJobAccount, loadJobRule } from './job-subjects.js';
import { RUN_RULE_TYPE } from './rule-schedules.js';

const runRuleInputSchema = z.object({ ruleId: z.guid().describe('The saved rule to run.') }).meta({ id: 'RunRuleInput' });

export const runRuleJob = defineJob({
  name: RUN_RULE_TYPE,
  description:
    "Evaluates a saved rule over its account's messages (not those in the trash), in batches, and applies the rule's actions to each match. A rule with a cron schedule also runs by itself, with trigger RULE.",
  graphql: { mutation: 'runRule', typeName: 'RunRuleJob' },
  unit: 'messages',
  args: z.object({ ruleId: z.guid().describe('The saved rule to run; a disabled rule runs too when asked for by hand.') }),
  input: runRuleInputSchema,
  output: z
    .object({
      ruleId: z.guid(),
      scanned: z.number().int().describe('Messages evaluated.'),
      matched: z.number().int().describe('Messages the conditions matched; previewRule counts the same.'),
      affected: z.number().int().describe('Matched messages at least one action changed (already-matching ones are not counted).'),
    })
    .meta({ id: 'RunRuleOutput' }),
  async prepare({ ruleId }, ctx) {
    const rule = await loadOwnedRule(ctx.em, ruleId, ctx);
    return { input: { ruleId: rule.id }, accountId: rule.accountId };
  },
  async handler(input, ctx) {
    const summary = { ruleId: input.ruleId, scanned: 0, matched: 0, affected: 0 };
    const rule = await loadJobRule(ctx.em, input.ruleId);
    // A tick queued just before the rule was disabled does nothing; a run asked for by hand still runs.
    if (ctx.trigger === 'RULE' && !rule.enabled) {
      ctx.progress({ processed: 0, total: 0, message: 'the rule is disabled; nothing done' });
      ctx.log.info('the rule is disabled; nothing done', { ruleId: rule.id });
      return summary;
    }
    let compiled: ReturnType<typeof compileSavedRule>;
    try {
      compiled = compileSavedRule(rule);
    } catch (error) {
      if (error instanceof InvalidRuleError) throw new PermanentJobError(`rule ${rule.id} is invalid: ${error.message}`);
      throw error;
    }
    await loadJobAccount(ctx.em, rule.accountId);

    const total = await countRuleCandidates(ctx.em, rule.accountId);
    ctx.progress({ processed: 0, total, message: `running rule "${rule.name}"` });
    // One instant for the whole run, so AGE_DAYS means the same in the first and the last batch.
    const now = new Date();
    const steps = compiled.actions.map(messageActionOf);
    const applied = steps.map((step) => ({ ...step, changed: 0 }));
    ctx.log.info(`running the rule over ${total} messages`, { ruleId: rule.id, total, actions: steps });

    // The scan pauses for the event loop as it works, so the lock is renewed and a cancellation is
    // heard; checking at each pause ends a cancelled run before the batch's actions.
    for await (const batch of scanRuleMatches(ctx.em, rule.accountId, compiled.matcher, now, { onPause: () => ctx.checkpoint() })) {
      // Between reading a batch and changing it: a cancelled run leaves whole batches done.
      ctx.checkpoint();
      summary.scanned += batch.scanned;
      summary.matched += batch.matchedIds.length;
      const changed = new Set<string>();
      for (const step of applied) {
        const ids = await applyMessageAction(ctx.em, ctx.storage, rule.accountId, batch.matchedIds, step.action, step.label);
        step.changed += ids.length;
        for (const id of ids) changed.add(id);
      }
      summary.affected += changed.size;
      // Messages stored during the run may be walked too, so the total only grows.
      ctx.progress({ processed: summary.scanned, total: Math.max(total, summary.scanned), message: `running rule "${rule.name}"` });
    }
    await markRuleRun(ctx.em, rule.id);
    ctx.progress({
      processed: summary.scanned,
      total: summary.scanned,
      message: `${summary.matched} matched, ${summary.affected} changed`,
    });
    ctx.log.info(`matched ${summary.matched} of ${summary.scanned} messages; ${summary.affected} changed`, {
      scanned: summary.scanned,
      matched: summary.matched,
      affected: summary.affected,
      actions: applied,
    });
    return summary;
  },
});
