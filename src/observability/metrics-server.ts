import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { metricsRegistry } from './metrics.js';

/**
 * Writes the Prometheus exposition; `collect` refreshes gauges read on demand (queue depths) first,
 * and a failure there still serves the rest.
 */
export async function sendMetrics(res: ServerResponse, collect?: () => Promise<void>): Promise<void> {
  await collect?.().catch(() => {});
  res.writeHead(200, { 'content-type': metricsRegistry.contentType });
  res.end(await metricsRegistry.metrics());
}

/**
 * Whether a request to `/metrics` on a public port carries the operator's METRICS_TOKEN. Without
 * a configured token the public port never serves metrics.
 */
export function hasMetricsToken(req: IncomingMessage, expected: string | undefined): boolean {
  if (!expected) return false;
  const given = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * A metrics-only HTTP server for operators: `GET /metrics` and `GET /health`, on `host:port`
 * (loopback by default, so it is not reachable from outside the machine or pod unless the operator
 * says so). Returns null when disabled with port 0.
 */
export async function serveMetrics(port: number, host: string, collect?: () => Promise<void>): Promise<Server | null> {
  if (port === 0) return null;
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (path === '/metrics' && req.method === 'GET') {
      void sendMetrics(res, collect);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return server;
}
