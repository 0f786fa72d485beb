import { EntitySchema } from '@mikro-orm/core';

/** A mailbox owned by one user; the unit messages, archives and rules belong to. */
export class Account {
  id!: string;
  ownerId!: string;
  name!: string;
  email: string | null = null;
  imapHost: string | null = null;
  imapPort: number | null = null;
  imapSecure = true;
  imapUser: string | null = null;
  /** AES-256-GCM sealed with ARCHIVE_KEY; never leaves the process in clear. */
  imapPasswordSealed: string | null = null;
  createdAt!: Date;
}

export const AccountSchema = new EntitySchema<Account>({
  class: Account,
  tableName: 'account',
  properties: {
    id: { type: 'uuid', primary: true },
    ownerId: { type: 'string', length: 255, index: 'account_owner_idx' },
    name: { type: 'string', length: 255 },
    email: { type: 'string', length: 320, nullable: true },
    imapHost: { type: 'string', length: 255, nullable: true },
    imapPort: { type: 'integer', nullable: true },
    imapSecure: { type: 'boolean', default: true },
    imapUser: { type: 'string', length: 320, nullable: true },
    imapPasswordSealed: { type: 'text', nullable: true },
    createdAt: { type: 'datetime', columnType: 'timestamptz' },
  },
});
