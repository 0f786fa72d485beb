import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express from 'express';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { verifyToken } from '../auth/tokens.js';
import { jobCatalogue } from '../jobs/registry.js';
import { metricsRegistry } from '../observability/metrics.js';
import type { Services } from '../services.js';
import { createJobwireYoga, type JobwireYoga } from './yoga.js';
import { handleArchiveDownload } from './archive-download.js';
import { collectQueueMetrics } from './queue-metrics.js';

export interface ApiServer {
  yoga: JobwireYoga;
  server: Server;
  /** Listens on `port` (0: any free port) and resolves with the port taken. */
  listen(port: number): Promise<number>;
  close(): Promise<void>;
}

const ADMIN_COOKIE = 'jobwire_admin_token';

/** The HTTP process as a value: GraphQL (HTTP, SSE, WebSocket), health, metrics and the queue board. */
export function createApiServer(services: Services): ApiServer {
  const yoga = createJobwireYoga(services);
  const board = createQueueBoard(services);

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/health') return sendJson(res, 200, { status: 'ok' });
    if (path === '/ready') return void ready(services).then(([status, body]) => sendJson(res, status, body));
    if (path === '/metrics') return void metrics(services, res);
    if (path.startsWith('/archives/')) return void handleArchiveDownload(services, req, res);
    if (path === '/admin/queues' || path.startsWith('/admin/queues/')) return void board(req, res);
    return void yoga(req, res);
  });

  const wsServer = new WebSocketServer({ server, path: '/graphql' });
  const wsHandle = useServer(
    {
      execute: (args) => (args.rootValue as { execute: (a: unknown) => unknown }).execute(args) as never,
      subscribe: (args) => (args.rootValue as { subscribe: (a: unknown) => unknown }).subscribe(args) as never,
      onSubscribe: async (ctx, _id, params) => {
        const enveloped = yoga.getEnveloped({ ...ctx, req: ctx.extra.request, socket: ctx.extra.socket, params });
        const document = enveloped.parse(params.query);
        const args = {
          schema: enveloped.schema,
          operationName: params.operationName,
          document,
          variableValues: params.variables,
          contextValue: await enveloped.contextFactory({
            connectionParams: ctx.connectionParams,
            request: new Request('http://ws/graphql', {
              headers: ctx.extra.request.headers.authorization ? { authorization: ctx.extra.request.headers.authorization } : {},
            }),
          } as never),
          rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
        };
        const errors = enveloped.validate(args.schema, args.document);
        if (errors.length) return errors;
        return args;
      },
    },
    wsServer,
  );

  return {
    yoga,
    server,
    listen: (port) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, () => resolve((server.address() as AddressInfo).port));
      }),
    async close() {
      await wsHandle.dispose();
      wsServer.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function ready(services: Services): Promise<[number, unknown]> {
  const checks = await Promise.allSettled([
    services.orm.em.getConnection().execute('SELECT 1'),
    services.queues.connection.ping(),
  ]);
  const postgres = checks[0].status === 'fulfilled';
  const redis = checks[1].status === 'fulfilled';
  return [postgres && redis ? 200 : 503, { postgres: postgres ? 'ok' : 'unreachable', redis: redis ? 'ok' : 'unreachable' }];
}

async function metrics(services: Services, res: ServerResponse): Promise<void> {
  await collectQueueMetrics(services).catch(() => {});
  res.writeHead(200, { 'content-type': metricsRegistry.contentType });
  res.end(await metricsRegistry.metrics());
}

/** Bull Board for operators, behind an admin token (header, or `?token=` once, kept in a cookie). */
function createQueueBoard(services: Services): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const adapter = new ExpressAdapter();
  adapter.setBasePath('/admin/queues');
  createBullBoard({
    queues: jobCatalogue.map((declaration) => new BullMQAdapter(services.queues.get(declaration.name), { readOnlyMode: false })),
    serverAdapter: adapter,
  });
  const app = express();
  app.use('/admin/queues', async (req, res, next) => {
    const url = new URL(req.originalUrl, 'http://local');
    const fromQuery = url.searchParams.get('token');
    const fromCookie = /(?:^|;\s*)jobwire_admin_token=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    const fromHeader = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const token = fromHeader ?? fromQuery ?? fromCookie;
    try {
      if (!token) throw new Error('missing');
      const viewer = await verifyToken(services.config.JWT_SECRET, token);
      if (viewer.role !== 'admin') return void res.status(403).json({ error: 'the queue board needs an admin token' });
      if (fromQuery) {
        res.cookie(ADMIN_COOKIE, fromQuery, { httpOnly: true, sameSite: 'strict', path: '/admin/queues' });
        return void res.redirect('/admin/queues');
      }
      next();
    } catch {
      res.status(401).json({ error: 'admin token required: /admin/queues?token=<admin jwt> or Authorization: Bearer' });
    }
  });
  app.use('/admin/queues', adapter.getRouter());
  return async (req, res) => {
    app(req as never, res as never);
  };
}
