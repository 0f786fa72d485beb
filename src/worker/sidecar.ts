import type { AnyJobDeclaration } from '../engine/define-job.js';
import { topics } from '../pubsub/topics.js';
import { untilRedisReady } from '../queue/redis.js';
import type { Services } from '../services.js';
import { ExpirySweeper } from './expiry-sweeper.js';
import { JobRunner } from './job-runner.js';
import { Reconciler } from './reconciler.js';
import { Scheduler } from './scheduler.js';

/** The worker process as a value: job runners, the scheduler, the reconciler, the expiry sweep and the cancel listener. */
export interface Sidecar {
  runner: JobRunner;
  reconciler: Reconciler;
  close(): Promise<void>;
}

export async function startSidecar(services: Services, declarations: readonly AnyJobDeclaration[]): Promise<Sidecar> {
  const { config, logger } = services;
  // Everything below needs Redis: while it is away, say so rather than hang in silence (see untilRedisReady).
  await untilRedisReady(services.queues.connection, logger, 'worker start');
  const runner = new JobRunner(services, declarations);
  // Listen before fetching jobs, so a cancel sent while a job starts here is not missed.
  const stopListening = await services.pubsub.listen(topics.cancel(), ({ jobId }) => {
    if (runner.cancel(jobId)) logger.info({ jobId }, 'cancellation delivered to the running handler');
  });
  await runner.start();
  const scheduler = new Scheduler(services, declarations);
  if (config.SCHEDULER_ENABLED) await scheduler.start();
  const reconciler = new Reconciler(services, declarations);
  reconciler.start();
  const expirySweeper = new ExpirySweeper(services, declarations);
  expirySweeper.start();
  logger.info({ types: declarations.map((d) => d.name) }, 'worker sidecar started');

  return {
    runner,
    reconciler,
    async close() {
      await expirySweeper.close();
      await reconciler.close();
      await scheduler.close();
      await runner.close(config.SHUTDOWN_TIMEOUT_MS);
      stopListening();
    },
  };
}
