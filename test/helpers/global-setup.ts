import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { execFileSync } from 'node:child_process';
import { adminDatabaseUrl, databaseUrl } from './urls.js';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}

/**
 * Migrates one template database per run; each test file clones it (CREATE DATABASE … TEMPLATE),
 * which is much faster than migrating per file and keeps files isolated from each other.
 */
export default async function setup(project: TestProject) {
  const template = `jobwire_template_${process.pid}_${Date.now()}`;
  const admin = new pg.Client({ connectionString: adminDatabaseUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${template}"`);
  // The real `npm run migrate` command, in its own process (it loads the TypeScript migrations).
  execFileSync('node_modules/.bin/tsx', ['src/db/migrate.ts'], {
    env: { ...process.env, DATABASE_URL: databaseUrl(template), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  project.provide('templateDatabase', template);

  return async () => {
    await admin.query(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`);
    await admin.end();
  };
}
