import { createServer, type Server } from 'node:http';
import { metricsRegistry } from '../observability/metrics.js';

/**
 * The sidecar's own `GET /metrics` (job transitions and attempt durations are counted here, where
 * jobs run) and `GET /health`. Returns null when disabled with port 0.
 */
export async function serveWorkerMetrics(port: number): Promise<Server | null> {
  if (port === 0) return null;
  const server = createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (req.url === '/metrics') {
      void metricsRegistry.metrics().then((body) => res.writeHead(200, { 'content-type': metricsRegistry.contentType }).end(body));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, resolve);
  });
  return server;
}
