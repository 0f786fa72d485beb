import { type MessagePort, Worker } from 'node:worker_threads';
import { MalformedMessageError, parseMessage, type ParsedMessage } from './parse-message.js';

/** A message sent to the thread to parse: its bytes, copied over. */
export interface ParseRequest {
  id: number;
  raw: Uint8Array;
}

/** The thread's answer: the parsed message (its Buffers arrive as Uint8Arrays), or why not; first, that it is ready. */
export type ParseReply =
  | { id: number; parsed: ParsedMessage }
  | { id: number; error: { malformed: boolean; message: string } }
  | { ready: true };

/** An idle thread ends after this long; the next parse starts another. */
const IDLE_MS = 60_000;

/** A thread that answers nothing for this long while parses wait on it is stuck. */
const STALL_MS = 30_000;

/** A thread not ready this long after it was started never will be. */
const STARTUP_MS = 60_000;

/** The most old-generation heap the thread may use (MB): past it the thread ends, not the process. */
const MAX_HEAP_MB = 1024;

interface Waiter {
  raw: Buffer;
  resolve: (parsed: ParsedMessage) => void;
  reject: (error: Error) => void;
}

/**
 * `parseMessage` on a thread of its own, for imports: parsing is the CPU-heavy half of an import,
 * and on the import's own thread the two halves take turns. Here parsing overlaps with storing,
 * and an import goes at the speed of the slower of the two. Answers are what `parseMessage`
 * would give: the same fields, Buffers, Dates and `MalformedMessageError`s.
 *
 * The thread starts with the first parse and stays while imports keep it busy, so the parser's
 * compiled code is kept from one import to the next; idle for `idleMs`, it ends. It never keeps
 * the process alive by itself.
 *
 * A hostile message must not take every import of the process with it. A thread that answers
 * nothing for `stallMs` while parses wait (a parser looping), runs out of its `maxHeapMb`, or
 * crashes is ended; the parses it held are then sent to a new thread one at a time. A message that
 * stalls, exhausts or crashes a thread that parsed nothing else is the one at fault, exactly: it
 * fails as a `MalformedMessageError` (the import skips it), and the rest are answered (on a thread
 * that had parsed others, the message in flight gets a fresh one first: the fault may be a crash
 * an earlier message left behind). A thread that fails before it is ready (it cannot load, say) is
 * no message's fault: the parses waiting on it fail, and so do their imports' attempts; the next
 * parse starts another.
 */
export class MessageParserThread {
  private thread: Worker | null = null;
  /** Whether the thread has loaded and listens: its stall watch starts then, not while it loads. */
  private ready = false;
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private startupTimer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  /** Answers read so far: a stall watch that fires with more than when it started has been answered. */
  private answers = 0;
  /** After a stall, running out of memory or a crash: the parses the thread held, sent one at a time (the first is in flight). */
  private isolating: number[] = [];
  /** Parses asked for while those are isolated: sent once they are answered. */
  private held: number[] = [];
  /**
   * Whether the current thread answered an isolated parse before the one in flight: then what ends
   * it may be that earlier message's doing (a crash it left behind), and the one in flight gets a
   * fresh thread before it is blamed.
   */
  private isolatedAnswered = false;
  private readonly idleMs: number;
  private readonly stallMs: number;
  private readonly maxHeapMb: number;
  private readonly entry: URL;

  /** `entry`: the module the thread runs (Default: parser-thread-entry, beside this one). */
  constructor(options: { idleMs?: number; stallMs?: number; maxHeapMb?: number; entry?: URL } = {}) {
    this.idleMs = options.idleMs ?? IDLE_MS;
    this.stallMs = options.stallMs ?? STALL_MS;
    this.maxHeapMb = options.maxHeapMb ?? MAX_HEAP_MB;
    this.entry = options.entry ?? defaultEntry();
  }

  parse(raw: Buffer): Promise<ParsedMessage> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.waiting.set(id, { raw, resolve, reject });
      if (this.isolating.length > 0) this.held.push(id);
      else this.send(id);
    });
  }

  /** Ends the thread now; parses still waiting fail, and a later parse starts another. */
  async close(): Promise<void> {
    const thread = this.thread;
    if (!thread) return;
    this.stopped(thread, new Error('the message parser thread was closed'));
    await thread.terminate();
  }

  /** Sends a waiting parse to the thread (started if need be); should that fail, the parse fails. Whether it went. */
  private send(id: number): boolean {
    const waiter = this.waiting.get(id);
    if (!waiter) return false;
    try {
      // A copy of exactly its bytes, handed over: a small Buffer is a view of an 8 KiB pool, all of
      // which a plain postMessage would copy. The caller's Buffer stays, to be sent again if need be.
      const bytes = new Uint8Array(waiter.raw);
      this.running().postMessage({ id, raw: bytes } satisfies ParseRequest, [bytes.buffer]);
    } catch (error) {
      this.waiting.delete(id);
      waiter.reject(error instanceof Error ? error : new Error(String(error)));
      if (this.waiting.size === 0) this.idle();
      return false;
    }
    if (this.stallTimer === undefined) this.watch();
    return true;
  }

  private running(): Worker {
    clearTimeout(this.idleTimer);
    if (this.thread) {
      this.thread.ref();
      return this.thread;
    }
    const thread = startThread(this.entry, this.maxHeapMb);
    this.thread = thread;
    this.ready = false;
    this.startupTimer = setTimeout(
      // As for a stall: a `ready` already here is read first.
      () =>
        setImmediate(() => {
          if (this.thread === thread && !this.ready)
            this.stopped(thread, new Error(`the message parser thread did not start within ${STARTUP_MS / 1000} s`));
        }),
      STARTUP_MS,
    ).unref();
    // A thread ended here may still deliver what it sent before: only the current one is listened to.
    thread.on('message', (reply: ParseReply) => {
      if (this.thread !== thread) return;
      if (!('ready' in reply)) this.answer(reply);
      else {
        clearTimeout(this.startupTimer);
        this.ready = true;
        this.watch();
      }
    });
    // What ended a ready thread is acted on at its exit: Node reports an uncaught error on a port of
    // its own, possibly before answers the thread sent earlier, and delivers those answers before
    // `exit`. Acting on the error, an answered message still counted as in flight would be blamed.
    let failure: string | null = null;
    thread.on('error', (error) => {
      if (!this.ready) this.stopped(thread, new Error(`the message parser thread failed to start: ${error.message}`, { cause: error }));
      else if ((error as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY')
        failure = 'needs more memory to parse than the parser may use';
      else failure ??= `made the parser fail (${error.message})`;
    });
    thread.on('exit', (code) => {
      if (this.ready && this.waiting.size > 0) this.isolate(thread, failure ?? `made the parser stop (exit code ${code})`);
      else this.stopped(thread, new Error(`the message parser thread stopped (exit code ${code})`));
    });
    return thread;
  }

  /** (Re)starts the stall watch, while parses wait: from now, the thread has `stallMs` to answer one. */
  private watch(): void {
    this.unwatch();
    const thread = this.thread;
    if (!thread || !this.ready || this.waiting.size === 0) return;
    const answers = this.answers;
    this.stallTimer = setTimeout(() => {
      // Timers run before the thread's answers are read: an answer already here gets its turn first.
      setImmediate(() => {
        if (this.thread === thread && this.answers === answers) this.isolate(thread, `could not be parsed within ${this.stallMs / 1000} s`);
      });
    }, this.stallMs).unref();
  }

  private unwatch(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  private answer(reply: Exclude<ParseReply, { ready: true }>): void {
    this.answers++;
    const waiter = this.waiting.get(reply.id);
    if (!waiter) return;
    this.waiting.delete(reply.id);
    if (this.isolating[0] === reply.id) {
      this.isolating.shift();
      this.isolatedAnswered = true;
      this.sendIsolated();
    }
    if (this.waiting.size === 0) this.idle();
    else this.watch();
    if ('error' in reply) {
      waiter.reject(reply.error.malformed ? new MalformedMessageError(reply.error.message) : new Error(reply.error.message));
      return;
    }
    const { parsed } = reply;
    // Structured cloning turns Buffers into plain Uint8Arrays: the same bytes, viewed as Buffers again.
    const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    waiter.resolve({ ...parsed, attachments: parsed.attachments.map((a) => ({ ...a, content: asBuffer(a.content) })) });
  }

  /**
   * The thread is stuck, out of memory or crashed: it is ended. Sent one at a time, the message it
   * held alone is at fault and fails as malformed; otherwise every parse it held goes, one at a
   * time, to a new thread.
   */
  private isolate(thread: Worker, why: string): void {
    if (!this.detach(thread)) return;
    if (this.isolating.length === 0) this.isolating = [...this.waiting.keys()];
    else if (!this.isolatedAnswered) {
      const culprit = this.isolating.shift()!;
      const waiter = this.waiting.get(culprit);
      this.waiting.delete(culprit);
      waiter?.reject(new MalformedMessageError(`Message ${why}`));
    }
    this.isolatedAnswered = false;
    this.sendIsolated();
  }

  /** The next isolated parse still waiting, or, once none is left, every parse held meanwhile. */
  private sendIsolated(): void {
    while (this.isolating.length > 0) {
      if (this.send(this.isolating[0]!)) return;
      this.isolating.shift();
    }
    const held = this.held;
    this.held = [];
    for (const id of held) this.send(id);
  }

  /** Nothing waits on the thread: it no longer holds the process, and ends unless a parse comes soon. */
  private idle(): void {
    const thread = this.thread;
    this.unwatch();
    if (!thread) return;
    thread.unref();
    this.idleTimer = setTimeout(() => {
      // Let go of it first: a parse from now on starts another instead of going to one that is ending.
      this.detach(thread);
    }, this.idleMs).unref();
  }

  /** Lets go of `thread` and ends it, if it is the current one; whether it was. */
  private detach(thread: Worker): boolean {
    if (this.thread !== thread) return false;
    this.thread = null;
    clearTimeout(this.idleTimer);
    clearTimeout(this.startupTimer);
    this.unwatch();
    void thread.terminate();
    return true;
  }

  private stopped(thread: Worker, error: Error): void {
    if (!this.detach(thread)) return;
    for (const waiter of this.waiting.values()) waiter.reject(error);
    this.waiting.clear();
    this.isolating = [];
    this.held = [];
  }
}

/**
 * The thread's side: parses each message sent on `port` with `parse`, several at once as they
 * come, and answers each by its id; says it is ready first.
 */
export function serveParses(port: MessagePort, parse: (raw: Buffer) => Promise<ParsedMessage> = parseMessage): void {
  port.on('message', ({ id, raw }: ParseRequest) => {
    parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)).then(
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
  port.postMessage({ ready: true } satisfies ParseReply);
}

/** The process's parser thread, for every import it runs. */
export const messageParser = new MessageParserThread();

/** The compiled entry beside this module, or its source when this module runs from source (tests, `npm run dev`). */
function defaultEntry(): URL {
  return new URL(`./parser-thread-entry.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url);
}

/**
 * A thread running `entry`, its heap bounded; a TypeScript entry through tsx, as the rest of the
 * process runs (a thread does not inherit the loader hooks).
 */
function startThread(entry: URL, maxHeapMb: number): Worker {
  const resourceLimits = { maxOldGenerationSizeMb: maxHeapMb };
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { resourceLimits });
  // Resolved here: the thread's own resolution would start from the working directory.
  const tsx = import.meta.resolve('tsx/esm/api');
  const load = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(load, { eval: true, resourceLimits });
}
