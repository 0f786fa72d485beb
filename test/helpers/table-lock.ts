import pg from 'pg';
import { type TestEnv, waitFor } from './test-env.js';

/** A table held in ACCESS EXCLUSIVE mode by a transaction of the test's own, until `release`. */
export interface TableLock {
  /** Waits until some statement of the system under test waits for the lock: it is then held mid-way. */
  waitForWaiter(what: string): Promise<void>;
  release(): Promise<void>;
}

/** Locks `table` of the file's database: what reads it, the system under test included, waits until it is released. */
export async function lockTable(env: TestEnv, table: string): Promise<TableLock> {
  const locker = new pg.Client({ connectionString: env.vars.DATABASE_URL });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
  return {
    async waitForWaiter(what) {
      await waitFor(what, async () => {
        const [row] = await env.sql<{ waiting: number }>(
          "SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        );
        return row!.waiting > 0;
      });
    },
    async release() {
      await locker.query('COMMIT');
      await locker.end();
    },
  };
}
