/**
 * Enqueue: the `bulkOperation` mutation over HTTP with 50 clients in flight, beside a loop doing the
 * same INSERT (the statement of job-store's insertJob) and BullMQ `add` with 50 in flight. Rounds
 * alternate between the two so both see the same background load. No worker runs meanwhile.
 */
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { bulkOperationJob } from '../../src/jobs/bulk-operation.job.js';
import { gql } from '../clients.js';
import { size, type BenchContext } from '../context.js';
import { cpuSeconds } from '../processes.js';
import { inTurns, measure, runConcurrent, type ScenarioResult } from '../stats.js';

const CONCURRENCY = 50;
const ROUNDS = 3;
const WARM_UP = 2_000;
const BULK = `mutation($input: BulkOperationInput!) { bulkOperation(input: $input) { id status } }`;

const INSERT = `INSERT INTO job (id, type, status, max_attempts, priority, payload, trigger, idempotency_key, owner_id, account_id, run_at, created_at, updated_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, clock_timestamp(), clock_timestamp())
  ON CONFLICT (owner_id, idempotency_key) DO NOTHING
  RETURNING *`;

export async function runEnqueue(ctx: BenchContext): Promise<ScenarioResult[]> {
  const total = size(ctx, 3_000, 600);
  const perRound = Math.ceil(total / ROUNDS);
  const declaration = bulkOperationJob;
  const options = declaration.options;
  const input = { accountId: ctx.accountId, action: 'MARK_READ', ids: [randomUUID()] };

  // The raw side: the application's pool size (10) and one Redis connection, as JobQueues has.
  const pool = new pg.Pool({ connectionString: ctx.env.databaseUrl, max: 10 });
  const connection = new Redis(ctx.env.redisUrl, { maxRetriesPerRequest: 1 });
  const queue = new Queue(declaration.name, { connection, prefix: ctx.env.prefix });
  let errors = 0;

  const viaGraphql = async () => {
    const response = await gql<{ bulkOperation: { id: string } }>(ctx.api.url, ctx.userToken, BULK, { input });
    if (response.errors?.length || !response.data?.bulkOperation.id) errors++;
  };
  const viaRaw = async () => {
    const id = randomUUID();
    const { rows } = await pool.query(INSERT, [
      id,
      declaration.name,
      'PENDING',
      options.attempts,
      options.priority,
      JSON.stringify(input),
      'API',
      null,
      ctx.userId,
      ctx.accountId,
      null,
    ]);
    await queue.add(declaration.name, rows[0].payload, {
      jobId: id,
      attempts: options.attempts,
      backoff: { type: options.backoff.type, delay: options.backoff.delayMs },
      removeOnComplete: { count: options.removeOnComplete },
      removeOnFail: { count: options.removeOnFail },
    });
  };

  const perJobMs = (seconds: number) => ((seconds * 1000) / (perRound * ROUNDS)).toFixed(2);

  try {
    // Warm-up: connections opened, code paths compiled (the API's throughput still climbed for a
    // couple of thousand requests after 200 of them), on both sides.
    await runConcurrent(WARM_UP, CONCURRENCY, viaRaw);
    await runConcurrent(WARM_UP, CONCURRENCY, viaGraphql);
    errors = 0;
    const jobwire = { latencies: [] as number[], durationMs: 0, apiCpu: 0, clientCpu: 0 };
    const raw = { latencies: [] as number[], durationMs: 0, clientCpu: 0 };
    /** Runs one side's round, adding the API's and this process's (the load generator's) CPU seconds to its tally. */
    const timed = async (side: { clientCpu: number; apiCpu?: number }, op: () => Promise<void>) => {
      const api = await cpuSeconds(ctx.api.child.pid!);
      const client = process.cpuUsage();
      const result = await runConcurrent(perRound, CONCURRENCY, op);
      const used = process.cpuUsage(client);
      side.clientCpu += (used.user + used.system) / 1e6;
      if (side.apiCpu !== undefined) side.apiCpu += (await cpuSeconds(ctx.api.child.pid!)) - api;
      return result;
    };
    for (let round = 0; round < ROUNDS; round++) {
      const [a, b] = await inTurns(
        round,
        () => timed(jobwire, viaGraphql),
        () => timed(raw, viaRaw),
      );
      jobwire.latencies.push(...a.latencies);
      jobwire.durationMs += a.durationMs;
      raw.latencies.push(...b.latencies);
      raw.durationMs += b.durationMs;
      ctx.log(
        `enqueue round ${round + 1}/${ROUNDS}: ${((perRound / a.durationMs) * 1000).toFixed(0)}/s via GraphQL, ${((perRound / b.durationMs) * 1000).toFixed(0)}/s raw${round % 2 ? ' (raw first)' : ''}`,
      );
    }
    const jw = measure(jobwire.latencies, jobwire.durationMs);
    const rw = measure(raw.latencies, raw.durationMs);
    const ratio = jw.throughput / rw.throughput;
    return [
      {
        scenario: 'enqueue',
        variant: `${CONCURRENCY} clients, bulkOperation`,
        unit: 'jobs',
        jobwire: jw,
        raw: rw,
        ratioOf: 'throughput jobwire/raw',
        ratio,
        target: '≥ 0.5×',
        pass: ratio >= 0.5 && errors === 0,
        notes: [
          `CPU per job: API ${perJobMs(jobwire.apiCpu)} ms; load generator ${perJobMs(jobwire.clientCpu)} ms (GraphQL over HTTP), ${perJobMs(raw.clientCpu)} ms (raw INSERT + add)`,
          ...(errors ? [`${errors} mutations returned errors`] : []),
        ],
        extra: { apiCpuSeconds: jobwire.apiCpu, clientCpuSeconds: { jobwire: jobwire.clientCpu, raw: raw.clientCpu } },
      },
    ];
  } finally {
    // Nothing consumes these: drop them so the worker started later does not run them.
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    connection.disconnect();
    await pool.end();
  }
}
