import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express from 'express';
import { callerOf } from '../auth/access.js';
import { BOARD_SESSION_SECONDS, mintBoardSession, tokenFingerprint, verifyBoardSession } from '../auth/board-session.js';
import { verifyToken } from '../auth/tokens.js';
import { jobCatalogue } from '../jobs/registry.js';
import { hasMetricsToken, sendMetrics, serveMetrics } from '../observability/metrics-server.js';
import type { Services } from '../services.js';
import { createJobwireYoga, type JobwireYoga } from './yoga.js';
import { attachGraphQLWebSocket } from './graphql-ws.js';
import { handleArchiveDownload } from './archive-download.js';
import { DASHBOARD_PATH, serveDashboard } from './dashboard.js';
import { GRAPHIQL_ASSET_PATH, serveGraphiQLAsset } from './graphiql.js';
import { collectQueueMetrics } from './queue-metrics.js';

export interface ApiServer {
  yoga: JobwireYoga;
  server: Server;
  /** Listens on `port` (0: any free port) and resolves with the port taken. */
  listen(port: number): Promise<number>;
  close(): Promise<void>;
}

/** The queue board's session cookie: a board-only session, never the admin JWT. */
const BOARD_COOKIE = 'jobwire_board_session';

/** The HTTP process as a value: GraphQL (HTTP, SSE, WebSocket), health, metrics and the queue board. */
export function createApiServer(services: Services): ApiServer {
  const yoga = createJobwireYoga(services);
  const board = createQueueBoard(services);

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/health') return sendJson(res, 200, { status: 'ok' });
    if (path === '/ready') return void ready(services).then(([status, body]) => sendJson(res, status, body));
    if (path === '/metrics') {
      if (!hasMetricsToken(req, services.config.METRICS_TOKEN)) return sendJson(res, 404, { error: 'not found' });
      return void sendMetrics(res, () => collectQueueMetrics(services));
    }
    if (path.startsWith('/archives/')) return void handleArchiveDownload(services, req, res);
    if (path === '/admin/queues' || path.startsWith('/admin/queues/')) return void board(req, res);
    if (services.config.GRAPHIQL && path.startsWith(GRAPHIQL_ASSET_PATH)) return void serveGraphiQLAsset(req, res, path);
    if (services.config.DASHBOARD && (path === DASHBOARD_PATH || path.startsWith(`${DASHBOARD_PATH}/`)))
      return void serveDashboard(services.config, req, res, path);
    const bodyProblem = jsonBodyProblem(req);
    if (bodyProblem)
      return sendJson(res, bodyProblem.status, { errors: [{ message: bodyProblem.message, extensions: { code: bodyProblem.code } }] });
    return void yoga(req, res);
  });

  const graphqlWs = attachGraphQLWebSocket(server, yoga, services);
  let metricsServer: Server | null = null;

  return {
    yoga,
    server,
    async listen(port) {
      const { METRICS_PORT, METRICS_HOST } = services.config;
      metricsServer = await serveMetrics(METRICS_PORT, METRICS_HOST, () => collectQueueMetrics(services));
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, () => resolve((server.address() as AddressInfo).port));
      });
    },
    async close() {
      metricsServer?.close();
      await graphqlWs.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Largest body of a request that is not a multipart upload: documents are capped at 2,000 tokens anyway. */
const MAX_JSON_BODY_BYTES = 1024 * 1024;

/**
 * Uploads are limited to MAX_UPLOAD_BYTES plus a margin (useUploadBodyLimit); a plain JSON request
 * gets a much smaller limit, checked from Content-Length before anything is read. A streamed (chunked) JSON body
 * has none to check, and GraphQL clients always send one, so it is refused.
 */
function jsonBodyProblem(req: IncomingMessage): { status: number; code: string; message: string } | null {
  if (req.method !== 'POST' || /^multipart\/form-data/i.test(req.headers['content-type'] ?? '')) return null;
  const length = req.headers['content-length'];
  if (length === undefined) {
    return { status: 411, code: 'LENGTH_REQUIRED', message: 'a GraphQL request without an upload needs a Content-Length header' };
  }
  if (Number(length) > MAX_JSON_BODY_BYTES) {
    return {
      status: 413,
      code: 'REQUEST_ENTITY_TOO_LARGE',
      message: `a GraphQL request without an upload is limited to ${MAX_JSON_BODY_BYTES} bytes`,
    };
  }
  return null;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function ready(services: Services): Promise<[number, unknown]> {
  const checks = await Promise.allSettled([services.orm.em.getConnection().execute('SELECT 1'), services.queues.connection.ping()]);
  const postgres = checks[0].status === 'fulfilled';
  const redis = checks[1].status === 'fulfilled';
  return [postgres && redis ? 200 : 503, { postgres: postgres ? 'ok' : 'unreachable', redis: redis ? 'ok' : 'unreachable' }];
}

/** A stylesheet link to another host (the board's web font). */
const OFF_HOST_STYLESHEET = /<link\b[^>]*\bhref="https?:\/\/[^"]*"[^>]*>/g;

/** What the queue board's page may load: this host's scripts and styles (and the inline styles it sets), nothing else. */
const QUEUE_BOARD_CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Bull Board for operators, behind an admin token: `Authorization: Bearer <admin jwt>` on every
 * request, or `/admin/queues?token=<admin jwt>` once, which is exchanged for a short-lived board
 * session cookie (never the JWT itself) and redirected away so the token leaves the address bar.
 * A URL token is accepted only once: links end up in browser history and proxy logs.
 */
function createQueueBoard(services: Services): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { config } = services;
  const adapter = new ExpressAdapter();
  adapter.setBasePath('/admin/queues');
  createBullBoard({
    queues: jobCatalogue.map((declaration) => new BullMQAdapter(services.queues.get(declaration.name), { readOnlyMode: false })),
    serverAdapter: adapter,
  });
  const refuse = (res: express.Response) =>
    void res
      .status(401)
      .json({ error: 'admin token required: Authorization: Bearer <admin jwt>, or /admin/queues?token=<admin jwt> once' });
  const app = express();
  app.disable('x-powered-by');
  app.use('/admin/queues', (_req, res, next) => {
    // The board's page links a web font on a CDN: the link is taken out (the page falls back to a
    // system font), and the policy keeps anything else off other hosts. An offline browser, or one
    // that must not tell a third party who looks at the queues, loads this host's files only.
    res.setHeader('content-security-policy', QUEUE_BOARD_CONTENT_SECURITY_POLICY);
    const send = res.send.bind(res);
    res.send = (body?: unknown) => send(typeof body === 'string' ? body.replace(OFF_HOST_STYLESHEET, '') : body);
    next();
  });
  app.use('/admin/queues', async (req, res, next) => {
    const fromQuery = new URL(req.originalUrl, 'http://local').searchParams.get('token');
    const fromHeader = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const session = new RegExp(`(?:^|;\\s*)${BOARD_COOKIE}=([^;]+)`).exec(req.headers.cookie ?? '')?.[1];
    const token = fromHeader ?? fromQuery;
    if (!token) return session && (await verifyBoardSession(config.JWT_SECRET, session)) ? next() : refuse(res);

    const viewer = await verifyToken(config.JWT_SECRET, token).catch(() => null);
    if (!viewer) return refuse(res);
    if (!callerOf(viewer).isAdmin) return void res.status(403).json({ error: 'the queue board needs an admin token' });
    if (!fromQuery || fromHeader) return next();

    const ttlMs = Math.max(1_000, viewer.exp * 1000 - Date.now());
    const firstUse = await services.queues.connection
      .set(`${config.REDIS_PREFIX}:board:used:${tokenFingerprint(fromQuery)}`, '1', 'PX', ttlMs, 'NX')
      .catch(() => null);
    if (firstUse !== 'OK')
      return void res.status(401).json({ error: 'this link was already used; open /admin/queues?token=… with a fresh token' });
    const secure = req.secure || req.headers['x-forwarded-proto'] === 'https';
    res.cookie(BOARD_COOKIE, await mintBoardSession(config.JWT_SECRET, viewer.id), {
      httpOnly: true,
      sameSite: 'strict',
      secure,
      path: '/admin/queues',
      maxAge: BOARD_SESSION_SECONDS * 1000,
    });
    res.redirect(303, '/admin/queues');
  });
  app.use('/admin/queues', adapter.getRouter());
  return async (req, res) => {
    app(req as never, res as never);
  };
}
