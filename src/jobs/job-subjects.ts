import type { EntityManager } from '@mikro-orm/postgresql';
import { Account } from '../db/entities/account.entity.js';
import { RetentionPolicy } from '../db/entities/retention-policy.entity.js';
import { Rule } from '../db/entities/rule.entity.js';
import { PermanentJobError } from '../engine/errors.js';

/**
 * Loads what a handler works on (an account, a rule, a policy) by id alone.
 *
 * Access is not checked again: `prepare` decided it when the job was enqueued (an admin may act on
 * anyone's account), and the handler has exactly that access — a second check here could only
 * disagree with the first.
 *
 * Only a row that is really gone is permanent (`PermanentJobError`, no retry). Any other failure
 * (connection lost, timeout, pool exhausted) propagates unchanged, so BullMQ retries the attempt.
 */
async function loadJobSubject<T extends object>(
  em: EntityManager,
  entity: new (...args: never[]) => T,
  what: string,
  id: string,
): Promise<T> {
  // No try/catch on purpose: mapping a database error to "gone" would fail a job for good on a blip.
  const row = await em.findOne(entity, { id } as never);
  if (!row) throw new PermanentJobError(`${what} ${id} no longer exists`);
  return row as T;
}

/** The job's account; `account <id> no longer exists` (permanent) only when the row is gone. */
export function loadJobAccount(em: EntityManager, accountId: string): Promise<Account> {
  return loadJobSubject(em, Account, 'account', accountId);
}

/** The job's rule; `rule <id> no longer exists` (permanent) only when the row is gone. */
export function loadJobRule(em: EntityManager, ruleId: string): Promise<Rule> {
  return loadJobSubject(em, Rule, 'rule', ruleId);
}

/** The job's retention policy; `retention policy <id> no longer exists` (permanent) only when the row is gone. */
export function loadJobPolicy(em: EntityManager, policyId: string): Promise<RetentionPolicy> {
  return loadJobSubject(em, RetentionPolicy, 'retention policy', policyId);
}
