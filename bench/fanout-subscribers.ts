/**
 * A share of the fan-out scenario's subscribers, in a process of its own (forked with an IPC
 * channel): a thousand subscribers in the bench's own process made it the bottleneck, and each
 * arrival was stamped only once the hundreds of frames before it had been parsed.
 *
 * Parent → child: `FANOUT_SPEC` in the environment, then `{ type: 'collect' }`.
 * Child → parent: `{ type: 'ready', failed }` once every subscription got its first result, then
 * `{ type: 'results', subscribers }` once each one got a result with `finalStatus` (or failed).
 * The parent ends the process (its IPC channel keeps it alive until then).
 */
import { type LiveSubscription, subscribeSse, subscribeWs, wsConnection } from './clients.js';

export interface SubscriberSpec {
  url: string;
  transport: 'SSE' | 'WS';
  /** Reported back with the results: which replica and transport, for the breakdown. */
  group: string;
}

export interface FanoutSpec {
  token: string;
  field: string;
  query: string;
  variables: Record<string, unknown>;
  finalStatus: string;
  subscribers: SubscriberSpec[];
}

/** One subscriber's results: each result as [status, processed, at (ms), arrival (ms)]. */
export interface SubscriberResults {
  group: string;
  received: [string, number | null, number, number][];
  errors: number;
}

interface ProgressEvent {
  status: string;
  processed: number | null;
  at: string;
}

const spec = JSON.parse(process.env.FANOUT_SPEC!) as FanoutSpec;
/** Resolves once the message has been handed to the IPC channel (disconnecting before that can lose it). */
const send = (message: unknown) => new Promise<void>((resolve) => process.send!(message, () => resolve()));

const sockets = new Map<string, ReturnType<typeof wsConnection>>();
const subscriptions: LiveSubscription<ProgressEvent>[] = spec.subscribers.map(({ url, transport }) => {
  if (transport === 'SSE') return subscribeSse<ProgressEvent>(url, spec.token, spec.field, spec.query, spec.variables);
  // One WebSocket per subscriber, as separate dashboards would have.
  const socket = wsConnection(url, spec.token);
  sockets.set(String(sockets.size), socket);
  return subscribeWs<ProgressEvent>(socket, spec.field, spec.query, spec.variables);
});

/** Resolves once `done()` holds, looking again every `everyMs`. */
async function until(done: () => boolean, everyMs: number): Promise<void> {
  while (!done()) await new Promise((resolve) => setTimeout(resolve, everyMs));
}

await until(() => subscriptions.every((sub) => sub.received.length > 0 || sub.errors.length > 0), 20);
await send({ type: 'ready', failed: subscriptions.filter((sub) => sub.errors.length > 0).length });

process.on('message', (message: { type: string }) => {
  if (message.type !== 'collect') return;
  void until(() => subscriptions.every((sub) => sub.errors.length > 0 || sub.received.at(-1)?.value.status === spec.finalStatus), 50).then(
    async () => {
      const subscribers: SubscriberResults[] = subscriptions.map((sub, i) => ({
        group: spec.subscribers[i]!.group,
        received: sub.received.map(({ value, receivedAt }) => [value.status, value.processed, Date.parse(value.at), receivedAt]),
        errors: sub.errors.length,
      }));
      await send({ type: 'results', subscribers });
      // The parent reads this process's CPU time next and then ends it: it must still be there.
      for (const sub of subscriptions) sub.close();
      await Promise.all([...sockets.values()].map((socket) => socket.dispose()));
    },
  );
});
