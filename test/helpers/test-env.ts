import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { inject } from 'vitest';
import { mintToken, type Role } from '../../src/auth/tokens.js';
import { loadConfig, type Config } from '../../src/config/env.js';
import { adminDatabaseUrl, databaseUrl, redisUrl } from './urls.js';

/** A test file's own world: a database cloned from the migrated template, a Redis prefix, a storage dir. */
export interface TestEnv {
  /** Environment variables for processes started by this file. */
  vars: Record<string, string>;
  config: Config;
  databaseName: string;
  token(sub: string, role?: Role, ttlSeconds?: number): Promise<string>;
  /** Runs SQL against this file's database. */
  sql<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** The single row of a query; fails when there is none. */
  one<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T>;
  cleanup(): Promise<void>;
}

export async function createTestEnv(overrides: Record<string, string> = {}): Promise<TestEnv> {
  const id = randomBytes(5).toString('hex');
  const databaseName = `jobwire_test_${id}`;
  const admin = new pg.Client({ connectionString: adminDatabaseUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${databaseName}" TEMPLATE "${inject('templateDatabase')}"`);
  await admin.end();

  const storageDir = await mkdtemp(join(tmpdir(), `jobwire-${id}-`));
  const vars: Record<string, string> = {
    DATABASE_URL: databaseUrl(databaseName),
    REDIS_URL: redisUrl(),
    REDIS_PREFIX: `jwtest-${id}`,
    STORAGE_DIR: storageDir,
    JWT_SECRET: `test-secret-${id}-0123456789abcdefghijklmnop`,
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
    BACKOFF_SCALE: '0.01',
    STALLED_INTERVAL_MS: '2000',
    WORKER_METRICS_PORT: '0',
    RECONCILE_INTERVAL_MS: '1000',
    SCHEDULER_ENABLED: 'false',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ARCHIVE_KEY: randomBytes(32).toString('base64'),
    // The test Dovecot listens on loopback; quotas are off unless a test turns them on.
    IMAP_ALLOWED_HOSTS: '127.0.0.1',
    RULE_SCHEDULE_MIN_INTERVAL_SECONDS: '0',
    ENQUEUE_RATE_MAX: '0',
    MAX_UNFINISHED_JOBS_PER_OWNER: '0',
    MAX_SUBSCRIPTIONS_PER_USER: '0',
    METRICS_TOKEN: `metrics-${id}-0123456789abcdef`,
    ...overrides,
  };
  const config = loadConfig(vars as NodeJS.ProcessEnv);
  const pool = new pg.Pool({ connectionString: vars.DATABASE_URL, max: 2 });
  // An idle client is told FATAL when the database is dropped under it (cleanup forces that) or a
  // fault test stops PostgreSQL; without a listener the pool rethrows it as an uncaught error.
  // Queries report their own errors.
  pool.on('error', () => {});

  return {
    vars,
    config,
    databaseName,
    token: (sub, role = 'user', ttlSeconds) => mintToken(config.JWT_SECRET, { sub, role, ttlSeconds }),
    sql: async (text, params) => (await pool.query(text, params)).rows,
    one: async (text, params) => {
      const { rows } = await pool.query(text, params);
      if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}: ${text}`);
      return rows[0];
    },
    async cleanup() {
      await pool.end();
      const redis = new Redis(redisUrl());
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${vars.REDIS_PREFIX}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
      redis.disconnect();
      const dropper = new pg.Client({ connectionString: adminDatabaseUrl() });
      await dropper.connect();
      await dropper.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`);
      await dropper.end();
      await rm(storageDir, { recursive: true, force: true });
    },
  };
}

export { waitFor } from './wait.js';
