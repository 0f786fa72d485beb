/**
 * The message parser thread (see ./parser-thread.ts): parses each message it is sent, several at
 * once as they come, and answers each by its id.
 */
import { parentPort } from 'node:worker_threads';
import { MalformedMessageError, parseMessage } from './parse-message.js';
import type { ParseReply, ParseRequest } from './parser-thread.js';

const port = parentPort!;

// No stack here is read (answers and crashes are reported by their messages), and mailparser
// makes and drops an error per message (ending a stream twice): their stacks were 2% of its time.
Error.stackTraceLimit = 0;

port.on('message', ({ id, raw }: ParseRequest) => {
  parseMessage(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)).then(
    (parsed) => {
      // Each attachment as a copy of exactly its bytes, handed over (a small one is a view of a pool).
      const attachments = parsed.attachments.map((attachment) => ({
        ...attachment,
        content: Buffer.from(new Uint8Array(attachment.content).buffer),
      }));
      port.postMessage(
        { id, parsed: { ...parsed, attachments } } satisfies ParseReply,
        attachments.map((a) => a.content.buffer),
      );
    },
    (error: unknown) =>
      port.postMessage({
        id,
        error: { malformed: error instanceof MalformedMessageError, message: error instanceof Error ? error.message : String(error) },
      } satisfies ParseReply),
  );
});
