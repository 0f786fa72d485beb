// The worker sidecar's process body, started by main.ts once tracing (if any) is set up.
import { loadConfig } from '../config/env.js';
import { jobCatalogue } from '../jobs/registry.js';
import { createServices } from '../services.js';
import { serveMetrics } from '../observability/metrics-server.js';
import { runUntilSignal } from '../process/run-until-signal.js';
import { startSidecar } from './sidecar.js';

await runUntilSignal('worker', async () => {
  const services = await createServices(loadConfig(), 'worker');
  const sidecar = await startSidecar(services, jobCatalogue);
  // Job transitions and attempt durations are counted here, where jobs run.
  const metrics = await serveMetrics(services.config.WORKER_METRICS_PORT, services.config.METRICS_HOST);
  return {
    logger: services.logger,
    async stop() {
      metrics?.close();
      await sidecar.close();
      await services.close();
    },
  };
});
