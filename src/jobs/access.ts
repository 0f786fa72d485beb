import type { EntityManager } from '@mikro-orm/postgresql';
import { z } from 'zod';
import { mayAccess, type Caller } from '../auth/access.js';
import { Account } from '../db/entities/account.entity.js';
import { NotFoundError } from '../engine/errors.js';

/**
 * The account, if the caller may use it. Someone else's account looks exactly like a missing one,
 * so ids cannot be probed.
 */
export async function loadOwnedAccount(em: EntityManager, accountId: string, caller: Caller): Promise<Account> {
  const account = z.uuid().safeParse(accountId).success ? await em.findOne(Account, { id: accountId }) : null;
  if (!account || !mayAccess(caller, account.ownerId)) throw new NotFoundError('account', accountId);
  return account;
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
