import type { EntityManager } from '@mikro-orm/postgresql';
import { isUuid } from '../engine/validation.js';
import { z } from 'zod';
import { mayAccess, type Caller } from '../auth/access.js';
import { RETENTION_ACTIONS, RetentionPolicy } from '../db/entities/retention-policy.entity.js';
import { NotFoundError } from '../engine/errors.js';

/** Most policies one listing returns. */
const MAX_LISTED = 1000;

/** What a retention policy does to the messages it picks; one `RetentionAction` enum for the API and the apply_retention job. */
export const retentionActionSchema = z.enum(RETENTION_ACTIONS).meta({
  id: 'RetentionAction',
  description:
    'TRASH moves to the trash; ARCHIVE marks archived (archiveMails copies messages into archive storage); both leave trashed mail alone. DELETE removes for good, trashed mail included.',
});

/**
 * The policy, if the caller may use it. Someone else's policy looks exactly like a missing one,
 * so ids cannot be probed.
 *
 * @throws NotFoundError when the id is not a UUID, matches nothing, or is not the caller's
 */
export async function loadOwnedPolicy(em: EntityManager, policyId: string, caller: Caller): Promise<RetentionPolicy> {
  const policy = isUuid(policyId) ? await em.findOne(RetentionPolicy, { id: policyId }) : null;
  if (!policy || !mayAccess(caller, policy.ownerId)) throw new NotFoundError('retention policy', policyId);
  return policy;
}

/** The policies of one owner, or of every owner when `ownerId` is null, oldest first (at most 1000). */
export function listRetentionPolicies(em: EntityManager, ownerId: string | null): Promise<RetentionPolicy[]> {
  return em.find(RetentionPolicy, ownerId === null ? {} : { ownerId }, { orderBy: { createdAt: 'asc', id: 'asc' }, limit: MAX_LISTED });
}

/**
 * The policies that apply to an account: its own and its owner's policies for every account,
 * oldest first (at most 1000). Access to the account is the caller's to check.
 */
export function listAccountRetentionPolicies(em: EntityManager, account: { id: string; ownerId: string }): Promise<RetentionPolicy[]> {
  return em.find(
    RetentionPolicy,
    { ownerId: account.ownerId, $or: [{ accountId: account.id }, { accountId: null }] },
    { orderBy: { createdAt: 'asc', id: 'asc' }, limit: MAX_LISTED },
  );
}

/** The enabled policies of one owner, or of every owner when `ownerId` is null, in the order they are applied (oldest first). */
export function enabledRetentionPolicies(em: EntityManager, ownerId: string | null): Promise<RetentionPolicy[]> {
  return em.find(RetentionPolicy, ownerId === null ? { enabled: true } : { enabled: true, ownerId }, {
    orderBy: { createdAt: 'asc', id: 'asc' },
  });
}
