import type { EntityManager } from '@mikro-orm/postgresql';
import { z } from 'zod';
import { Account } from '../db/entities/account.entity.js';
import { NotFoundError } from './errors.js';

/**
 * The account, if the caller may use it. Someone else's account looks exactly like a missing one,
 * so ids cannot be probed.
 */
export async function loadOwnedAccount(
  em: EntityManager,
  accountId: string,
  caller: { ownerId: string; isAdmin: boolean },
): Promise<Account> {
  const account = z.uuid().safeParse(accountId).success ? await em.findOne(Account, { id: accountId }) : null;
  if (!account || (!caller.isAdmin && account.ownerId !== caller.ownerId)) throw new NotFoundError('account', accountId);
  return account;
}

/** A GraphQL `File` upload argument; the schema builder maps the `graphqlType` marker. */
export const uploadSchema = z
  .custom<File>((value) => typeof value === 'object' && value !== null && typeof (value as File).stream === 'function', {
    message: 'expected an uploaded file',
  })
  .meta({ graphqlType: 'File' });
