import { EntitySchema } from '@mikro-orm/core';

/**
 * One thing a privacy scan found in one message. PII findings hold a masked excerpt only, never
 * the raw value. Unique per (message, scan, kind, detail, source), so a re-run adds nothing twice.
 */
export class Finding {
  id!: string;
  accountId!: string;
  ownerId!: string;
  messageId!: string;
  /** `TRACKING` or `PII`. */
  scan!: string;
  /** e.g. PIXEL, TRACKER_HOST, LINK_PARAM, CARD, IBAN, PHONE, NATIONAL_ID. */
  kind!: string;
  subtype: string | null = null;
  /** Tracking: URL/host/parameter; PII: the masked value. */
  detail!: string;
  host: string | null = null;
  /** Where in the message: text, html, attachment:<name>. */
  source = '';
  sender: string | null = null;
  createdAt!: Date;
}

export const FindingSchema = new EntitySchema<Finding>({
  class: Finding,
  tableName: 'finding',
  properties: {
    id: { type: 'uuid', primary: true },
    accountId: { type: 'uuid' },
    ownerId: { type: 'string', length: 255 },
    messageId: { type: 'uuid' },
    scan: { type: 'string', length: 16 },
    kind: { type: 'string', length: 32 },
    subtype: { type: 'string', length: 64, nullable: true },
    detail: { type: 'text' },
    host: { type: 'string', length: 255, nullable: true },
    source: { type: 'string', length: 255, default: '' },
    sender: { type: 'string', length: 320, nullable: true },
    createdAt: { type: 'datetime', columnType: 'timestamptz' },
  },
  indexes: [{ name: 'finding_account_scan_kind_idx', properties: ['accountId', 'scan', 'kind'] }],
  uniques: [{ name: 'finding_unique', properties: ['messageId', 'scan', 'kind', 'detail', 'source'] }],
});

/** A sender found to send newsletters, from List-Unsubscribe headers. */
export class Newsletter {
  id!: string;
  accountId!: string;
  ownerId!: string;
  sender!: string;
  messageCount!: number;
  lastSeen: Date | null = null;
  unsubscribeUrls: string[] = [];
  mailtos: string[] = [];
  oneClick = false;
  oneClickUrl: string | null = null;
  updatedAt!: Date;
}

export const NewsletterSchema = new EntitySchema<Newsletter>({
  class: Newsletter,
  tableName: 'newsletter',
  properties: {
    id: { type: 'uuid', primary: true },
    accountId: { type: 'uuid' },
    ownerId: { type: 'string', length: 255 },
    sender: { type: 'string', length: 320 },
    messageCount: { type: 'integer' },
    lastSeen: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    unsubscribeUrls: { type: 'json' },
    mailtos: { type: 'json' },
    oneClick: { type: 'boolean', default: false },
    oneClickUrl: { type: 'text', nullable: true },
    updatedAt: { type: 'datetime', columnType: 'timestamptz' },
  },
  uniques: [{ name: 'newsletter_account_sender_unique', properties: ['accountId', 'sender'] }],
});

/** Where an IMAP import left off in one mailbox, for incremental re-runs. */
export class ImapSyncState {
  id!: string;
  accountId!: string;
  mailbox!: string;
  uidValidity: string | null = null;
  lastUid = 0;
  updatedAt!: Date;
}

export const ImapSyncStateSchema = new EntitySchema<ImapSyncState>({
  class: ImapSyncState,
  tableName: 'imap_sync_state',
  properties: {
    id: { type: 'uuid', primary: true },
    accountId: { type: 'uuid' },
    mailbox: { type: 'string', length: 512 },
    uidValidity: { type: 'string', length: 32, nullable: true },
    lastUid: { type: 'integer', default: 0 },
    updatedAt: { type: 'datetime', columnType: 'timestamptz' },
  },
  uniques: [{ name: 'imap_sync_state_account_mailbox_unique', properties: ['accountId', 'mailbox'] }],
});
