import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { callerOf, ownerFilter } from '../../auth/access.js';
import { decodeKey, type Config } from '../../config/env.js';
import { Account } from '../../db/entities/account.entity.js';
import { listAccounts, loadOwnedAccount } from '../../jobs/access.js';
import { NotFoundError } from '../../engine/errors.js';
import { parseInput } from '../../engine/validation.js';
import { ImapHostRefusedError, imapHostPolicy } from '../../mail/imap-host-policy.js';
import { sealString } from '../../storage/encryption.js';
import { builder } from '../builder.js';
import { graphqlError } from '../errors.js';
import { SECRET_INPUT } from '../secret-inputs.js';

const ImapSettingsRef = builder.objectRef<Account>('ImapSettings').implement({
  description: 'IMAP connection settings; the password is never returned.',
  fields: (t) => ({
    host: t.string({ resolve: (a) => a.imapHost! }),
    port: t.int({ resolve: (a) => a.imapPort! }),
    secure: t.exposeBoolean('imapSecure'),
    user: t.string({ resolve: (a) => a.imapUser! }),
    hasPassword: t.boolean({ resolve: (a) => a.imapPasswordSealed !== null }),
  }),
});

export const AccountRef = builder.objectRef<Account>('Account').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    email: t.exposeString('email', { nullable: true }),
    ownerId: t.exposeString('ownerId'),
    imap: t.field({ type: ImapSettingsRef, nullable: true, resolve: (a) => (a.imapHost ? a : null) }),
    createdAt: t.field({ type: 'DateTime', resolve: (a) => a.createdAt }),
  }),
});

const ImapSettingsInputRef = builder.inputType('ImapSettingsInput', {
  fields: (t) => ({
    host: t.string({ required: true }),
    port: t.int({ required: false, defaultValue: 993 }),
    secure: t.boolean({ required: false, defaultValue: true, description: 'TLS from the first byte (port 993).' }),
    user: t.string({ required: true }),
    password: t.string({ required: true, extensions: SECRET_INPUT, description: 'Stored encrypted with ARCHIVE_KEY; never returned.' }),
  }),
});

/** What `ImapSettingsInput` must hold, for createAccount and updateAccountImap alike. */
export const imapSettingsSchema = z.object({
  // 253 is what DNS can carry; the host policy checks the syntax and the address itself.
  host: z.string().trim().min(1, 'must not be empty').max(253, 'must be at most 253 characters'),
  port: z.number().int().min(1, 'must be 1 to 65535').max(65535, 'must be 1 to 65535'),
  secure: z.boolean(),
  user: z
    .string()
    .min(1, 'must not be empty')
    .max(320)
    .refine((user) => !user.includes('\0'), 'must not contain NUL'),
  password: z.string().min(1, 'must not be empty').max(1024),
});

/**
 * Refuses an IMAP host the worker would not connect to (a literal loopback, private, link-local,
 * unique-local or unspecified address in any spelling, or `localhost`), unless IMAP_ALLOWED_HOSTS
 * allows it: BAD_USER_INPUT, before anything is stored. Names are checked again, resolved, when
 * the import connects.
 *
 * @returns the host as it is stored
 */
export async function checkImapHost(host: string, config: Pick<Config, 'IMAP_ALLOWED_HOSTS'>): Promise<string> {
  try {
    return await imapHostPolicy(config.IMAP_ALLOWED_HOSTS).checkHost(host);
  } catch (error) {
    if (error instanceof ImapHostRefusedError) throw graphqlError('BAD_USER_INPUT', `imap.host: ${error.reason}`);
    throw error;
  }
}

const createAccountInput = z.object({
  name: z.string().trim().min(1, 'name must not be empty').max(255),
  email: z.email().max(320).nullish(),
  imap: imapSettingsSchema.nullish(),
});

const CreateAccountInputRef = builder.inputType('CreateAccountInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    email: t.string({ required: false }),
    imap: t.field({ type: ImapSettingsInputRef, required: false }),
  }),
});

builder.mutationField('createAccount', (t) =>
  t.field({
    type: AccountRef,
    args: { input: t.arg({ type: CreateAccountInputRef, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const { name, email, imap } = parseInput(createAccountInput, input);
      let sealed: string | null = null;
      if (imap) {
        imap.host = await checkImapHost(imap.host, ctx.services.config);
        const key = ctx.services.config.ARCHIVE_KEY ? decodeKey(ctx.services.config.ARCHIVE_KEY) : null;
        if (!key) throw graphqlError('BAD_USER_INPUT', 'IMAP passwords are stored encrypted, and the server has no ARCHIVE_KEY configured');
        sealed = sealString(key, imap.password);
      }
      const account = ctx.em.create(Account, {
        id: randomUUID(),
        ownerId: ctx.viewer.id,
        name,
        email: email ?? null,
        imapHost: imap?.host ?? null,
        imapPort: imap?.port ?? null,
        imapSecure: imap?.secure ?? true,
        imapUser: imap?.user ?? null,
        imapPasswordSealed: sealed,
        createdAt: new Date(),
      });
      await ctx.em.flush();
      return account;
    },
  }),
);

builder.queryFields((t) => ({
  accounts: t.field({
    type: [AccountRef],
    description: "The caller's accounts (an admin's: everyone's).",
    resolve: (_root, _args, ctx) => listAccounts(ctx.em, ownerFilter(callerOf(ctx.viewer))),
  }),
  account: t.field({
    type: AccountRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) =>
      loadOwnedAccount(ctx.em, String(id), callerOf(ctx.viewer)).catch((error: unknown) => {
        if (error instanceof NotFoundError) return null;
        throw error;
      }),
  }),
}));
