import type { Telemetry } from 'bullmq';
import type { DocumentNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/**
 * OpenTelemetry tracing, on only when OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) is set:
 * otherwise nothing of the SDK is even loaded. Each process exports over OTLP/HTTP as
 * `jobwire-api` or `jobwire-worker` (OTEL_SERVICE_NAME overrides it; the other standard OTEL_*
 * variables apply). Spans: one per GraphQL operation in the API; BullMQ's own telemetry
 * (bullmq-otel) for the queue add and for each attempt in the worker, which carries the trace
 * context inside the job; the PostgreSQL and Redis calls made meanwhile as their children
 * (instrumentation-pg, instrumentation-ioredis). `startTracing` must run before the modules it
 * instruments are loaded: the entry points call it first and import the rest afterwards.
 */

let shutdown: (() => Promise<void>) | null = null;
let telemetry: Telemetry | undefined;

export function tracingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/** Starts exporting this process's spans, when tracing is enabled; a no-op otherwise. */
export async function startTracing(serviceName: string): Promise<void> {
  if (!tracingEnabled() || shutdown) return;
  const [
    { NodeTracerProvider },
    { BatchSpanProcessor },
    { OTLPTraceExporter },
    { detectResources, envDetector, resourceFromAttributes },
    instrumentation,
    pg,
    ioredis,
    bullmq,
  ] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/instrumentation'),
    import('@opentelemetry/instrumentation-pg'),
    import('@opentelemetry/instrumentation-ioredis'),
    import('bullmq-otel'),
  ]);
  const provider = new NodeTracerProvider({
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the default name.
    resource: resourceFromAttributes({ 'service.name': serviceName }).merge(detectResources({ detectors: [envDetector] })),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  // The global provider, AsyncLocalStorage context and W3C propagation, for every library that asks the API.
  provider.register();
  instrumentation.registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      // The ORM inlines values into the SQL text, and BullMQ's scripts carry job payloads: spans keep
      // the kind of statement and the command name, never the data (as the logs do).
      new pg.PgInstrumentation({
        requestHook: (span, info) => {
          const kind = info.query.text.trimStart().split(/\s/, 1)[0]?.toUpperCase() ?? '';
          span.setAttribute('db.statement', kind);
          span.setAttribute('db.query.text', kind);
        },
      }),
      new ioredis.IORedisInstrumentation({ dbStatementSerializer: (command) => command }),
    ],
  });
  telemetry = new bullmq.BullMQOtel('jobwire') as unknown as Telemetry;
  shutdown = () => provider.shutdown();
}

/** Longest a shutdown waits for the last spans to be exported: a collector away must not hold it up. */
const FLUSH_DEADLINE_MS = 2_000;

/** Flushes and stops the exporter (at shutdown), within FLUSH_DEADLINE_MS; a no-op when tracing is off. */
export async function stopTracing(): Promise<void> {
  if (!shutdown) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    shutdown().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, FLUSH_DEADLINE_MS);
    }),
  ]);
  clearTimeout(timer);
}

/** BullMQ's telemetry for queues and workers, when tracing is on. */
export function bullTelemetry(): { telemetry?: Telemetry } {
  return telemetry ? { telemetry } : {};
}

/**
 * A span around each GraphQL operation's execution (`graphql <type> <name>`), active while it
 * runs, so what its resolvers do (an enqueue's INSERT and queue add) are its children. Written
 * here rather than taken from @envelop/opentelemetry, which is built on the 1.x SDK.
 */
export async function operationSpans(): Promise<Plugin | null> {
  if (!tracingEnabled()) return null;
  const [{ trace, SpanStatusCode }, { getOperationAST }] = await Promise.all([import('@opentelemetry/api'), import('graphql')]);
  const tracer = trace.getTracer('jobwire-graphql');
  const spanName = (document: DocumentNode, operationName?: string | null) => {
    const operation = getOperationAST(document, operationName);
    return `graphql ${operation?.operation ?? 'operation'}${operation?.name ? ` ${operation.name.value}` : ''}`;
  };
  /** Runs `work` inside an active span named for the operation, and ends it when the work settles. */
  const traced = <T>(name: string, work: () => T | Promise<T>): Promise<T> =>
    tracer.startActiveSpan(name, async (span): Promise<T> => {
      try {
        const result = await work();
        // The code only: messages are masked after this point, and an unexpected one may quote data.
        const errors = (result as { errors?: readonly { extensions?: { code?: unknown } }[] } | null)?.errors;
        if (errors?.length) span.setStatus({ code: SpanStatusCode.ERROR, message: String(errors[0]!.extensions?.code ?? 'error') });
        return result;
      } finally {
        span.end();
      }
    });
  return {
    onExecute: ({ args, executeFn, setExecuteFn }) => {
      const name = spanName(args.document, args.operationName);
      setExecuteFn((callArgs) => traced(name, () => executeFn(callArgs)));
    },
    onSubscribe: ({ args, subscribeFn, setSubscribeFn }) => {
      const name = spanName(args.document, args.operationName);
      setSubscribeFn((callArgs) => traced(name, () => subscribeFn(callArgs)));
    },
  };
}
