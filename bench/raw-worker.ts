/**
 * The lifecycle baseline: a bare BullMQ worker that does, per job, what a naive loop would — an
 * UPDATE to ACTIVE and an UPDATE to COMPLETED by primary key, and one PUBLISH of the row.
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';

const { DATABASE_URL, REDIS_URL, REDIS_PREFIX, RAW_QUEUE, RAW_CONCURRENCY } = process.env as Record<string, string>;
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 });
const publisher = new Redis(REDIS_URL!);
const worker = new Worker(
  RAW_QUEUE!,
  async (job) => {
    await pool.query(
      "UPDATE job SET status = 'ACTIVE', attempts = attempts + 1, started_at = clock_timestamp(), updated_at = clock_timestamp(), version = version + 1 WHERE id = $1",
      [job.id],
    );
    const { rows } = await pool.query(
      "UPDATE job SET status = 'COMPLETED', progress = 100, result = '{}', finished_at = clock_timestamp(), updated_at = clock_timestamp(), version = version + 1 WHERE id = $1 RETURNING *",
      [job.id],
    );
    await publisher.publish(`${REDIS_PREFIX}:job:${job.id}`, JSON.stringify(rows[0]));
    return {};
  },
  { connection: new Redis(REDIS_URL!, { maxRetriesPerRequest: null }), prefix: REDIS_PREFIX, concurrency: Number(RAW_CONCURRENCY) },
);
await worker.waitUntilReady();
console.log('raw worker ready');
process.on('SIGTERM', () => {
  void worker.close().then(async () => {
    await pool.end();
    publisher.disconnect();
    process.exit(0);
  });
});
