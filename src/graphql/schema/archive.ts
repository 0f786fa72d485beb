import { callerOf, mayAccess } from '../../auth/access.js';
import type { Archive, ArchiveFile } from '../../db/entities/archive.entity.js';
import { loadOwnedAccount } from '../../jobs/access.js';
import { findArchive, listArchives, setArchiveTrashed } from '../../mail/archive-store.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { graphqlError } from '../errors.js';
import { decodeCursor, keysetConnection, pageSize, toPage } from '../pagination.js';

/** The archive, if the caller may see it; someone else's archive is reported exactly like a missing one. */
async function loadVisibleArchive(ctx: GraphQLContext, id: string): Promise<Archive | null> {
  const archive = await findArchive(ctx.em, id);
  return archive && mayAccess(callerOf(ctx.viewer), archive.ownerId) ? archive : null;
}

const ArchiveFileKindRef = builder.enumType('ArchiveFileKind', {
  values: { EML: { value: 'eml' }, ATTACHMENT: { value: 'attachment' } } as const,
});

const ArchiveFileRef = builder.objectRef<ArchiveFile>('ArchiveFile').implement({
  description: 'One file of an archive. Where and how it is stored (keys, IVs, tags) is never exposed.',
  fields: (t) => ({
    kind: t.field({ type: ArchiveFileKindRef, resolve: (file) => file.kind }),
    filename: t.exposeString('filename', { nullable: true }),
    contentType: t.exposeString('contentType'),
    size: t.exposeInt('size', { description: 'Plaintext size in bytes.' }),
  }),
});

export const ArchiveRef = builder.objectRef<Archive>('Archive').implement({
  description: 'A message copied into archive storage by `archiveMails`.',
  fields: (t) => ({
    id: t.exposeID('id'),
    accountId: t.exposeID('accountId'),
    messageId: t.exposeID('messageId', { description: 'The archived message (its database id).' }),
    size: t.exposeInt('size', { description: 'Bytes archived: the EML plus its attachment files.' }),
    contentHash: t.exposeString('contentHash', { description: 'SHA-256 (hex) of the archived EML.' }),
    encrypted: t.exposeBoolean('encrypted', { description: 'Whether `encryptArchives` has sealed its files (AES-256-GCM).' }),
    files: t.field({ type: [ArchiveFileRef], resolve: (archive) => archive.files }),
    createdAt: t.field({ type: 'DateTime', resolve: (archive) => archive.createdAt }),
    deletedAt: t.field({ type: 'DateTime', nullable: true, description: 'When it was trashed.', resolve: (archive) => archive.deletedAt }),
    inTrash: t.boolean({ resolve: (archive) => archive.deletedAt !== null }),
    downloadUrl: t.string({
      description: 'GET with the same bearer token to download the EML (decrypted when encrypted), relative to the API origin.',
      resolve: (archive) => `/archives/${archive.id}/eml`,
    }),
  }),
});

const ArchiveConnectionRef = keysetConnection<Archive>('Archive', ArchiveRef);

const ArchiveFilterRef = builder.inputType('ArchiveFilter', {
  fields: (t) => ({
    inTrash: t.boolean({ required: false, description: 'true: only trashed archives; false (default): only archives not in the trash.' }),
    encrypted: t.boolean({
      required: false,
      description: 'Only encrypted (true) or only unencrypted (false) archives; both when omitted.',
    }),
  }),
});

builder.queryFields((t) => ({
  archives: t.field({
    type: ArchiveConnectionRef,
    description: "An account's archives, most recent first, with a keyset cursor.",
    args: {
      accountId: t.arg.id({ required: true }),
      filter: t.arg({ type: ArchiveFilterRef, required: false }),
      first: t.arg.int({ required: false, defaultValue: 50 }),
      after: t.arg.string({ required: false }),
    },
    resolve: async (_root, args, ctx) => {
      const size = pageSize(args.first);
      const account = await loadOwnedAccount(ctx.em, String(args.accountId), callerOf(ctx.viewer));
      const after = args.after ? decodeCursor(args.after) : null;
      const rows = await listArchives(ctx.em, {
        accountId: account.id,
        inTrash: Boolean(args.filter?.inTrash),
        encrypted: args.filter?.encrypted,
        after,
        limit: size + 1,
      });
      return toPage(rows, size, (row) => row.node, args.after);
    },
  }),
  archive: t.field({
    type: ArchiveRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => loadVisibleArchive(ctx, String(id)),
  }),
}));

/** Sets or clears `deleted_at` of an archive the caller may see; NOT_FOUND otherwise. */
async function setTrashed(ctx: GraphQLContext, id: string, trashed: boolean): Promise<Archive> {
  const archive = await loadVisibleArchive(ctx, id);
  if (!archive) throw graphqlError('NOT_FOUND', `archive ${id} not found`);
  const updated = await setArchiveTrashed(ctx.em, archive.id, trashed);
  if (!updated) throw graphqlError('NOT_FOUND', `archive ${id} not found`);
  return updated;
}

builder.mutationFields((t) => ({
  trashArchive: t.field({
    type: ArchiveRef,
    description: 'Moves an archive to the trash; `purgeArchiveTrash` deletes it for good once the retention has passed.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => setTrashed(ctx, String(id), true),
  }),
  restoreArchive: t.field({
    type: ArchiveRef,
    description: 'Takes an archive out of the trash.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => setTrashed(ctx, String(id), false),
  }),
}));
