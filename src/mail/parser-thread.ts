import { Worker } from 'node:worker_threads';
import { MalformedMessageError, type ParsedMessage } from './parse-message.js';

/** A message sent to the thread to parse: its bytes, copied over. */
export interface ParseRequest {
  id: number;
  raw: Uint8Array;
}

/** The thread's answer: the parsed message (its Buffers arrive as Uint8Arrays), or why not. */
export type ParseReply = { id: number; parsed: ParsedMessage } | { id: number; error: { malformed: boolean; message: string } };

/** An idle thread ends after this long; the next parse starts another. */
const IDLE_MS = 60_000;

/**
 * `parseMessage` on a thread of its own, for imports: parsing is the CPU-heavy half of an import,
 * and on the import's own thread the two halves take turns. Here parsing overlaps with storing,
 * and an import goes at the speed of the slower of the two. Answers are what `parseMessage`
 * would give: the same fields, Buffers, Dates and `MalformedMessageError`s.
 *
 * The thread starts with the first parse and stays while imports keep it busy, so the parser's
 * compiled code is kept from one import to the next; idle for IDLE_MS, it ends. It never keeps
 * the process alive by itself. Should it die (out of memory on a monstrous message, say), the
 * parses waiting on it fail, and so do their imports' attempts; the next parse starts another.
 */
export class MessageParserThread {
  private thread: Worker | null = null;
  private readonly waiting = new Map<number, { resolve: (parsed: ParsedMessage) => void; reject: (error: Error) => void }>();
  private nextId = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly idleMs = IDLE_MS) {}

  parse(raw: Buffer): Promise<ParsedMessage> {
    const thread = this.running();
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.waiting.set(id, { resolve, reject });
      // A copy of exactly its bytes, handed over: a small Buffer is a view of an 8 KiB pool, all of
      // which a plain postMessage would copy.
      const bytes = new Uint8Array(raw);
      thread.postMessage({ id, raw: bytes } satisfies ParseRequest, [bytes.buffer]);
    });
  }

  /** Ends the thread now; parses still waiting fail, and a later parse starts another. */
  async close(): Promise<void> {
    const thread = this.thread;
    if (!thread) return;
    this.stopped(thread, new Error('the message parser thread was closed'));
    await thread.terminate();
  }

  private running(): Worker {
    clearTimeout(this.idleTimer);
    if (this.thread) {
      if (this.waiting.size === 0) this.thread.ref();
      return this.thread;
    }
    const thread = startThread();
    thread.on('message', (reply: ParseReply) => this.answer(reply));
    thread.on('error', (error) => this.stopped(thread, new Error(`the message parser thread failed: ${error.message}`, { cause: error })));
    thread.on('exit', (code) => this.stopped(thread, new Error(`the message parser thread stopped (exit code ${code})`)));
    this.thread = thread;
    return thread;
  }

  private answer(reply: ParseReply): void {
    const waiter = this.waiting.get(reply.id);
    if (!waiter) return;
    this.waiting.delete(reply.id);
    if (this.waiting.size === 0) this.idle();
    if ('error' in reply) {
      waiter.reject(reply.error.malformed ? new MalformedMessageError(reply.error.message) : new Error(reply.error.message));
      return;
    }
    const { parsed } = reply;
    // Structured cloning turns Buffers into plain Uint8Arrays: the same bytes, viewed as Buffers again.
    const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    waiter.resolve({ ...parsed, attachments: parsed.attachments.map((a) => ({ ...a, content: asBuffer(a.content) })) });
  }

  /** Nothing waits on the thread: it no longer holds the process, and ends unless a parse comes soon. */
  private idle(): void {
    const thread = this.thread!;
    thread.unref();
    this.idleTimer = setTimeout(() => {
      // Let go of it first: a parse from now on starts another instead of going to one that is ending.
      this.thread = null;
      void thread.terminate();
    }, this.idleMs).unref();
  }

  private stopped(thread: Worker, error: Error): void {
    if (this.thread !== thread) return;
    this.thread = null;
    clearTimeout(this.idleTimer);
    for (const waiter of this.waiting.values()) waiter.reject(error);
    this.waiting.clear();
  }
}

/** The process's parser thread, for every import it runs. */
export const messageParser = new MessageParserThread();

/**
 * The compiled entry beside this module; run from the TypeScript sources (tests, `npm run dev`),
 * the source entry, through tsx as the rest (a thread does not inherit the loader hooks).
 */
function startThread(): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = new URL(`./parser-thread-entry.${fromSource ? 'ts' : 'js'}`, import.meta.url);
  if (!fromSource) return new Worker(entry);
  // Resolved here: the thread's own resolution would start from the working directory.
  const tsx = import.meta.resolve('tsx/esm/api');
  const load = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(load, { eval: true });
}
