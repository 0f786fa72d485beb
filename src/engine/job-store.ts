import type { EntityManager } from '@mikro-orm/postgresql';
import { type AttemptOutcome, TERMINAL_STATUSES, type JobRecord, type JobStatus } from '../db/entities/job.entity.js';
import { pgArray, runBound } from '../db/sql.js';
import { NotFoundError } from './errors.js';
import { isoString } from './json-values.js';
import type { JobEventMessage } from '../pubsub/topics.js';

/**
 * Row-level SQL for the job table. State changes are single conditional UPDATEs with RETURNING,
 * so two processes racing (a cancel against a completion) leave exactly one winner.
 */

type Row = Record<string, unknown>;

const COLUMNS: Record<keyof JobRecord, string> = {
  id: 'id',
  type: 'type',
  status: 'status',
  progress: 'progress',
  processed: 'processed',
  total: 'total',
  message: 'message',
  attempts: 'attempts',
  maxAttempts: 'max_attempts',
  priority: 'priority',
  payload: 'payload',
  result: 'result',
  error: 'error',
  trigger: 'trigger',
  idempotencyKey: 'idempotency_key',
  ownerId: 'owner_id',
  accountId: 'account_id',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
  runAt: 'run_at',
  cancelRequestedAt: 'cancel_requested_at',
  version: 'version',
  previousStatus: 'previous_status',
  run: 'run',
  tags: 'tags',
  metadata: 'metadata',
  logLinesDropped: 'log_lines_dropped',
  expiresAt: 'expires_at',
  idempotencyExpiresAt: 'idempotency_expires_at',
  createdXid: 'created_xid',
  changeXid: 'change_xid',
};

const JSON_FIELDS = new Set<keyof JobRecord>(['payload', 'result', 'metadata']);

/** A timestamp column's value as a Date (the driver may give a Date or text). */
export function toDate(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  return value instanceof Date ? value : new Date(String(value));
}

/** Maps a `job` row (snake_case, as RETURNING gives it) to a JobRecord. */
export function rowToJob(row: Row): JobRecord {
  return {
    id: String(row.id),
    type: String(row.type),
    status: row.status as JobStatus,
    progress: Number(row.progress),
    processed: row.processed === null ? null : Number(row.processed),
    total: row.total === null ? null : Number(row.total),
    message: (row.message as string | null) ?? null,
    attempts: Number(row.attempts),
    maxAttempts: Number(row.max_attempts),
    priority: row.priority === null ? null : Number(row.priority),
    payload: (row.payload as Record<string, unknown>) ?? {},
    result: row.result ?? null,
    error: (row.error as string | null) ?? null,
    trigger: row.trigger as JobRecord['trigger'],
    idempotencyKey: (row.idempotency_key as string | null) ?? null,
    ownerId: String(row.owner_id),
    accountId: (row.account_id as string | null) ?? null,
    createdAt: toDate(row.created_at)!,
    updatedAt: toDate(row.updated_at)!,
    startedAt: toDate(row.started_at),
    finishedAt: toDate(row.finished_at),
    runAt: toDate(row.run_at),
    cancelRequestedAt: toDate(row.cancel_requested_at),
    version: Number(row.version),
    previousStatus: (row.previous_status as JobStatus | null) ?? null,
    run: Number(row.run ?? 1),
    tags: (row.tags as string[] | null) ?? [],
    metadata: (row.metadata as Record<string, unknown> | null) ?? {},
    logLinesDropped: Number(row.log_lines_dropped ?? 0),
    expiresAt: toDate(row.expires_at),
    idempotencyExpiresAt: toDate(row.idempotency_expires_at),
  };
}

/** The pub/sub message for a job's current state: the whole public row, dates as ISO strings. */
export function toEventMessage(job: JobRecord): JobEventMessage {
  return {
    job: {
      ...job,
      createdAt: isoString(job.createdAt),
      updatedAt: isoString(job.updatedAt),
      startedAt: job.startedAt ? isoString(job.startedAt) : null,
      finishedAt: job.finishedAt ? isoString(job.finishedAt) : null,
      runAt: job.runAt ? isoString(job.runAt) : null,
      cancelRequestedAt: job.cancelRequestedAt ? isoString(job.cancelRequestedAt) : null,
      expiresAt: job.expiresAt ? isoString(job.expiresAt) : null,
      idempotencyExpiresAt: job.idempotencyExpiresAt ? isoString(job.idempotencyExpiresAt) : null,
    },
  };
}

const wireJobs = new WeakMap<JobEventMessage, JobRecord>();

/** The job an event carries, as a JobRecord (computed once per message, however many subscribers it reaches). */
export function eventJob(event: JobEventMessage): JobRecord {
  let job = wireJobs.get(event);
  if (!job) {
    const wire = event.job;
    job = {
      ...wire,
      createdAt: new Date(wire.createdAt),
      updatedAt: new Date(wire.updatedAt),
      startedAt: toDate(wire.startedAt),
      finishedAt: toDate(wire.finishedAt),
      runAt: toDate(wire.runAt),
      cancelRequestedAt: toDate(wire.cancelRequestedAt),
      expiresAt: toDate(wire.expiresAt),
      idempotencyExpiresAt: toDate(wire.idempotencyExpiresAt),
    };
    wireJobs.set(event, job);
  }
  return job;
}

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

function encode(field: keyof JobRecord, value: unknown): unknown {
  if (JSON_FIELDS.has(field)) return value === null || value === undefined ? null : JSON.stringify(value);
  if (field === 'tags') return pgArray(value as string[]);
  return value;
}

export type NewJob = Pick<
  JobRecord,
  'id' | 'type' | 'status' | 'maxAttempts' | 'priority' | 'payload' | 'trigger' | 'idempotencyKey' | 'ownerId' | 'accountId' | 'runAt'
> &
  Partial<Pick<JobRecord, 'tags' | 'metadata' | 'expiresAt' | 'idempotencyExpiresAt'>>;

/**
 * Inserts a job row. With an idempotency key the same owner already holds (within the holder's
 * window, if it has one), nothing is inserted and the holder is returned with `created: false`,
 * whatever its type: the caller decides whether a job of another type under the same key is an
 * answer or an error. A holder whose window has passed gives the key up to the new job.
 *
 * A job's account must be one its owner may use (theirs, or any for an admin): the same statement
 * checks it, so enqueueing on an account costs one round trip, and an account missing, deleted
 * meanwhile or someone else's is refused with NotFoundError, all alike.
 */
export async function insertJob(
  em: EntityManager,
  job: NewJob,
  owner: { isAdmin: boolean },
): Promise<{ job: JobRecord; created: boolean }> {
  const fields = Object.keys(job) as (keyof NewJob)[];
  const columns = fields.map((field) => COLUMNS[field]);
  const values = fields.map((field) => encode(field, job[field]));
  const accountCheck = job.accountId === null ? [] : [job.accountId, job.ownerId, owner.isAdmin];
  // Between the two statements the holder can vanish or its window pass: then the key is free
  // (or freed) and the next round inserts.
  for (let round = 0; round < 3; round++) {
    const rows: Row[] = await runBound(
      em,
      `INSERT INTO job (${columns.join(', ')}, created_at, updated_at)
       SELECT ${fields.map(() => '?').join(', ')}, clock_timestamp(), clock_timestamp()
        ${accountCheck.length ? 'WHERE EXISTS (SELECT 1 FROM account WHERE id = ? AND (owner_id = ? OR ?))' : ''}
       ON CONFLICT (owner_id, idempotency_key) DO NOTHING
       RETURNING *`,
      [...values, ...accountCheck],
    );
    if (rows[0]) return { job: rowToJob(rows[0]), created: true };
    const existing = job.idempotencyKey === null ? null : await findJobByIdempotencyKey(em, job.ownerId, job.idempotencyKey);
    if (existing) return { job: existing, created: false };
    if (job.accountId !== null && !(await mayUseAccount(em, job.accountId, job.ownerId, owner.isAdmin))) {
      throw new NotFoundError('account', job.accountId);
    }
    if (job.idempotencyKey === null) throw new Error('job insert refused for no known reason');
    await releaseExpiredIdempotencyKey(em, job.ownerId, job.idempotencyKey);
  }
  throw new Error('idempotency conflict but no job holds the key');
}

/** One job of `insertJobs`, with whether its owner is an admin (who may use any account). */
export interface JobInsert {
  job: NewJob;
  isAdmin: boolean;
}

/**
 * Inserts many jobs in one statement (the API's group commit), each on `insertJob`'s conditions:
 * its account must be one its owner may use, and an idempotency key its owner holds refuses it.
 * Answers the rows inserted, by id; a job missing from the answer was refused, and `insertJob`
 * alone says why (or inserts it, if what refused it has gone since).
 */
export async function insertJobs(em: EntityManager, inserts: readonly JobInsert[]): Promise<Map<string, JobRecord>> {
  const records = inserts.map(({ job, isAdmin }) => ({
    id: job.id,
    type: job.type,
    status: job.status,
    max_attempts: job.maxAttempts,
    priority: job.priority,
    payload: job.payload,
    trigger: job.trigger,
    idempotency_key: job.idempotencyKey,
    owner_id: job.ownerId,
    account_id: job.accountId,
    run_at: job.runAt,
    tags: job.tags ?? [],
    metadata: job.metadata ?? {},
    expires_at: job.expiresAt ?? null,
    idempotency_expires_at: job.idempotencyExpiresAt ?? null,
    is_admin: isAdmin,
  }));
  const rows: Row[] = await runBound(
    em,
    `INSERT INTO job (id, type, status, max_attempts, priority, payload, trigger, idempotency_key, owner_id, account_id, run_at,
                      tags, metadata, expires_at, idempotency_expires_at, created_at, updated_at)
     SELECT n.id, n.type, n.status, n.max_attempts, n.priority, n.payload, n.trigger, n.idempotency_key, n.owner_id, n.account_id,
            n.run_at, n.tags, n.metadata, n.expires_at, n.idempotency_expires_at, clock_timestamp(), clock_timestamp()
       FROM jsonb_to_recordset(?::jsonb) AS n(id uuid, type text, status text, max_attempts int, priority int, payload jsonb, trigger text,
              idempotency_key text, owner_id text, account_id uuid, run_at timestamptz, tags text[], metadata jsonb,
              expires_at timestamptz, idempotency_expires_at timestamptz, is_admin boolean)
      WHERE n.account_id IS NULL OR EXISTS (SELECT 1 FROM account WHERE id = n.account_id AND (owner_id = n.owner_id OR n.is_admin))
     ON CONFLICT (owner_id, idempotency_key) DO NOTHING
     RETURNING *`,
    [JSON.stringify(records)],
  );
  return new Map(rows.map((row) => [String(row.id), rowToJob(row)]));
}

/** Whether the account exists and `ownerId` may use it (it is theirs, or they are an admin). */
async function mayUseAccount(em: EntityManager, accountId: string, ownerId: string, isAdmin: boolean): Promise<boolean> {
  const rows: Row[] = await runBound(em, 'SELECT 1 FROM account WHERE id = ? AND (owner_id = ? OR ?)', [accountId, ownerId, isAdmin]);
  return rows.length > 0;
}

export async function findJob(em: EntityManager, id: string): Promise<JobRecord | null> {
  const rows: Row[] = await runBound(em, 'SELECT * FROM job WHERE id = ?', [id]);
  return rows[0] ? rowToJob(rows[0]) : null;
}

/** The job holding an owner's idempotency key, unless the holder's window has passed. */
export async function findJobByIdempotencyKey(em: EntityManager, ownerId: string, key: string): Promise<JobRecord | null> {
  const rows: Row[] = await runBound(
    em,
    'SELECT * FROM job WHERE owner_id = ? AND idempotency_key = ? AND (idempotency_expires_at IS NULL OR idempotency_expires_at > clock_timestamp())',
    [ownerId, key],
  );
  return rows[0] ? rowToJob(rows[0]) : null;
}

/** Takes an idempotency key off the job holding it once that job's window has passed (the job keeps its history). */
async function releaseExpiredIdempotencyKey(em: EntityManager, ownerId: string, key: string): Promise<void> {
  await em.getConnection().execute(
    `UPDATE job SET idempotency_key = NULL, ${CHANGE_MARKS.join(', ')}
        WHERE owner_id = ? AND idempotency_key = ? AND idempotency_expires_at <= clock_timestamp()`,
    [ownerId, key],
    'run',
  );
}

/** Columns that may change after insertion. */
export type JobChanges = Partial<
  Pick<
    JobRecord,
    | 'status'
    | 'progress'
    | 'processed'
    | 'total'
    | 'message'
    | 'attempts'
    | 'result'
    | 'error'
    | 'trigger'
    | 'startedAt'
    | 'finishedAt'
    | 'runAt'
    | 'cancelRequestedAt'
    | 'run'
    | 'metadata'
    | 'expiresAt'
  >
>;

/** How the job's open attempt ends, when a change ends it (see `job_attempt`). */
export interface AttemptEnd {
  outcome: AttemptOutcome;
  error?: string | null;
  /** Only this attempt of the job's current run (a worker ending its own); omitted: whichever is open. */
  number?: number;
}

/**
 * What every change of a row sets besides its new values. `previous_status = status` reads the row
 * as it was before the statement, even after waiting for a concurrent update; `change_xid` places
 * the change in the change feed's order.
 */
const CHANGE_MARKS = [
  'previous_status = status',
  'version = version + 1',
  'updated_at = clock_timestamp()',
  'change_xid = pg_current_xact_id()',
];

/**
 * Runs a job UPDATE and, in the same statement, records each status it changed in
 * `job_status_change`, so a stream reader can tell a client what a job's status was at the
 * client's position however many changes it missed; with `attemptEnd`, it also closes the job's
 * open attempt; `alsoCte` is one more step on `changed` (its parameters come last). Returns the
 * statement and the parameters it adds after the UPDATE's own.
 */
function withStatusLog(update: string, attemptEnd?: AttemptEnd, alsoCte?: string, returning = '*'): { sql: string; params: unknown[] } {
  const closing = attemptEnd ? `, ${closeOpenAttempt(attemptEnd.outcome, attemptEnd.number !== undefined)}` : '';
  return {
    sql: `WITH changed AS (${update} RETURNING ${returning}),
    logged AS (INSERT INTO job_status_change (job_id, status_before) SELECT id, previous_status FROM changed WHERE previous_status <> status)${closing}${alsoCte ? `, ${alsoCte}` : ''}
    SELECT * FROM changed`,
    params: attemptEnd
      ? [attemptEnd.outcome, attemptEnd.error ?? null, ...(attemptEnd.number !== undefined ? [attemptEnd.number] : [])]
      : [],
  };
}

/**
 * A CTE closing the open attempt of the job in `changed` (outcome, error and, with `ownAttempt`,
 * the attempt's number as parameters). A stalled attempt ends at its last sign of life: the row's
 * last change before this statement, or the attempt's last log line, whichever is later.
 */
function closeOpenAttempt(outcome: AttemptOutcome, ownAttempt: boolean): string {
  const finishedAt =
    outcome === 'STALLED'
      ? `greatest(a.started_at, (SELECT j.updated_at FROM job j WHERE j.id = changed.id),
          (SELECT max(l.at) FROM job_log l WHERE l.job_id = changed.id AND l.run = a.run AND l.attempt = a.number))`
      : 'clock_timestamp()';
  return `closed AS (UPDATE job_attempt a SET finished_at = ${finishedAt}, outcome = ?, error = ?
      FROM changed WHERE a.job_id = changed.id AND a.finished_at IS NULL${ownAttempt ? ' AND a.run = changed.run AND a.number = ?' : ''})`;
}

/** Closes, as STALLED, attempts left open on jobs that ended without them (their closing raced another change). */
export async function closeOrphanedAttempts(em: EntityManager, olderThanMs: number): Promise<number> {
  const result: { affectedRows?: number } = await em.getConnection().execute(
    `UPDATE job_attempt a SET finished_at = greatest(a.started_at, j.updated_at), outcome = 'STALLED', error = ?
       FROM job j
      WHERE a.finished_at IS NULL AND j.id = a.job_id AND j.status IN ('COMPLETED', 'FAILED', 'CANCELLED')
        AND j.updated_at < now() - make_interval(secs => ?)`,
    [STALLED_ERROR, olderThanMs / 1000],
    'run',
  );
  return result.affectedRows ?? 0;
}

/** An attempt of a job: its run (a retry by hand starts a new one) and its number in that run. */
export interface AttemptOf {
  run: number;
  attempt: number;
}

/**
 * Applies changes to one row, only while its status is one of `onlyIf` (when given) and, with
 * `onlyAttempt`, while that attempt is still the job's current one, bumping its version;
 * `attemptEnd` closes the job's open attempt with it. Returns the updated row, or null when the
 * row was not in an expected status (or a newer attempt has started).
 */
export async function updateJob(
  em: EntityManager,
  id: string,
  changes: JobChanges,
  onlyIf?: readonly JobStatus[],
  attemptEnd?: AttemptEnd,
  onlyAttempt?: AttemptOf,
): Promise<JobRecord | null> {
  const fields = Object.keys(changes) as (keyof JobChanges)[];
  const assignments = fields.map((field) => `${COLUMNS[field]} = ?`);
  const values: unknown[] = fields.map((field) => encode(field, changes[field]));
  let sql = `UPDATE job SET ${[...assignments, ...CHANGE_MARKS].join(', ')} WHERE id = ?`;
  values.push(id);
  if (onlyIf) {
    sql += ` AND status IN (${onlyIf.map(() => '?').join(', ')})`;
    values.push(...onlyIf);
  }
  if (onlyAttempt) {
    sql += ' AND run = ? AND attempts = ?';
    values.push(onlyAttempt.run, onlyAttempt.attempt);
  }
  const statement = withStatusLog(sql, attemptEnd);
  const rows: Row[] = await runBound(em, statement.sql, [...values, ...statement.params]);
  return rows[0] ? rowToJob(rows[0]) : null;
}

/**
 * Marks jobs ACTIVE for an attempt, in one statement for all of them (the worker's group commit),
 * except those that are final, whose cancellation was asked, or that expired before they started:
 * the jobs that started, by id; for an id missing from the answer, the caller reads the row to
 * see why. The attempt is the row's next (`attempts + 1`): a failure, a stall, a hand-back and a
 * lost queue entry each count once, however BullMQ counted them. The same statement opens the
 * attempt's `job_attempt` row (run by `worker`) and closes one left open as STALLED: its worker
 * died, or BullMQ found it stalled and handed the job on.
 */
export async function startJobs(em: EntityManager, ids: readonly string[], worker: string): Promise<Map<string, JobRecord>> {
  const statement = withStatusLog(
    `UPDATE job SET status = 'ACTIVE', attempts = attempts + 1, started_at = clock_timestamp(), run_at = NULL,
        message = CASE WHEN starts_with(message, '${OWNER_SLOT_WAITING}') THEN NULL ELSE message END, ${CHANGE_MARKS.join(', ')}
      WHERE id = ANY(?::uuid[]) AND status IN ('PENDING', 'DELAYED', 'ACTIVE') AND cancel_requested_at IS NULL
        AND (expires_at IS NULL OR started_at IS NOT NULL OR expires_at > clock_timestamp())`,
    { outcome: 'STALLED', error: STALLED_ERROR },
    'opened AS (INSERT INTO job_attempt (job_id, run, number, started_at, worker) SELECT id, run, attempts, started_at, ? FROM changed)',
  );
  const rows: Row[] = await runBound(em, statement.sql, [pgArray(ids), ...statement.params, worker]);
  return new Map(rows.map((row) => [String(row.id), rowToJob(row)]));
}

/** A worker's successful end of its attempt of a job: what `completeJobs` writes for it. */
export interface Completion extends AttemptOf {
  id: string;
  processed: number | null;
  total: number | null;
  result: unknown;
}

/**
 * Marks jobs COMPLETED in one statement (the worker's group commit), each only while it is still
 * ACTIVE on the attempt that completed, closing that attempt: the jobs completed, by id. An id
 * missing from the answer was not ACTIVE any more (a cancel got there first), or a newer attempt
 * has started (this one was found stalled and the job handed on): `updateJob` would refuse it too.
 */
export async function completeJobs(em: EntityManager, completions: readonly Completion[]): Promise<Map<string, JobRecord>> {
  // Each row closes its own attempt: the current one, which `done.attempt` must be.
  const statement = withStatusLog(
    `UPDATE job SET status = 'COMPLETED', progress = 100, processed = done.processed, total = done.total, result = done.result,
        error = NULL, finished_at = clock_timestamp(), ${CHANGE_MARKS.join(', ')}
       FROM jsonb_to_recordset(?::jsonb) AS done(id uuid, run int, attempt int, processed int, total int, result jsonb)
      WHERE job.id = done.id AND job.status = 'ACTIVE' AND job.run = done.run AND job.attempts = done.attempt`,
    undefined,
    `closed AS (UPDATE job_attempt a SET finished_at = clock_timestamp(), outcome = 'COMPLETED', error = NULL
       FROM changed WHERE a.job_id = changed.id AND a.finished_at IS NULL AND a.run = changed.run AND a.number = changed.attempts)`,
    // Only the job's columns: `done` has some of the same names.
    'job.*',
  );
  const rows: Row[] = await runBound(em, statement.sql, [JSON.stringify(completions.map((c) => ({ ...c, result: c.result ?? null })))]);
  return new Map(rows.map((row) => [String(row.id), rowToJob(row)]));
}

/** How the message of a job waiting for its owner's slot (`ownerConcurrency`) starts; its start clears it. */
export const OWNER_SLOT_WAITING = 'waiting:';

/** The error of an attempt closed as STALLED. */
export const STALLED_ERROR = 'the worker running this attempt stopped responding (it crashed, was killed or lost its lock)';

/** The message of a job that waited past its `expiresAt` without starting. */
export const EXPIRED_MESSAGE = 'expired before it started';

/** A job that has an expiry, has not started, and is past it. */
const EXPIRED = `expires_at <= clock_timestamp() AND started_at IS NULL AND status IN ('PENDING', 'DELAYED')`;

/**
 * Ends CANCELLED ("expired before it started") the jobs whose `expiresAt` passed before they
 * started: up to `limit` of them, or only job `id`. Concurrent sweeps skip each other's rows.
 */
export async function expireJobs(em: EntityManager, options: { id?: string; limit?: number } = {}): Promise<JobRecord[]> {
  const statement = withStatusLog(
    `UPDATE job SET status = 'CANCELLED', message = ?, finished_at = clock_timestamp(), ${CHANGE_MARKS.join(', ')}
      WHERE id IN (SELECT id FROM job WHERE ${EXPIRED}${options.id ? ' AND id = ?' : ''} ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED)
        AND ${EXPIRED}`,
  );
  const params = [EXPIRED_MESSAGE, ...(options.id ? [options.id] : []), options.limit ?? 1, ...statement.params];
  const rows: Row[] = await runBound(em, statement.sql, params);
  return rows.map(rowToJob);
}
