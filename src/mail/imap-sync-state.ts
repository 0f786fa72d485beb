import type { EntityManager } from '@mikro-orm/postgresql';

/**
 * Forgets how far earlier IMAP imports of the account got (`imap_sync_state`, every mailbox), so
 * the next import checks whole mailboxes again. Needed when the account points at another server
 * or user: the stored UIDs and UIDVALIDITY say nothing about that one's mailboxes.
 */
export async function forgetImapSyncState(em: EntityManager, accountId: string): Promise<void> {
  await em.getConnection().execute('DELETE FROM imap_sync_state WHERE account_id = ?', [accountId], 'run');
}
