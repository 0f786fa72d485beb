import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { bearerToken } from '../auth/tokens.js';
import { uploadsInFlight } from '../observability/metrics.js';
import type { Services } from '../services.js';

/** Uploads one user may send to a replica at once. */
const UPLOADS_PER_USER = 2;

const isUpload = (request: Request) =>
  request.method === 'POST' && /^multipart\/form-data/i.test(request.headers.get('content-type') ?? '');

/**
 * Who may send an upload, decided before a byte of it is read: yoga reads a multipart body whole
 * (the file held in memory) before the operation's token is checked, so without this anyone could
 * make a replica hold MAX_UPLOAD_BYTES per request, as many requests as they open. An upload needs
 * a valid bearer token (401 at once otherwise); a user sends at most UPLOADS_PER_USER at a time
 * (429), and a replica takes at most MAX_CONCURRENT_UPLOADS (503), so what uploads hold in memory
 * is bounded. A slot is freed when the response is ready.
 */
export function useUploadAdmission(services: Services): Plugin {
  const { config, tokens } = services;
  const byUser = new Map<string, number>();
  let inFlight = 0;
  const admitted = new WeakMap<Request, string>();
  const refuse = (fetchAPI: { Response: typeof Response }, status: number, code: string, message: string, retryAfter?: number) =>
    new fetchAPI.Response(JSON.stringify({ errors: [{ message, extensions: { code, ...(retryAfter ? { retryAfter } : {}) } }] }), {
      status,
      headers: { 'content-type': 'application/json; charset=utf-8', ...(retryAfter ? { 'retry-after': String(retryAfter) } : {}) },
    });
  return {
    async onRequest({ request, endResponse, fetchAPI }) {
      if (!isUpload(request)) return;
      const token = bearerToken(request.headers.get('authorization'));
      const viewer = token ? await tokens.verify(token).catch(() => null) : null;
      if (!viewer)
        return endResponse(refuse(fetchAPI, 401, 'UNAUTHENTICATED', 'an upload needs a valid bearer token (Authorization: Bearer <jwt>)'));
      const held = byUser.get(viewer.id) ?? 0;
      if (held >= UPLOADS_PER_USER)
        return endResponse(
          refuse(fetchAPI, 429, 'RATE_LIMITED', `at most ${UPLOADS_PER_USER} uploads at a time per user; wait for one to finish`, 1),
        );
      if (inFlight >= config.MAX_CONCURRENT_UPLOADS)
        return endResponse(refuse(fetchAPI, 503, 'RATE_LIMITED', 'this replica is taking all the uploads it can; try again shortly', 1));
      byUser.set(viewer.id, held + 1);
      inFlight++;
      uploadsInFlight.inc();
      admitted.set(request, viewer.id);
    },
    onResponse({ request }) {
      const userId = admitted.get(request);
      if (userId === undefined) return;
      admitted.delete(request);
      inFlight--;
      uploadsInFlight.dec();
      const held = (byUser.get(userId) ?? 1) - 1;
      if (held > 0) byUser.set(userId, held);
      else byUser.delete(userId);
    },
  };
}

/**
 * yoga's request body limit (its `maxRequestBodySize`), for uploads only. Every other POST is
 * capped before yoga sees it (server.ts: a Content-Length is required, at most 1 MiB, and Node's
 * HTTP parser reads no byte past it; yoga reads no other method's body), so streaming its body through yoga's
 * counting transform cost each request one more stream pipeline, an AbortSignal and, when it
 * ended, a DOMException, for nothing. An upload with a Content-Length is checked from it; only a
 * streamed (chunked) one is counted as it is read.
 */
export function useUploadBodyLimit(limit: number): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      if (!/^multipart\/form-data/i.test(request.headers.get('content-type') ?? '')) return;
      const contentLength = request.headers.get('content-length');
      if (contentLength !== null) {
        if (!/^\d+$/.test(contentLength)) throw httpError(400, 'BAD_REQUEST', 'Content-Length header is invalid.');
        if (Number(contentLength) > limit) throw tooLarge();
        return;
      }
      if (!requestParser || !request.body) return;
      setRequestParser((req) => {
        let bytesRead = 0;
        // As yoga does: a native body needs the native TransformStream (graphql-yoga#4583).
        const Transform = req.body instanceof ReadableStream ? globalThis.TransformStream : fetchAPI.TransformStream;
        const counted = req.body!.pipeThrough(
          new Transform({
            transform(chunk: Uint8Array, controller) {
              bytesRead += chunk.byteLength;
              if (bytesRead > limit) controller.error(tooLarge());
              else controller.enqueue(chunk);
            },
          }),
        );
        return requestParser(
          new fetchAPI.Request(req.url, {
            method: req.method,
            headers: req.headers,
            signal: req.signal,
            body: counted,
            duplex: 'half',
          } as RequestInit),
        );
      });
    },
  };
}

function httpError(status: number, code: string, message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { http: { status }, code } });
}

const tooLarge = () => httpError(413, 'REQUEST_ENTITY_TOO_LARGE', 'Request body too large');
