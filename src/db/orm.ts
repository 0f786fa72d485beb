import { Migrator } from '@mikro-orm/migrations';
import { defineConfig, MikroORM, type Options } from '@mikro-orm/postgresql';
import { fileURLToPath } from 'node:url';
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

/** Applies every pending migration; used by `npm run migrate` and the test setup. */
export async function migrateDatabase(databaseUrl: string): Promise<string[]> {
  const orm = await initOrm(databaseUrl, { pool: { min: 0, max: 2 } });
  try {
    const applied = await orm.getMigrator().up();
    return applied.map((migration) => migration.name);
  } finally {
    await orm.close(true);
  }
}
