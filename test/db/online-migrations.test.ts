/**
 * Upgrading an installation whose job table is already large: the migrations that index or add to
 * existing tables (OnlineMigration) let the application keep writing while they build, never
 * rewrite a table, and end in the same schema as a fresh installation.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import { fileURLToPath } from 'node:url';
import { ormOptions, type Orm } from '../../src/db/orm.js';
import { assertBuilt } from '../helpers/processes.js';
import { adminDatabaseUrl, databaseUrl } from '../helpers/urls.js';
import { waitFor } from '../helpers/wait.js';

const databaseName = `jobwire_upgrade_${randomBytes(5).toString('hex')}`;
let admin: pg.Client;
let orm: Orm;
let db: pg.Pool;

/** Jobs as the version before the change stream wrote them. */
async function insertOldJobs(count: number): Promise<void> {
  await db.query(
    `INSERT INTO job (id, type, status, max_attempts, payload, trigger, owner_id, created_at, updated_at)
     SELECT gen_random_uuid(), 'scan_pii', 'COMPLETED', 3, '{}', 'API', 'owner-' || (n % 7), now(), now() FROM generate_series(1, $1::int) AS n`,
    [count],
  );
}

beforeAll(async () => {
  admin = new pg.Client({ connectionString: adminDatabaseUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${databaseName}"`);
  db = new pg.Pool({ connectionString: databaseUrl(databaseName), max: 3 });
  // The database is dropped WITH (FORCE) at the end: a connection still closing is told so, harmlessly.
  db.on('error', () => {});
  // The compiled migrations, as `npm run migrate` runs them in production (Node cannot import the .ts ones here).
  assertBuilt();
  const compiled = fileURLToPath(new URL('../../dist/migrations', import.meta.url));
  const options = ormOptions(databaseUrl(databaseName), { pool: { min: 0, max: 2 } });
  orm = await MikroORM.init({ ...options, migrations: { ...options.migrations, path: compiled, pathTs: compiled, glob: '!(*.d).js' } });
  await orm.getMigrator().up({ to: 'Migration20261124053713' });
  await insertOldJobs(12_000);
});

afterAll(async () => {
  await orm?.close(true);
  await db?.end();
  await admin?.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`);
  await admin?.end();
});

/** What a backend of the upgrade database waits on, by the start of its query. */
async function waiting(queryStart: string): Promise<boolean> {
  const { rows } = await admin.query("SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query ILIKE $2", [
    databaseName,
    `${queryStart}%`,
  ]);
  return rows.length > 0;
}

describe('upgrading a database that holds jobs', () => {
  it('builds its indexes while the application writes, waiting only for transactions already open', async () => {
    // A transaction the application had open when the upgrade began: a concurrent build waits for it.
    const open = await db.connect();
    await open.query('BEGIN');
    await open.query("UPDATE job SET message = 'still running' WHERE id = (SELECT id FROM job LIMIT 1)");
    const upgrading = orm.getMigrator().up({ to: 'Migration20261128204606' });
    await waitFor('the index build to wait for the open transaction', () => waiting('create index concurrently'));

    // Meanwhile the application goes on writing: a plain CREATE INDEX would hold it until the end.
    let written = false;
    const write = db
      .query(
        "INSERT INTO job (id, type, status, max_attempts, payload, trigger, owner_id, created_at, updated_at) VALUES (gen_random_uuid(), 'scan_pii', 'PENDING', 3, '{}', 'API', 'owner-1', now(), now())",
      )
      .then(() => {
        written = true;
      });
    const outcome = await waitFor('the write to go through or to wait', async () =>
      written ? 'written' : (await waiting('INSERT INTO job')) ? 'blocked' : null,
    );
    expect(outcome).toBe('written');

    await open.query('COMMIT');
    open.release();
    await Promise.all([upgrading, write]);
    const { rows } = await db.query<{ name: string; valid: boolean }>(
      "SELECT c.relname AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname IN ('job_updated_idx', 'job_owner_updated_idx') ORDER BY 1",
    );
    expect(rows).toEqual([
      { name: 'job_owner_updated_idx', valid: true },
      { name: 'job_updated_idx', valid: true },
    ]);
  });

  it('gives every existing job its stream positions without rewriting the table, and ends where a fresh installation does', async () => {
    await insertOldJobs(3_000);
    const storage = async () => (await db.query<{ file: string }>("SELECT pg_relation_filenode('job')::text AS file")).rows[0]!.file;
    const before = await storage();
    await orm.getMigrator().up();
    expect(await storage()).toBe(before);

    const { rows: missing } = await db.query('SELECT count(*)::int AS n FROM job WHERE created_xid IS NULL OR change_xid IS NULL');
    expect(missing[0].n).toBe(0);
    // Written from now on, a job gets both from the defaults, as the application expects.
    const { rows: fresh } = await db.query(
      "INSERT INTO job (id, type, status, max_attempts, payload, trigger, owner_id, created_at, updated_at) VALUES (gen_random_uuid(), 'scan_pii', 'PENDING', 3, '{}', 'API', 'owner-1', now(), now()) RETURNING created_xid = pg_current_xact_id() AS stamped",
    );
    expect(fresh[0].stamped).toBe(true);

    const template = new pg.Client({ connectionString: databaseUrl(inject('templateDatabase')) });
    await template.connect();
    try {
      expect(await schemaOf(db)).toEqual(await schemaOf(template));
    } finally {
      await template.end();
    }
  });
});

/** Columns (type, nullability, default), constraints and index definitions of every table, and whether each index is valid. */
async function schemaOf(client: pg.Pool | pg.Client): Promise<unknown> {
  const columns = await client.query(
    `SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns
      WHERE table_schema = 'public' AND table_name <> 'mikro_orm_migrations' ORDER BY 1, 2`,
  );
  const indexes = await client.query(
    `SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition, i.indisvalid AS valid
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' ORDER BY 1`,
  );
  const constraints = await client.query(
    `SELECT conrelid::regclass::text AS on_table, conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
      WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2`,
  );
  return { columns: columns.rows, indexes: indexes.rows, constraints: constraints.rows };
}
