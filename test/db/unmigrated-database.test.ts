/**
 * A database that is missing or not migrated is refused at start-up, with what to do (an operator
 * probe found the API created a mistyped database empty, then answered /ready while every
 * operation failed).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { migrate, startApi, startWorker } from '../helpers/processes.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';
import { adminDatabaseUrl, databaseUrl } from '../helpers/urls.js';

let env: TestEnv;
let admin: pg.Client;
const empty = `jobwire_empty_${randomBytes(4).toString('hex')}`;
const missing = `jobwire_missing_${randomBytes(4).toString('hex')}`;
const racing = `jobwire_racing_${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  env = await createTestEnv();
  admin = new pg.Client({ connectionString: adminDatabaseUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${empty}"`);
});

afterAll(async () => {
  for (const name of [empty, missing, racing]) await admin?.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin?.end();
  await env?.cleanup();
});

it('refuses to start the API or the worker on a database that is not migrated, saying to migrate', async () => {
  const vars = { ...env.vars, DATABASE_URL: databaseUrl(empty) };
  await expect(startApi(vars)).rejects.toThrow(/not migrated.*npm run migrate/);
  await expect(startWorker(vars)).rejects.toThrow(/not migrated.*npm run migrate/);
});

it('refuses to start on a database that does not exist, saying to migrate, and does not create it', async () => {
  await expect(startApi({ ...env.vars, DATABASE_URL: databaseUrl(missing) })).rejects.toThrow(/does not exist.*npm run migrate/);
  const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [missing]);
  expect(rowCount).toBe(0);
});

it('runs two `npm run migrate` at once on a missing database: both succeed, one after the other', async () => {
  await Promise.all([migrate(databaseUrl(racing)), migrate(databaseUrl(racing))]);
  const db = new pg.Client({ connectionString: databaseUrl(racing) });
  await db.connect();
  try {
    const { rows } = await db.query<{ name: string; n: number }>('SELECT name, count(*)::int AS n FROM mikro_orm_migrations GROUP BY name');
    expect(rows.length).toBeGreaterThan(5);
    expect(rows.every((row) => row.n === 1)).toBe(true);
  } finally {
    await db.end();
  }
});
