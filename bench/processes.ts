/**
 * The processes a benchmark runs: API replicas and worker sidecars started by the helpers the tests
 * use (test/helpers/processes.ts, free of vitest), plus what only the bench needs: a record of every
 * child so a failed run still stops them, CPU profiles, bounded output and CPU time.
 */
import { readdir, readFile } from 'node:fs/promises';
import {
  startApi as startApiProcess,
  startWorker as startWorkerProcess,
  type ApiProc,
  type Proc,
  type StartOptions,
} from '../test/helpers/processes.js';

export { freePort, migrate, root, waitFor, type ApiProc, type Proc } from '../test/helpers/processes.js';

const running = new Set<Proc>();

/** Every child still running; the bench stops them on exit, even after a failure. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((child) => child.stop(5_000)));
}

/** How every bench child starts: BENCH_CPU_PROF=<dir> makes it write a V8 CPU profile there when it exits (open it in Chrome DevTools). */
const startOptions = (): StartOptions => ({
  nodeArgs: process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [],
  // Enough to find start-up lines and recent errors.
  keepOutput: 256 * 1024,
  readyTimeoutMs: 90_000,
  onSpawn: track,
});

/** Records a child from its spawn until it exits; BENCH_DEBUG=1 prints its warnings and errors (pino levels 40+) when it stops. */
function track(proc: Proc): void {
  running.add(proc);
  void proc.exited.then(() => running.delete(proc));
  const stop = proc.stop;
  proc.stop = async (graceMs) => {
    const result = await stop(graceMs);
    if (process.env.BENCH_DEBUG) {
      const problems = proc
        .output()
        .split('\n')
        .filter((line) => /"level":(4|5|6)0/.test(line) || /error/i.test(line));
      if (problems.length)
        console.log(`--- ${proc.name}: ${problems.length} warning/error lines, last 20 ---\n${problems.slice(-20).join('\n')}`);
    }
    running.delete(proc);
    return result;
  };
}

/** An API replica (the compiled entry point), ready. */
export async function startApi(env: Record<string, string>, name: string, options: { heapProbe?: boolean } = {}): Promise<ApiProc> {
  return startApiProcess(env, { ...startOptions(), ...options, name });
}

/** A worker-like process (`script`, e.g. bench/worker.ts, run with tsx) that prints `readyText` once it is ready. */
export async function startWorker(script: string, env: Record<string, string>, name: string, readyText: string): Promise<Proc> {
  return startWorkerProcess(env, name, { ...startOptions(), script, readyText });
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 1/100 s). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds used so far by each running process of PostgreSQL (`postgres`) and Redis (`redis-server`), by pid. */
export type ServiceCpu = Map<string, { service: 'postgres' | 'redis'; seconds: number }>;

/**
 * What PostgreSQL and Redis cost a scenario, beside what it costs Jobwire's processes: read with
 * `serviceCpu()` before and after, and compare with `serviceCpuUsed`.
 */
export async function serviceCpu(): Promise<ServiceCpu> {
  const found: ServiceCpu = new Map();
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
    if (!stat) continue;
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const service = name === 'postgres' ? 'postgres' : name === 'redis-server' ? 'redis' : null;
    if (!service) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    found.set(pid, { service, seconds: (Number(fields[11]) + Number(fields[12])) / 100 });
  }
  return found;
}

/** The CPU seconds each service used between two readings, over the processes alive at both (a backend that exited in between is left out). */
export function serviceCpuUsed(before: ServiceCpu, after: ServiceCpu): { postgres: number; redis: number } {
  const used = { postgres: 0, redis: 0 };
  for (const [pid, later] of after) {
    const earlier = before.get(pid);
    if (earlier) used[later.service] += later.seconds - earlier.seconds;
  }
  return used;
}

/** The machine's CPU time so far, busy and idle (clock ticks, all cores), from /proc/stat. */
async function machineTicks(): Promise<{ busy: number; idle: number }> {
  const [user, nice, system, idle, iowait, irq, softirq, steal] = (await readFile('/proc/stat', 'utf8'))
    .split('\n', 1)[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number) as number[];
  return { busy: user! + nice! + system! + irq! + softirq! + steal!, idle: idle! + iowait! };
}

/**
 * Waits until the machine is quiet (at most `busyShare` of its CPU used over a quarter of a
 * second), or `maxMs` has passed (a machine others share may never be): a measurement then starts without the work the one before
 * left behind (a worker's last writes, PostgreSQL's WAL and dirty pages). Returns the wait.
 */
export async function settle(busyShare = 0.25, maxMs = 5_000): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < maxMs) {
    const before = await machineTicks();
    await new Promise((resolve) => setTimeout(resolve, 250));
    const after = await machineTicks();
    const busy = after.busy - before.busy;
    const total = busy + after.idle - before.idle;
    if (total > 0 && busy / total <= busyShare) break;
  }
  return performance.now() - started;
}
