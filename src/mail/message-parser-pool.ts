import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ParseReply } from './message-parser-thread.js';
import { MalformedMessageError, type ParsedMessage } from './parse-message.js';

/**
 * `parseMessage` on a thread of its own: an import hands it the next messages while the main
 * thread splits the file and stores what was parsed, so parsing (the import's largest CPU cost)
 * runs beside the rest instead of between it. Answers are exactly `parseMessage`'s, rejections
 * included (MalformedMessageError for what is not a message).
 */
export class MessageParserPool {
  private readonly thread: Worker;
  private readonly pending = new Map<number, { resolve: (parsed: ParsedMessage) => void; reject: (error: Error) => void }>();
  private nextId = 0;
  private failure: Error | null = null;

  constructor() {
    this.thread = startThread();
    this.thread.on('message', (reply: ParseReply) => this.settle(reply));
    this.thread.on('error', (error) => this.fail(error));
    this.thread.on('exit', (code) => this.fail(new Error(`the message parser thread stopped (exit code ${code})`)));
  }

  parse(raw: Buffer): Promise<ParsedMessage> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.thread.postMessage({ id, raw });
    });
  }

  /** Stops the thread; whatever was not parsed yet is rejected. */
  async close(): Promise<void> {
    this.thread.removeAllListeners('exit');
    this.fail(new Error('the message parser was closed'));
    await this.thread.terminate();
  }

  private settle(reply: ParseReply): void {
    const waiter = this.pending.get(reply.id);
    if (!waiter) return;
    this.pending.delete(reply.id);
    if ('error' in reply) {
      waiter.reject(reply.error.malformed ? new MalformedMessageError(reply.error.message) : new Error(reply.error.message));
      return;
    }
    // Buffers cross threads as plain byte arrays.
    const { parsed } = reply;
    waiter.resolve({
      ...parsed,
      attachments: parsed.attachments.map((attachment) => ({
        ...attachment,
        content: Buffer.from(attachment.content.buffer, attachment.content.byteOffset, attachment.content.byteLength),
      })),
    });
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.pending.values()) waiter.reject(this.failure);
    this.pending.clear();
  }
}

/**
 * The parser thread. Compiled, it is the `.js` beside this module. Under tsx (development, tests)
 * both are TypeScript, and a thread does not inherit tsx's loader: it registers it first.
 */
function startThread(): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./message-parser-thread.js', import.meta.url));
  // tsx's ESM entry, found from here (the `import` condition: the CommonJS one cannot register the ESM loader).
  const tsx = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist/esm/api/index.mjs')).href;
  const thread = new URL('./message-parser-thread.ts', import.meta.url).href;
  return new Worker(`import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(thread)}); });`, {
    eval: true,
  });
}
