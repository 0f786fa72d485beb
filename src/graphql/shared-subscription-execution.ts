import type { Plugin } from '@envelop/core';
import { createSourceEventStream, type DocumentNode, type ExecutionArgs, type ExecutionResult, execute } from 'graphql';
import { handsOff } from '../realtime/follow-job-changes.js';
import type { GraphQLContext } from './context.js';

/** What yoga's error masking does to each error of a result (see `maskedErrors` in src/api/yoga.ts). */
export type MaskError = (error: unknown) => Error;

/**
 * Subscriptions execute each event once per group of subscribers that would get the same result:
 * the same document, operation and variables, for the same caller. A dashboard opened by a
 * hundred people with one token costs one execution per event, not a hundred; the result object
 * is shared, and so is its JSON (`sharedJson`), so every transport writes the same bytes to each
 * of them.
 *
 * Each result also carries the event's stream position as `extensions.cursor` (when the event
 * has one), which the SSE transport sends as the frame's `id:`.
 *
 * A transport that can write frames itself takes the results pushed (`pushedResults`) instead of
 * pulling each through the iterator chain envelop and the transport put around it: a delivery is
 * then the source's next event, a lookup of the shared result and a socket write. `maskError`
 * masks pushed results as yoga masks pulled ones.
 */
export function useSharedSubscriptionExecution(maskError: MaskError): Plugin<GraphQLContext> {
  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(((args: ExecutionArgs) => subscribeSharingResults(args, maskError)) as never);
    },
  };
}

/** Takes a subscription's results as they come. */
export interface ResultSink {
  /**
   * Writes one result (errors masked) whose JSON is `json`, shared with every subscriber of its
   * group. False: the client is behind; nothing more is written until `resume()`, and what comes
   * meanwhile waits in the source (which cuts off a client that stays behind).
   */
  write(result: ExecutionResult, json: string): boolean;
  /** No more results: the source ended. */
  end(): void;
  /** The source failed unexpectedly. */
  fail(error: unknown): void;
}

/** Results per source event and group, for a second or two (see `rememberResultsOf`). */
const executions = new WeakMap<object, Map<string, Promise<ExecutionResult> | ExecutionResult>>();

/** Events whose results are kept, by the sweep that drops them: the next one, or the one after. */
let keptNow = new Set<object>();
let keptBefore = new Set<object>();
let sweeper: NodeJS.Timeout | null = null;

/**
 * Keeps an event's results for the subscribers that take it as it comes, which is within a
 * sweep or two; one that lags behind (its event waited in its queue) executes it again. Kept for
 * as long as the event lives instead, one slow subscriber holding thousands of events would keep
 * every group's result of each of them.
 */
function rememberResultsOf(event: object): void {
  keptNow.add(event);
  sweeper ??= setInterval(() => {
    for (const old of keptBefore) executions.delete(old);
    keptBefore = keptNow;
    keptNow = new Set();
    if (keptBefore.size === 0) {
      clearInterval(sweeper!);
      sweeper = null;
    }
  }, RESULTS_KEPT_MS).unref();
}

const RESULTS_KEPT_MS = 1_000;
const documentIds = new WeakMap<DocumentNode, number>();
let nextDocumentId = 0;
/** A subscription's results, by its context value and (over HTTP) its request, for transports that push. */
const subscriptions = new WeakMap<object, SubscriptionResults>();

/** The results of the subscription started with `key` (its context value, or its HTTP request), to push. */
export function pushedResults(key: object): SubscriptionResults | undefined {
  return subscriptions.get(key);
}

function groupOf(args: ExecutionArgs): string {
  let documentId = documentIds.get(args.document);
  if (documentId === undefined) {
    documentId = nextDocumentId++;
    documentIds.set(args.document, documentId);
  }
  const viewer = (args.contextValue as Partial<GraphQLContext> | undefined)?.viewer;
  return JSON.stringify([documentId, args.operationName ?? null, args.variableValues ?? null, viewer?.id ?? null, viewer?.role ?? null]);
}

type Executed = ExecutionResult | Promise<ExecutionResult>;

async function subscribeSharingResults(
  args: ExecutionArgs,
  maskError: MaskError,
): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const source = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in Object(source))) return source as ExecutionResult;
  const group = groupOf(args);
  const run = (event: unknown): Executed => {
    const executed = execute({ ...args, rootValue: event });
    return executed instanceof Promise ? executed.then((result) => withCursor(result, event)) : withCursor(executed, event);
  };
  const shared = (event: unknown): Executed => {
    if (typeof event !== 'object' || event === null) return run(event);
    let byGroup = executions.get(event);
    if (!byGroup) {
      byGroup = new Map();
      executions.set(event, byGroup);
      rememberResultsOf(event);
    }
    let result = byGroup.get(group);
    if (!result) {
      result = run(event);
      byGroup.set(group, result);
      // Later subscribers take the result itself, without waiting on a promise.
      if (result instanceof Promise) result.then((value) => byGroup.set(group, value)).catch(() => {});
    }
    return result;
  };
  const results = new SubscriptionResults(source as AsyncIterableIterator<unknown>, shared, maskError);
  subscriptions.set(args.contextValue as object, results);
  const request = (args.contextValue as { request?: unknown } | undefined)?.request;
  if (typeof request === 'object' && request !== null) subscriptions.set(request, results);
  return results;
}

const DONE: IteratorResult<never> = { done: true, value: undefined };

/**
 * A subscription's results, pulled (a plain iterator: one delivery costs one or two promises) or,
 * once a transport calls `push`, written to its sink as they come while the sink keeps up. While
 * pushing, `next()` waits for the end of the stream, so the transport's own iteration only
 * completes it (or fails it) in order after the last result.
 */
export class SubscriptionResults implements AsyncIterableIterator<ExecutionResult> {
  private sink: ResultSink | null = null;
  private pumping = false;
  /** The sink said the client is behind: nothing is written until it calls `resume()`. */
  private behind = false;
  /** A result that came while the client was behind: the first written on `resume()`. */
  private held: ExecutionResult | null = null;
  private ended = false;
  private parked: { resolve: (result: IteratorResult<ExecutionResult>) => void; reject: (error: unknown) => void } | null = null;

  constructor(
    private readonly events: AsyncIterableIterator<unknown>,
    private readonly resultOf: (event: unknown) => Executed,
    private readonly maskError: MaskError,
  ) {}

  next(): Promise<IteratorResult<ExecutionResult>> {
    if (this.ended) return Promise.resolve(DONE);
    if (this.sink)
      return new Promise((resolve, reject) => {
        this.parked = { resolve, reject };
      });
    return this.events.next().then((next): IteratorResult<ExecutionResult> | Promise<IteratorResult<ExecutionResult>> => {
      if (next.done) return DONE;
      const result = this.resultOf(next.value);
      return result instanceof Promise ? result.then((value) => ({ done: false, value })) : { done: false, value: result };
    });
  }

  /** From now on every result goes to `sink`; call it before pulling any. */
  push(sink: ResultSink): void {
    this.sink = sink;
    // While the pump waits for the next event, a source that can hands each one over at once:
    // a delivery is then a function call, not a chain of promises through every layer.
    if (handsOff(this.events)) this.events.handOffTo((event) => this.take(event));
    this.resume();
  }

  /** Writes again after the sink said it was behind. */
  resume(): void {
    this.behind = false;
    if (!this.sink || this.pumping || this.ended) return;
    const held = this.held;
    this.held = null;
    if (held) this.write(held);
    if (!this.behind) void this.pump();
  }

  /** An event handed over while the pump waits: written at once, unless it must wait for its execution or the client is behind. */
  private take(event: unknown): boolean {
    if (this.ended || this.behind) return false;
    // Called from the feed's loop over every subscriber: whatever goes wrong here ends this subscription only.
    try {
      const executed = this.resultOf(event);
      if (executed instanceof Promise) return false;
      this.write(executed);
    } catch (error) {
      this.finish(error ?? new Error('subscription delivery failed'));
    }
    return true;
  }

  private write(executed: ExecutionResult): void {
    const result = masked(executed, this.maskError);
    if (!this.sink!.write(result, sharedJson(result))) this.behind = true;
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (!this.behind) {
        const next = await this.events.next();
        if (this.ended) return;
        if (next.done) return this.finish(null);
        const executed = this.resultOf(next.value);
        // Only the first subscriber of a group waits for the execution; the others take its result at once.
        const result = executed instanceof Promise ? await executed : executed;
        if (this.ended) return;
        // The client fell behind while this one was on its way (the sink refused a handed-over event).
        if (this.behind) {
          this.held = result;
          return;
        }
        this.write(result);
      }
    } catch (error) {
      this.finish(error ?? new Error('subscription source failed'));
    } finally {
      this.pumping = false;
    }
  }

  private finish(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const parked = this.parked;
    this.parked = null;
    if (error === null) {
      this.sink?.end();
      parked?.resolve(DONE);
    } else {
      this.sink?.fail(error);
      parked?.reject(error);
      // A transport whose iteration failed does not end the source; this does.
      void Promise.resolve(this.events.return?.(undefined)).catch(() => {});
    }
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.ended = true;
    this.parked?.resolve(DONE);
    this.parked = null;
    await this.events.return?.(undefined);
    return DONE;
  }

  async throw(error: unknown): Promise<IteratorResult<ExecutionResult>> {
    await this.return();
    throw error;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<ExecutionResult> {
    return this;
  }
}

function withCursor(executed: ExecutionResult, event: unknown): ExecutionResult {
  const cursor = (event as { cursor?: unknown } | null)?.cursor;
  if (typeof cursor !== 'string') return executed;
  return { ...executed, extensions: { ...executed.extensions, cursor } };
}

const maskedResults = new WeakMap<ExecutionResult, ExecutionResult>();

/** The result with its errors masked, once per shared result. */
function masked(result: ExecutionResult, maskError: MaskError): ExecutionResult {
  if (!result.errors?.length) return result;
  let clean = maskedResults.get(result);
  if (!clean) {
    clean = { ...result, errors: result.errors.map((error) => maskError(error) as never) };
    maskedResults.set(result, clean);
  }
  return clean;
}

const serialised = new WeakMap<object, string>();

/** `JSON.stringify(result)`, computed once per result object however many subscribers it goes to. */
export function sharedJson(result: object): string {
  let json = serialised.get(result);
  if (json === undefined) {
    json = JSON.stringify(result);
    serialised.set(result, json);
  }
  return json;
}
