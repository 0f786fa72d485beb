import { Gauge } from 'prom-client';
import { jobCatalogue } from '../jobs/registry.js';
import { withRedisDeadline } from '../queue/job-queues.js';
import { metricsRegistry } from '../observability/metrics.js';
import type { Services } from '../services.js';

const queueDepth = new Gauge({
  name: 'jobwire_queue_jobs',
  help: 'Jobs in each BullMQ queue by state.',
  labelNames: ['queue', 'state'],
  registers: [metricsRegistry],
});

const jobsByStatus = new Gauge({
  name: 'jobwire_jobs',
  help: 'Job rows in PostgreSQL by type and status.',
  labelNames: ['type', 'status'],
  registers: [metricsRegistry],
});

/** Refreshes the gauges read at scrape time: queue depths from Redis, job counts from PostgreSQL. */
export async function collectQueueMetrics(services: Services): Promise<void> {
  // Bounded: while Redis does not answer, a scrape still gets the rest (and no stale queue depths),
  // where it would otherwise hang and make the replica look down.
  const depths = await withRedisDeadline(
    Promise.all(
      jobCatalogue.map(async ({ name }) => ({
        name,
        counts: await services.queues.get(name).getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed', 'paused'),
      })),
    ),
  ).catch(() => null);
  queueDepth.reset();
  for (const { name, counts } of depths ?? []) {
    for (const [state, count] of Object.entries(counts)) queueDepth.labels(name, state).set(count);
  }
  const rows: { type: string; status: string; count: number }[] = await services.orm.em
    .fork()
    .getConnection()
    .execute('SELECT type, status, count(*)::int AS count FROM job GROUP BY type, status', [], 'all');
  jobsByStatus.reset();
  for (const row of rows) jobsByStatus.labels(row.type, row.status).set(row.count);
}
