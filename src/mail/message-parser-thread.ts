/** A thread of MessageParserPool: parses what it is sent, answering each message with its id. */
import { parentPort } from 'node:worker_threads';
import { MalformedMessageError, parseMessage } from './parse-message.js';

export type ParseReply =
  | { id: number; parsed: Awaited<ReturnType<typeof parseMessage>> }
  | { id: number; error: { malformed: boolean; message: string } };

parentPort!.on('message', async ({ id, raw }: { id: number; raw: Uint8Array }) => {
  let reply: ParseReply;
  try {
    reply = { id, parsed: await parseMessage(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)) };
  } catch (error) {
    reply = {
      id,
      error: { malformed: error instanceof MalformedMessageError, message: error instanceof Error ? error.message : String(error) },
    };
  }
  parentPort!.postMessage(reply);
});
