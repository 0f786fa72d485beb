/**
 * The message parser thread (see ./parser-thread.ts): parses each message it is sent, several at
 * once as they come, and answers each by its id.
 */
import { parentPort } from 'node:worker_threads';
import { MalformedMessageError, parseMessage } from './parse-message.js';
import type { ParseReply, ParseRequest } from './parser-thread.js';

const port = parentPort!;

// No stack here is ever read (answers carry messages only), and mailparser makes and drops an
// error per message (ending a stream twice): capturing their stacks was 2% of this thread's time.
Error.stackTraceLimit = 0;

port.on('message', ({ id, raw }: ParseRequest) => {
  parseMessage(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)).then(
    (parsed) => port.postMessage({ id, parsed } satisfies ParseReply),
    (error: unknown) =>
      port.postMessage({
        id,
        error: { malformed: error instanceof MalformedMessageError, message: error instanceof Error ? error.message : String(error) },
      } satisfies ParseReply),
  );
});
