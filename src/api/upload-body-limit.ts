import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

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
