import { Queue, Worker } from 'bullmq';
import { scheduleOverrides } from '../config/env.js';
import type { AnyJobDeclaration } from '../jobs/define-job.js';
import { enqueueJob } from '../jobs/enqueue.js';
import { toEventMessage } from '../jobs/job-store.js';
import { createRedis } from '../queue/redis.js';
import type { Services } from '../services.js';

/** The queue whose job schedulers tick; each tick enqueues the real job through the normal path. */
export const SCHEDULE_QUEUE = 'schedules';
/** Owner of jobs started by the system's own schedules; only admins see them. */
export const SYSTEM_OWNER = 'system';

interface TickData {
  type: string;
  input: Record<string, unknown>;
}

/**
 * Cron schedules as data. On start the sidecar upserts every declared schedule and removes the
 * ones no longer declared. BullMQ derives each tick's id from the scheduler id and the tick time,
 * so however many sidecars run, a tick exists once; its job row's idempotency key is that id, so
 * even a retried tick enqueues once.
 */
export class Scheduler {
  private queue: Queue | null = null;
  private worker: Worker | null = null;

  constructor(
    private readonly services: Services,
    private readonly declarations: readonly AnyJobDeclaration[],
  ) {}

  async start(): Promise<void> {
    const { config, logger } = this.services;
    const connection = createRedis(config.REDIS_URL, { connectionName: `${config.REDIS_PREFIX}:scheduler` });
    this.queue = new Queue<TickData>(SCHEDULE_QUEUE, { connection, prefix: config.REDIS_PREFIX });
    const overrides = scheduleOverrides(config);

    const wanted = new Set<string>();
    for (const declaration of this.declarations) {
      for (const schedule of declaration.schedules ?? []) {
        const pattern = overrides.get(schedule.id) ?? schedule.cron;
        wanted.add(schedule.id);
        await this.queue.upsertJobScheduler(
          schedule.id,
          { pattern, tz: config.SCHEDULE_TZ },
          { name: declaration.name, data: { type: declaration.name, input: schedule.input }, opts: { removeOnComplete: 100, removeOnFail: 100 } },
        );
        logger.info({ schedule: schedule.id, pattern, tz: config.SCHEDULE_TZ }, 'schedule registered');
      }
    }
    for (const existing of await this.queue.getJobSchedulers()) {
      if (existing.key && !wanted.has(existing.key) && !existing.key.startsWith('rule:')) {
        await this.queue.removeJobScheduler(existing.key);
        logger.info({ schedule: existing.key }, 'stale schedule removed');
      }
    }

    this.worker = new Worker<TickData>(
      SCHEDULE_QUEUE,
      async (tick) => {
        const declaration = this.declarations.find((candidate) => candidate.name === tick.data.type);
        if (!declaration) throw new Error(`schedule for unknown job type ${tick.data.type}`);
        const em = this.services.orm.em.fork();
        const job = await enqueueJob(
          {
            em,
            queues: this.services.queues,
            storage: this.services.storage,
            config,
            publish: (record) => this.services.pubsub.publishJobEvent(toEventMessage(record)),
          },
          {
            declaration,
            args: tick.data.input,
            ownerId: SYSTEM_OWNER,
            isAdmin: true,
            trigger: 'SCHEDULE',
            options: { idempotencyKey: `schedule:${tick.id}` },
          },
        );
        logger.info({ jobId: job.id, type: declaration.name, tick: tick.id }, 'scheduled job enqueued');
        return job.id;
      },
      {
        connection: createRedis(config.REDIS_URL, { connectionName: `${config.REDIS_PREFIX}:scheduler-worker` }),
        prefix: config.REDIS_PREFIX,
        concurrency: 1,
      },
    );
    this.worker.on('error', (error) => logger.error({ err: error }, 'scheduler error'));
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.queue?.close();
  }
}
