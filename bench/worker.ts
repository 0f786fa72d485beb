// The benchmark's worker sidecar: the real catalogue plus the bench-only job types.
import { loadConfig } from '../src/config/env.js';
import { jobCatalogue } from '../src/jobs/registry.js';
import { runUntilSignal } from '../src/process/run-until-signal.js';
import { createServices } from '../src/services.js';
import { startSidecar } from '../src/worker/sidecar.js';
import { benchJobs } from './bench-jobs.js';

await runUntilSignal('bench-worker', async () => {
  const services = await createServices(loadConfig(), 'worker');
  const sidecar = await startSidecar(services, [...jobCatalogue, ...benchJobs]);
  return {
    logger: services.logger,
    async stop() {
      await sidecar.close();
      await services.close();
    },
  };
});
