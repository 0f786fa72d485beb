/**
 * Real API replicas and worker sidecars as child processes, for tests, fault tests and the bench.
 * They run the compiled entry points production runs (`node dist/src/api/main.js`, `npm run build`
 * first), as the Node process itself with no launcher in front, so a signal reaches the process
 * that handles it. Free of vitest: the bench imports this module too.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { waitFor } from './wait.js';

export { waitFor };

/** The repository root; children run with it as their working directory. */
export const root = fileURLToPath(new URL('../..', import.meta.url));

/** The compiled entry points, relative to `root`. */
const entryPoints = {
  api: 'dist/src/api/main.js',
  worker: 'dist/src/worker/main.js',
  migrate: 'dist/src/db/migrate.js',
} as const;

/**
 * On SIGUSR2 the process collects garbage twice and prints its heap and RSS on stderr. Loaded with
 * `--import` so nothing in `src` knows about it.
 */
const HEAP_PROBE =
  'data:text/javascript,process.on("SIGUSR2",()=>{globalThis.gc();globalThis.gc();' +
  'const m=process.memoryUsage();process.stderr.write("HEAP_PROBE "+JSON.stringify({heapUsed:m.heapUsed,rss:m.rss})+"\\n")})';

/** A child process; `child.pid` is the Node process itself. */
export interface Proc {
  name: string;
  child: ChildProcess;
  /** Its stdout and stderr so far (the tail only, with `keepOutput`). */
  output(): string;
  alive(): boolean;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<number | string>;
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs` (Default: 10000); resolves with the exit code or signal. */
  stop(graceMs?: number): Promise<number | string>;
}

export interface StartOptions {
  /** Extra arguments for `node`, before the script. (Default: none) */
  nodeArgs?: string[];
  /** Keep only about this many characters of output, for long runs. (Default: all of it) */
  keepOutput?: number;
  /** How long to wait for the process to be ready. (Default: 60000) */
  readyTimeoutMs?: number;
  /** Called as soon as the process is spawned, before it is ready; it may wrap `stop`. (Default: none) */
  onSpawn?: (proc: Proc) => void;
}

export interface ApiOptions extends StartOptions {
  /** (Default: `api:<port>`) */
  name?: string;
  /** Load the heap probe, so that `heap()` works. (Default: false) */
  heapProbe?: boolean;
  /** Listen on this port, e.g. to restart a replica where its clients reconnect. (Default: a free one) */
  port?: number;
}

export interface WorkerOptions extends StartOptions {
  /** Script to run instead of the sidecar, e.g. the bench's worker. (Default: the compiled sidecar) */
  script?: string;
  /** Output line that says it is ready. (Default: `worker sidecar started`) */
  readyText?: string;
}

export interface ApiProc extends Proc {
  port: number;
  baseUrl: string;
  /** `<baseUrl>/graphql` */
  url: string;
  /** Collects garbage in the process and returns its heap use (needs `heapProbe`). */
  heap(): Promise<{ heapUsed: number; rss: number }>;
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

let built = false;

/** Fails unless `npm run build` ran after the last change to src/ and migrations/: a stale dist would test old code. Checked once per process. */
export function assertBuilt(): void {
  if (built) return;
  const stale: string[] = [];
  const visit = (dir: string) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) visit(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const compiled = join(root, 'dist', path.replace(/\.ts$/, '.js'));
        if (!existsSync(compiled) || statSync(compiled).mtimeMs < statSync(join(root, path)).mtimeMs) stale.push(path);
      }
    }
  };
  visit('src');
  visit('migrations');
  // tsc never deletes: a compiled migration whose source is gone would still be applied.
  const compiledMigrations = join(root, 'dist/migrations');
  for (const name of existsSync(compiledMigrations) ? readdirSync(compiledMigrations) : []) {
    if (name.endsWith('.js') && !existsSync(join(root, 'migrations', name.replace(/\.js$/, '.ts')))) {
      throw new Error(`dist/migrations/${name} has no source any more: remove dist/ and run \`npm run build\``);
    }
  }
  if (stale.length)
    throw new Error(`dist/ is older than ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ', …' : ''}: run \`npm run build\``);
  built = true;
}

/**
 * Starts `node [nodeArgs] <script>` in the repository root. A `.ts` script (the bench's own workers)
 * runs with tsx's loader.
 */
export function startNode(script: string, env: Record<string, string>, name: string, options: StartOptions = {}): Proc {
  const loader = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...loader, script], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (chunk: Buffer) => {
    log += chunk.toString();
    if (options.keepOutput && log.length > options.keepOutput * 2) log = log.slice(-options.keepOutput);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const proc: Proc = {
    name,
    child,
    output: () => log,
    alive,
    exited,
    kill: (signal) => void child.kill(signal),
    async stop(graceMs = 10_000) {
      if (alive()) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      if (process.env.DEBUG_PROCESSES) console.log(`--- ${name} output ---\n${log}`);
      return exited;
    },
  };
  options.onSpawn?.(proc);
  return proc;
}

/** Waits until `ready` holds; a process that exits first, or never gets ready, fails the start and is stopped. */
async function whenReady<P extends Proc>(
  proc: P,
  ready: () => Promise<boolean> | boolean,
  timeoutMs: number,
  intervalMs: number,
): Promise<P> {
  try {
    // An exit ends the wait at once (waitFor would take a thrown error for "not yet" and go on).
    let exitedEarly = false;
    await waitFor(
      `${proc.name} to be ready`,
      async () => {
        exitedEarly = !proc.alive();
        return exitedEarly || ready();
      },
      timeoutMs,
      intervalMs,
    );
    if (exitedEarly) throw new Error(`${proc.name} exited early:\n${proc.output()}`);
    return proc;
  } catch (error) {
    await proc.stop(2_000);
    throw error;
  }
}

/** An API replica on a free port, ready (`/ready` answers 200). */
export async function startApi(env: Record<string, string>, options: ApiOptions = {}): Promise<ApiProc> {
  assertBuilt();
  const port = options.port ?? (await freePort());
  const nodeArgs = [...(options.nodeArgs ?? []), ...(options.heapProbe ? ['--expose-gc', '--import', HEAP_PROBE] : [])];
  const proc = startNode(entryPoints.api, { ...env, PORT: String(port) }, options.name ?? `api:${port}`, { ...options, nodeArgs });
  const baseUrl = `http://127.0.0.1:${port}`;
  let probes = 0;
  const api: ApiProc = {
    ...proc,
    port,
    baseUrl,
    url: `${baseUrl}/graphql`,
    async heap() {
      const seen = probes++;
      proc.kill('SIGUSR2');
      const line = await waitFor('heap probe answer', () => [...proc.output().matchAll(/HEAP_PROBE (\{.*\})/g)][seen]?.[1], 20_000, 20);
      return JSON.parse(line) as { heapUsed: number; rss: number };
    },
  };
  return whenReady(
    api,
    async () => (await fetch(`${baseUrl}/ready`).catch(() => null))?.status === 200,
    options.readyTimeoutMs ?? 60_000,
    200,
  );
}

/**
 * A worker sidecar, started (it logged so). It logs at info whatever the environment asked, since
 * readiness is read from its log and fault tests look for each job's start line.
 */
export async function startWorker(env: Record<string, string>, name = 'worker', options: WorkerOptions = {}): Promise<Proc> {
  assertBuilt();
  const proc = startNode(options.script ?? entryPoints.worker, { ...env, LOG_LEVEL: 'info' }, name, options);
  const readyText = options.readyText ?? 'worker sidecar started';
  return whenReady(proc, () => proc.output().includes(readyText), options.readyTimeoutMs ?? 60_000, 100);
}

/** Applies the migrations to `databaseUrl` (creating the database if missing), as `npm run migrate` does. */
export async function migrate(databaseUrl: string): Promise<void> {
  assertBuilt();
  await promisify(execFile)(process.execPath, [entryPoints.migrate], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
  });
}
