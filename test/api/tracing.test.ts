/**
 * Tracing (issue 11): with OTEL_EXPORTER_OTLP_ENDPOINT set, one enqueue yields one trace whose
 * spans come from both processes: the GraphQL operation in the API, the queue add, the attempt in
 * the worker, and the worker's database calls as children. Real API and worker processes export
 * over OTLP/HTTP to a receiver in this test.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gqlOk } from '../helpers/graphql-client.js';
import { type ApiProc, type Proc, startApi, startWorker } from '../helpers/processes.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  attributes: Record<string, unknown>;
}

let env: TestEnv;
let receiver: Server;
let api: ApiProc;
let worker: Proc;
const spans: ReceivedSpan[] = [];

/** An OTLP/HTTP (JSON) trace receiver: what a collector would get. */
function startReceiver(): Promise<string> {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      for (const resourceSpans of body.resourceSpans ?? []) {
        const service = resourceSpans.resource?.attributes?.find((a: any) => a.key === 'service.name')?.value?.stringValue;
        for (const scope of resourceSpans.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            spans.push({
              service,
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? '',
              name: span.name,
              attributes: Object.fromEntries((span.attributes ?? []).map((a: any) => [a.key, Object.values(a.value ?? {})[0]])),
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) =>
    receiver.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(receiver.address() as AddressInfo).port}`)),
  );
}

beforeAll(async () => {
  env = await createTestEnv();
  const endpoint = await startReceiver();
  const vars = { ...env.vars, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '100' };
  [api, worker] = await Promise.all([startApi(vars), startWorker(vars)]);
}, 120_000);

afterAll(async () => {
  await Promise.all([api, worker].filter(Boolean).map((proc) => proc.stop()));
  receiver?.close();
  await env?.cleanup();
});

describe('tracing', () => {
  it('follows one enqueue from the GraphQL operation into the worker, with the database calls of the attempt', async () => {
    const token = await env.token('alice');
    const accountId = (await gqlOk<{ createAccount: { id: string } }>(api.url, token, CREATE_ACCOUNT, { name: 'traced' })).createAccount.id;
    const { scanPii } = await gqlOk<{ scanPii: { id: string } }>(
      api.url,
      token,
      'mutation Traced($accountId: ID!) { scanPii(accountId: $accountId) { id } }',
      { accountId },
    );
    await waitFor('the job to complete', async () => {
      const { job } = await gqlOk<{ job: { status: string } }>(api.url, token, 'query($id: ID!) { job(id: $id) { status } }', {
        id: scanPii.id,
      });
      return job.status === 'COMPLETED';
    });

    // Spans arrive in batches from two processes: wait for the whole trace, the worker's attempt
    // and its database calls included, every span's parent received.
    const trace = await waitFor(
      'the trace of the mutation, from both processes',
      () => {
        const operation = spans.find((span) => span.service === 'jobwire-api' && span.name === 'graphql mutation Traced');
        if (!operation) return null;
        const inTrace = spans.filter((span) => span.traceId === operation.traceId);
        const ids = new Set(inTrace.map((span) => span.spanId));
        const fromWorker = inTrace.filter((span) => span.service === 'jobwire-worker');
        const complete =
          fromWorker.some((span) => span.name === 'process scan_pii') &&
          fromWorker.some((span) => span.attributes['db.system'] === 'postgresql' || span.attributes['db.system.name'] === 'postgresql') &&
          inTrace.every((span) => span === operation || ids.has(span.parentSpanId));
        return complete ? { operation, inTrace } : null;
      },
      30_000,
      100,
    );
    // The operation is the trace's root, the queue add its child in the API; the worker's spans hang below.
    expect(trace.operation.parentSpanId).toBe('');
    expect(trace.inTrace.some((span) => span.service === 'jobwire-api' && span.parentSpanId === trace.operation.spanId)).toBe(true);
    expect(new Set(trace.inTrace.map((span) => span.service))).toEqual(new Set(['jobwire-api', 'jobwire-worker']));
    // No data in the spans: statements are reduced to their kind, Redis commands to their name.
    for (const span of trace.inTrace) {
      for (const key of ['db.statement', 'db.query.text']) {
        const statement = span.attributes[key];
        if (statement !== undefined) expect(String(statement)).toMatch(/^[A-Za-z]*$/);
      }
    }
  });
});
