import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

const gzipAsync = promisify(gzip);

/**
 * Files the API serves from memory (GraphiQL's bundle, the dashboard's build): read once, with an
 * ETag, and gzipped once for the clients that take it (GraphiQL's 9 MB bundle becomes about 2 MB).
 */
export interface StaticFile {
  body: Buffer;
  gzipped: Buffer | null;
  type: string;
  etag: string;
  /** Its name changes with its content (a version or a hash in the path): cacheable forever. */
  immutable: boolean;
}

/** A file ready to serve; compressing runs on libuv's pool, not on the event loop other requests wait on. */
export async function staticFile(body: Buffer | string, type: string, immutable: boolean): Promise<StaticFile> {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && bytes.length > 1024;
  return {
    body: bytes,
    gzipped: compressible ? await gzipAsync(bytes) : null,
    type,
    etag: `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 22)}"`,
    immutable,
  };
}

/** Answers a GET or HEAD with the file: 304 when the client holds this version, gzip when it takes it. */
export function sendStaticFile(
  req: IncomingMessage,
  res: ServerResponse,
  file: StaticFile,
  extraHeaders: Record<string, string> = {},
): void {
  const gzip = file.gzipped !== null && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const headers: Record<string, string | number> = {
    'content-type': file.type,
    'cache-control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    etag: file.etag,
    vary: 'accept-encoding',
    'x-content-type-options': 'nosniff',
    ...extraHeaders,
  };
  if (req.headers['if-none-match'] === file.etag) return void res.writeHead(304, headers).end();
  const body = gzip ? file.gzipped! : file.body;
  if (gzip) headers['content-encoding'] = 'gzip';
  res.writeHead(200, { ...headers, 'content-length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }).end(text);
}
