/**
 * Progress fan-out: one job reports progress ~10 times a second; 1,000 `jobProgress` subscribers
 * watch it, half on each of two API replicas, half over SSE and half over WebSocket (one socket
 * each), with the real graphql-sse and graphql-ws clients spread over several processes. Latency
 * is an event's `at` (the row update) to its arrival at the subscriber.
 *
 * The baseline is a bare server (bench/raw-fanout-server.ts), two of them as there are two
 * replicas, that the same clients, in the same numbers, subscribe to; they write each Redis
 * message, already serialised, to every socket: the very results Jobwire sent (recorded by one
 * more subscriber), with the SSE `id:` Jobwire's frames carry. Both sides report their server CPU
 * per delivery.
 *
 * The stream folds: a replica that reads two changes of the job at once sends the later state
 * only. So a subscriber's events are checked against its replica's (every subscriber of a replica
 * must get what any of them got: a shortfall is lost), and the folded changes are counted apart.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { benchProgressJob } from '../bench-jobs.js';
import { now, wsConnection } from '../clients.js';
import { size, type BenchContext } from '../context.js';
import type { FanoutSpec, SubscriberResults, SubscriberSpec } from '../fanout-subscribers.js';
import { cpuSeconds, freePort, root, startApi, startWorker } from '../processes.js';
import { measure, type ScenarioResult } from '../stats.js';

const FIELD = 'jobProgress';
const JOB_PROGRESS = `subscription($jobId: ID!) { jobProgress(jobId: $jobId) { jobId status progress processed total message at } }`;
const INTERVAL_MS = 100;

export async function runFanout(ctx: BenchContext): Promise<ScenarioResult[]> {
  const subscribers = size(ctx, 1_000, 200);
  // 200 changes: each reaches every subscriber at once, so the p99 rests on the slowest few changes.
  const steps = size(ctx, 200, 20);
  const clientProcesses = size(ctx, 4, 2);
  const worker = await ctx.worker();
  const replicaB = await startApi(ctx.env.vars, 'api-b');
  const replicas = [ctx.api, replicaB];
  const jobId = randomUUID();
  const payload = { steps, intervalMs: INTERVAL_MS };
  await ctx.env.pool.query(
    `INSERT INTO job (id, type, status, max_attempts, payload, trigger, owner_id, created_at, updated_at)
     VALUES ($1, $2, 'PENDING', 1, $3, 'API', $4, clock_timestamp(), clock_timestamp())`,
    [jobId, benchProgressJob.name, JSON.stringify(payload), ctx.userId],
  );

  // What the worker announced on the job's channel, in order: the changes the job went through.
  const truth = new Redis(ctx.env.redisUrl);
  const published: { status: string; processed: number | null }[] = [];
  truth.on('message', (_channel, message) => {
    const { job } = JSON.parse(message) as { job: { status: string; processed: number | null } };
    published.push({ status: job.status, processed: job.processed });
  });
  await truth.subscribe(`${ctx.env.prefix}:job:${jobId}`);

  /** Subscriber i: replica by parity, then transport by the next bit (as SSE A, SSE B, WS A, WS B, ...). */
  const specsFor = (urlOf: (replica: number) => string): SubscriberSpec[] =>
    Array.from({ length: subscribers }, (_, i) => {
      const replica = i % 2;
      const transport = (i >> 1) % 2 === 0 ? 'SSE' : 'WS';
      return { url: urlOf(replica), transport, group: `${replica ? 'B' : 'A'}/${transport}` };
    });

  /** The same subscriptions, in the same numbers, to the servers `urlOf` names. */
  const specFor = (urlOf: (replica: number) => string): FanoutSpec => ({
    token: ctx.userToken,
    field: FIELD,
    query: JOB_PROGRESS,
    variables: { jobId },
    finalStatus: 'COMPLETED',
    subscribers: specsFor(urlOf),
  });

  try {
    // Jobwire.
    const jobwireClients = await startSubscribers(
      ctx,
      clientProcesses,
      specFor((replica) => replicas[replica]!.url),
    );
    ctx.log(`fan-out: ${subscribers} subscribers connected in ${clientProcesses} processes (${jobwireClients.failed} failed)`);
    // One more subscriber on replica A records Jobwire's results as they were sent, for the baseline to send.
    const spy = wsConnection(ctx.api.url, ctx.userToken);
    const sent: string[] = [];
    await new Promise<void>((resolve, reject) =>
      spy.subscribe(
        { query: JOB_PROGRESS, variables: { jobId } },
        {
          next: (result) => {
            sent.push(JSON.stringify(result));
            resolve();
          },
          error: reject,
          complete: () => {},
        },
      ),
    );
    const servers = { 'api-a': ctx.api.child.pid!, 'api-b': replicaB.child.pid! };
    const jobwireRun = await measureRun(jobwireClients, servers, { worker: worker.child.pid! }, async () => {
      const connection = new Redis(ctx.env.redisUrl, { maxRetriesPerRequest: null });
      const queue = new Queue(benchProgressJob.name, { connection, prefix: ctx.env.prefix });
      await queue.add(benchProgressJob.name, payload, { jobId, attempts: 1, removeOnComplete: { count: 100 } });
      await queue.close();
      connection.disconnect();
    });
    const jobwire = analyse(jobwireRun.results, published.length, jobwireRun.durationMs);
    ctx.log(
      `fan-out: ${published.length} changes, ${jobwire.deliveries} deliveries, p99 ${jobwire.latency.p99.toFixed(1)} ms, ${jobwire.lost} lost, ${jobwire.folded} folded; server CPU ${perDelivery(jobwireRun.serverCpu, jobwire.deliveries)} µs per delivery`,
    );

    await spy.dispose();

    // Two bare servers, the same clients, the same results at the same pace.
    const channel = `${ctx.env.prefix}:raw-fanout`;
    const [first, ...changes] = sent.map(
      (json) => JSON.parse(json) as { data: Record<string, { at: string }>; extensions?: { cursor?: string } },
    );
    /** A message for the bare servers: the SSE id line, then the result, `at` set to now. */
    const message = (result: NonNullable<typeof first>) =>
      `${result.extensions?.cursor ?? ''}\n${JSON.stringify({ ...result, data: { [FIELD]: { ...result.data[FIELD], at: new Date().toISOString() } } })}`;
    const rawServers = await Promise.all(
      ['a', 'b'].map(async (name) => {
        const port = await freePort();
        const server = await startWorker(
          'bench/raw-fanout-server.ts',
          { ...ctx.env.vars, RAW_FANOUT_PORT: String(port), RAW_FANOUT_CHANNEL: channel, RAW_FANOUT_FIRST: message(first!) },
          `raw-fanout-${name}`,
          'raw fan-out ready',
        );
        return { name, port, server };
      }),
    );
    try {
      const rawClients = await startSubscribers(
        ctx,
        clientProcesses,
        specFor((replica) => `http://127.0.0.1:${rawServers[replica]!.port}/graphql`),
      );
      const rawPids = Object.fromEntries(rawServers.map(({ name, server }) => [`raw ${name}`, server.child.pid!]));
      const rawRun = await measureRun(rawClients, rawPids, {}, async () => {
        const publisher = new Redis(ctx.env.redisUrl);
        for (const change of changes) {
          await publisher.publish(channel, message(change));
          await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));
        }
        publisher.disconnect();
      });
      const raw = analyse(rawRun.results, changes.length, rawRun.durationMs);
      const failed = jobwireClients.failed + jobwire.errors;
      return [
        {
          scenario: 'fan-out',
          variant: `${subscribers} subscribers, 2 replicas, SSE+WS`,
          unit: 'deliveries',
          jobwire: jobwire.latency,
          raw: raw.latency,
          ratioOf: 'p99 jobwire/raw',
          ratio: jobwire.latency.p99 / raw.latency.p99,
          target: 'p99 < 50 ms, none lost; ≤ 20 µs server CPU per delivery',
          pass: jobwire.latency.p99 < 50 && jobwire.lost === 0 && failed === 0 && jobwireRun.serverCpu / jobwire.deliveries <= 20e-6,
          deciding: { name: 'server CPU µs per delivery', value: (jobwireRun.serverCpu / jobwire.deliveries) * 1e6 },
          notes: [
            `${published.length} changes to ${subscribers} subscribers: ${jobwire.deliveries} deliveries, ${jobwire.lost} lost, ${jobwire.folded} folded (two changes read at once, sent as the later state)${
              failed ? `, ${failed} subscriptions failed` : ''
            }`,
            `server CPU per delivery: Jobwire ${perDelivery(jobwireRun.serverCpu, jobwire.deliveries)} µs (both replicas); raw ${perDelivery(rawRun.serverCpu, raw.deliveries)} µs (two bare servers writing Jobwire's own frames to the same number of sockets)`,
            'latency: event `at` (row update; raw: the PUBLISH) → arrival at the subscriber, real graphql-sse/graphql-ws clients in both runs',
            `by replica/transport p50/p99 ms: ${jobwire.byGroup}; raw ${raw.byGroup}`,
            `CPU over the Jobwire run (${(jobwireRun.durationMs / 1000).toFixed(1)} s): ${jobwireRun.cpuText}; raw run: ${rawRun.cpuText}`,
          ],
          extra: {
            published: published.length,
            lost: jobwire.lost,
            folded: jobwire.folded,
            subscribers,
            serverCpuPerDeliveryUs: {
              jobwire: (jobwireRun.serverCpu / jobwire.deliveries) * 1e6,
              raw: (rawRun.serverCpu / raw.deliveries) * 1e6,
            },
          },
        },
      ];
    } finally {
      await Promise.all(rawServers.map(({ server }) => server.stop()));
    }
  } finally {
    truth.disconnect();
    await replicaB.stop();
  }
}

const perDelivery = (cpuSeconds: number, deliveries: number) => ((cpuSeconds / deliveries) * 1e6).toFixed(1);

interface Subscribers {
  children: ChildProcess[];
  failed: number;
  /** Asks every process for its results once each subscriber reached the final status. */
  collect(): Promise<SubscriberResults[]>;
  stop(): void;
}

/** Forks `count` subscriber processes sharing `spec.subscribers`; resolves once all of them are subscribed. */
async function startSubscribers(ctx: BenchContext, count: number, spec: FanoutSpec): Promise<Subscribers> {
  const children = Array.from({ length: count }, (_, k) => {
    const share = { ...spec, subscribers: spec.subscribers.filter((_, i) => i % count === k) };
    return fork(join(root, 'bench/fanout-subscribers.ts'), {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, FANOUT_SPEC: JSON.stringify(share) },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
  });
  const reply = <T>(child: ChildProcess, type: string) =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (message: { type: string } & T) => {
        if (message.type !== type) return;
        child.off('exit', onExit);
        child.off('message', onMessage);
        resolve(message);
      };
      const onExit = (code: number | null) => reject(new Error(`fan-out subscriber process exited (${code}) before "${type}"`));
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  const ready = await withTimeout(
    Promise.all(children.map((child) => reply<{ failed: number }>(child, 'ready'))),
    120_000,
    'subscribers to get the current state',
  );
  ctx.log(`fan-out: ${spec.subscribers.length} subscriptions open`);
  return {
    children,
    failed: ready.reduce((sum, r) => sum + r.failed, 0),
    async collect() {
      const results = children.map((child) => reply<{ subscribers: SubscriberResults[] }>(child, 'results'));
      for (const child of children) child.send({ type: 'collect' });
      return (await Promise.all(results)).flatMap((r) => r.subscribers);
    },
    stop() {
      for (const child of children) child.kill();
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Runs `start` (which sets the changes going) and collects every subscriber's results, with the CPU each process used meanwhile. */
async function measureRun(
  clients: Subscribers,
  servers: Record<string, number>,
  others: Record<string, number>,
  start: () => Promise<void>,
) {
  const pids: Record<string, number> = { ...servers, ...others };
  clients.children.forEach((child, i) => {
    pids[`subscribers ${i + 1}`] = child.pid!;
  });
  const before = Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([name, pid]) => [name, await cpuSeconds(pid)])));
  const started = now();
  try {
    const collecting = clients.collect();
    await start();
    const results = await withTimeout(collecting, 120_000, 'every subscription to reach the final status');
    const durationMs = now() - started;
    const used = Object.fromEntries(
      await Promise.all(Object.entries(pids).map(async ([name, pid]) => [name, (await cpuSeconds(pid)) - before[name]!])),
    ) as Record<string, number>;
    const serverCpu = Object.keys(servers).reduce((sum, name) => sum + used[name]!, 0);
    const subscriberCpu = Object.entries(used)
      .filter(([name]) => name.startsWith('subscribers'))
      .reduce((sum, [, seconds]) => sum + seconds, 0);
    const cpuText = [
      ...Object.entries(used)
        .filter(([name]) => !name.startsWith('subscribers'))
        .map(([name, seconds]) => `${name} ${seconds.toFixed(1)} s`),
      `subscriber processes ${subscriberCpu.toFixed(1)} s`,
    ].join(', ');
    return { results, durationMs, serverCpu, cpuText };
  } finally {
    clients.stop();
  }
}

/** Latencies, deliveries, and what was lost (short of the replica's best) or folded (short of the changes). */
function analyse(results: SubscriberResults[], changes: number, durationMs: number) {
  const latencies: number[] = [];
  const groups = new Map<string, number[]>();
  // Each subscriber's first result is the state it subscribed at, not a change.
  const live = results.map((sub) => sub.received.slice(1));
  const replicaOf = (sub: SubscriberResults) => sub.group.split('/')[0]!;
  const bestOfReplica = new Map<string, number>();
  results.forEach((sub, i) => {
    const count = live[i]!.length;
    bestOfReplica.set(replicaOf(sub), Math.max(bestOfReplica.get(replicaOf(sub)) ?? 0, count));
    const group = groups.get(sub.group) ?? [];
    groups.set(sub.group, group);
    for (const [, , at, arrivedAt] of live[i]!) {
      latencies.push(arrivedAt - at);
      group.push(arrivedAt - at);
    }
  });
  let lost = 0;
  let folded = 0;
  results.forEach((sub, i) => {
    const best = bestOfReplica.get(replicaOf(sub))!;
    lost += best - live[i]!.length;
    folded += Math.max(0, changes - best);
  });
  return {
    latency: measure(latencies, durationMs),
    deliveries: latencies.length,
    lost,
    folded,
    errors: results.filter((sub) => sub.errors > 0).length,
    byGroup: [...groups]
      .sort()
      .map(([group, values]) => {
        const m = measure(values, 1);
        return `${group} ${m.p50.toFixed(0)}/${m.p99.toFixed(0)}`;
      })
      .join(', '),
  };
}
