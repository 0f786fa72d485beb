import { loadConfig } from '../config/env.js';
import { createLogger } from '../observability/logger.js';
import { migrateDatabase } from './orm.js';
import { ensureDatabase } from './ensure-database.js';

const config = loadConfig();
const logger = createLogger(config.LOG_LEVEL, { process: 'migrate' });
await ensureDatabase(config.DATABASE_URL);
const applied = await migrateDatabase(config.DATABASE_URL);
logger.info({ applied }, applied.length ? `applied ${applied.length} migration(s)` : 'database is up to date');
