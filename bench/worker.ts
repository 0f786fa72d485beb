// The benchmark's worker sidecar: the real catalogue plus the bench-only job types. It runs the
// compiled sidecar from dist/ (as a deployment does, and as the bench's API does); only this file
// and the bench's job types go through tsx.
import { benchJobs } from './bench-jobs.js';

const dist = new URL('../dist/src/', import.meta.url).href;
const { loadConfig } = (await import(`${dist}config/env.js`)) as typeof import('../src/config/env.js');
const { jobCatalogue } = (await import(`${dist}jobs/registry.js`)) as typeof import('../src/jobs/registry.js');
const { runUntilSignal } = (await import(`${dist}process/run-until-signal.js`)) as typeof import('../src/process/run-until-signal.js');
const { createServices } = (await import(`${dist}services.js`)) as typeof import('../src/services.js');
const { startSidecar } = (await import(`${dist}worker/sidecar.js`)) as typeof import('../src/worker/sidecar.js');

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
