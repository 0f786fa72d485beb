import type { EntityManager } from '@mikro-orm/postgresql';
import { isUuid } from '../engine/validation.js';
import { z } from 'zod';
import { mayAccess, type Caller } from '../auth/access.js';
import { Account } from '../db/entities/account.entity.js';
import { NotFoundError } from '../engine/errors.js';

/**
 * The account, if the caller may use it. Someone else's account looks exactly like a missing one,
 * so ids cannot be probed.
 */
export async function loadOwnedAccount(em: EntityManager, accountId: string, caller: Caller): Promise<Account> {
  const account = isUuid(accountId) ? await em.findOne(Account, { id: accountId }) : null;
  if (!account || !mayAccess(caller, account.ownerId)) throw new NotFoundError('account', accountId);
  return account;
}

/**
 * What `prepare` needs of an account: that the caller may use it, and whose it is. One plain
 * SELECT, without loading a managed entity, since enqueueing is a hot path and changes no account.
 */
export async function checkAccountAccess(em: EntityManager, accountId: string, caller: Caller): Promise<{ id: string; ownerId: string }> {
  const rows: { id: string; owner_id: string }[] = isUuid(accountId)
    ? await em.getConnection().execute('SELECT id, owner_id FROM account WHERE id = ?', [accountId.toLowerCase()], 'all')
    : [];
  const account = rows[0];
  if (!account || !mayAccess(caller, account.owner_id)) throw new NotFoundError('account', accountId);
  return { id: account.id, ownerId: account.owner_id };
}

/**
 * The account a job is enqueued on, checked for form only: the job row's INSERT checks, in the
 * same statement, that the account exists and the caller may use it (see `insertJob`), and refuses
 * it as missing otherwise. For a `prepare` that writes nothing before the insert; one that does
 * (an upload) checks first with `checkAccountAccess`.
 */
export function accountOfNewJob(accountId: string): string {
  if (!isUuid(accountId)) throw new NotFoundError('account', accountId);
  return accountId.toLowerCase();
}

/** The accounts of one owner, or of every owner when `ownerId` is null, oldest first (at most 1000). */
export function listAccounts(em: EntityManager, ownerId: string | null): Promise<Account[]> {
  return em.find(Account, ownerId === null ? {} : { ownerId }, { orderBy: { createdAt: 'asc', id: 'asc' }, limit: 1000 });
}

/** A GraphQL `File` upload argument; the schema builder maps the `graphqlType` marker. */
export const uploadSchema = z
  .custom<File>((value) => typeof value === 'object' && value !== null && typeof (value as File).stream === 'function', {
    message: 'expected an uploaded file',
  })
  .meta({ graphqlType: 'File' });
