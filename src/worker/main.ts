// Entry point of the worker sidecar: `npm run start:worker`. Tracing starts before the modules it
// instruments are loaded (a no-op without OTEL_EXPORTER_OTLP_ENDPOINT).
import { startTracing } from '../observability/tracing.js';

await startTracing('jobwire-worker');
await import('./run-worker.js');
