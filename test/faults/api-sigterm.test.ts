/**
 * An API replica stopped with SIGTERM while subscriptions of every kind are open (as a dashboard
 * holds them): it drains and exits 0, its last log line written. Each subscription's end
 * unsubscribes its Redis channel while the connections close; that a failed UNSUBSCRIBE does not end
 * the process is pinned down in pubsub-shutdown.test.ts, where its timing is not left to chance.
 */
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gqlOk } from '../helpers/graphql-client.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import { startApi, type ApiProc } from './fault-helpers.js';

let env: TestEnv;
let api: ApiProc | null = null;

beforeAll(async () => {
  env = await createTestEnv();
}, 120_000);

afterAll(async () => {
  await api?.stop();
  await env?.cleanup();
});

describe('an API replica stopped with SIGTERM while subscriptions are open', () => {
  it('drains them and exits 0', async () => {
    const token = await env.token('alice');
    for (let round = 0; round < 2; round++) {
      api = await startApi({ ...env.vars, LOG_LEVEL: 'info' });
      const accountId = (await gqlOk<{ createAccount: { id: string } }>(api.url, token, CREATE_ACCOUNT, { name: `inbox-${round}` }))
        .createAccount.id;
      const { scanPii } = await gqlOk<{ scanPii: { id: string } }>(
        api.url,
        token,
        'mutation($a: ID!) { scanPii(accountId: $a, options: { delayMs: 600000 }) { id } }',
        { a: accountId },
      );
      const ws = createWsClient({
        url: api.url.replace(/^http/, 'ws'),
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${token}` },
        retryAttempts: 0,
      });
      const sse = createSseClient({ url: `${api.url}/stream`, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
      const started: string[] = [];
      const subscriptions = [
        { client: ws, query: 'subscription { jobEvents { jobId } }' },
        { client: ws, query: `subscription { jobProgress(jobId: "${scanPii.id}") { status } }` },
        { client: ws, query: `subscription { jobLogs(jobId: "${scanPii.id}") { message } }` },
        { client: ws, query: 'subscription { jobTypeChanged { name } }' },
        { client: sse, query: `subscription { jobProgress(jobId: "${scanPii.id}") { status } }` },
      ];
      for (const [i, { client, query }] of subscriptions.entries()) {
        (client.subscribe as (payload: { query: string }, sink: object) => void)(
          { query },
          { next: () => void started.push(String(i)), error: () => {}, complete: () => {} },
        );
      }
      // jobProgress answers at once with the job's state; the others are live once the replica counts them.
      await waitFor('the subscriptions to be open', async () => {
        const metrics = await fetch(`${api!.baseUrl}/metrics`, { headers: { authorization: `Bearer ${env.vars.METRICS_TOKEN}` } });
        const open = [...(await metrics.text()).matchAll(/^jobwire_active_subscriptions\{[^}]*\} (\d+)/gm)].reduce(
          (n, m) => n + Number(m[1]),
          0,
        );
        return open >= subscriptions.length;
      });

      const code = await api.stop(20_000);
      expect(code, api.output().slice(-2000)).toBe(0);
      expect(api.output()).toContain('api stopped');
      api = null;
      await ws.dispose();
      sse.dispose();
    }
  });
});
