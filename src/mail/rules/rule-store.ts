import type { EntityManager } from '@mikro-orm/postgresql';
import { isUuid } from '../../engine/validation.js';
import { mayAccess, type Caller } from '../../auth/access.js';
import { Rule } from '../../db/entities/rule.entity.js';
import { NotFoundError } from '../../engine/errors.js';
import { compileRule, type CompiledRule } from './compile-rule.js';
import { parseRuleActions, type RuleAction } from './rule-actions.js';
import type { RuleConditions } from './rule-conditions.js';

/** Most rules one listing returns. */
const MAX_LISTED = 1000;

/**
 * The rule, if the caller may use it. Someone else's rule looks exactly like a missing one, so
 * ids cannot be probed.
 *
 * @throws NotFoundError when the id is not a UUID, matches nothing, or is not the caller's
 */
export async function loadOwnedRule(em: EntityManager, ruleId: string, caller: Caller): Promise<Rule> {
  const rule = isUuid(ruleId) ? await em.findOne(Rule, { id: ruleId }) : null;
  if (!rule || !mayAccess(caller, rule.ownerId)) throw new NotFoundError('rule', ruleId);
  return rule;
}

/**
 * A saved rule's conditions and actions, checked again: the row may hold a shape an older version wrote.
 *
 * @throws InvalidRuleError when the stored conditions or actions are no longer valid
 */
export function compileSavedRule(rule: Pick<Rule, 'conditions' | 'actions'>): { matcher: CompiledRule; actions: RuleAction[] } {
  return { matcher: compileRule(rule.conditions as unknown as RuleConditions), actions: parseRuleActions(rule.actions) };
}

/** The rules of one account, oldest first (at most 1000). Access to the account is the caller's to check. */
export function listAccountRules(em: EntityManager, accountId: string): Promise<Rule[]> {
  return em.find(Rule, { accountId }, { orderBy: { createdAt: 'asc', id: 'asc' }, limit: MAX_LISTED });
}

/** The rules of one owner, or of every owner when `ownerId` is null, oldest first (at most 1000). */
export function listRules(em: EntityManager, ownerId: string | null): Promise<Rule[]> {
  return em.find(Rule, ownerId === null ? {} : { ownerId }, { orderBy: { createdAt: 'asc', id: 'asc' }, limit: MAX_LISTED });
}

/** Records that a run of the rule completed now. */
export async function markRuleRun(em: EntityManager, ruleId: string): Promise<void> {
  await em.getConnection().execute('UPDATE rule SET last_run_at = now() WHERE id = ?', [ruleId], 'run');
}

/** The owner's enabled rules that have a schedule, apart from `exceptRuleId`. */
export async function countScheduledRules(em: EntityManager, ownerId: string, exceptRuleId: string | null): Promise<number> {
  const rows: { count: string }[] = await em
    .getConnection()
    .execute(
      'SELECT count(*) AS count FROM rule WHERE owner_id = ? AND enabled AND schedule IS NOT NULL AND id IS DISTINCT FROM ?',
      [ownerId, exceptRuleId],
      'all',
    );
  return Number(rows[0]?.count ?? 0);
}
