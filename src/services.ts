import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { type Config, publishedSecretWarnings } from './config/env.js';
import { assertMigrated, initOrm } from './db/orm.js';
import { TokenVerifier } from './auth/tokens.js';
import { JobInserts } from './engine/job-inserts.js';
import { OwnerQuotas } from './engine/owner-quotas.js';
import { createLogger, type Logger } from './observability/logger.js';
import { JobPubSub } from './pubsub/pubsub.js';
import { topics } from './pubsub/topics.js';
import { JobChangeFeed } from './realtime/job-change-feed.js';
import { PositionCodec } from './realtime/stream-position.js';
import { JobQueues } from './queue/job-queues.js';
import { BlobStorage } from './storage/blob-storage.js';

/** The connections both processes share: built once at start-up, closed once at shutdown. */
export interface Services {
  config: Config;
  orm: MikroORM;
  queues: JobQueues;
  pubsub: JobPubSub;
  storage: BlobStorage;
  logger: Logger;
  /** Per-owner enqueue quotas, shared by every replica through Redis and PostgreSQL. */
  quotas: OwnerQuotas;
  /** Bearer tokens, verified once per token and process until they expire. */
  tokens: TokenVerifier;
  /** This process's tail of job changes, for subscriptions; idle until someone subscribes. */
  changeFeed: JobChangeFeed;
  /** Signs and checks stream cursors. */
  positions: PositionCodec;
  /** The API's enqueues, their row inserts group-committed. */
  jobInserts: JobInserts;
  close(): Promise<void>;
}

export async function createServices(config: Config, processName: string): Promise<Services> {
  const logger = createLogger(config.LOG_LEVEL, { process: processName });
  for (const warning of publishedSecretWarnings(config)) logger.warn(warning);
  const orm = await initOrm(config.DATABASE_URL);
  try {
    await assertMigrated(orm);
  } catch (error) {
    await orm.close(true);
    throw error;
  }
  const queues = new JobQueues(config.REDIS_URL, config.REDIS_PREFIX, logger);
  const pubsub = new JobPubSub(config.REDIS_URL, config.REDIS_PREFIX, logger);
  const storage = new BlobStorage(config.STORAGE_DIR);
  const positions = new PositionCodec(config.JWT_SECRET);
  const changeFeed = new JobChangeFeed({
    em: orm.em,
    positions,
    logger,
    pollIntervalMs: config.STREAM_POLL_INTERVAL_MS,
    doorbell: (ring) => pubsub.listen(topics.jobChanges(), ring),
  });
  return {
    config,
    orm,
    queues,
    pubsub,
    storage,
    logger,
    quotas: new OwnerQuotas(queues.connection, config, logger),
    tokens: new TokenVerifier(config.JWT_SECRET),
    changeFeed,
    positions,
    // A fork: the global EntityManager would run a batch in the transaction, if any, of whichever request started it.
    jobInserts: new JobInserts(orm.em.fork() as EntityManager),
    async close() {
      changeFeed.close();
      await Promise.allSettled([queues.close(), pubsub.close()]);
      await orm.close(true);
    },
  };
}
