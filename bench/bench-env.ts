/**
 * The benchmark's own world: a database created and migrated for this run, a Redis key prefix, a
 * storage directory. Everything is removed at the end.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { mintToken, type Role } from '../src/auth/tokens.js';
import { migrate } from './processes.js';

export interface BenchEnv {
  databaseName: string;
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  storageDir: string;
  /** Environment of every process the bench starts. */
  vars: Record<string, string>;
  /** A pool on the bench database, sized like the application's (10). */
  pool: pg.Pool;
  redis: Redis;
  token(sub: string, role?: Role): Promise<string>;
  cleanup(): Promise<void>;
}

/** (Default: postgres://postgres@127.0.0.1:5432/postgres) */
export const ADMIN_DATABASE_URL = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** (Default: redis://127.0.0.1:6379) */
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export async function createBenchEnv(): Promise<BenchEnv> {
  const stamp = `${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}_${randomBytes(2).toString('hex')}`;
  const databaseName = `jobwire_bench_${stamp}`;
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${databaseName}`;
  const databaseUrl = url.toString();

  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${databaseName}"`);
  await admin.end();
  // The real `npm run migrate`, in its own process.
  await migrate(databaseUrl);

  const storageDir = await mkdtemp(join(tmpdir(), 'jobwire-bench-'));
  const prefix = `jwbench-${stamp}`;
  const jwtSecret = `bench-secret-${randomBytes(16).toString('hex')}`;
  const vars: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    REDIS_PREFIX: prefix,
    STORAGE_DIR: storageDir,
    JWT_SECRET: jwtSecret,
    NODE_ENV: 'production',
    GRAPHIQL: 'false',
    SCHEDULER_ENABLED: 'false',
    LOG_LEVEL: 'info',
    ARCHIVE_KEY: randomBytes(32).toString('base64'),
    // The per-owner quotas would throttle what is measured: one owner enqueues and subscribes in bulk.
    ENQUEUE_RATE_MAX: '0',
    MAX_UNFINISHED_JOBS_PER_OWNER: '0',
    MAX_SUBSCRIPTIONS_PER_USER: '0',
    MAX_SUBSCRIPTIONS_PER_CONNECTION: '100000',
    // /metrics on the public port needs this token; the idle scenario reads subscription counts there.
    METRICS_TOKEN: `bench-metrics-${randomBytes(8).toString('hex')}`,
  };
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  return {
    databaseName,
    databaseUrl,
    redisUrl: REDIS_URL,
    prefix,
    storageDir,
    vars,
    pool,
    redis,
    token: (sub, role = 'user') => mintToken(jwtSecret, { sub, role, ttlSeconds: 6 * 3600 }),
    async cleanup() {
      await pool.end().catch(() => {});
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.unlink(...keys);
      } while (cursor !== '0');
      redis.disconnect();
      const dropper = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
      await dropper.connect();
      await dropper.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`);
      await dropper.end();
      await rm(storageDir, { recursive: true, force: true });
    },
  };
}
