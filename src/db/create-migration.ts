// Generates a migration from the difference between the entities and the last snapshot.
import { loadConfig } from '../config/env.js';
import { ensureDatabase } from './ensure-database.js';
import { initOrm } from './orm.js';

const config = loadConfig();
await ensureDatabase(config.DATABASE_URL);
const orm = await initOrm(config.DATABASE_URL);
try {
  const result = await orm.getMigrator().createMigration(undefined, false, process.argv.includes('--initial'));
  console.log(result.diff.up.length ? `created ${result.fileName}` : 'no changes: entities match the last migration');
} finally {
  await orm.close(true);
}
