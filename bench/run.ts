/**
 * `npm run bench [-- --quick] [-- --only enqueue,history]`
 *
 * Measures Jobwire against its raw building blocks, side by side in the same run, on its own
 * database, Redis prefix and storage directory (all removed at the end). Prints a table and writes
 * the same figures, with the machine and versions, to bench/results/latest.json.
 *
 * Options:
 *   --quick            smaller counts (a couple of minutes instead of several)
 *   --only a,b         scenarios to run: enqueue, lifecycle, fanout, stream, idle, history, import (Default: all)
 *   --rows N           job rows seeded for `history` (Default: 1,000,000; --quick: 200,000)
 *   --repeat N         run the scenarios N times; each row shows the median repetition, and the
 *                      JSON keeps every repetition's figures (Default: 1)
 * Environment: BENCH_ADMIN_DATABASE_URL (Default: postgres://postgres@127.0.0.1:5432/postgres),
 * BENCH_REDIS_URL (Default: redis://127.0.0.1:6379); BENCH_CPU_PROF=<dir> writes a V8 CPU profile
 * of every process the bench starts; BENCH_DEBUG=1 prints their warnings and errors when they stop.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { createBenchEnv, type BenchEnv } from './bench-env.js';
import { gqlOk } from './clients.js';
import type { BenchContext } from './context.js';
import { root, startApi, startWorker, stopAll, type Proc } from './processes.js';
import { runEnqueue } from './scenarios/enqueue.js';
import { runFanout } from './scenarios/fanout.js';
import { runHistory, seedHistory, SEED_OWNERS } from './scenarios/history.js';
import { runIdle } from './scenarios/idle.js';
import { runImport } from './scenarios/import.js';
import { runLifecycle } from './scenarios/lifecycle.js';
import { runStream } from './scenarios/stream.js';
import { combineRepeats, formatMarkdown, formatTable, type ScenarioResult } from './stats.js';

const SCENARIOS = ['history', 'enqueue', 'lifecycle', 'fanout', 'stream', 'import', 'idle'] as const;
type Scenario = (typeof SCENARIOS)[number];

function parseArgs(argv: string[]): { quick: boolean; only: Scenario[]; rows: number | null; repeat: number } {
  let quick = false;
  let repeat = 1;
  let only: Scenario[] = [...SCENARIOS];
  let rows: number | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const [, inline] = arg.split('=');
      return inline ?? argv[++i] ?? '';
    };
    if (arg === '--quick') quick = true;
    else if (arg.startsWith('--only')) {
      const wanted = value()
        .split(',')
        .map((s) => s.trim().replace('fan-out', 'fanout'))
        .filter(Boolean);
      const unknown = wanted.filter((name) => !SCENARIOS.includes(name as Scenario));
      if (unknown.length) throw new Error(`unknown scenario(s): ${unknown.join(', ')}; known: ${SCENARIOS.join(', ')}`);
      only = SCENARIOS.filter((name) => wanted.includes(name));
    } else if (arg.startsWith('--rows')) rows = Number(value());
    else if (arg.startsWith('--repeat')) {
      repeat = Number(value());
      if (!Number.isInteger(repeat) || repeat < 1) throw new Error('--repeat takes a whole number of at least 1');
    } else if (arg === '--help' || arg === '-h') {
      console.log(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]);
      process.exit(0);
    } else throw new Error(`unknown option ${arg} (try --help)`);
  }
  return { quick, only, rows, repeat };
}

function packageVersions(): Record<string, string> {
  const names = [
    'bullmq',
    'ioredis',
    'graphql',
    'graphql-yoga',
    '@pothos/core',
    '@mikro-orm/core',
    'pg',
    'graphql-redis-subscriptions',
    'graphql-ws',
    'graphql-sse',
    'mailparser',
    'tsx',
  ];
  return Object.fromEntries(
    names.map((name) => {
      try {
        return [name, JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version as string];
      } catch {
        return [name, 'unknown'];
      }
    }),
  );
}

function gitCommit(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${commit}+uncommitted` : commit;
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  const loadBefore = os.loadavg();
  const log = (message: string) =>
    console.log(`[bench ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0).padStart(4)} s] ${message}`);
  log(
    `scenarios: ${options.only.join(', ')}${options.quick ? ' (quick)' : ''}${options.repeat > 1 ? `, ${options.repeat} repetitions` : ''}`,
  );

  let env: BenchEnv | null = null;
  let cleaning: Promise<void> | null = null;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await stopAll();
      await env?.cleanup().catch((error) => console.error('cleanup failed:', error));
    })());
  process.once('SIGINT', () => {
    console.error('\ninterrupted: stopping processes and dropping the bench database');
    void cleanup().then(() => process.exit(130));
  });

  const results: ScenarioResult[] = [];
  const failures: string[] = [];
  let serverVersions: Record<string, string> = {};
  try {
    env = await createBenchEnv();
    log(`database ${env.databaseName}, Redis prefix ${env.prefix}`);
    serverVersions = {
      postgresql: (await env.pool.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version,
      redis: /redis_version:(\S+)/.exec(await env.redis.info('server'))?.[1] ?? 'unknown',
    };
    // The sidecar's reconciler scans every non-terminal row; the seeded history holds 20,000 of
    // them with no queued job. Holding its lock keeps it idle: its scan is not what is measured.
    await env.redis.set(`${env.prefix}:reconciler-lock`, 'bench', 'PX', 6 * 3600 * 1000);

    const userId = 'user-7';
    const api = await startApi(env.vars, 'api-a');
    const userToken = await env.token(userId);
    const adminToken = await env.token('bench-admin', 'admin');
    const { createAccount } = await gqlOk<{ createAccount: { id: string } }>(
      api.url,
      userToken,
      'mutation { createAccount(input: { name: "bench" }) { id } }',
    );
    let worker: Promise<Proc> | null = null;
    const benchEnv = env;
    const ctx: BenchContext = {
      env: benchEnv,
      quick: options.quick,
      api,
      userId,
      userToken,
      adminToken,
      accountId: createAccount.id,
      worker: () => (worker ??= startWorker('bench/worker.ts', benchEnv.vars, 'worker', 'worker sidecar started')),
      log,
    };

    let seededRows = 0;
    if (options.only.includes('history')) {
      seededRows = options.rows ?? (options.quick ? 200_000 : 1_000_000);
      log(`seeding ${seededRows.toLocaleString('en')} job rows (${SEED_OWNERS} owners)…`);
      const ms = await seedHistory(ctx, seededRows);
      log(`seeded in ${(ms / 1000).toFixed(1)} s`);
    }

    const runners: Record<Scenario, () => Promise<ScenarioResult[]>> = {
      history: () => runHistory(ctx, seededRows),
      enqueue: () => runEnqueue(ctx),
      lifecycle: () => runLifecycle(ctx),
      fanout: () => runFanout(ctx),
      stream: () => runStream(ctx),
      import: () => runImport(ctx),
      idle: () => runIdle(ctx),
    };
    const repetitions: ScenarioResult[][] = [];
    for (let repetition = 1; repetition <= options.repeat; repetition++) {
      const round: ScenarioResult[] = [];
      for (const scenario of options.only) {
        log(`— ${scenario}${options.repeat > 1 ? ` (repetition ${repetition}/${options.repeat})` : ''}`);
        try {
          round.push(...(await runners[scenario]()));
        } catch (error) {
          failures.push(`${scenario}: ${error instanceof Error ? error.message : String(error)}`);
          log(`${scenario} failed: ${error instanceof Error ? error.stack : String(error)}`);
        }
      }
      repetitions.push(round);
    }
    results.push(...combineRepeats(repetitions));
  } finally {
    log('cleaning up: processes, bench database, Redis keys, storage');
    await cleanup();
  }

  const report = {
    date: startedAt.toISOString(),
    durationSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
    options,
    commit: gitCommit(),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      memoryBytes: os.totalmem(),
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      loadAverageBefore: loadBefore,
      loadAverageAfter: os.loadavg(),
      note: 'Ratios compare Jobwire with raw baselines measured in the same run, on the same machine, so they hold on a busy box; absolute figures do not.',
    },
    versions: { node: process.version, ...serverVersions, ...packageVersions() },
    results,
    failures,
  };
  await mkdir(join(root, 'bench/results'), { recursive: true });
  await writeFile(join(root, 'bench/results/latest.json'), `${JSON.stringify(report, null, 2)}\n`);

  console.log(
    `\nJobwire benchmark — ${report.date}, ${report.machine.cpus} × ${report.machine.cpuModel}, ${(report.machine.memoryBytes / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
  );
  console.log(
    `load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} → ${report.machine.loadAverageAfter.map((l) => l.toFixed(2)).join(' ')}${options.quick ? ' (quick run)' : ''}\n`,
  );
  console.log(formatTable(results));
  if (failures.length) console.log(`\nscenarios that did not finish:\n${failures.map((f) => `  - ${f}`).join('\n')}`);
  console.log(`\nMarkdown (for the README):\n\n${formatMarkdown(results)}\n`);
  console.log(`written: bench/results/latest.json (${report.durationSeconds} s)`);
  process.exit(failures.length ? 1 : 0);
}

main().catch(async (error) => {
  console.error(error instanceof Error ? error.stack : error);
  await stopAll();
  process.exit(1);
});
