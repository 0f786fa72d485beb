import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { waitFor } from './test-env.js';

const root = fileURLToPath(new URL('../..', import.meta.url));


/** A real `npm run start:api` / `start:worker` process started by a test, with its output kept. */
export interface SpawnedProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<number | string>;
  /** SIGTERM and wait (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<number | string>;
  kill(signal: NodeJS.Signals): void;
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

function start(script: string, env: Record<string, string>, name: string): SpawnedProcess {
  // Node itself with tsx's loader, not the tsx launcher: a signal then reaches the real process.
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (chunk) => (log += chunk));
  child.stderr!.on('data', (chunk) => (log += chunk));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return {
    child,
    output: () => log,
    exited,
    kill: (signal) => void child.kill(signal),
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      if (process.env.DEBUG_PROCESSES) console.log(`--- ${name} output ---\n${log}`);
      return result;
    },
  };
}

/** Starts an API replica on a free port and waits until `/ready` answers 200. */
export async function spawnApi(env: Record<string, string>): Promise<SpawnedProcess & { port: number; url: string; baseUrl: string }> {
  const port = await freePort();
  const proc = start('src/api/main.ts', { ...env, PORT: String(port) }, `api:${port}`);
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitFor(
    `API replica on port ${port} to be ready`,
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`api exited early:\n${proc.output()}`);
      const response = await fetch(`${baseUrl}/ready`).catch(() => null);
      return response?.status === 200;
    },
    60_000,
    200,
  );
  return { ...proc, port, baseUrl, url: `${baseUrl}/graphql` };
}

/** Starts a worker sidecar and waits until it logs that it started. */
export async function spawnWorker(env: Record<string, string>): Promise<SpawnedProcess> {
  // Readiness is read from the start-up log line, so the worker logs at info whatever the file asked.
  const proc = start('src/worker/main.ts', { ...env, LOG_LEVEL: 'info' }, 'worker');
  await waitFor(
    'worker sidecar to start',
    () => {
      if (proc.child.exitCode !== null) throw new Error(`worker exited early:\n${proc.output()}`);
      return proc.output().includes('worker sidecar started');
    },
    60_000,
    100,
  );
  return proc;
}
