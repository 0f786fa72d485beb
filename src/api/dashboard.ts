import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mintToken } from '../auth/tokens.js';
import type { Config } from '../config/env.js';
import { type StaticFile, sendStaticFile, sendText, staticFile } from './static-files.js';

/**
 * The dashboard at /dashboard: a static single-page app (sources in `dashboard/`, built into
 * dist/dashboard by `npm run build`) that speaks only the public GraphQL API of the replica that
 * served it. Files are read once and kept in memory (about 150 KB), gzipped for clients that take
 * it; hashed assets are cached forever, the page itself is revalidated. Its CSP allows this origin
 * only, so the page cannot load or send anything elsewhere.
 */
export const DASHBOARD_PATH = '/dashboard';

const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/**
 * Where the built app is: dist/dashboard, seen from the sources (src/api, under tsx or vitest) or
 * from the compiled server (dist/src/api). The sources' own `dashboard/` holds an index.html too,
 * so a build is recognised by its assets.
 */
function builtAppDirectory(): string | null {
  const candidates = [new URL('../../dist/dashboard/', import.meta.url), new URL('../../dashboard/', import.meta.url)].map((url) =>
    fileURLToPath(url),
  );
  return candidates.find((directory) => existsSync(join(directory, 'index.html')) && existsSync(join(directory, 'assets'))) ?? null;
}

async function filesUnder(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

let files: Promise<Map<string, StaticFile> | null> | null = null;

/** The built files by URL path, read on first use; null when the app was not built. */
function loadFiles(): Promise<Map<string, StaticFile> | null> {
  files ??= (async () => {
    const directory = builtAppDirectory();
    if (!directory) return null;
    const map = new Map<string, StaticFile>();
    for (const path of await filesUnder(directory)) {
      const urlPath = `${DASHBOARD_PATH}/${relative(directory, path).split(sep).join('/')}`;
      const type = CONTENT_TYPES[extname(path)] ?? 'application/octet-stream';
      // Vite names assets by their content's hash: cacheable forever. The page itself is not.
      map.set(urlPath, await staticFile(await readFile(path), type, urlPath.startsWith(`${DASHBOARD_PATH}/assets/`)));
    }
    return map;
  })().catch((error: unknown) => {
    files = null;
    throw error;
  });
  return files;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

/** Serves everything under /dashboard: the page, its assets, its settings and (in development) dev tokens. */
export async function serveDashboard(config: Config, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  if (path === `${DASHBOARD_PATH}/settings.json`) return sendJson(res, 200, { devTokens: config.DEV_TOKENS && isLocalBrowser(req) });
  if (path === `${DASHBOARD_PATH}/dev-token`) return devToken(config, req, res);
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, 'method not allowed');

  let built: Map<string, StaticFile> | null;
  try {
    built = await loadFiles();
  } catch {
    return sendText(res, 500, 'the dashboard could not be read');
  }
  if (!built) return sendText(res, 503, 'the dashboard is not built: run `npm run build`');
  const file = built.get(path === DASHBOARD_PATH || path === `${DASHBOARD_PATH}/` ? `${DASHBOARD_PATH}/index.html` : path);
  if (!file) return sendText(res, 404, 'not found');

  sendStaticFile(req, res, file, { 'referrer-policy': 'no-referrer', 'content-security-policy': CONTENT_SECURITY_POLICY });
}

/**
 * Under `npm run dev` only (DEV_TOKENS): a token for `dev-user` or `dev-admin`, so a newcomer can
 * click in. Only for a browser on the same machine, and only from this page: another machine on
 * the network, or another site's page (a rebound DNS name), gets nothing.
 */
async function devToken(config: Config, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!config.DEV_TOKENS) return sendJson(res, 404, { error: 'dev tokens are off (DEV_TOKENS=false)' });
  if (req.method !== 'POST') return sendJson(res, 405, { error: 'POST ?role=user or ?role=admin' });
  if (!isLocalBrowser(req))
    return sendJson(res, 403, { error: 'dev tokens are handed out only to a browser on this machine, at localhost' });
  const role = new URL(req.url ?? '/', 'http://local').searchParams.get('role');
  if (role !== 'user' && role !== 'admin') return sendJson(res, 400, { error: 'role must be user or admin' });
  const token = await mintToken(config.JWT_SECRET, { sub: `dev-${role}`, role, ttlSeconds: 12 * 3600 });
  sendJson(res, 200, { token });
}

/** A request from this machine, to a loopback name, and (when it says) from a page of this origin. */
function isLocalBrowser(req: IncomingMessage): boolean {
  const address = req.socket.remoteAddress;
  const host = String(req.headers.host ?? '');
  const origin = req.headers.origin;
  return (
    (address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1') &&
    /^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(host) &&
    (origin === undefined || origin === `http://${host}`)
  );
}
