import { EntitySchema } from '@mikro-orm/core';

export const JOB_STATUSES = ['PENDING', 'DELAYED', 'ACTIVE', 'COMPLETED', 'FAILED', 'CANCELLED'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];

export const JOB_TRIGGERS = ['API', 'SCHEDULE', 'RULE', 'RETRY'] as const;
export type JobTrigger = (typeof JOB_TRIGGERS)[number];

/** One row per job: the record of what was asked, what happened, and when. */
export class JobRecord {
  id!: string;
  type!: string;
  status!: JobStatus;
  progress = 0;
  processed: number | null = null;
  total: number | null = null;
  message: string | null = null;
  attempts = 0;
  maxAttempts!: number;
  priority: number | null = null;
  payload!: Record<string, unknown>;
  result: unknown = null;
  error: string | null = null;
  trigger!: JobTrigger;
  idempotencyKey: string | null = null;
  ownerId!: string;
  /** The mail account the job works on, when it has one; lets `jobs(filter: { accountId })` use an index. */
  accountId: string | null = null;
  createdAt!: Date;
  updatedAt!: Date;
  startedAt: Date | null = null;
  finishedAt: Date | null = null;
  runAt: Date | null = null;
  cancelRequestedAt: Date | null = null;
  /** Bumped by every state change; subscribers use it to drop events older than what they already sent. */
  version = 0;
  /**
   * The status before the row's last change (null until its first): events carry it, so a
   * dashboard keeps counts per status from the stream alone.
   */
  previousStatus: JobStatus | null = null;
}

export const JobSchema = new EntitySchema<JobRecord>({
  class: JobRecord,
  tableName: 'job',
  properties: {
    id: { type: 'uuid', primary: true },
    type: { type: 'string', length: 64 },
    status: { type: 'string', length: 16 },
    progress: { type: 'float', default: 0 },
    processed: { type: 'integer', nullable: true },
    total: { type: 'integer', nullable: true },
    message: { type: 'text', nullable: true },
    attempts: { type: 'integer', default: 0 },
    maxAttempts: { type: 'integer' },
    priority: { type: 'integer', nullable: true },
    payload: { type: 'json' },
    result: { type: 'json', nullable: true },
    error: { type: 'text', nullable: true },
    trigger: { type: 'string', length: 16 },
    idempotencyKey: { type: 'string', length: 255, nullable: true },
    ownerId: { type: 'string', length: 255 },
    accountId: { type: 'uuid', nullable: true },
    createdAt: { type: 'datetime', columnType: 'timestamptz' },
    updatedAt: { type: 'datetime', columnType: 'timestamptz' },
    startedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    finishedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    runAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    cancelRequestedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    version: { type: 'integer', default: 0 },
    previousStatus: { type: 'string', length: 16, nullable: true },
  },
  // Keyset pagination walks (created_at, id) downwards; each index serves one common filter.
  indexes: [
    { name: 'job_created_idx', properties: ['createdAt', 'id'] },
    { name: 'job_owner_created_idx', properties: ['ownerId', 'createdAt', 'id'] },
    { name: 'job_owner_type_created_idx', properties: ['ownerId', 'type', 'createdAt', 'id'] },
    { name: 'job_owner_status_created_idx', properties: ['ownerId', 'status', 'createdAt', 'id'] },
    { name: 'job_type_created_idx', properties: ['type', 'createdAt', 'id'] },
    { name: 'job_status_created_idx', properties: ['status', 'createdAt', 'id'] },
    { name: 'job_account_created_idx', properties: ['accountId', 'createdAt', 'id'] },
    // A user's history of one account: owner and account correlate, which the planner cannot see.
    { name: 'job_owner_account_created_idx', properties: ['ownerId', 'accountId', 'createdAt', 'id'] },
    // `jobs(orderBy: UPDATED_AT)` walks (updated_at, id) downwards, for everyone and for one owner.
    { name: 'job_updated_idx', properties: ['updatedAt', 'id'] },
    { name: 'job_owner_updated_idx', properties: ['ownerId', 'updatedAt', 'id'] },
  ],
  uniques: [{ name: 'job_owner_idempotency_key_unique', properties: ['ownerId', 'idempotencyKey'] }],
});
