import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { JobsOptions } from 'bullmq';
import type { Config } from '../config/env.js';
import type { JobRecord, JobTrigger } from '../db/entities/job.entity.js';
import type { JobQueues } from '../queue/job-queues.js';
import type { BlobStorage } from '../storage/blob-storage.js';
import type { AnyJobDeclaration } from './define-job.js';
import { InvalidInputError, InvalidStateError, NotFoundError } from './errors.js';
import { findJob, insertJob, isTerminal, updateJob } from './job-store.js';

/** Per-call options of every enqueue mutation. */
export interface EnqueueOptions {
  /** BullMQ priority, 1 = highest, up to 2,097,151. (Default: the type's priority) */
  priority?: number | null;
  /** Run no earlier than this many milliseconds from now; the job is DELAYED until then. (Default: 0) */
  delayMs?: number | null;
  /** A second enqueue with the same key by the same owner returns the first job. (Default: none) */
  idempotencyKey?: string | null;
}

/** What enqueueing needs; `publish` announces each state change to subscribers. */
export interface EnqueueDeps {
  em: EntityManager;
  queues: JobQueues;
  storage: BlobStorage;
  config: Config;
  publish(job: JobRecord): Promise<void>;
}

export interface EnqueueRequest {
  declaration: AnyJobDeclaration;
  args: Record<string, unknown>;
  ownerId: string;
  isAdmin: boolean;
  trigger: JobTrigger;
  options?: EnqueueOptions;
}

const MAX_PRIORITY = 2_097_151;
const MAX_DELAY_MS = 365 * 24 * 3600 * 1000;

function checkOptions(options: EnqueueOptions): void {
  const { priority, delayMs, idempotencyKey } = options;
  if (priority != null && (!Number.isInteger(priority) || priority < 1 || priority > MAX_PRIORITY)) {
    throw new InvalidInputError(`priority must be an integer from 1 (highest) to ${MAX_PRIORITY}`);
  }
  if (delayMs != null && (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS)) {
    throw new InvalidInputError(`delayMs must be an integer from 0 to ${MAX_DELAY_MS}`);
  }
  if (idempotencyKey != null && (idempotencyKey.length < 1 || idempotencyKey.length > 255)) {
    throw new InvalidInputError('idempotencyKey must be 1 to 255 characters');
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
 */
export async function enqueueJob(deps: EnqueueDeps, request: EnqueueRequest): Promise<JobRecord> {
  const { declaration, ownerId } = request;
  const options = request.options ?? {};
  checkOptions(options);

  const parsedArgs = declaration.args.safeParse(request.args);
  if (!parsedArgs.success) {
    throw new InvalidInputError(parsedArgs.error.issues.map((issue) => `${issue.path.join('.') || 'input'}: ${issue.message}`).join('; '));
  }

  const id = randomUUID();
  const prepared = await declaration.prepare(parsedArgs.data, {
    ownerId,
    isAdmin: request.isAdmin,
    jobId: id,
    em: deps.em,
    storage: deps.storage,
    config: deps.config,
  });

  const delayMs = options.delayMs ?? 0;
  const priority = options.priority ?? declaration.options.priority;
  const { job, created } = await insertJob(deps.em, {
    id,
    type: declaration.name,
    status: delayMs > 0 ? 'DELAYED' : 'PENDING',
    maxAttempts: declaration.options.attempts,
    priority,
    payload: prepared.input as Record<string, unknown>,
    trigger: request.trigger,
    idempotencyKey: options.idempotencyKey ?? null,
    ownerId,
    accountId: prepared.accountId,
    runAt: delayMs > 0 ? new Date(Date.now() + delayMs) : null,
  });
  if (!created) return job;

  return addToQueue(deps, declaration, job, delayMs);
}

async function addToQueue(deps: EnqueueDeps, declaration: AnyJobDeclaration, job: JobRecord, delayMs: number): Promise<JobRecord> {
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
  await deps.publish(job).catch(() => {});
  return job;
}

/** Runs a FAILED or CANCELLED job again under the same id, with trigger RETRY and fresh attempts. */
export async function retryJob(deps: EnqueueDeps, declaration: AnyJobDeclaration, jobId: string): Promise<JobRecord> {
  const current = await findJob(deps.em, jobId);
  if (!current) throw new NotFoundError('job', jobId);
  if (current.status !== 'FAILED' && current.status !== 'CANCELLED') {
    throw new InvalidStateError(`only a FAILED or CANCELLED job can be retried; this one is ${current.status}`);
  }
  // BullMQ may still keep the finished job under this id, and would ignore a new add with it.
  await deps.queues.get(declaration.name).remove(jobId).catch(() => 0);
  const reset = await updateJob(
    deps.em,
    jobId,
    {
      status: 'PENDING',
      trigger: 'RETRY',
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
export async function cancelJob(
  deps: EnqueueDeps & { requestAbort(jobId: string): Promise<void> },
  jobId: string,
): Promise<JobRecord> {
  const current = await findJob(deps.em, jobId);
  if (!current) throw new NotFoundError('job', jobId);
  if (isTerminal(current.status)) return current;

  // remove() refuses a job a worker holds the lock of, so this only succeeds while it is queued.
  const removed = await deps.queues.get(current.type).remove(jobId).catch(() => 0);
  if (removed === 1) {
    const cancelled = await updateJob(
      deps.em,
      jobId,
      { status: 'CANCELLED', cancelRequestedAt: new Date(), finishedAt: new Date(), message: 'cancelled before it started' },
      ['PENDING', 'DELAYED'],
    );
    if (cancelled) {
      await deps.publish(cancelled).catch(() => {});
      return cancelled;
    }
  }

  const requested = await updateJob(deps.em, jobId, { cancelRequestedAt: new Date() }, ['PENDING', 'DELAYED', 'ACTIVE']);
  if (!requested) return (await findJob(deps.em, jobId))!;
  await deps.requestAbort(jobId);
  // No event here: it would show nothing new to subscribers (events carry no cancelRequestedAt),
  // and it could reach them after the worker's terminal event, leaving dashboards on a stale state.
  return requested;
}
