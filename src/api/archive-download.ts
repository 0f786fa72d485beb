import type { IncomingMessage, ServerResponse } from 'node:http';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { bearerToken, type Viewer } from '../auth/tokens.js';
import { archiveKey } from '../jobs/encrypt-archives.job.js';
import { callerOf, mayAccess } from '../auth/access.js';
import { findArchive } from '../mail/archive-store.js';
import type { Services } from '../services.js';
import { DecryptionError, open } from '../storage/encryption.js';

const ROUTE = /^\/archives\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/eml$/i;

function sendError(res: ServerResponse, status: number, error: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify({ error }));
}

async function authenticate(services: Services, req: IncomingMessage): Promise<Viewer | null> {
  const token = bearerToken(req.headers.authorization);
  if (!token) return null;
  try {
    return await services.tokens.verify(token);
  } catch {
    return null;
  }
}

function isMissingFile(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'ENOENT';
}

/**
 * `GET /archives/<id>/eml`: the archived message, decrypted when the archive is encrypted. Bearer
 * token; the owner or an admin only (someone else's archive answers 404, like a missing one). An
 * encrypted file is decrypted and verified in full before the first byte is sent, so a tampered
 * file never yields partial plaintext.
 */
export async function handleArchiveDownload(services: Services, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const path = (req.url ?? '/').split('?')[0]!;
    const match = ROUTE.exec(path);
    if (!match) return sendError(res, 404, 'not found');
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'method not allowed', { allow: 'GET, HEAD' });

    const viewer = await authenticate(services, req);
    if (!viewer)
      return sendError(res, 401, 'a valid bearer token is required (Authorization: Bearer <jwt>)', { 'www-authenticate': 'Bearer' });

    const archive = await findArchive(services.orm.em.fork(), match[1]!.toLowerCase());
    if (!archive || !mayAccess(callerOf(viewer), archive.ownerId)) return sendError(res, 404, 'archive not found');
    const eml = archive.files.find((file) => file.kind === 'eml');
    if (!eml) return sendError(res, 500, 'archive has no EML file');

    const headers = {
      'content-type': 'message/rfc822',
      'content-disposition': `attachment; filename="${match[1]!.toLowerCase()}.eml"`,
      'cache-control': 'private, no-store',
      'x-content-type-options': 'nosniff',
    };

    if (archive.encrypted) {
      const key = archiveKey(services.config);
      if (!key) return sendError(res, 500, 'archive key is not configured; encrypted archives cannot be read');
      if (!eml.iv || !eml.authTag) return sendError(res, 500, 'archive integrity check failed');
      let plaintext: Buffer;
      try {
        const ciphertext = await services.storage.get(eml.key);
        plaintext = open(key, { ciphertext, iv: Buffer.from(eml.iv, 'base64'), authTag: Buffer.from(eml.authTag, 'base64') });
      } catch (error) {
        if (error instanceof DecryptionError) {
          services.logger.warn({ archiveId: match[1] }, 'archive failed its integrity check on download');
          return sendError(res, 500, 'archive integrity check failed');
        }
        if (isMissingFile(error)) return sendError(res, 500, 'archive file is missing from storage');
        throw error;
      }
      res.writeHead(200, { ...headers, 'content-length': String(plaintext.length) });
      res.end(req.method === 'HEAD' ? undefined : plaintext);
      return;
    }

    // Plaintext: stat first, so a missing file still gets a clean error before any header is sent.
    let size: number;
    try {
      size = (await stat(services.storage.path(eml.key))).size;
    } catch (error) {
      if (isMissingFile(error)) return sendError(res, 500, 'archive file is missing from storage');
      throw error;
    }
    res.writeHead(200, { ...headers, 'content-length': String(size) });
    if (req.method === 'HEAD') return void res.end();
    await pipeline(services.storage.stream(eml.key), res).catch((error: unknown) => {
      // Headers are out: all that is left is to cut the response short (or the client went away).
      services.logger.debug({ err: error }, 'archive download interrupted');
      res.destroy();
    });
  } catch (error) {
    services.logger.error({ err: error }, 'archive download failed');
    sendError(res, 500, 'internal error');
  }
}
