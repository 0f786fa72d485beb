import { callerOf } from '../../auth/access.js';
import { decodeKey } from '../../config/env.js';
import { loadOwnedAccount } from '../../jobs/access.js';
import { InvalidInputError } from '../../engine/errors.js';
import { parseInput } from '../../engine/validation.js';
import { forgetImapSyncState } from '../../mail/imap-sync-state.js';
import { sealString } from '../../storage/encryption.js';
import { builder } from '../builder.js';
import { AccountRef, checkImapHost, imapSettingsSchema } from './account.js';

builder.mutationField('updateAccountImap', (t) =>
  t.field({
    type: AccountRef,
    description:
      "Sets or replaces an account's IMAP settings (the password is stored encrypted and never returned); `imap: null` removes " +
      'them. Changing the host, port or user forgets what earlier imports fetched, so the next `importImap` checks the whole ' +
      'mailbox again (messages already held are skipped).',
    args: {
      id: t.arg.id({ required: true }),
      // account.ts does not export its ref for this input type; the name resolves to the same type.
      imap: t.arg({ type: 'ImapSettingsInput' as never, required: false }),
    },
    resolve: async (_root, { id, imap }, ctx) => {
      const account = await loadOwnedAccount(ctx.em, String(id), callerOf(ctx.viewer));
      let next: { host: string; port: number; secure: boolean; user: string; sealed: string } | null = null;
      if (imap !== null && imap !== undefined) {
        const settings = parseInput(imapSettingsSchema, imap, 'imap');
        const key = ctx.services.config.ARCHIVE_KEY ? decodeKey(ctx.services.config.ARCHIVE_KEY) : null;
        if (!key) throw new InvalidInputError('IMAP passwords are stored encrypted, and the server has no ARCHIVE_KEY configured');
        const { password, ...rest } = settings;
        // Refused before anything changes: the account keeps its old settings.
        next = { ...rest, host: await checkImapHost(rest.host, ctx.services.config), sealed: sealString(key, password) };
      }

      // Another server or mailbox owner: its UIDs and UIDVALIDITY say nothing about what was imported.
      const sameMailboxes =
        next !== null && next.host === account.imapHost && next.port === account.imapPort && next.user === account.imapUser;
      account.imapHost = next?.host ?? null;
      account.imapPort = next?.port ?? null;
      account.imapSecure = next?.secure ?? true;
      account.imapUser = next?.user ?? null;
      account.imapPasswordSealed = next?.sealed ?? null;
      // Forget first: should the save then fail, the next import only re-checks messages it already holds.
      if (!sameMailboxes) await forgetImapSyncState(ctx.em, account.id);
      await ctx.em.flush();
      return account;
    },
  }),
);
