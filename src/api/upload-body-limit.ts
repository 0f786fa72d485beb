import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { bearerToken } from '../auth/tokens.js';
import { uploadsInFlight } from '../observability/metrics.js';
import type { Services } from '../services.js';
import { refusalResponse } from './refusal-response.js';

/** Uploads one user's requests may have read at once on a replica; more wait their turn. */
const UPLOADS_PER_USER = 2;
/** Uploads one user may have waiting for a turn (a script may send dozens at once); one more is refused (429). */
const WAITING_PER_USER = 64;
/** How long an upload waits for its turn before it is refused (503): as long as Node lets a request take. */
const MAX_WAIT_MS = 300_000;

const isUpload = (request: Request) =>
  request.method === 'POST' && /^multipart\/form-data/i.test(request.headers.get('content-type') ?? '');

interface Waiter {
  userId: string;
  admit: () => void;
}

/**
 * Who may send an upload, decided before a byte of it is read: yoga reads a multipart body whole
 * (the file held in memory) before the operation's token is checked, so without this anyone could
 * make a replica hold MAX_UPLOAD_BYTES per request, as many requests as they open. An upload needs
 * a valid bearer token (401 at once otherwise). A replica reads at most MAX_CONCURRENT_UPLOADS at
 * once, and one user's at most UPLOADS_PER_USER of them, so what uploads hold in memory is bounded
 * and one user cannot take every turn; the others wait, unread, in order (a user with
 * WAITING_PER_USER waiting gets 429; one that waits MAX_WAIT_MS, 503). A turn ends when the
 * response is ready.
 */
export function useUploadAdmission(services: Services): Plugin {
  const { config, tokens } = services;
  const readingByUser = new Map<string, number>();
  const waitingByUser = new Map<string, number>();
  const waiting: Waiter[] = [];
  let reading = 0;
  const admitted = new WeakMap<Request, string>();
  const add = (counts: Map<string, number>, userId: string, by: number) => {
    const next = (counts.get(userId) ?? 0) + by;
    if (next > 0) counts.set(userId, next);
    else counts.delete(userId);
  };
  const mayRead = (userId: string) => reading < config.MAX_CONCURRENT_UPLOADS && (readingByUser.get(userId) ?? 0) < UPLOADS_PER_USER;
  const startReading = (userId: string) => {
    reading++;
    add(readingByUser, userId, 1);
    uploadsInFlight.inc();
  };
  /** Gives freed turns to the first waiters that may take them, in order. */
  const admitWaiting = () => {
    for (let i = 0; i < waiting.length && reading < config.MAX_CONCURRENT_UPLOADS; ) {
      const waiter = waiting[i]!;
      if (!mayRead(waiter.userId)) {
        i++;
        continue;
      }
      waiting.splice(i, 1);
      waiter.admit();
    }
  };
  return {
    async onRequest({ request, endResponse, fetchAPI }) {
      if (!isUpload(request)) return;
      const token = bearerToken(request.headers.get('authorization'));
      const viewer = token ? await tokens.verify(token).catch(() => null) : null;
      if (!viewer)
        return endResponse(
          refusalResponse(fetchAPI, 401, 'UNAUTHENTICATED', 'an upload needs a valid bearer token (Authorization: Bearer <jwt>)'),
        );
      if (!mayRead(viewer.id) || waiting.length > 0) {
        if ((waitingByUser.get(viewer.id) ?? 0) >= WAITING_PER_USER)
          return endResponse(
            refusalResponse(
              fetchAPI,
              429,
              'RATE_LIMITED',
              `at most ${WAITING_PER_USER} uploads waiting per user; wait for one to finish`,
              1,
            ),
          );
        add(waitingByUser, viewer.id, 1);
        const admittedInTime = await new Promise<boolean>((resolve) => {
          const waiter: Waiter = {
            userId: viewer.id,
            admit: () => {
              clearTimeout(timer);
              // Counted now, so the loop that admitted it sees the turn taken.
              startReading(viewer.id);
              resolve(true);
            },
          };
          const giveUp = () => {
            const at = waiting.indexOf(waiter);
            if (at === -1) return;
            waiting.splice(at, 1);
            clearTimeout(timer);
            resolve(false);
          };
          const timer = setTimeout(giveUp, MAX_WAIT_MS);
          // A client that leaves while it waits gives its place up at once.
          request.signal?.addEventListener('abort', giveUp, { once: true });
          waiting.push(waiter);
          admitWaiting();
        });
        add(waitingByUser, viewer.id, -1);
        if (!admittedInTime)
          return endResponse(refusalResponse(fetchAPI, 503, 'RATE_LIMITED', 'this replica is busy with uploads; try again shortly', 5));
      } else startReading(viewer.id);
      admitted.set(request, viewer.id);
    },
    onResponse({ request }) {
      const userId = admitted.get(request);
      if (userId === undefined) return;
      admitted.delete(request);
      reading--;
      add(readingByUser, userId, -1);
      uploadsInFlight.dec();
      admitWaiting();
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
