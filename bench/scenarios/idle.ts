/**
 * Idle subscribers: 10,000 open `jobProgress` subscriptions on one fresh API replica, over 100
 * WebSocket connections (100 subscriptions each) on 1,000 quiet jobs. Reports resident memory and
 * heap per subscription, both after full garbage collections; then what the replica spends on a
 * change of a job none of them watches (one more subscriber follows it, to know when the replica
 * has read them all).
 */
import { size, type BenchContext } from '../context.js';
import { subscribeWs, wsConnection, type LiveSubscription } from '../clients.js';
import { topics } from '../../src/pubsub/topics.js';
import { cpuSeconds, startApi, waitFor } from '../processes.js';
import type { ScenarioResult } from '../stats.js';

const JOB_PROGRESS = `subscription($jobId: ID!) { jobProgress(jobId: $jobId) { jobId status progress at } }`;
const PER_SOCKET = 100;

export async function runIdle(ctx: BenchContext): Promise<ScenarioResult[]> {
  const total = size(ctx, 10_000, 2_000);
  const jobs = size(ctx, 1_000, 200);
  const { rows } = await ctx.env.pool.query<{ id: string }>(
    `INSERT INTO job (id, type, status, max_attempts, payload, trigger, owner_id, created_at, updated_at)
     SELECT gen_random_uuid(), 'bench_noop', 'PENDING', 1, '{}'::jsonb, 'API', $1, clock_timestamp(), clock_timestamp() FROM generate_series(1, $2::int)
     RETURNING id`,
    [ctx.userId, jobs],
  );
  const jobIds = rows.map((row) => row.id);
  const api = await startApi(ctx.env.vars, 'api-idle', { heapProbe: true });
  const sockets: ReturnType<typeof wsConnection>[] = [];
  const subs: LiveSubscription<unknown>[] = [];
  try {
    // Warm-up: one socket's worth opened and closed, so lazily loaded code is not counted.
    const warm = wsConnection(api.url, ctx.userToken);
    const warmSubs = jobIds.slice(0, PER_SOCKET).map((jobId) => subscribeWs(warm, 'jobProgress', JOB_PROGRESS, { jobId }));
    await waitFor('warm-up subscriptions', () => warmSubs.every((sub) => sub.received.length > 0), 60_000, 20);
    warmSubs.forEach((sub) => sub.close());
    await warm.dispose();
    await waitFor('warm-up released', async () => (await openSubscriptions(api.baseUrl, ctx.env.vars.METRICS_TOKEN!)) === 0, 30_000, 100);

    const before = await api.heap();
    const started = performance.now();
    for (let i = 0; i < total; i += PER_SOCKET) {
      const socket = wsConnection(api.url, ctx.userToken);
      sockets.push(socket);
      const batch = Array.from({ length: Math.min(PER_SOCKET, total - i) }, (_, k) =>
        subscribeWs(socket, 'jobProgress', JOB_PROGRESS, { jobId: jobIds[(i + k) % jobIds.length] }),
      );
      subs.push(...batch);
      await waitFor('subscriptions to open', () => batch.every((sub) => sub.received.length > 0 || sub.errors.length > 0), 60_000, 10);
    }
    const openMs = performance.now() - started;
    const open = await openSubscriptions(api.baseUrl, ctx.env.vars.METRICS_TOKEN!);
    const failed = subs.filter((sub) => sub.errors.length > 0).length;
    const after = await api.heap();
    const channels = ((await ctx.env.redis.pubsub('CHANNELS', `${ctx.env.prefix}:job:*`)) as string[]).length;
    const rssPerSub = (after.rss - before.rss) / total;
    const heapPerSub = (after.heapUsed - before.heapUsed) / total;
    const unwatched = await changesNobodyWatches(ctx, api, ctx.userToken);
    ctx.log(
      `idle: ${open} open, RSS +${((after.rss - before.rss) / 1048576).toFixed(1)} MiB, heap +${((after.heapUsed - before.heapUsed) / 1048576).toFixed(1)} MiB`,
    );
    return [
      {
        scenario: 'idle subscribers',
        variant: `${total} jobProgress on one replica`,
        unit: 'subscriptions',
        jobwire: null,
        raw: null,
        ratioOf: '',
        ratio: null,
        target: 'memory per subscription, reported',
        pass: failed === 0 && open === total ? null : false,
        notes: [
          `RSS ${(before.rss / 1048576).toFixed(0)} → ${(after.rss / 1048576).toFixed(0)} MiB: ${(rssPerSub / 1024).toFixed(1)} KiB per subscription`,
          `heap ${(before.heapUsed / 1048576).toFixed(0)} → ${(after.heapUsed / 1048576).toFixed(0)} MiB: ${(heapPerSub / 1024).toFixed(1)} KiB per subscription`,
          `${sockets.length} WebSocket connections, ${jobs} jobs, ${channels} Redis channels; opened in ${(openMs / 1000).toFixed(1)} s (${((total / openMs) * 1000).toFixed(0)}/s)${
            failed ? `; ${failed} failed` : ''
          }`,
          `a change of a job none of them watches: ${unwatched.cpuPerChangeUs.toFixed(0)} µs of API CPU (${unwatched.changes} changes, one subscriber)`,
        ],
        extra: {
          unwatchedChanges: unwatched.changes,
          apiCpuPerUnwatchedChangeUs: unwatched.cpuPerChangeUs,
          rssBefore: before.rss,
          rssAfter: after.rss,
          heapBefore: before.heapUsed,
          heapAfter: after.heapUsed,
          rssPerSubscription: rssPerSub,
          heapPerSubscription: heapPerSub,
          open,
        },
      },
    ];
  } finally {
    subs.forEach((sub) => sub.close());
    await Promise.all(sockets.map((socket) => socket.dispose()));
    await api.stop();
  }
}

async function openSubscriptions(baseUrl: string, metricsToken: string): Promise<number> {
  const metrics = await (await fetch(`${baseUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })).text();
  return [...metrics.matchAll(/^jobwire_active_subscriptions\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

/**
 * API CPU per change of a job that one subscriber follows and the 10,000 idle ones do not: each
 * change is its own UPDATE and rings the change feed, as a worker's would.
 */
async function changesNobodyWatches(ctx: BenchContext, api: Awaited<ReturnType<typeof startApi>>, token: string) {
  const changes = size(ctx, 500, 100);
  const { rows } = await ctx.env.pool.query<{ id: string }>(
    `INSERT INTO job (id, type, status, max_attempts, payload, trigger, owner_id, created_at, updated_at)
     VALUES (gen_random_uuid(), 'bench_noop', 'ACTIVE', 1, '{}'::jsonb, 'API', $1, clock_timestamp(), clock_timestamp()) RETURNING id`,
    [ctx.userId],
  );
  const jobId = rows[0]!.id;
  const socket = wsConnection(api.url, token);
  const watcher = subscribeWs<{ status: string }>(socket, 'jobProgress', JOB_PROGRESS, { jobId });
  try {
    await waitFor('the watcher to subscribe', () => watcher.received.length > 0, 60_000, 10);
    const before = await cpuSeconds(api.child.pid!);
    for (let progress = 1; progress <= changes; progress++) {
      await ctx.env.pool.query(
        'UPDATE job SET progress = $2, previous_status = status, version = version + 1, updated_at = clock_timestamp(), change_xid = pg_current_xact_id() WHERE id = $1',
        [jobId, progress % 100],
      );
      await ctx.env.redis.publish(`${ctx.env.prefix}:${topics.jobChanges().channel}`, JSON.stringify({ changes: 1 }));
    }
    await ctx.env.pool.query(
      "UPDATE job SET status = 'COMPLETED', progress = 100, previous_status = status, version = version + 1, updated_at = clock_timestamp(), change_xid = pg_current_xact_id() WHERE id = $1",
      [jobId],
    );
    await ctx.env.redis.publish(`${ctx.env.prefix}:${topics.jobChanges().channel}`, JSON.stringify({ changes: 1 }));
    await waitFor('the watcher to see the last change', () => watcher.received.some((r) => r.value.status === 'COMPLETED'), 60_000, 10);
    return { changes: changes + 1, cpuPerChangeUs: (((await cpuSeconds(api.child.pid!)) - before) / (changes + 1)) * 1e6 };
  } finally {
    watcher.close();
    await socket.dispose();
  }
}
