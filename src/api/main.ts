// Entry point of an API replica: `npm run start:api`. Tracing starts before the modules it
// instruments are loaded (a no-op without OTEL_EXPORTER_OTLP_ENDPOINT).
import { startTracing } from '../observability/tracing.js';

await startTracing('jobwire-api');
await import('./run-api.js');
