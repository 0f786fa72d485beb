/**
 * Job lifecycle: no-op jobs through Jobwire's worker (row ACTIVE then COMPLETED, events published,
 * concurrency 10) beside a bare BullMQ worker doing two UPDATEs by primary key and one PUBLISH per
 * job at the same concurrency. Each side drains a queue filled while paused; throughput is counted
 * from the rows' first start to their last finish, latency is each row's finish − start. The sides
 * take turns in the order A B B A …, each drain starting once the machine is quiet: neither side
 * always runs right after the other, or while it is still being written away.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { benchNoopJob } from '../bench-jobs.js';
import { size, type BenchContext } from '../context.js';
import { cpuSeconds, serviceCpu, serviceCpuUsed, settle, startWorker, waitFor } from '../processes.js';
import { inTurns, measure, type ScenarioResult } from '../stats.js';

const RAW_QUEUE = 'bench_raw_noop';
const ROUNDS = 4;

/** Inserts `count` PENDING rows of `type` in one statement; returns their ids. */
async function insertRows(ctx: BenchContext, type: string, count: number): Promise<string[]> {
  const { rows } = await ctx.env.pool.query<{ id: string }>(
    `INSERT INTO job (id, type, status, max_attempts, payload, trigger, owner_id, created_at, updated_at)
     SELECT gen_random_uuid(), $1, 'PENDING', 1, '{}'::jsonb, 'API', $2, clock_timestamp(), clock_timestamp() FROM generate_series(1, $3::int)
     RETURNING id`,
    [type, ctx.userId, count],
  );
  return rows.map((row) => row.id);
}

/** Fills a paused queue, resumes it, waits until every row is COMPLETED; returns the rows' timings. */
async function drain(ctx: BenchContext, queue: Queue, type: string, count: number) {
  const ids = await insertRows(ctx, type, count);
  await queue.pause();
  for (let i = 0; i < ids.length; i += 1000) {
    await queue.addBulk(
      ids.slice(i, i + 1000).map((id) => ({
        name: type,
        data: {},
        opts: { jobId: id, attempts: 1, removeOnComplete: { count: 100 }, removeOnFail: { count: 50 } },
      })),
    );
  }
  await queue.resume();
  await waitFor(
    `${count} ${type} jobs to complete`,
    async () => {
      const { rows } = await ctx.env.pool.query<{ done: number }>(
        "SELECT count(*)::int AS done FROM job WHERE id = ANY($1::uuid[]) AND status = 'COMPLETED'",
        [ids],
      );
      return rows[0]!.done === ids.length;
    },
    300_000,
    100,
  );
  const { rows } = await ctx.env.pool.query<{ first: Date; last: Date; latencies: number[] }>(
    `SELECT min(started_at) AS first, max(finished_at) AS last,
            array_agg(extract(epoch FROM finished_at - started_at) * 1000) AS latencies
       FROM job WHERE id = ANY($1::uuid[])`,
    [ids],
  );
  const row = rows[0]!;
  return { durationMs: row.last.getTime() - row.first.getTime(), latencies: row.latencies.map(Number) };
}

export async function runLifecycle(ctx: BenchContext): Promise<ScenarioResult[]> {
  const perRound = size(ctx, 2_500, 500);
  const worker = await ctx.worker();
  const raw = await startWorker(
    'bench/raw-worker.ts',
    { ...ctx.env.vars, RAW_QUEUE, RAW_CONCURRENCY: String(benchNoopJob.options.concurrency) },
    'raw-worker',
    'raw worker ready',
  );
  const connection = new Redis(ctx.env.redisUrl, { maxRetriesPerRequest: null });
  const jobwireQueue = new Queue(benchNoopJob.name, { connection, prefix: ctx.env.prefix });
  const rawQueue = new Queue(RAW_QUEUE, { connection, prefix: ctx.env.prefix });
  try {
    // Warm-up on both sides: connections opened, code compiled (200 jobs left the first round visibly
    // slower). Raw first: with the rounds' A B B A, each side then runs right after the other twice.
    await drain(ctx, rawQueue, RAW_QUEUE, size(ctx, 1_000, 200));
    await drain(ctx, jobwireQueue, benchNoopJob.name, size(ctx, 1_000, 200));
    const jobwire = { latencies: [] as number[], durationMs: 0, cpu: 0, postgres: 0, redis: 0, walBytes: 0 };
    const baseline = { latencies: [] as number[], durationMs: 0, cpu: 0, postgres: 0, redis: 0, walBytes: 0 };
    /** Drains one side's round, adding its worker's (and PostgreSQL's and Redis's) CPU seconds to the side's tally. */
    const timed = async (side: typeof jobwire, pid: number, queue: Queue, type: string) => {
      const walLsn = async () => (await ctx.env.pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
      await settle();
      const walBefore = await walLsn();
      const before = await cpuSeconds(pid);
      const services = await serviceCpu();
      const result = await drain(ctx, queue, type, perRound);
      side.cpu += (await cpuSeconds(pid)) - before;
      const used = serviceCpuUsed(services, await serviceCpu());
      side.postgres += used.postgres;
      side.redis += used.redis;
      side.walBytes += Number(
        (await ctx.env.pool.query<{ bytes: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint AS bytes', [walBefore]))
          .rows[0]!.bytes,
      );
      return result;
    };
    for (let round = 0; round < ROUNDS; round++) {
      const [a, b] = await inTurns(
        round,
        () => timed(jobwire, worker.child.pid!, jobwireQueue, benchNoopJob.name),
        () => timed(baseline, raw.child.pid!, rawQueue, RAW_QUEUE),
      );
      jobwire.latencies.push(...a.latencies);
      jobwire.durationMs += a.durationMs;
      baseline.latencies.push(...b.latencies);
      baseline.durationMs += b.durationMs;
      ctx.log(
        `lifecycle round ${round + 1}/${ROUNDS}: ${((perRound / a.durationMs) * 1000).toFixed(0)} jobs/s Jobwire, ${((perRound / b.durationMs) * 1000).toFixed(0)} jobs/s raw${round % 2 ? ' (raw first)' : ''}`,
      );
    }
    const perJobMs = (seconds: number) => ((seconds * 1000) / (perRound * ROUNDS)).toFixed(2);
    const walPerJob = (bytes: number) => Math.round(bytes / (perRound * ROUNDS)).toLocaleString('en');
    const jw = measure(jobwire.latencies, jobwire.durationMs);
    const rw = measure(baseline.latencies, baseline.durationMs);
    const ratio = jw.throughput / rw.throughput;
    return [
      {
        scenario: 'lifecycle',
        variant: `no-op jobs, concurrency ${benchNoopJob.options.concurrency}`,
        unit: 'jobs',
        jobwire: jw,
        raw: rw,
        ratioOf: 'throughput jobwire/raw',
        ratio,
        target: '≥ 1.0×',
        pass: ratio >= 1.0,
        notes: [
          'latency: row started_at → finished_at',
          `CPU per job, Jobwire | raw: worker ${perJobMs(jobwire.cpu)} | ${perJobMs(baseline.cpu)} ms, PostgreSQL ${perJobMs(jobwire.postgres)} | ${perJobMs(
            baseline.postgres,
          )} ms, Redis ${perJobMs(jobwire.redis)} | ${perJobMs(baseline.redis)} ms (the services' figures include the bench's polling)`,
          `PostgreSQL WAL per job, Jobwire | raw: ${walPerJob(jobwire.walBytes)} | ${walPerJob(baseline.walBytes)} bytes`,
        ],
        extra: {
          workerCpuMsPerJob: { jobwire: (jobwire.cpu * 1000) / (perRound * ROUNDS), raw: (baseline.cpu * 1000) / (perRound * ROUNDS) },
          walBytesPerJob: { jobwire: jobwire.walBytes / (perRound * ROUNDS), raw: baseline.walBytes / (perRound * ROUNDS) },
        },
      },
    ];
  } finally {
    await raw.stop();
    await jobwireQueue.close();
    await rawQueue.close();
    connection.disconnect();
  }
}
