import { ConfigError, loadConfig } from '../config/env.js';
import { createLogger } from '../observability/logger.js';
import { migrateDatabase } from './orm.js';
import { ensureDatabase } from './ensure-database.js';

try {
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL, { process: 'migrate' });
  await ensureDatabase(config.DATABASE_URL);
  const applied = await migrateDatabase(config.DATABASE_URL);
  logger.info({ applied }, applied.length ? `applied ${applied.length} migration(s)` : 'database is up to date');
} catch (error) {
  // As the API and the worker report a failed start: what went wrong, without a stack.
  console.error(error instanceof ConfigError ? error.message : `migrate failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
