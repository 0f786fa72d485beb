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
  /** 1, plus one per `retryJob`: attempts and log lines say which run they belong to. */
  run = 1;
  /** Labels given at enqueue (`options.tags`), fixed for the job's life; `JobFilter.tags` finds them. */
  tags: string[] = [];
  /** A JSON object: given at enqueue (`options.metadata`), shallow-merged by the handler while it runs. */
  metadata: Record<string, unknown> = {};
  /** Log lines dropped from the start of the job's log to keep it within JOB_LOG_MAX_LINES. */
  logLinesDropped = 0;
  /** A job not started by then ends CANCELLED, "expired before it started" (`options.expiresInMs`). */
  expiresAt: Date | null = null;
  /** After this, `idempotencyKey` no longer answers a repeated enqueue (`options.idempotencyTtlMs`); null: never. */
  idempotencyExpiresAt: Date | null = null;
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

export const ATTEMPT_OUTCOMES = ['COMPLETED', 'FAILED', 'RETRIED', 'CANCELLED', 'STALLED', 'HANDED_BACK', 'TIMED_OUT'] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

/** One row per attempt of a job, kept across retries, stalls and reconciliation. */
export class JobAttempt {
  id!: string;
  jobId!: string;
  /** The job's run (1, then one more per `retryJob`). */
  run!: number;
  /** 1 for the first attempt of the run. */
  number!: number;
  startedAt!: Date;
  /** Null while the attempt runs. */
  finishedAt: Date | null = null;
  outcome: AttemptOutcome | null = null;
  error: string | null = null;
  /** Which worker ran it: `host:pid`. */
  worker!: string;
}

export const JobAttemptSchema = new EntitySchema<JobAttempt>({
  class: JobAttempt,
  tableName: 'job_attempt',
  properties: {
    id: { type: 'bigint', primary: true, autoincrement: true },
    jobId: { type: 'uuid' },
    run: { type: 'integer' },
    number: { type: 'integer' },
    startedAt: { type: 'datetime', columnType: 'timestamptz' },
    finishedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    outcome: { type: 'string', length: 16, nullable: true },
    error: { type: 'text', nullable: true },
    worker: { type: 'string', length: 255 },
  },
  // A job's attempts in order; closing the open one finds it through the same index. The open ones
  // alone, for the reconciler's sweep of attempts a race left open.
  indexes: [
    { name: 'job_attempt_job_idx', properties: ['jobId', 'id'] },
    {
      name: 'job_attempt_open_idx',
      expression: 'create index "job_attempt_open_idx" on "job_attempt" ("job_id") where "finished_at" is null',
    },
  ],
});

export const LOG_LEVELS = ['INFO', 'WARN', 'ERROR'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** One line a handler logged (`ctx.log`), kept with its job. */
export class JobLogLine {
  id!: string;
  jobId!: string;
  run!: number;
  attempt!: number;
  at!: Date;
  level!: LogLevel;
  message!: string;
  fields: Record<string, unknown> | null = null;
}

export const JobLogLineSchema = new EntitySchema<JobLogLine>({
  class: JobLogLine,
  tableName: 'job_log',
  properties: {
    id: { type: 'bigint', primary: true, autoincrement: true },
    jobId: { type: 'uuid' },
    run: { type: 'integer' },
    attempt: { type: 'integer' },
    at: { type: 'datetime', columnType: 'timestamptz' },
    level: { type: 'string', length: 8 },
    message: { type: 'text' },
    fields: { type: 'json', nullable: true },
  },
  // A job's lines in write order: pages, live tails and the per-job bound all walk it.
  indexes: [{ name: 'job_log_job_idx', properties: ['jobId', 'id'] }],
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
    run: { type: 'integer', default: 1 },
    tags: { type: 'string[]', columnType: 'text[]', defaultRaw: `'{}'` },
    metadata: { type: 'json', defaultRaw: `'{}'` },
    logLinesDropped: { type: 'integer', default: 0 },
    expiresAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    idempotencyExpiresAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
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
    // `JobFilter.tags` (jobs holding all the given tags) is an array containment test; with the owner
    // in the same GIN index (btree_gin), a user's tag query reads only that user's entries, and an
    // admin's, without an owner, uses the same index.
    // The expiry sweep's candidates only: jobs with an expiry that have not started yet.
    {
      name: 'job_expires_idx',
      expression: `create index "job_expires_idx" on "job" ("expires_at") where "expires_at" is not null and "started_at" is null and "status" in ('PENDING', 'DELAYED')`,
    },
    { name: 'job_owner_tags_idx', expression: 'create index "job_owner_tags_idx" on "job" using gin ("owner_id", "tags")' },
  ],
  uniques: [{ name: 'job_owner_idempotency_key_unique', properties: ['ownerId', 'idempotencyKey'] }],
});
