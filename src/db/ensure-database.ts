import pg from 'pg';

/** Creates the database named in the URL when it does not exist yet, so a fresh set-up is one command. */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  // Connecting to it first: on managed PostgreSQL the role may not reach the maintenance database.
  const target = new pg.Client({ connectionString: databaseUrl });
  try {
    await target.connect();
    return;
  } catch (error) {
    if ((error as { code?: string }).code !== INVALID_CATALOG_NAME) throw error;
  } finally {
    await target.end().catch(() => {});
  }
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = '/postgres';
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
  } catch (error) {
    // Another `npm run migrate` created it meanwhile.
    if ((error as { code?: string }).code !== DUPLICATE_DATABASE && (error as { code?: string }).code !== UNIQUE_VIOLATION) throw error;
  } finally {
    await client.end();
  }
}

/** SQLSTATE: the database does not exist. */
const INVALID_CATALOG_NAME = '3D000';
/** SQLSTATE: CREATE DATABASE of one that exists (or being created by another session: a unique violation in pg_database). */
const DUPLICATE_DATABASE = '42P04';
const UNIQUE_VIOLATION = '23505';
