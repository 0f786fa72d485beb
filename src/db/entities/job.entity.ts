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
  /** Writer of the row's insert and of its last change (`xid8` text); read by the change feed, never sent. */
  createdXid?: string;
  changeXid?: string;
}

/**
 * The id of the transaction that wrote a row (PostgreSQL `xid8`, as text). A stream position is a
 * snapshot: a row changed after it is one whose writer the snapshot does not see, whatever order
 * the writers committed in (see src/realtime/stream-position.ts).
 */
const WRITER_XID = { type: 'string', columnType: 'xid8', defaultRaw: 'pg_current_xact_id()' } as const;

/** One row per status change of a job (not per progress report): what the status was before it. */
export class JobStatusChange {
  id!: string;
  jobId!: string;
  statusBefore!: JobStatus;
  changeXid!: string;
  at!: Date;
}

export const JobStatusChangeSchema = new EntitySchema<JobStatusChange>({
  class: JobStatusChange,
  tableName: 'job_status_change',
  properties: {
    id: { type: 'bigint', primary: true, autoincrement: true },
    jobId: { type: 'uuid' },
    statusBefore: { type: 'string', length: 16 },
    changeXid: WRITER_XID,
    at: { type: 'datetime', columnType: 'timestamptz', defaultRaw: 'now()' },
  },
  // Per job, its changes in writer order (a stream reader asks for the first one after a position);
  // by time, for pruning past STREAM_RETENTION_HOURS.
  indexes: [
    { name: 'job_status_change_job_idx', properties: ['jobId', 'changeXid', 'id'] },
    { name: 'job_status_change_at_idx', properties: ['at'] },
  ],
});

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
    createdXid: { ...WRITER_XID, hidden: true },
    changeXid: { ...WRITER_XID, hidden: true },
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
    // The change feed walks rows by writer: the ones written after a position, in (change_xid, id) order.
    { name: 'job_change_xid_idx', properties: ['changeXid', 'id'] },
  ],
  uniques: [{ name: 'job_owner_idempotency_key_unique', properties: ['ownerId', 'idempotencyKey'] }],
});
