import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { DelayedError, UnrecoverableError, WaitingError, Worker, type Job as BullJob } from 'bullmq';
import type { EntityManager } from '@mikro-orm/postgresql';
import { isDatabaseError } from '../db/sql.js';
import type { JobRecord } from '../db/entities/job.entity.js';
import { type AnyJobDeclaration, type JobContext, type JobControl, releaseJobInput } from '../engine/define-job.js';
import { cancelJob, retryJob } from '../engine/enqueue.js';
import { InvalidInputError, JobCancelledError, NotFoundError, PermanentJobError, toError } from '../engine/errors.js';
import { appendJobLog } from '../engine/job-log.js';
import { MAX_METADATA_BYTES } from '../engine/json-values.js';
import {
  type AttemptEnd,
  type Completion,
  completeJobs,
  expireJobs,
  findJob,
  isTerminal,
  OWNER_SLOT_WAITING,
  STALLED_ERROR,
  startJobs,
  toEventMessage,
  updateJob,
} from '../engine/job-store.js';
import { CountedLeases } from '../queue/counted-leases.js';
import { SYSTEM_OWNER } from '../jobs/rule-schedules.js';
import { topics } from '../pubsub/topics.js';
import { jobDuration, jobTransitions } from '../observability/metrics.js';
import { bullTelemetry } from '../observability/tracing.js';
import { createRedis, RedisOutages } from '../queue/redis.js';
import type { Services } from '../services.js';
import { JobLogWriter } from './job-log-writer.js';
import { GroupCommit } from '../db/group-commit.js';
import { ProgressReporter } from './progress-reporter.js';

const MAX_ERROR_LENGTH = 2_000;

/** The longest a job parked for its owner's slot waits before it looks again by itself. */
const OWNER_SLOT_MAX_PARK_MS = 30_000;

/** Past the shutdown deadline, handlers get this long to reach a checkpoint and hand their job back. */
const HAND_BACK_GRACE_MS = 5_000;

/** Thrown at a checkpoint once shutdown asked the running jobs to be handed back. */
class JobHandedBackError extends Error {
  constructor() {
    super('handed back: the worker is shutting down');
    this.name = 'JobHandedBackError';
  }
}

class JobTimeoutError extends Error {
  constructor(ms: number) {
    super(`the attempt took longer than its ${ms} ms timeout`);
    this.name = 'JobTimeoutError';
  }
}

/**
 * Runs jobs for every declared type: one BullMQ Worker per type, each processor wrapping the
 * handler with the row's lifecycle (ACTIVE → COMPLETED | FAILED | CANCELLED, or DELAYED before a
 * retry), coalesced progress, cancellation and a per-attempt timeout.
 */
export class JobRunner {
  private readonly workers = new Map<string, Worker>();
  /** Aborted when the shutdown deadline passes: running handlers hand their jobs back. */
  private readonly shutdown = new AbortController();
  /** Which worker ran an attempt, as its history shows it. */
  private readonly workerLabel = `${hostname()}:${process.pid}`;
  /** Each owner's running jobs per type, for types with `ownerConcurrency`. */
  private readonly ownerSlots: CountedLeases;
  /**
   * The two transitions every job makes, group-committed across the concurrent jobs of every type:
   * one statement and one event pipeline per batch (see GroupCommit). A job's own transitions
   * still happen in order: its completion is asked for only after its start was answered.
   */
  private readonly starts: GroupCommit<string, JobRecord | null>;
  private readonly completions: GroupCommit<Completion, JobRecord | null>;

  constructor(
    private readonly services: Services,
    private readonly declarations: readonly AnyJobDeclaration[],
  ) {
    const { config, queues } = services;
    // Every running attempt listens to it (see AttemptSignal): more than Node's default of 10 is no leak.
    setMaxListeners(0, this.shutdown.signal);
    this.ownerSlots = new CountedLeases(queues.connection, `${config.REDIS_PREFIX}:owner-slots`, { ttlMs: 2 * config.STALLED_INTERVAL_MS });
    // Plain statements on the shared connection pool: no entity is loaded. A fork all the same: the
    // global EntityManager would run a batch in the transaction, if any, of whichever job started it.
    const em = services.orm.em.fork() as EntityManager;
    this.starts = new GroupCommit(
      async (ids) => this.announced(ids, await startJobs(em, ids, this.workerLabel)),
      (id) => id,
    );
    this.completions = new GroupCommit(
      async (ends) =>
        this.announced(
          ends.map((end) => end.id),
          await completeJobs(em, ends),
        ),
      (end) => end.id,
    );
  }

  /**
   * The rows a batch wrote, in the order of `ids` (null: refused), with their events sent. The
   * jobs go on without waiting for Redis: every event leaves on the one publisher connection in
   * the order it was sent, so a job's next event still follows this one.
   */
  private announced(ids: readonly string[], written: Map<string, JobRecord>): (JobRecord | null)[] {
    void this.publishAll([...written.values()]);
    return ids.map((id) => written.get(id) ?? null);
  }

  async start(): Promise<void> {
    const { config, logger } = this.services;
    // One report for the connections of every type's worker: an outage is the same for all of them.
    const outages = new RedisOutages(logger, `${config.REDIS_PREFIX}:workers`);
    for (const declaration of this.declarations) {
      const { options } = declaration;
      const worker = new Worker(declaration.name, (job, token, signal) => this.process(declaration, job, token, signal), {
        connection: outages.watch(createRedis(config.REDIS_URL, { connectionName: `${config.REDIS_PREFIX}:worker:${declaration.name}` })),
        prefix: config.REDIS_PREFIX,
        concurrency: options.concurrency,
        stalledInterval: config.STALLED_INTERVAL_MS,
        lockDuration: config.STALLED_INTERVAL_MS,
        maxStalledCount: options.attempts,
        ...(options.rateLimit ? { limiter: { max: options.rateLimit.max, duration: options.rateLimit.durationMs } } : {}),
        autorun: false,
        ...bullTelemetry(),
      });
      worker.on('error', outages.errors('worker error', { type: declaration.name }));
      if (options.globalConcurrency !== null) {
        await this.services.queues.get(declaration.name).setGlobalConcurrency(options.globalConcurrency);
      }
      this.workers.set(declaration.name, worker);
      void worker.run();
    }
    await Promise.all([...this.workers.values()].map((worker) => worker.waitUntilReady()));
  }

  /** The job types this runner consumes, one BullMQ worker each. */
  get types(): string[] {
    return [...this.workers.keys()];
  }

  /** Aborts a job if this process is running it; returns whether it was. */
  cancel(jobId: string): boolean {
    let found = false;
    for (const worker of this.workers.values()) found = worker.cancelJob(jobId, 'cancelled') || found;
    return found;
  }

  /**
   * Stops fetching new jobs and waits for running ones up to `deadlineMs`. Past it, running
   * handlers are aborted and their jobs moved back to the queue (row PENDING) at their next
   * checkpoint, so another worker takes them at once; a handler that reaches no checkpoint within
   * HAND_BACK_GRACE_MS is left to BullMQ's stall detection.
   */
  async close(deadlineMs: number): Promise<void> {
    const closing = Promise.all([...this.workers.values()].map((worker) => worker.close())).then(() => 'closed' as const);
    if ((await within(closing, deadlineMs)) === 'closed') return;
    this.services.logger.warn({ deadlineMs }, 'shutdown deadline reached; handing running jobs back');
    this.shutdown.abort();
    if ((await within(closing, HAND_BACK_GRACE_MS)) === 'closed') return;
    this.services.logger.warn('some handlers reached no checkpoint; their jobs will be retried after the stall interval');
    await Promise.all([...this.workers.values()].map((worker) => worker.close(true)));
  }

  private async publish(job: JobRecord): Promise<void> {
    await this.publishAll([job]);
  }

  /** Counts the transitions and announces them, in one round trip; a failed announcement is logged, never thrown. */
  private async publishAll(jobs: readonly JobRecord[]): Promise<void> {
    if (jobs.length === 0) return;
    try {
      for (const job of jobs) {
        jobTransitions.labels(job.type, job.status).inc();
        if (
          job.startedAt &&
          (job.status === 'COMPLETED' || job.status === 'FAILED' || job.status === 'CANCELLED' || job.status === 'DELAYED')
        ) {
          jobDuration.labels(job.type, job.status).observe((Date.now() - job.startedAt.getTime()) / 1000);
        }
      }
      await this.services.pubsub.publishJobEvents(jobs.map(toEventMessage));
    } catch (error) {
      this.services.logger.warn({ jobIds: jobs.map((job) => job.id), err: error }, 'could not publish job events');
    }
  }

  /** Runs a job, first taking one of its owner's slots for the type when the type limits them. */
  private async process(
    declaration: AnyJobDeclaration,
    bullJob: BullJob,
    token: string | undefined,
    cancelSignal?: AbortSignal,
  ): Promise<unknown> {
    const limit = declaration.options.ownerConcurrency;
    if (limit === null) return this.run(declaration, bullJob, token, cancelSignal);
    const slot = await this.takeOwnerSlot(declaration, bullJob, token, limit);
    try {
      return await this.run(declaration, bullJob, token, cancelSignal);
    } finally {
      if (slot) {
        await slot.lease.release();
        await this.wakeParked(declaration.name, slot.ownerId).catch((error) =>
          this.services.logger.warn({ err: error, type: declaration.name }, 'could not wake a job waiting for its owner slot'),
        );
      }
    }
  }

  /**
   * One of the job's owner's `limit` slots for its type, held (and kept alive) while it runs; a
   * crashed worker's slot lapses after twice the stall interval. With none free, the job is parked:
   * back in the queue, delayed (no attempt used, its row still waiting, other owners' jobs free to
   * run), and listed for its owner, so the job that frees a slot wakes the oldest parked one; the
   * delay only covers a slot that lapsed instead. Null when the row is gone or final (the run
   * explains it).
   */
  private async takeOwnerSlot(declaration: AnyJobDeclaration, bullJob: BullJob, token: string | undefined, limit: number) {
    const jobId = bullJob.id!;
    const em = this.services.orm.em.fork() as EntityManager;
    const row = await findJob(em, jobId);
    if (!row || isTerminal(row.status)) return null;
    const group = `${declaration.name}:${row.ownerId}`;
    const outcome = await this.ownerSlots.acquire(group, limit);
    if (outcome.granted) {
      outcome.lease.keepAlive();
      return { lease: outcome.lease, ownerId: row.ownerId };
    }
    if (!row.message?.startsWith(OWNER_SLOT_WAITING)) {
      const message = `${OWNER_SLOT_WAITING} its owner already runs ${limit} ${declaration.name} job${limit === 1 ? '' : 's'} (ownerConcurrency)`;
      const updated = await updateJob(em, jobId, { message }, ['PENDING', 'DELAYED']);
      if (updated) await this.publish(updated);
    }
    const parked = this.parkedKey(declaration.name, row.ownerId);
    const redis = this.services.queues.connection;
    await redis
      .multi()
      .lrem(parked, 0, jobId)
      .rpush(parked, jobId)
      .pexpire(parked, this.parkMs * 4)
      .exec();
    await bullJob.moveToDelayed(Date.now() + this.parkMs, token);
    // A slot freed between the refusal and the parking woke nobody: take the turn now.
    if ((await this.ownerSlots.held(group)) < limit) await this.wakeParked(declaration.name, row.ownerId);
    throw new DelayedError();
  }

  /** Moves the owner's oldest parked job of the type (still waiting) back to the queue now. */
  private async wakeParked(type: string, ownerId: string): Promise<void> {
    const redis = this.services.queues.connection;
    const queue = this.services.queues.get(type);
    for (;;) {
      const jobId = await redis.lpop(this.parkedKey(type, ownerId));
      if (!jobId) return;
      const job = await queue.getJob(jobId);
      // Cancelled, or already woken by its delay: try the next one.
      if (!job || !(await job.isDelayed())) continue;
      await job.promote();
      return;
    }
  }

  private parkedKey(type: string, ownerId: string): string {
    return `${this.services.config.REDIS_PREFIX}:owner-parked:${type}:${ownerId}`;
  }

  /** How long a parked job waits at most: a slot that lapsed (its worker crashed) wakes nobody. */
  private get parkMs(): number {
    return Math.min(OWNER_SLOT_MAX_PARK_MS, 2 * this.services.config.STALLED_INTERVAL_MS);
  }

  private async run(
    declaration: AnyJobDeclaration,
    bullJob: BullJob,
    token: string | undefined,
    cancelSignal?: AbortSignal,
  ): Promise<unknown> {
    const { orm, config, storage } = this.services;
    const jobId = bullJob.id!;
    const logger = this.services.logger.child({ jobId, type: declaration.name });
    let runnerEm: EntityManager | undefined;
    // Forked on first use: a job that starts and completes in the group commits never needs one.
    const em = () => {
      runnerEm ??= orm.em.fork() as EntityManager;
      return runnerEm;
    };

    // One statement (shared with other jobs starting now) in the common case, its event published
    // with it; the row is read only to explain a refusal.
    const active = await this.starts.submit(jobId);
    if (!active) {
      const row = await findJob(em(), jobId);
      if (!row) throw new UnrecoverableError(`job row ${jobId} does not exist`);
      if (row.status === 'COMPLETED' || row.status === 'FAILED' || row.status === 'CANCELLED') {
        logger.info({ status: row.status }, 'row already final; skipping');
        return row.result;
      }
      if (!row.cancelRequestedAt) {
        // Not started before its expiry: the sweep would have ended it soon; this worker does it now.
        for (const expired of await expireJobs(em(), { id: jobId })) {
          await this.publish(expired);
          await this.release(declaration, expired, logger);
          logger.info('job expired before it started');
        }
        return undefined;
      }
      // Cancelled while queued after a stall: the attempt left open is the stalled one.
      if (await this.finishCancelled(em(), jobId, logger, { outcome: 'STALLED', error: STALLED_ERROR })) {
        await this.release(declaration, row, logger);
      }
      return undefined;
    }
    const attempt = active.attempts;
    // Every write of this attempt is refused once a newer one has started: BullMQ found this one
    // stalled (its lock lapsed) and handed the job on, and the newer attempt now owns the row.
    const thisAttempt = { run: active.run, attempt };
    logger.info({ attempt }, 'job started');

    const shutdown = this.shutdown.signal;
    const attemptEnds = new AttemptSignal(declaration.options.timeoutMs, [cancelSignal, shutdown]);
    const timeout = attemptEnds.timeout;
    const reporter = new ProgressReporter(
      async (state) => {
        const updated = await updateJob(em(), jobId, state, ['ACTIVE'], undefined, thisAttempt);
        if (updated) await this.publish(updated);
      },
      config.PROGRESS_INTERVAL_MS,
      (error) => logger.warn({ err: error }, 'progress write failed; the job goes on'),
      active.metadata,
    );
    const jobLog = new JobLogWriter(
      { run: active.run, attempt },
      async (lines, alreadyDropped) => {
        await appendJobLog(em(), jobId, lines, config.JOB_LOG_MAX_LINES, alreadyDropped);
        await this.services.pubsub.publish(topics.jobLog(jobId), { jobId }).catch(() => {});
      },
      logger,
      config.JOB_LOG_MAX_LINES,
      config.PROGRESS_INTERVAL_MS,
      (error) => logger.warn({ err: error }, 'job log write failed; the job goes on'),
    );
    /** Both writers flushed, so a line or a report never lands after the row's next state. */
    const flushWriters = () => Promise.all([reporter.close(), jobLog.close()]);

    let handlerEm: EntityManager | undefined;
    let jobs: JobControl | undefined;
    const jobControl = () => {
      jobs ??= this.jobControl(orm.em.fork() as EntityManager);
      return jobs;
    };
    const ctx: JobContext = {
      jobId,
      ownerId: active.ownerId,
      trigger: active.trigger,
      attempt,
      run: active.run,
      // Forked on first use: most handlers never touch one of them, and a fork costs more than a no-op job.
      get em(): EntityManager {
        handlerEm ??= orm.em.fork() as EntityManager;
        return handlerEm;
      },
      progress: (report) => reporter.report(report),
      setMetadata: (patch) => {
        if (!reporter.setMetadata(patch)) {
          jobLog.log.warn(`metadata update refused: the metadata would exceed ${MAX_METADATA_BYTES} bytes serialised`, {
            keys: Object.keys(patch).slice(0, 20),
          });
        }
      },
      log: jobLog.log,
      get signal(): AbortSignal {
        return attemptEnds.signal;
      },
      checkpoint: () => {
        if (cancelSignal?.aborted) throw new JobCancelledError();
        if (timeout.aborted) throw new JobTimeoutError(declaration.options.timeoutMs);
        if (shutdown.aborted) throw new JobHandedBackError();
      },
      logger,
      storage,
      config,
      get jobs(): JobControl {
        return jobControl();
      },
    };

    try {
      const parsed = declaration.input.safeParse(active.payload);
      if (!parsed.success) {
        throw new PermanentJobError(`invalid payload: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      }
      const output = await declaration.handler(parsed.data, ctx);
      await flushWriters();
      const last = reporter.current;
      // Published with the rest of its batch; refused (null) when a cancel or a stall got there first.
      const completed = await this.completions.submit({
        id: jobId,
        ...thisAttempt,
        processed: last.processed,
        total: last.total ?? last.processed,
        result: output ?? null,
      });
      // Only the attempt that ended the job frees its input: a refused one may be a stale attempt
      // whose job a newer attempt is running.
      if (completed) {
        await this.release(declaration, active, logger);
        logger.info('job completed');
      } else logger.info('attempt completed, not recorded: the job was cancelled or a newer attempt has started');
      return output;
    } catch (thrown) {
      await flushWriters();
      const error = toError(thrown);
      if (cancelSignal?.aborted || error instanceof JobCancelledError) {
        if (await this.finishCancelled(em(), jobId, logger, { outcome: 'CANCELLED', number: attempt })) {
          await this.release(declaration, active, logger);
        }
        return undefined;
      }
      if (shutdown.aborted && !timeout.aborted) {
        const pending = await updateJob(
          em(),
          jobId,
          { status: 'PENDING', message: 'handed back: the worker shut down' },
          ['ACTIVE'],
          { outcome: 'HANDED_BACK', number: attempt },
          thisAttempt,
        );
        await bullJob.moveToWait(token);
        if (pending) await this.publish(pending);
        logger.info({ attempt }, 'job handed back to the queue at shutdown');
        // Tells BullMQ the job is no longer this worker's: neither completed nor failed.
        throw new WaitingError();
      }
      const message = publicErrorMessage(timeout.aborted ? new JobTimeoutError(declaration.options.timeoutMs) : error);
      const permanent = error instanceof PermanentJobError || error instanceof UnrecoverableError;
      const last = permanent || attempt >= declaration.options.attempts;
      const attemptEnd: AttemptEnd = {
        outcome: timeout.aborted ? 'TIMED_OUT' : last ? 'FAILED' : 'RETRIED',
        error: message,
        number: attempt,
      };
      if (last) {
        const failed = await updateJob(
          em(),
          jobId,
          { status: 'FAILED', error: message, finishedAt: new Date() },
          ['ACTIVE'],
          attemptEnd,
          thisAttempt,
        );
        if (failed) {
          await this.publish(failed);
          await this.release(declaration, active, logger);
        }
        logger.warn({ err: loggable(error), attempt }, 'job failed');
        throw new UnrecoverableError(message);
      }
      const delay = backoffDelay(declaration, config.BACKOFF_SCALE, attempt);
      const waiting = await updateJob(
        em(),
        jobId,
        { status: 'DELAYED', error: message, runAt: new Date(Date.now() + delay) },
        ['ACTIVE'],
        attemptEnd,
        thisAttempt,
      );
      if (waiting) await this.publish(waiting);
      logger.warn({ err: loggable(error), attempt, retryInMs: delay }, 'attempt failed; will retry');
      throw error;
    } finally {
      attemptEnds.dispose();
    }
  }

  /** What a handler's `ctx.jobs` does: the API's cancelJob and retryJob, from the worker. */
  private jobControl(em: EntityManager): JobControl {
    const { services } = this;
    const deps = {
      em,
      queues: services.queues,
      storage: services.storage,
      config: services.config,
      publish: (job: JobRecord) => this.publish(job),
      release: (job: JobRecord) =>
        releaseJobInput(this.declarationOf(job.type), job, services, (error) =>
          services.logger.warn({ jobId: job.id, err: error }, 'could not release the input of a cancelled job'),
        ),
      requestAbort: (jobId: string) => services.pubsub.publish(topics.cancel(), { jobId }),
    };
    return {
      cancel: (jobId) => cancelJob(deps, jobId),
      retry: async (jobId) => {
        const job = await findJob(em, jobId);
        if (!job) throw new NotFoundError('job', jobId);
        const declaration = this.declarationOf(job.type);
        if (!declaration) throw new InvalidInputError(`job type ${job.type} is no longer in the catalogue`);
        // Each owner's cap on unfinished jobs holds for retries by the hundred too (the rate is the bulk job's own).
        if (job.ownerId !== SYSTEM_OWNER) await services.quotas.checkUnfinished(em, job.ownerId);
        return retryJob(deps, declaration, jobId);
      },
    };
  }

  private declarationOf(type: string): AnyJobDeclaration | undefined {
    return this.declarations.find((declaration) => declaration.name === type);
  }

  /** Frees the job's input (an upload) once it ended for good; see `release` on the declaration. */
  private async release(declaration: AnyJobDeclaration, job: JobRecord, logger: JobContext['logger']): Promise<void> {
    await releaseJobInput(declaration, job, this.services, (error) => logger.warn({ err: error }, 'could not release the job input'));
  }

  /** Ends the job CANCELLED; BullMQ sees a successful no-op, so nothing retries it. */
  private async finishCancelled(
    em: EntityManager,
    jobId: string,
    logger: JobContext['logger'],
    attemptEnd: AttemptEnd,
  ): Promise<JobRecord | null> {
    const cancelled = await updateJob(
      em,
      jobId,
      { status: 'CANCELLED', finishedAt: new Date(), message: 'cancelled' },
      ['PENDING', 'DELAYED', 'ACTIVE'],
      attemptEnd,
    );
    if (cancelled) await this.publish(cancelled);
    logger.info('job cancelled');
    return cancelled;
  }
}

/** Driver errors quote the whole statement, message bodies included; the log gets the gist. */
function loggable(error: Error): Error | { type: string; message: string; code?: unknown } {
  if (!isDatabaseError(error)) return error;
  const code = (error as { code?: unknown }).code;
  return { type: error.name, code, message: error.message.split(' - ').at(-1)!.slice(0, 500) };
}

/** What the row and subscribers are told: the message, bounded; never SQL or data from a driver error. */
function publicErrorMessage(error: Error): string {
  if (isDatabaseError(error)) return 'internal error: a database operation failed (details are in the worker log)';
  return error.message.slice(0, MAX_ERROR_LENGTH);
}

/** The delay BullMQ applies before the next attempt, mirrored for the row's `runAt`. */
function backoffDelay(declaration: AnyJobDeclaration, scale: number, attempt: number): number {
  const base = Math.max(1, Math.round(declaration.options.backoff.delayMs * scale));
  return declaration.options.backoff.type === 'fixed' ? base : base * 2 ** (attempt - 1);
}

/**
 * The signal a handler gets: aborted by a cancel, the attempt's timeout or the shutdown deadline,
 * whichever comes first. One timer, and the controller and its listeners only once the handler
 * asks for the signal: AbortSignal.timeout with AbortSignal.any, or even one eager controller per
 * attempt, cost a no-op job more than its row writes.
 */
class AttemptSignal {
  private controller: AbortController | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly sources: AbortSignal[];
  private listening = false;
  /** Why the attempt ended, once it did (the first source to abort, or the timeout). */
  private ended: { reason: unknown } | null = null;
  private readonly follow = (event: Event) => this.end((event.target as AbortSignal).reason);
  /** Whether the timeout is what ended the attempt (`aborted`, as AbortSignal.timeout's would say). */
  readonly timeout = { aborted: false };

  constructor(timeoutMs: number, sources: (AbortSignal | undefined)[]) {
    this.sources = sources.filter((source): source is AbortSignal => source !== undefined);
    this.timer = setTimeout(() => {
      this.timeout.aborted = true;
      this.end(this.abortedSource()?.reason ?? new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
    }, timeoutMs).unref();
  }

  get signal(): AbortSignal {
    if (this.controller) return this.controller.signal;
    this.controller = new AbortController();
    const aborted = this.abortedSource();
    if (aborted) this.end(aborted.reason);
    if (this.ended) this.controller.abort(this.ended.reason);
    else {
      for (const source of this.sources) source.addEventListener('abort', this.follow, { once: true });
      this.listening = true;
    }
    return this.controller.signal;
  }

  /** Stops the timer and the listening, once the attempt is over. */
  dispose(): void {
    clearTimeout(this.timer);
    if (this.listening) for (const source of this.sources) source.removeEventListener('abort', this.follow);
  }

  private end(reason: unknown): void {
    if (this.ended) return;
    this.ended = { reason };
    this.controller?.abort(reason);
  }

  private abortedSource(): AbortSignal | undefined {
    return this.sources.find((source) => source.aborted);
  }
}

/** Whether `promise` settles within `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
