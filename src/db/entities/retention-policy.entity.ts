import { EntitySchema } from '@mikro-orm/core';

export const RETENTION_ACTIONS = ['TRASH', 'ARCHIVE', 'DELETE'] as const;
export type RetentionAction = (typeof RETENTION_ACTIONS)[number];

/** Messages older than `olderThanDays` get `action`; scope is one account, or all of the owner's when `accountId` is null. */
export class RetentionPolicy {
  id!: string;
  ownerId!: string;
  accountId: string | null = null;
  name!: string;
  olderThanDays!: number;
  action!: RetentionAction;
  enabled = true;
  createdAt!: Date;
  updatedAt!: Date;
}

export const RetentionPolicySchema = new EntitySchema<RetentionPolicy>({
  class: RetentionPolicy,
  tableName: 'retention_policy',
  properties: {
    id: { type: 'uuid', primary: true },
    ownerId: { type: 'string', length: 255, index: 'retention_policy_owner_idx' },
    accountId: { type: 'uuid', nullable: true },
    name: { type: 'string', length: 255 },
    olderThanDays: { type: 'integer' },
    action: { type: 'string', length: 16 },
    enabled: { type: 'boolean', default: true },
    createdAt: { type: 'datetime', columnType: 'timestamptz' },
    updatedAt: { type: 'datetime', columnType: 'timestamptz' },
  },
});
