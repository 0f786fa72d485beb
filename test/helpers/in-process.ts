import { createApiServer, type ApiServer } from '../../src/api/server.js';
import { loadConfig } from '../../src/config/env.js';
import type { AnyJobDeclaration } from '../../src/engine/define-job.js';
import { jobCatalogue } from '../../src/jobs/registry.js';
import { createServices, type Services } from '../../src/services.js';
import { startSidecar, type Sidecar } from '../../src/worker/sidecar.js';
import type { TestEnv } from './test-env.js';

/** An API on a free port and (optionally) a sidecar, in this process, for fast end-to-end checks. */
export interface InProcessSystem {
  url: string;
  api: ApiServer;
  apiServices: Services;
  sidecar: Sidecar | null;
  workerServices: Services | null;
  stop(): Promise<void>;
}

export async function startInProcess(
  env: TestEnv,
  options: { worker?: boolean; declarations?: readonly AnyJobDeclaration[]; vars?: Record<string, string> } = {},
): Promise<InProcessSystem> {
  const config = loadConfig({ ...env.vars, ...options.vars } as NodeJS.ProcessEnv);
  const apiServices = await createServices(config, 'api');
  const api = createApiServer(apiServices);
  const port = await api.listen(0);
  let workerServices: Services | null = null;
  let sidecar: Sidecar | null = null;
  if (options.worker !== false) {
    workerServices = await createServices(config, 'worker');
    sidecar = await startSidecar(workerServices, options.declarations ?? jobCatalogue);
  }
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    api,
    apiServices,
    sidecar,
    workerServices,
    async stop() {
      await sidecar?.close();
      await workerServices?.close();
      await api.close();
      await apiServices.close();
    },
  };
}
