import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { JobsOptions } from 'bullmq';
import type { Config } from '../config/env.js';
import type { JobRecord, JobTrigger } from '../db/entities/job.entity.js';
import type { JobQueues } from '../queue/job-queues.js';
import type { BlobStorage } from '../storage/blob-storage.js';
import type { AnyJobDeclaration, PreparedJob } from './define-job.js';
import { InvalidInputError, InvalidStateError, NotFoundError } from './errors.js';
import { parseInput } from './validation.js';
import { MAX_METADATA_BYTES, serialisedBytes } from './json-values.js';
import type { JobInserts } from './job-inserts.js';
import { findJob, findJobByIdempotencyKey, insertJob, isTerminal, updateJob } from './job-store.js';

/** Per-call options of every enqueue mutation. */
export interface EnqueueOptions {
  /** BullMQ priority, 1 = highest, up to 2,097,151. (Default: the type's priority) */
  priority?: number | null;
  /** Run no earlier than this many milliseconds from now; the job is DELAYED until then. (Default: 0) */
  delayMs?: number | null;
  /**
   * A second enqueue with the same key by the same owner returns the first job; the key reused for a
   * job of another type is refused. (Default: none)
   */
  idempotencyKey?: string | null;
  /** Labels to find the job by (`JobFilter.tags`); see `checkTags`. (Default: none) */
  tags?: string[] | null;
  /** A JSON object stored with the job, at most MAX_METADATA_BYTES serialised. (Default: `{}`) */
  metadata?: unknown;
  /** Not started this many milliseconds after the enqueue, the job ends CANCELLED, "expired before it started". (Default: never) */
  expiresInMs?: number | null;
  /** How long `idempotencyKey` answers a repeated enqueue; after it, the key enqueues a new job. (Default: forever) */
  idempotencyTtlMs?: number | null;
}

/** Most tags one job may have. */
export const MAX_TAGS = 10;
/** A tag: 1 to 64 of letters, digits and `_ - . : / = @`, starting with a letter or digit. */
export const TAG_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_\-.:/=@]{0,63}$/;
export const TAG_RULE = 'a tag is 1 to 64 characters of letters, digits and _ - . : / = @, starting with a letter or digit';

/** Tags as stored: checked, duplicates removed, order kept. */
export function checkTags(tags: readonly string[], name = 'tags'): string[] {
  if (tags.length > MAX_TAGS) throw new InvalidInputError(`${name}: at most ${MAX_TAGS} tags`);
  const bad = tags.find((tag) => !TAG_PATTERN.test(tag));
  if (bad !== undefined) {
    const shown = bad.length > 64 ? `${bad.slice(0, 64)}…` : bad;
    throw new InvalidInputError(`${name}: "${shown}" is not a valid tag: ${TAG_RULE}`);
  }
  return [...new Set(tags)];
}

/** What enqueueing needs; `publish` announces each state change to subscribers. */
export interface EnqueueDeps {
  em: EntityManager;
  queues: JobQueues;
  storage: BlobStorage;
  config: Config;
  publish(job: JobRecord): Promise<void>;
  /** Frees what a job's input holds once it ended for good (see `release` on the declaration). */
  release?(job: JobRecord): Promise<void>;
  /** Group-commits the row inserts of concurrent enqueues (the API's); without it, each job is inserted alone. */
  inserts?: JobInserts;
}

export interface EnqueueRequest {
  declaration: AnyJobDeclaration;
  args: Record<string, unknown>;
  ownerId: string;
  isAdmin: boolean;
  trigger: JobTrigger;
  options?: EnqueueOptions;
  /**
   * Runs once the call would create a new job (its input is valid and no earlier job holds its
   * idempotency key), before anything is written; a throw refuses it. The API's quotas go here, so
   * a repeated request is answered with its first job even when the owner is at a limit.
   */
  admit?: () => Promise<void>;
}

const MAX_PRIORITY = 2_097_151;
const MAX_DELAY_MS = 365 * 24 * 3600 * 1000;

function checkOptions(options: EnqueueOptions): void {
  const { priority, delayMs, idempotencyKey, metadata } = options;
  if (priority != null && (!Number.isInteger(priority) || priority < 1 || priority > MAX_PRIORITY)) {
    throw new InvalidInputError(`priority must be an integer from 1 (highest) to ${MAX_PRIORITY}`);
  }
  if (delayMs != null && (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS)) {
    throw new InvalidInputError(`delayMs must be an integer from 0 to ${MAX_DELAY_MS}`);
  }
  if (idempotencyKey != null && (idempotencyKey.length < 1 || idempotencyKey.length > 255)) {
    throw new InvalidInputError('idempotencyKey must be 1 to 255 characters');
  }
  if (options.tags != null) checkTags(options.tags);
  const { expiresInMs, idempotencyTtlMs } = options;
  if (expiresInMs != null) {
    if (!Number.isInteger(expiresInMs) || expiresInMs < 1 || expiresInMs > MAX_DELAY_MS) {
      throw new InvalidInputError(`expiresInMs must be an integer from 1 to ${MAX_DELAY_MS}`);
    }
    if (delayMs != null && expiresInMs <= delayMs) {
      throw new InvalidInputError('expiresInMs must be greater than delayMs: the job would expire before it may start');
    }
  }
  if (idempotencyTtlMs != null) {
    if (!Number.isInteger(idempotencyTtlMs) || idempotencyTtlMs < 1 || idempotencyTtlMs > MAX_DELAY_MS) {
      throw new InvalidInputError(`idempotencyTtlMs must be an integer from 1 to ${MAX_DELAY_MS}`);
    }
    if (idempotencyKey == null) throw new InvalidInputError('idempotencyTtlMs needs an idempotencyKey');
  }
  if (metadata != null) {
    if (typeof metadata !== 'object' || Array.isArray(metadata)) throw new InvalidInputError('metadata must be a JSON object');
    const bytes = serialisedBytes(metadata);
    if (bytes > MAX_METADATA_BYTES) {
      throw new InvalidInputError(`metadata must be at most ${MAX_METADATA_BYTES} bytes serialised as JSON; this is ${bytes}`);
    }
  }
}

/** BullMQ options for one attempt cycle of a job of this type. */
export function queueOptions(declaration: AnyJobDeclaration, config: Config, job: Pick<JobRecord, 'priority'>, delayMs = 0): JobsOptions {
  const { options } = declaration;
  return {
    attempts: options.attempts,
    backoff: { type: options.backoff.type, delay: Math.max(1, Math.round(options.backoff.delayMs * config.BACKOFF_SCALE)) },
    ...(job.priority != null ? { priority: job.priority } : {}),
    ...(delayMs > 0 ? { delay: delayMs } : {}),
    removeOnComplete: { count: options.removeOnComplete },
    removeOnFail: { count: options.removeOnFail },
  };
}

/**
 * The one enqueue path, for mutations, schedules and rules: validate, insert the row, then queue
 * it under the row's id. If the queue refuses, the row is marked FAILED and the error rethrown.
 *
 * A repeated idempotency key (same owner) returns the first job, provided it is of the same type;
 * reused for another type it is refused with {@link InvalidInputError}. Whenever no new job comes
 * out of the call, what `prepare` wrote is discarded (see {@link PreparedJob.discard}).
 */
export async function enqueueJob(deps: EnqueueDeps, request: EnqueueRequest): Promise<JobRecord> {
  const { declaration, ownerId } = request;
  const options = request.options ?? {};
  checkOptions(options);

  const args = parseInput(declaration.args, request.args);

  const idempotencyKey = options.idempotencyKey ?? null;
  if (idempotencyKey !== null) {
    // The common repeat is answered before `prepare`, so a retried upload is not even written.
    // A concurrent first call can still win the race; the insert below settles that case.
    const existing = await findJobByIdempotencyKey(deps.em, ownerId, idempotencyKey);
    if (existing) return sameTypeOrRefuse(existing, declaration.name, idempotencyKey);
  }
  await request.admit?.();

  const id = randomUUID();
  const prepared: PreparedJob<unknown> = await declaration.prepare(args, {
    ownerId,
    isAdmin: request.isAdmin,
    jobId: id,
    em: deps.em,
    storage: deps.storage,
    config: deps.config,
  });

  const delayMs = options.delayMs ?? 0;
  const priority = options.priority ?? declaration.options.priority;
  let inserted: { job: JobRecord; created: boolean };
  try {
    const insert = deps.inserts ? deps.inserts.insert.bind(deps.inserts) : insertJob;
    inserted = await insert(
      deps.em,
      {
        id,
        type: declaration.name,
        status: delayMs > 0 ? 'DELAYED' : 'PENDING',
        maxAttempts: declaration.options.attempts,
        priority,
        payload: prepared.input as Record<string, unknown>,
        trigger: request.trigger,
        idempotencyKey,
        ownerId,
        accountId: prepared.accountId,
        runAt: delayMs > 0 ? new Date(Date.now() + delayMs) : null,
        tags: options.tags ? checkTags(options.tags) : [],
        expiresAt: options.expiresInMs != null ? new Date(Date.now() + options.expiresInMs) : null,
        idempotencyExpiresAt: options.idempotencyTtlMs != null ? new Date(Date.now() + options.idempotencyTtlMs) : null,
        metadata: (options.metadata as Record<string, unknown> | null | undefined) ?? {},
      },
      { isAdmin: request.isAdmin },
    );
  } catch (error) {
    await discard(prepared);
    throw error;
  }
  if (!inserted.created) {
    await discard(prepared);
    return sameTypeOrRefuse(inserted.job, declaration.name, inserted.job.idempotencyKey ?? '');
  }

  try {
    return await addToQueue(deps, declaration, inserted.job, delayMs);
  } catch (error) {
    // The row is FAILED now; a retry of it has nothing to read, and nobody else will either.
    await discard(prepared);
    throw error;
  }
}

/** Runs a prepared job's `discard`, if any; a failure there must not hide the caller's outcome. */
async function discard(prepared: PreparedJob<unknown>): Promise<void> {
  try {
    await prepared.discard?.();
  } catch {
    // Ignored on purpose: the enqueue already has its answer (an earlier job, or an error).
  }
}

/** The job an idempotency key already names, unless it is of another type. */
function sameTypeOrRefuse(existing: JobRecord, type: string, key: string): JobRecord {
  if (existing.type === type) return existing;
  const shown = key.length > 64 ? `${key.slice(0, 64)}…` : key;
  throw new InvalidInputError(
    `idempotencyKey "${shown}" was already used for a job of type ${existing.type}; use another key for a ${type} job`,
  );
}

async function addToQueue(deps: EnqueueDeps, declaration: AnyJobDeclaration, job: JobRecord, delayMs: number): Promise<JobRecord> {
  // Not waited for: subscribers read the row itself from PostgreSQL (the announcement only rings
  // their feed), so a worker's ACTIVE ring arriving first changes nothing they see.
  void deps.publish(job).catch(() => {});
  try {
    await deps.queues.add(declaration.name, job.id, job.payload, queueOptions(declaration, deps.config, job, delayMs));
  } catch (error) {
    const failed = await updateJob(
      deps.em,
      job.id,
      { status: 'FAILED', error: 'could not be queued: the job queue is unavailable', finishedAt: new Date() },
      ['PENDING', 'DELAYED'],
    );
    if (failed) await deps.publish(failed).catch(() => {});
    throw error;
  }
  return job;
}

/** Runs a FAILED or CANCELLED job again under the same id, with trigger RETRY and fresh attempts. */
export async function retryJob(
  deps: EnqueueDeps,
  declaration: AnyJobDeclaration,
  jobId: string,
  admit?: EnqueueRequest['admit'],
): Promise<JobRecord> {
  const current = await findJob(deps.em, jobId);
  if (!current) throw new NotFoundError('job', jobId);
  if (current.status !== 'FAILED' && current.status !== 'CANCELLED') {
    throw new InvalidStateError(`only a FAILED or CANCELLED job can be retried; this one is ${current.status}`);
  }
  await admit?.();
  // BullMQ may still keep the finished job under this id, and would ignore a new add with it. It
  // refuses to remove one a worker still holds (the row ended, the worker is finishing up): then
  // the retry must wait, or the new run would be lost behind the old one.
  const queue = deps.queues.get(declaration.name);
  const removed = await queue.remove(jobId).catch(() => 0);
  if (removed !== 1 && (await (await queue.getJob(jobId).catch(() => undefined))?.getState().catch(() => null)) === 'active') {
    throw new InvalidStateError('the job is still finishing its last attempt; try again in a moment');
  }
  const reset = await updateJob(
    deps.em,
    jobId,
    {
      status: 'PENDING',
      trigger: 'RETRY',
      // A new run: its attempts count from 1 again, and the earlier run's stay in the history.
      run: current.run + 1,
      attempts: 0,
      progress: 0,
      processed: null,
      total: null,
      message: null,
      error: null,
      result: null,
      startedAt: null,
      finishedAt: null,
      runAt: null,
      cancelRequestedAt: null,
      // Run by hand: it waits for a worker however long that takes.
      expiresAt: null,
    },
    ['FAILED', 'CANCELLED'],
  );
  if (!reset) throw new InvalidStateError('the job changed state while being retried; try again');
  return addToQueue(deps, declaration, reset, 0);
}

/**
 * Cancels a job. Queued: removed from the queue and CANCELLED at once. Running: the request is
 * recorded and `requestAbort` asks the sidecars to abort it; the status follows from the worker.
 */
export async function cancelJob(deps: EnqueueDeps & { requestAbort(jobId: string): Promise<void> }, jobId: string): Promise<JobRecord> {
  const current = await findJob(deps.em, jobId);
  if (!current) throw new NotFoundError('job', jobId);
  if (isTerminal(current.status)) return current;

  // remove() refuses a job a worker holds the lock of, so this only succeeds while it is queued.
  const removed = await deps.queues
    .get(current.type)
    .remove(jobId)
    .catch(() => 0);
  if (removed === 1) {
    const cancelled = await updateJob(
      deps.em,
      jobId,
      { status: 'CANCELLED', cancelRequestedAt: new Date(), finishedAt: new Date(), message: 'cancelled before it started' },
      ['PENDING', 'DELAYED'],
    );
    if (cancelled) {
      await deps.publish(cancelled).catch(() => {});
      await deps.release?.(cancelled);
      return cancelled;
    }
  }

  const requested = await updateJob(deps.em, jobId, { cancelRequestedAt: new Date() }, ['PENDING', 'DELAYED', 'ACTIVE']);
  if (!requested) return (await findJob(deps.em, jobId))!;
  await deps.requestAbort(jobId);
  // Events carry the whole job, so subscribers learn of `cancelRequestedAt` at once; one that
  // arrives after the worker's terminal event has an older version and is dropped.
  await deps.publish(requested).catch(() => {});
  return requested;
}
