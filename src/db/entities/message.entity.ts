import { ArrayType, EntitySchema } from '@mikro-orm/core';

/**
 * One stored mail message. Its raw RFC 822 bytes are the `size` bytes at `blobOffset` of the blob
 * `blobKey`: a pack shared with the other messages of its import batch. A null offset is a blob of
 * its own (messages stored before packs).
 */
export class Message {
  id!: string;
  accountId!: string;
  ownerId!: string;
  /** `mid:<Message-ID>` or `sha:<content hash>`: a re-import of the same message is skipped. */
  dedupKey!: string;
  messageId: string | null = null;
  contentHash!: string;
  subject: string | null = null;
  fromAddress: string | null = null;
  fromName: string | null = null;
  toAddresses: string[] = [];
  ccAddresses: string[] = [];
  date: Date | null = null;
  size!: number;
  headers: Record<string, string> = {};
  textBody: string | null = null;
  htmlBody: string | null = null;
  attachmentCount = 0;
  labels: string[] = [];
  isRead = false;
  isStarred = false;
  blobKey!: string;
  blobOffset: number | null = null;
  /** Set when trashed; restore clears it. */
  deletedAt: Date | null = null;
  archivedAt: Date | null = null;
  createdAt!: Date;
}

export const MessageSchema = new EntitySchema<Message>({
  class: Message,
  tableName: 'message',
  properties: {
    id: { type: 'uuid', primary: true },
    accountId: { type: 'uuid' },
    ownerId: { type: 'string', length: 255 },
    dedupKey: { type: 'string', length: 1024 },
    messageId: { type: 'text', nullable: true },
    contentHash: { type: 'string', length: 64 },
    subject: { type: 'text', nullable: true },
    fromAddress: { type: 'string', length: 320, nullable: true },
    fromName: { type: 'text', nullable: true },
    toAddresses: { type: ArrayType, columnType: 'text[]', default: '{}' },
    ccAddresses: { type: ArrayType, columnType: 'text[]', default: '{}' },
    date: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    size: { type: 'integer' },
    headers: { type: 'json' },
    textBody: { type: 'text', nullable: true },
    htmlBody: { type: 'text', nullable: true },
    attachmentCount: { type: 'integer', default: 0 },
    labels: { type: ArrayType, columnType: 'text[]', default: '{}' },
    isRead: { type: 'boolean', default: false },
    isStarred: { type: 'boolean', default: false },
    blobKey: { type: 'string', length: 512, index: 'message_blob_key_idx' },
    blobOffset: { type: 'integer', nullable: true },
    deletedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    archivedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    createdAt: { type: 'datetime', columnType: 'timestamptz' },
  },
  indexes: [
    { name: 'message_account_created_idx', properties: ['accountId', 'createdAt', 'id'] },
    { name: 'message_account_date_idx', properties: ['accountId', 'date'] },
  ],
  uniques: [{ name: 'message_account_dedup_unique', properties: ['accountId', 'dedupKey'] }],
});

/** An attachment of a stored message; its bytes are stored as a message's are (`blobKey`, `blobOffset`, `size`). */
export class MessageAttachment {
  id!: string;
  messageId!: string;
  filename: string | null = null;
  contentType!: string;
  size!: number;
  contentHash!: string;
  blobKey!: string;
  blobOffset: number | null = null;
}

export const MessageAttachmentSchema = new EntitySchema<MessageAttachment>({
  class: MessageAttachment,
  tableName: 'message_attachment',
  properties: {
    id: { type: 'uuid', primary: true },
    messageId: { type: 'uuid', index: 'message_attachment_message_idx' },
    filename: { type: 'text', nullable: true },
    contentType: { type: 'string', length: 255 },
    size: { type: 'integer' },
    contentHash: { type: 'string', length: 64 },
    blobKey: { type: 'string', length: 512, index: 'message_attachment_blob_key_idx' },
    blobOffset: { type: 'integer', nullable: true },
  },
});
