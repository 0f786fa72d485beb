/**
 * What the fault tests share: real API and worker processes that can be killed for real (from
 * test/helpers/processes.ts), and private Redis / PostgreSQL servers a test may stop without
 * touching the shared ones.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { gqlOk, gqlUpload } from '../helpers/graphql-client.js';
import { CREATE_ACCOUNT, IMPORT_MBOX } from '../helpers/fragments.js';
import { freePort, migrate, type Proc } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';

export { startApi, startWorker, type ApiProc, type Proc } from '../helpers/processes.js';

const run = promisify(execFile);

/** Whether this worker's log says it started (an attempt of) the job. */
export function ranJob(worker: Proc, jobId: string): boolean {
  return worker
    .output()
    .split('\n')
    .some((line) => line.includes(jobId) && line.includes('"job started"'));
}

/** A redis-server of the test's own, on a free port: it may be stopped, restarted and flushed. */
export interface PrivateRedis {
  port: number;
  url: string;
  /** A client for the test's own checks (reconnects by itself after a restart). */
  client: Redis;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  let server: ChildProcess | null = null;
  let exited: Promise<unknown> = Promise.resolve();
  const start = async () => {
    server = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
      {
        stdio: 'ignore',
      },
    );
    const current = server;
    exited = new Promise((resolve) => current.once('exit', resolve));
    await waitFor(`private redis on ${port}`, async () => {
      if (current.exitCode !== null) throw new Error('redis-server exited');
      const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => {});
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG';
      } finally {
        probe.disconnect();
      }
    });
  };
  await start();
  const client = new Redis({ port, host: '127.0.0.1', retryStrategy: () => 100, maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  const stop = async () => {
    server?.kill('SIGTERM');
    await exited;
    server = null;
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    client,
    stop,
    start,
    async close() {
      client.disconnect();
      await stop();
    },
  };
}

/** A PostgreSQL cluster of the test's own (initdb in a temp dir), migrated, on a free port. */
export interface PrivatePostgres {
  port: number;
  /** URL of the migrated `jobwire` database. */
  url: string;
  /** A pool on that database for the test's own checks. */
  pool: pg.Pool;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'jobwire-pg-'));
  const data = join(dir, 'data');
  // PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user.
  const asRoot = process.getuid?.() === 0;
  if (asRoot)
    chownSync(
      dir,
      Number((await run('id', ['-u', 'postgres'])).stdout.trim()),
      Number((await run('id', ['-g', 'postgres'])).stdout.trim()),
    );
  const pgRun = (binary: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(PG_BIN, binary), ...args]) : run(join(PG_BIN, binary), args);

  await pgRun('initdb', ['-D', data, '--auth=trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  const start = async () => {
    await pgRun('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
  };
  const stop = async () => {
    await pgRun('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
  };
  await start();
  const url = `postgres://postgres@127.0.0.1:${port}/jobwire`;
  // The real `npm run migrate` (it creates the database first).
  await migrate(url);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  return {
    port,
    url,
    pool,
    stop,
    start,
    async close() {
      await pool.end().catch(() => {});
      await pgRun('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Creates a mail account through the API and returns its id. */
export async function createAccount(url: string, token: string, name: string): Promise<string> {
  return (await gqlOk<{ createAccount: { id: string } }>(url, token, CREATE_ACCOUNT, { name })).createAccount.id;
}

/** Uploads an mbox through `importMbox` and returns the job (fails on any GraphQL error). */
export async function importMbox(url: string, token: string, accountId: string, mbox: Buffer): Promise<{ id: string; status: string }> {
  const response = await gqlUpload<{ importMbox: { id: string; status: string } }>(
    url,
    token,
    IMPORT_MBOX,
    { accountId, file: null },
    {
      path: 'file',
      content: mbox,
      filename: 'inbox.mbox',
    },
  );
  if (response.errors?.length || !response.data) throw new Error(`importMbox failed: ${JSON.stringify(response.errors)}`);
  return response.data.importMbox;
}

/** The columns of a job row the fault tests look at. */
export interface JobRow {
  id: string;
  status: string;
  attempts: number;
  processed: number | null;
  total: number | null;
  error: string | null;
  version: number;
  result: Record<string, unknown> | null;
}

export async function jobRow(query: (text: string, params?: unknown[]) => Promise<unknown[]>, id: string): Promise<JobRow> {
  const rows = (await query('SELECT id, status, attempts, processed, total, error, version, result FROM job WHERE id = $1', [
    id,
  ])) as JobRow[];
  if (!rows[0]) throw new Error(`no job row ${id}`);
  return rows[0];
}
