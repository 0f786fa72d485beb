import type { EntityManager } from '@mikro-orm/postgresql';
import type { z } from 'zod';
import type { Config } from '../config/env.js';
import type { JobRecord, JobTrigger } from '../db/entities/job.entity.js';
import type { OverlapPolicy } from '../db/entities/schedule-setting.entity.js';
import type { Logger } from '../observability/logger.js';
import type { BlobStorage } from '../storage/blob-storage.js';

/** Per-type queue and worker options. Every field has a default; a declaration overrides what it needs. */
export interface JobTypeOptions {
  /** Attempts before a job is FAILED. (Default: 3) */
  attempts: number;
  /** Delay before the next attempt; exponential doubles it each time. (Default: exponential, 2000 ms: 2 s, 4 s, 8 s) */
  backoff: { type: 'exponential' | 'fixed'; delayMs: number };
  /** BullMQ priority for jobs of this type, 1 = highest; a job's own `priority` overrides it. (Default: none) */
  priority: number | null;
  /** Jobs of this type one worker process runs at once. (Default: 3) */
  concurrency: number;
  /** Jobs of this type running at once across every sidecar. (Default: unlimited) */
  globalConcurrency: number | null;
  /**
   * Jobs of this type one owner may have running at once, across every sidecar; the owner's next
   * one waits (PENDING, no attempt used) while other owners' jobs run. (Default: unlimited)
   */
  ownerConcurrency: number | null;
  /** At most `max` jobs started per `durationMs`. (Default: none) */
  rateLimit: { max: number; durationMs: number } | null;
  /** An attempt running longer is aborted and counts as a failure. (Default: 1 hour) */
  timeoutMs: number;
  /** Completed jobs kept in Redis; PostgreSQL keeps every job regardless. (Default: 100) */
  removeOnComplete: number;
  /** Failed jobs kept in Redis. (Default: 50) */
  removeOnFail: number;
}

export const DEFAULT_JOB_OPTIONS: JobTypeOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delayMs: 2_000 },
  priority: null,
  concurrency: 3,
  globalConcurrency: null,
  ownerConcurrency: null,
  rateLimit: null,
  timeoutMs: 60 * 60 * 1000,
  removeOnComplete: 100,
  removeOnFail: 50,
};

/** Maintenance types run at the lowest priority and one at a time across the whole deployment. */
export const MAINTENANCE_OPTIONS: Partial<JobTypeOptions> = {
  priority: 2_097_151,
  concurrency: 1,
  globalConcurrency: 1,
};

/** What a handler reports; omitted fields keep their last value. */
export interface ProgressReport {
  processed?: number | null;
  total?: number | null;
  message?: string | null;
}

/** Small structured details of a log line, e.g. `{ index: 12 }`; secret-named keys are redacted. */
export type LogFields = Record<string, unknown>;

/**
 * A job's own log, readable through `Job.logs` and `jobLogs`: what an operator needs to see why a
 * job did what it did. Never a password, a token or a message body.
 */
export interface JobLog {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/** Acting on other jobs, as the API's `cancelJob` and `retryJob` do; for the bulk type. */
export interface JobControl {
  cancel(jobId: string): Promise<JobRecord>;
  retry(jobId: string): Promise<JobRecord>;
}

/** Everything a handler may use. Handlers never touch Redis or pub/sub themselves. */
export interface JobContext {
  jobId: string;
  ownerId: string;
  trigger: JobTrigger;
  /** 1 on the first attempt. */
  attempt: number;
  /** 1 for the job's first run; each retry by hand (`retryJob`) starts the next, its attempts from 1 again. */
  run: number;
  /** This job's own entity manager (a fork): nothing is shared with other jobs. */
  em: EntityManager;
  /** Coalesced before it reaches the database and subscribers; the last report is never dropped. */
  progress(report: ProgressReport): void;
  /**
   * Shallow-merges `patch` into the job's `metadata`, coalesced like `progress`. A patch that would
   * take it past 8 KiB serialised is refused with a warning in the job's log.
   */
  setMetadata(patch: Record<string, unknown>): void;
  /** Lines stored with the job (and sent to the structured logger). */
  log: JobLog;
  /** Fires on cancellation, timeout or shutdown. */
  signal: AbortSignal;
  /** Throws when the signal fired; call it between units of work. */
  checkpoint(): void;
  logger: Logger;
  storage: BlobStorage;
  config: Config;
  /** Cancels or retries other jobs (with their events, queue entries and uploads). */
  jobs: JobControl;
}

/** The caller of an enqueue mutation, as `prepare` sees it. */
export interface EnqueueContext {
  ownerId: string;
  isAdmin: boolean;
  /** The id the job row will get, known before anything is written (e.g. to name an upload). */
  jobId: string;
  em: EntityManager;
  storage: BlobStorage;
  config: Config;
}

/** The job row's input, checked, and the account it concerns (for filtering and ownership). */
export interface PreparedJob<Input> {
  input: Input;
  accountId: string | null;
  /**
   * Undoes what `prepare` wrote (an upload, say) when the enqueue creates no job after all: the
   * idempotency key matched an earlier job, the insert failed, or the queue refused the job (its
   * row is FAILED then, and nothing will read the upload). Called at most once; its errors are
   * ignored. A `prepare` that throws cleans up its own partial writes instead. (Default: none)
   */
  discard?(): Promise<void>;
}

/** A cron schedule the sidecar keeps registered; each fire becomes a normal job row. */
export interface JobSchedule<Input> {
  /** Stable id: re-registering it replaces the previous pattern. */
  id: string;
  /** Cron pattern, in SCHEDULE_TZ. */
  cron: string;
  input: Input;
  /** A tick while the previous run is queued or running: skipped, or run beside it. (Default: ALLOW) */
  overlap?: OverlapPolicy;
}

export interface JobDeclarationSpec<Args extends z.ZodRawShape, Input, Output> {
  /** Catalogue name, e.g. `import_mbox`; also the BullMQ queue name. */
  name: string;
  /** Shown in the schema and in `jobTypes`. */
  description: string;
  /** The mutation (e.g. `importMbox`) and the concrete GraphQL type (e.g. `ImportMboxJob`). */
  graphql: {
    mutation: string;
    typeName: string;
    /** Only admins may call the mutation; declared on the field as `authScopes: { admin: true }`. (Default: false) */
    adminOnly?: boolean;
    /**
     * The mutations are written by hand in a schema module (their arguments reuse GraphQL types a
     * zod schema cannot name, e.g. `JobFilter`), `mutation` naming the main one. (Default: false)
     */
    handWrittenMutations?: boolean;
  };
  /** Unit counted by processed/total, e.g. `messages`. */
  unit: string;
  /** Arguments of the enqueue mutation (besides `options`). */
  args: z.ZodObject<Args>;
  /** The stored payload, parsed again at the worker boundary: old rows may hold old shapes. */
  input: z.ZodType<Input>;
  /** The handler's result, exposed as the typed `output` field. */
  output: z.ZodType<Output>;
  options?: Partial<JobTypeOptions>;
  /** Runs in the API: checks access, stores uploads, turns mutation arguments into the payload. */
  prepare(args: z.infer<z.ZodObject<Args>>, ctx: EnqueueContext): Promise<PreparedJob<Input>>;
  handler(input: Input, ctx: JobContext): Promise<Output>;
  /**
   * Frees what the job holds outside the database (an upload; files an attempt wrote and never
   * recorded) once the job has ended for good: COMPLETED, CANCELLED, or FAILED with no attempt left. Runs in the worker, in the
   * reconciler, and in the API for a job cancelled before it started; it must be idempotent. A
   * `retryJob` afterwards finds the thing gone and fails, so declare it only for what cannot be
   * kept forever. (Default: none)
   */
  release?(input: Input, context: ReleaseContext): Promise<void>;
  schedules?: JobSchedule<Input>[];
}

export interface JobDeclaration<Args extends z.ZodRawShape = z.ZodRawShape, Input = unknown, Output = unknown>
  extends JobDeclarationSpec<Args, Input, Output> {
  options: JobTypeOptions;
}

/** Declares a job type: one call per file under `src/jobs`, listed in `registry.ts`. */
export function defineJob<Args extends z.ZodRawShape, Input, Output>(
  spec: JobDeclarationSpec<Args, Input, Output>,
): JobDeclaration<Args, Input, Output> {
  return { ...spec, options: { ...DEFAULT_JOB_OPTIONS, ...spec.options } };
}

// biome-ignore lint/suspicious/noExplicitAny: the registry holds declarations of different argument and payload types side by side
export type AnyJobDeclaration = JobDeclaration<any, any, any>;

/** What a declaration's `release` works with: the job that ended, blob storage, and an EntityManager of its own. */
export interface ReleaseContext {
  jobId: string;
  storage: BlobStorage;
  em: EntityManager;
}

/**
 * Runs a declaration's `release` for a job that ended for good. The payload is parsed first (old
 * rows may hold old shapes); a failure is reported to `onError`, never thrown: the job's outcome
 * stands either way.
 */
export async function releaseJobInput(
  declaration: AnyJobDeclaration | undefined,
  job: { id: string; payload: unknown },
  services: { storage: BlobStorage; orm: { em: { fork(): unknown } } },
  onError: (error: unknown) => void,
): Promise<void> {
  if (!declaration?.release) return;
  const parsed = declaration.input.safeParse(job.payload);
  if (!parsed.success) return;
  try {
    await declaration.release(parsed.data, { jobId: job.id, storage: services.storage, em: services.orm.em.fork() as EntityManager });
  } catch (error) {
    onError(error);
  }
}
