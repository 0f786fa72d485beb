/**
 * The processes a benchmark runs: API replicas and worker sidecars as real child processes (the
 * pattern of test/helpers/processes.ts, without vitest). Each is started as `node --import tsx`, so
 * its pid is the process measured, not a launcher in front of it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));

/** Output kept per process: enough to find start-up lines and recent errors. */
const KEEP_OUTPUT = 256 * 1024;

/** On SIGUSR2: collect garbage twice, print heap and RSS on stderr (loaded with `--import`). */
const HEAP_PROBE =
  'data:text/javascript,process.on("SIGUSR2",()=>{globalThis.gc();globalThis.gc();' +
  'const m=process.memoryUsage();process.stderr.write("HEAP_PROBE "+JSON.stringify({heapUsed:m.heapUsed,rss:m.rss})+"\\n")})';

export interface Child {
  name: string;
  child: ChildProcess;
  output(): string;
  alive(): boolean;
  exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Polls `check` until it returns a truthy value; throws after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs = 30_000, intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

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

const running = new Set<Child>();

/** Every child still running; the bench stops them on exit, even after a failure. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((child) => child.stop(5_000)));
}

/** BENCH_CPU_PROF=<dir>: every child writes a V8 CPU profile there when it exits (open it in Chrome DevTools). */
const profiling = process.env.BENCH_CPU_PROF ? [`--cpu-prof`, `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];

export function startNode(script: string, env: Record<string, string>, name: string, nodeArgs: string[] = []): Child {
  const child = spawn(process.execPath, [...profiling, ...nodeArgs, '--import', 'tsx', script], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (chunk: Buffer) => {
    log += chunk.toString();
    if (log.length > KEEP_OUTPUT * 2) log = log.slice(-KEEP_OUTPUT);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const proc: Child = {
    name,
    child,
    output: () => log,
    alive,
    exited,
    async stop(graceMs = 10_000) {
      if (alive()) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // BENCH_DEBUG=1: each process's warnings and errors (pino levels 40+) when it stops.
      if (process.env.BENCH_DEBUG) {
        const problems = log.split('\n').filter((line) => /"level":(4|5|6)0/.test(line) || /error/i.test(line));
        if (problems.length) console.log(`--- ${name}: ${problems.length} warning/error lines, last 20 ---\n${problems.slice(-20).join('\n')}`);
      }
      running.delete(proc);
    },
  };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  return proc;
}

export interface Api extends Child {
  port: number;
  baseUrl: string;
  url: string;
  /** Heap and RSS after two full collections (needs `heapProbe`). */
  heap(): Promise<{ heapUsed: number; rss: number }>;
  /** Resident memory now, from /proc, without collecting. */
  rss(): Promise<number>;
}

export async function startApi(env: Record<string, string>, name: string, options: { heapProbe?: boolean } = {}): Promise<Api> {
  const port = await freePort();
  const proc = startNode('src/api/main.ts', { ...env, PORT: String(port) }, name, options.heapProbe ? ['--expose-gc', '--import', HEAP_PROBE] : []);
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitFor(
    `${name} to be ready`,
    async () => {
      if (!proc.alive()) throw new Error(`${name} exited:\n${proc.output()}`);
      return (await fetch(`${baseUrl}/ready`).catch(() => null))?.status === 200;
    },
    90_000,
    200,
  );
  let probes = 0;
  return {
    ...proc,
    port,
    baseUrl,
    url: `${baseUrl}/graphql`,
    async heap() {
      const seen = probes++;
      proc.child.kill('SIGUSR2');
      const line = await waitFor('heap probe', () => [...proc.output().matchAll(/HEAP_PROBE (\{.*\})/g)][seen]?.[1], 20_000, 20);
      return JSON.parse(line) as { heapUsed: number; rss: number };
    },
    async rss() {
      const status = await readFile(`/proc/${proc.child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
    },
  };
}

/** A worker-like process that prints `readyText` once it is ready. */
export async function startWorker(script: string, env: Record<string, string>, name: string, readyText: string): Promise<Child> {
  const proc = startNode(script, env, name);
  await waitFor(
    `${name} to start`,
    () => {
      if (!proc.alive()) throw new Error(`${name} exited:\n${proc.output()}`);
      return proc.output().includes(readyText);
    },
    90_000,
    100,
  );
  return proc;
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 1/100 s). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
