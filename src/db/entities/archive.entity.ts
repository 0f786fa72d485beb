import { EntitySchema } from '@mikro-orm/core';

/** Where one archived file is stored and, once encrypted, how to open it. */
export interface ArchiveFile {
  kind: 'eml' | 'attachment';
  key: string;
  filename: string | null;
  contentType: string;
  size: number;
  /** Base64 IV and GCM auth tag, present once `encrypt_archives` has sealed the file. */
  iv?: string;
  authTag?: string;
}

/** A message copied into archive storage. Trashing sets `deletedAt`; `purge_archive_trash` removes it for good. */
export class Archive {
  id!: string;
  accountId!: string;
  ownerId!: string;
  messageId!: string;
  size!: number;
  contentHash!: string;
  files: ArchiveFile[] = [];
  encrypted = false;
  createdAt!: Date;
  deletedAt: Date | null = null;
}

export const ArchiveSchema = new EntitySchema<Archive>({
  class: Archive,
  tableName: 'archive',
  properties: {
    id: { type: 'uuid', primary: true },
    accountId: { type: 'uuid' },
    ownerId: { type: 'string', length: 255 },
    messageId: { type: 'uuid' },
    size: { type: 'integer' },
    contentHash: { type: 'string', length: 64 },
    files: { type: 'json' },
    encrypted: { type: 'boolean', default: false },
    createdAt: { type: 'datetime', columnType: 'timestamptz' },
    deletedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
  },
  indexes: [
    { name: 'archive_account_created_idx', properties: ['accountId', 'createdAt', 'id'] },
    { name: 'archive_deleted_idx', properties: ['deletedAt'] },
  ],
  uniques: [{ name: 'archive_message_unique', properties: ['messageId'] }],
});
