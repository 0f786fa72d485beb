// An API replica's process body, started by main.ts once tracing (if any) is set up.
import { loadConfig } from '../config/env.js';
import { runUntilSignal } from '../process/run-until-signal.js';
import { createServices } from '../services.js';
import { createApiServer } from './server.js';

await runUntilSignal('api', async () => {
  const services = await createServices(loadConfig(), 'api');
  const api = createApiServer(services);
  const port = await api.listen(services.config.PORT);
  services.logger.info({ port }, `GraphQL on http://localhost:${port}/graphql`);
  return {
    logger: services.logger,
    async stop() {
      await api.close();
      await services.close();
    },
  };
});
