import { Migrator } from '@mikro-orm/migrations';
import { defineConfig, MikroORM, type Options } from '@mikro-orm/postgresql';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { entities } from './entities/index.js';

const migrationsDir = fileURLToPath(new URL('../../migrations', import.meta.url));

/** ORM options for a database URL; the same for the API, the worker, the migrator and tests. */
export function ormOptions(databaseUrl: string, extra: Partial<Options> = {}): Options {
  return defineConfig({
    clientUrl: databaseUrl,
    entities,
    extensions: [Migrator],
    // Entities are EntitySchema values, so there is nothing to discover from the file system.
    discovery: { warnWhenNoEntities: true },
    migrations: {
      path: migrationsDir,
      pathTs: migrationsDir,
      glob: '!(*.d).{js,ts}',
      emit: 'ts',
      // Each migration in its own transaction, not all of them in one: an OnlineMigration runs
      // outside any (CREATE INDEX CONCURRENTLY must), and would otherwise wait on the locks of the
      // transaction holding the migrations before it.
      transactional: true,
      allOrNothing: false,
      snapshotName: '.snapshot-jobwire',
      silent: true,
    },
    pool: { min: 0, max: 10 },
    // A missing database is an operator's mistake (a typo in DATABASE_URL) to be told about, not
    // created empty: only `npm run migrate` creates one (ensure-database.ts).
    ensureDatabase: false,
    // The job worker forks per job; the global context is never used implicitly.
    allowGlobalContext: false,
    debug: false,
    ...extra,
  });
}

export type Orm = MikroORM;

/** Connects the ORM. The schema is never synced here: `npm run migrate` owns it. */
export async function initOrm(databaseUrl: string, extra: Partial<Options> = {}): Promise<MikroORM> {
  return MikroORM.init(ormOptions(databaseUrl, extra));
}

/** The database is not (fully) migrated: the processes refuse to start on it. */
export class DatabaseNotMigratedError extends Error {}

/**
 * Refuses a database that cannot be reached (a mistyped name among others) or lacks migrations
 * this version has: every query would fail on it, while the process would look healthy.
 * (Migrations newer than this version are fine: an upgrade migrates before it replaces the processes.)
 */
export async function assertMigrated(orm: MikroORM): Promise<void> {
  const connection = await orm.checkConnection();
  // The driver's reason names the database or host, never the password.
  if (!connection.ok) {
    // PostgreSQL's "database … does not exist" (3D000): `npm run migrate` creates it.
    const missing = /database "[^"]*" does not exist/.test(connection.reason);
    throw new DatabaseNotMigratedError(
      `cannot use the database: ${connection.reason}${missing ? '; run `npm run migrate`, which creates it and applies the migrations' : ''}`,
    );
  }
  const pending = await orm.getMigrator().getPendingMigrations();
  if (pending.length === 0) return;
  throw new DatabaseNotMigratedError(
    `the database is not migrated: ${pending.length} migration(s) of this version are not applied (first: ${pending[0]!.name}); run \`npm run migrate\``,
  );
}

/** Applies every pending migration; used by `npm run migrate` and the test setup. */
export async function migrateDatabase(databaseUrl: string): Promise<string[]> {
  // One run at a time (several replicas' start-ups may each run it): the next waits for this one,
  // then finds nothing left to do. A session lock on a connection of its own, outside any
  // transaction, so an index built CONCURRENTLY does not wait for the connection holding it.
  const lock = new pg.Client({ connectionString: databaseUrl });
  await lock.connect();
  try {
    // Tried, not waited for inside a statement: a waiting statement holds a snapshot, which the
    // other run's CREATE INDEX CONCURRENTLY would wait for in turn.
    while (!(await lock.query<{ taken: boolean }>('SELECT pg_try_advisory_lock($1) AS taken', [MIGRATION_LOCK])).rows[0]!.taken) {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const orm = await initOrm(databaseUrl, { pool: { min: 0, max: 2 } });
    try {
      const applied = await orm.getMigrator().up();
      return applied.map((migration) => migration.name);
    } finally {
      await orm.close(true);
    }
  } finally {
    await lock.end();
  }
}

/** The advisory lock key `npm run migrate` holds while it runs ("jobwire migrate" as a number). */
const MIGRATION_LOCK = 0x6a6f62776972;
