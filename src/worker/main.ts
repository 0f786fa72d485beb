// Entry point of the worker sidecar: `npm run start:worker`.
import { loadConfig } from '../config/env.js';
import { jobCatalogue } from '../jobs/registry.js';
import { createServices } from '../services.js';
import { runUntilSignal } from '../process/run-until-signal.js';
import { serveWorkerMetrics } from './metrics-server.js';
import { startSidecar } from './sidecar.js';

await runUntilSignal('worker', async () => {
  const services = await createServices(loadConfig(), 'worker');
  const sidecar = await startSidecar(services, jobCatalogue);
  const metrics = await serveWorkerMetrics(services.config.WORKER_METRICS_PORT);
  return {
    logger: services.logger,
    async stop() {
      metrics?.close();
      await sidecar.close();
      await services.close();
    },
  };
});
