/**
 * Progress fan-out: one job reports progress ~10 times a second; 1,000 `jobProgress` subscribers
 * watch it, half on each of two API replicas, half over SSE and half over WebSocket. Latency is an
 * event's `at` (the row update) to its arrival at the subscriber. A raw Redis subscriber records
 * what was published, so a missing event is counted. The baseline is Redis PUBLISH → SUBSCRIBE of
 * the same payloads at the same pace, to two subscriber connections (one per replica).
 */
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { benchProgressJob } from '../bench-jobs.js';
import { now, subscribeSse, subscribeWs, wsConnection, type LiveSubscription } from '../clients.js';
import { size, type BenchContext } from '../context.js';
import { cpuSeconds, startApi, waitFor } from '../processes.js';
import { measure, type ScenarioResult } from '../stats.js';

const JOB_PROGRESS = `subscription($jobId: ID!) { jobProgress(jobId: $jobId) { jobId status progress processed total message at } }`;
const INTERVAL_MS = 100;

interface ProgressEvent {
  status: string;
  processed: number | null;
  at: string;
}

export async function runFanout(ctx: BenchContext): Promise<ScenarioResult[]> {
  const subscribers = size(ctx, 1_000, 200);
  const steps = size(ctx, 50, 20);
  await ctx.worker();
  const replicaB = await startApi(ctx.env.vars, 'api-b');
  const replicas = [ctx.api, replicaB];
  const jobId = randomUUID();
  const payload = { steps, intervalMs: INTERVAL_MS };
  await ctx.env.pool.query(
    `INSERT INTO job (id, type, status, max_attempts, payload, trigger, owner_id, created_at, updated_at)
     VALUES ($1, $2, 'PENDING', 1, $3, 'API', $4, clock_timestamp(), clock_timestamp())`,
    [jobId, benchProgressJob.name, JSON.stringify(payload), ctx.userId],
  );

  // What was really published on the job's channel, in order.
  const truth = new Redis(ctx.env.redisUrl);
  const published: { status: string; processed: number | null }[] = [];
  truth.on('message', (_channel, message) => {
    const { job } = JSON.parse(message) as { job: { status: string; processed: number | null } };
    published.push({ status: job.status, processed: job.processed });
  });
  await truth.subscribe(`${ctx.env.prefix}:job:${jobId}`);

  const sockets = replicas.map(() => [] as ReturnType<typeof wsConnection>[]);
  const subs: LiveSubscription<ProgressEvent>[] = [];
  /** `replica/transport` of each subscriber, for the breakdown. */
  const groups: string[] = [];
  try {
    // Connect in batches; every subscriber first gets the job's current state (PENDING).
    for (let i = 0; i < subscribers; i += 100) {
      const batch: LiveSubscription<ProgressEvent>[] = [];
      for (let j = i; j < Math.min(subscribers, i + 100); j++) {
        const replica = j % 2;
        const url = replicas[replica]!.url;
        groups.push(`${replica ? 'B' : 'A'}/${(j >> 1) % 2 === 0 ? 'SSE' : 'WS'}`);
        if ((j >> 1) % 2 === 0) {
          batch.push(subscribeSse<ProgressEvent>(url, ctx.userToken, 'jobProgress', JOB_PROGRESS, { jobId }));
        } else {
          // One WebSocket per subscriber, as separate dashboards would have.
          const socket = wsConnection(url, ctx.userToken);
          sockets[replica]!.push(socket);
          batch.push(subscribeWs<ProgressEvent>(socket, 'jobProgress', JOB_PROGRESS, { jobId }));
        }
      }
      await waitFor(
        'subscribers to get the current state',
        () => batch.every((sub) => sub.received.length > 0 || sub.errors.length > 0),
        60_000,
        20,
      );
      subs.push(...batch);
    }
    const failedToSubscribe = subs.filter((sub) => sub.errors.length > 0).length;
    ctx.log(`fan-out: ${subs.length} subscribers connected (${failedToSubscribe} failed)`);

    const connection = new Redis(ctx.env.redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue(benchProgressJob.name, { connection, prefix: ctx.env.prefix });
    const worker = await ctx.worker();
    const cpuOf = async () => ({
      'api-a': await cpuSeconds(ctx.api.child.pid!),
      'api-b': await cpuSeconds(replicaB.child.pid!),
      worker: await cpuSeconds(worker.child.pid!),
      'bench clients': process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
    });
    const cpuBefore = await cpuOf();
    const started = now();
    await queue.add(benchProgressJob.name, payload, { jobId, attempts: 1, removeOnComplete: { count: 100 } });
    await queue.close();
    connection.disconnect();
    await waitFor(
      'every subscription to complete',
      () => subs.every((sub) => sub.errors.length > 0 || sub.received.at(-1)?.value.status === 'COMPLETED'),
      60_000 + steps * INTERVAL_MS * 4,
      50,
    );
    const finished = now();
    const cpuAfter = await cpuOf();
    const cpu = Object.entries(cpuAfter)
      .map(([name, seconds]) => `${name} ${(seconds - cpuBefore[name as keyof typeof cpuBefore]).toFixed(1)} s`)
      .join(', ');

    const latencies: number[] = [];
    const byGroup = new Map<string, number[]>();
    let lost = 0;
    let extra = 0;
    const expected = published.length;
    for (const [i, sub] of subs.entries()) {
      const live = sub.received.slice(1);
      const group = byGroup.get(groups[i]!) ?? [];
      byGroup.set(groups[i]!, group);
      for (const event of live) {
        const latency = event.receivedAt - Date.parse(event.value.at);
        latencies.push(latency);
        group.push(latency);
      }
      if (live.length < expected) lost += expected - live.length;
      if (live.length > expected) extra += live.length - expected;
    }
    const jobwire = measure(latencies, finished - started);
    ctx.log(`fan-out: ${expected} events published, ${latencies.length} deliveries, p99 ${jobwire.p99.toFixed(1)} ms, ${lost} lost`);

    const raw = await rawPubSub(ctx, expected, published);
    return [
      {
        scenario: 'fan-out',
        variant: `${subs.length} subscribers, 2 replicas, SSE+WS`,
        unit: 'deliveries',
        jobwire,
        raw,
        ratioOf: 'p99 jobwire/raw',
        ratio: jobwire.p99 / raw.p99,
        target: 'p99 < 50 ms, none lost',
        pass: jobwire.p99 < 50 && lost === 0 && failedToSubscribe === 0,
        notes: [
          `${expected} events published to ${subs.length} subscribers; ${lost} deliveries lost${extra ? `, ${extra} unexpected` : ''}${
            failedToSubscribe ? `, ${failedToSubscribe} subscriptions failed` : ''
          }`,
          'latency: event `at` (row update) → arrival at the subscriber; raw: PUBLISH → arrival, 2 subscriber connections',
          `by replica/transport p50/p99 ms: ${[...byGroup]
            .sort()
            .map(([group, values]) => {
              const m = measure(values, 1);
              return `${group} ${m.p50.toFixed(0)}/${m.p99.toFixed(0)}`;
            })
            .join(', ')}`,
          `CPU over the ${((finished - started) / 1000).toFixed(1)} s run: ${cpu}`,
        ],
        extra: { published: expected, lost, subscribers: subs.length },
      },
    ];
  } finally {
    for (const sub of subs) sub.close();
    await Promise.all(sockets.flat().map((socket) => socket.dispose()));
    truth.disconnect();
    await replicaB.stop();
  }
}

/** The same payloads, PUBLISHed at the same pace, to two plain SUBSCRIBE connections. */
async function rawPubSub(ctx: BenchContext, count: number, published: unknown[]) {
  const channel = `${ctx.env.prefix}:raw-fanout`;
  const publisher = new Redis(ctx.env.redisUrl);
  const listeners = [new Redis(ctx.env.redisUrl), new Redis(ctx.env.redisUrl)];
  const latencies: number[] = [];
  let received = 0;
  for (const listener of listeners) {
    listener.on('message', (_channel, message: string) => {
      const sentAt = Number(message.slice(0, message.indexOf('|')));
      latencies.push(now() - sentAt);
      received++;
    });
    await listener.subscribe(channel);
  }
  const body = JSON.stringify(published.at(-1) ?? {});
  const started = now();
  for (let i = 0; i < count; i++) {
    await publisher.publish(channel, `${now()}|${body}`);
    await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));
  }
  await waitFor('raw deliveries', () => received >= count * listeners.length, 10_000, 10);
  const result = measure(latencies, now() - started);
  publisher.disconnect();
  listeners.forEach((listener) => listener.disconnect());
  return result;
}
