import type { EntityManager } from '@mikro-orm/postgresql';
import { Queue, Worker, type Job as BullJob } from 'bullmq';
import { Rule } from '../db/entities/rule.entity.js';
import type { AnyJobDeclaration } from '../engine/define-job.js';
import { enqueueJob, type EnqueueDeps } from '../engine/enqueue.js';
import { NotFoundError } from '../engine/errors.js';
import { toEventMessage } from '../engine/job-store.js';
import { hasUnfinishedRun, loadSystemSchedules, scheduleTag, unknownScheduleOverrides } from '../engine/schedules.js';
import { topics } from '../pubsub/topics.js';
import {
  RUN_RULE_TYPE,
  SCHEDULE_QUEUE,
  SYSTEM_OWNER,
  TICK_JOB_OPTIONS,
  ruleIdOfScheduler,
  ruleSchedulerId,
  upsertRuleScheduler,
  type TickData,
} from '../jobs/rule-schedules.js';
import { createRedis, RedisOutages } from '../queue/redis.js';
import type { Services } from '../services.js';

export { SCHEDULE_QUEUE, SYSTEM_OWNER };

/** What one pass of {@link Scheduler.syncRuleSchedules} changed. */
export interface RuleScheduleSync {
  upserted: number;
  removed: number;
}

/**
 * Cron schedules as data. On start the sidecar upserts every declared schedule and removes the
 * ones no longer declared; saved rules' schedules (`rule:<id>`) are synced from the `rule` table
 * at start and every RECONCILE_INTERVAL_MS, so a lost or failed scheduler write heals by itself.
 * BullMQ derives each tick's id from the scheduler id and the tick time, so however many sidecars
 * run, a tick exists once; its job row's idempotency key is that id, so even a retried tick
 * enqueues once.
 */
export class Scheduler {
  private queue: Queue<TickData> | null = null;
  private worker: Worker<TickData> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private syncing: Promise<unknown> | null = null;
  private stopListening: (() => void) | null = null;

  constructor(
    private readonly services: Services,
    private readonly declarations: readonly AnyJobDeclaration[],
  ) {}

  async start(): Promise<void> {
    const { config, logger } = this.services;
    for (const id of unknownScheduleOverrides(this.declarations, config)) {
      logger.warn({ id }, 'SCHEDULE_OVERRIDES names no schedule of the catalogue; ignored');
    }
    // Both connections' outages as one; without an 'error' listener, the queue's would go to stderr.
    const outages = new RedisOutages(logger, `${config.REDIS_PREFIX}:scheduler`);
    const connection = outages.watch(createRedis(config.REDIS_URL, { connectionName: `${config.REDIS_PREFIX}:scheduler` }));
    this.queue = new Queue<TickData>(SCHEDULE_QUEUE, { connection, prefix: config.REDIS_PREFIX });
    this.queue.on('error', outages.errors('scheduler queue error'));
    await this.syncSystemSchedules({ force: true });
    await this.syncRuleSchedules().catch((error) => logger.warn({ err: error }, 'rule schedules not synced at start'));

    this.worker = new Worker<TickData>(SCHEDULE_QUEUE, (tick) => this.fire(tick), {
      connection: outages.watch(createRedis(config.REDIS_URL, { connectionName: `${config.REDIS_PREFIX}:scheduler-worker` })),
      prefix: config.REDIS_PREFIX,
      concurrency: 1,
    });
    this.worker.on('error', outages.errors('scheduler error'));

    // A change made through the API reaches every sidecar at once; the timer heals what a lost message or a failed write left.
    const resyncNow = () => {
      this.syncing = Promise.all([this.syncSystemSchedules(), this.syncRuleSchedules()]).catch((error) =>
        logger.warn({ err: error }, 'schedule sync failed'),
      );
    };
    this.stopListening = await this.services.pubsub.listen(topics.schedules(), () => resyncNow());
    const resync = () => {
      this.syncing = Promise.all([this.syncSystemSchedules(), this.syncRuleSchedules()])
        .catch((error) => logger.warn({ err: error }, 'schedule sync failed'))
        .finally(() => {
          this.syncing = null;
          if (this.timer) this.timer = setTimeout(resync, config.RECONCILE_INTERVAL_MS);
        });
    };
    this.timer = setTimeout(resync, config.RECONCILE_INTERVAL_MS);
  }

  /**
   * Makes the job schedulers of the catalogue's schedules match their settings in effect: one per
   * enabled schedule with its current pattern and time zone, none for a disabled one, and none
   * for a schedule no longer declared. `force` writes every enabled one even when Redis already
   * agrees (at start: a sidecar registers what it runs).
   */
  async syncSystemSchedules({ force = false } = {}): Promise<void> {
    const queue = this.queue;
    if (!queue) return;
    const { logger } = this.services;
    const schedules = await loadSystemSchedules(
      this.services.orm.em.fork() as EntityManager,
      this.declarations,
      this.services.config,
      SYSTEM_OWNER,
    );
    const existing = new Map<string, { pattern: string | null; tz: string | null }>();
    for (const scheduler of await queue.getJobSchedulers()) {
      if (scheduler.key && !ruleIdOfScheduler(scheduler.key))
        existing.set(scheduler.key, { pattern: scheduler.pattern ?? null, tz: scheduler.tz ?? null });
    }
    for (const schedule of schedules) {
      const current = existing.get(schedule.id);
      existing.delete(schedule.id);
      if (!schedule.enabled) {
        if (current) {
          await queue.removeJobScheduler(schedule.id);
          logger.info({ schedule: schedule.id }, 'schedule disabled');
        }
        continue;
      }
      if (!force && current && current.pattern === schedule.cron && current.tz === schedule.timezone) continue;
      await queue.upsertJobScheduler(
        schedule.id,
        { pattern: schedule.cron, tz: schedule.timezone },
        {
          name: schedule.jobType,
          data: { type: schedule.jobType, input: schedule.input },
          opts: { ...TICK_JOB_OPTIONS, backoff: { ...TICK_JOB_OPTIONS.backoff } },
        },
      );
      logger.info({ schedule: schedule.id, pattern: schedule.cron, tz: schedule.timezone }, 'schedule registered');
    }
    for (const stale of existing.keys()) {
      await queue.removeJobScheduler(stale);
      logger.info({ schedule: stale }, 'stale schedule removed');
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.stopListening?.();
    await this.syncing;
    await this.worker?.close();
    await this.queue?.close();
  }

  /**
   * Makes the `rule:<id>` job schedulers match the saved rules: one per enabled rule with a
   * schedule, with its current pattern, and none for any other. Before changing a scheduler the
   * rule is read again, so a save committed during the pass is not undone.
   */
  async syncRuleSchedules(): Promise<RuleScheduleSync> {
    const queue = this.queue;
    if (!queue) return { upserted: 0, removed: 0 };
    const { config, logger } = this.services;
    const em = this.services.orm.em.fork() as EntityManager;
    const connection = em.getConnection();
    const scheduled = async (ruleId: string): Promise<string | null> => {
      const rows: { schedule: string }[] = await connection.execute(
        'SELECT schedule FROM rule WHERE id = ? AND enabled AND schedule IS NOT NULL',
        [ruleId],
        'all',
      );
      return rows[0]?.schedule ?? null;
    };

    const rows: { id: string; schedule: string }[] = await connection.execute(
      'SELECT id, schedule FROM rule WHERE enabled AND schedule IS NOT NULL',
      [],
      'all',
    );
    const wanted = new Map(rows.map((row) => [row.id, row.schedule]));
    const existing = new Map<string, { pattern: string | null; tz: string | null }>();
    for (const scheduler of await queue.getJobSchedulers()) {
      const ruleId = ruleIdOfScheduler(scheduler.key);
      if (ruleId) existing.set(ruleId, { pattern: scheduler.pattern ?? null, tz: scheduler.tz ?? null });
    }

    const result: RuleScheduleSync = { upserted: 0, removed: 0 };
    for (const [ruleId, pattern] of wanted) {
      const current = existing.get(ruleId);
      if (current && current.pattern === pattern && current.tz === config.SCHEDULE_TZ) continue;
      const fresh = await scheduled(ruleId);
      if (fresh === null) continue;
      await upsertRuleScheduler(queue, config, ruleId, fresh);
      result.upserted++;
      logger.info({ schedule: ruleSchedulerId(ruleId), pattern: fresh }, 'rule schedule registered');
    }
    for (const ruleId of existing.keys()) {
      if (wanted.has(ruleId) || (await scheduled(ruleId)) !== null) continue;
      await queue.removeJobScheduler(ruleSchedulerId(ruleId));
      result.removed++;
      logger.info({ schedule: ruleSchedulerId(ruleId) }, 'rule schedule removed');
    }
    return result;
  }

  private deps(em: EntityManager): EnqueueDeps {
    const { services } = this;
    return {
      em,
      queues: services.queues,
      storage: services.storage,
      config: services.config,
      publish: (record) => services.pubsub.publishJobEvent(toEventMessage(record)),
    };
  }

  private declaration(type: string): AnyJobDeclaration {
    const declaration = this.declarations.find((candidate) => candidate.name === type);
    if (!declaration) throw new Error(`schedule for unknown job type ${type}`);
    return declaration;
  }

  /**
   * A system schedule's tick: enqueues its job as the system, with trigger SCHEDULE, unless the
   * schedule was disabled meanwhile or (SKIP_IF_RUNNING) its previous run is still going.
   */
  private async fire(tick: BullJob<TickData>): Promise<string | null> {
    const ruleId = tick.data.ruleId ?? ruleIdOfScheduler(tick.repeatJobKey);
    if (ruleId) return this.fireRule(tick, ruleId);

    const { logger } = this.services;
    const em = this.services.orm.em.fork() as EntityManager;
    const schedules = await loadSystemSchedules(em, this.declarations, this.services.config, SYSTEM_OWNER);
    const schedule = schedules.find((candidate) => candidate.id === tick.repeatJobKey);
    if (schedule && !schedule.enabled) {
      logger.info({ schedule: schedule.id, tick: tick.id }, 'tick of a disabled schedule; skipped');
      return null;
    }
    if (schedule?.overlap === 'SKIP_IF_RUNNING' && (await hasUnfinishedRun(em, schedule))) {
      logger.info({ schedule: schedule.id, tick: tick.id }, 'previous run still queued or running; tick skipped');
      return null;
    }
    const declaration = this.declaration(tick.data.type);
    const job = await enqueueJob(this.deps(em), {
      declaration,
      args: tick.data.input,
      ownerId: SYSTEM_OWNER,
      isAdmin: true,
      trigger: 'SCHEDULE',
      options: { idempotencyKey: `schedule:${tick.id}`, tags: tick.repeatJobKey ? [scheduleTag(tick.repeatJobKey)] : [] },
    });
    logger.info({ jobId: job.id, type: declaration.name, tick: tick.id }, 'scheduled job enqueued');
    return job.id;
  }

  /**
   * A saved rule's tick: runs the rule as its owner, with trigger RULE. A tick of a deleted or
   * disabled rule removes its scheduler and does nothing else; a tick while the rule's previous
   * run is still queued or running is skipped, so a slow rule on a tight schedule cannot pile up.
   */
  private async fireRule(tick: BullJob<TickData>, ruleId: string): Promise<string | null> {
    const { logger } = this.services;
    const declaration = this.declaration(RUN_RULE_TYPE);
    const em = this.services.orm.em.fork() as EntityManager;
    const rule = await em.findOne(Rule, { id: ruleId });
    if (!rule?.enabled || !rule.schedule) {
      await this.queue?.removeJobScheduler(ruleSchedulerId(ruleId));
      logger.info(
        { schedule: ruleSchedulerId(ruleId), tick: tick.id },
        'tick of a deleted, disabled or unscheduled rule; schedule removed',
      );
      return null;
    }
    const busy: unknown[] = await em
      .getConnection()
      .execute(
        `SELECT 1 FROM job WHERE owner_id = ? AND status IN ('PENDING', 'DELAYED', 'ACTIVE') AND type = ? AND payload->>'ruleId' = ? LIMIT 1`,
        [rule.ownerId, RUN_RULE_TYPE, rule.id],
        'all',
      );
    if (busy.length > 0) {
      logger.info({ ruleId, tick: tick.id }, 'previous run of the rule still queued or running; tick skipped');
      return null;
    }
    // Rule runs are the owner's jobs: an owner at the unfinished-jobs cap gets no more of them.
    const maxUnfinished = this.services.config.MAX_UNFINISHED_JOBS_PER_OWNER;
    if (maxUnfinished > 0 && (await this.services.quotas.unfinishedJobs(em, rule.ownerId, maxUnfinished)) >= maxUnfinished) {
      logger.warn({ ruleId, tick: tick.id, ownerId: rule.ownerId }, 'owner has too many unfinished jobs; scheduled rule run skipped');
      return null;
    }
    try {
      const job = await enqueueJob(this.deps(em), {
        declaration,
        args: { ruleId: rule.id },
        ownerId: rule.ownerId,
        isAdmin: false,
        trigger: 'RULE',
        options: { idempotencyKey: `schedule:${tick.id}`, tags: [scheduleTag(ruleSchedulerId(rule.id))] },
      });
      logger.info({ jobId: job.id, ruleId, tick: tick.id }, 'scheduled rule run enqueued');
      return job.id;
    } catch (error) {
      // Deleted between the read above and the enqueue: nothing to run.
      if (error instanceof NotFoundError) return null;
      throw error;
    }
  }
}
