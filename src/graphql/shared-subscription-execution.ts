import type { Plugin } from '@envelop/core';
import { createSourceEventStream, type DocumentNode, type ExecutionArgs, type ExecutionResult, execute } from 'graphql';
import type { GraphQLContext } from './context.js';

/**
 * Subscriptions execute each event once per group of subscribers that would get the same result:
 * the same document, operation and variables, for the same caller. A dashboard opened by a
 * hundred people with one token costs one execution per event, not a hundred; the result object
 * is shared, so a transport that serialises it once (see `sharedJson`) writes the same bytes to
 * each of them.
 *
 * Each result also carries the event's stream position as `extensions.cursor` (when the event
 * has one), which the SSE transport sends as the frame's `id:`.
 */
export function useSharedSubscriptionExecution(): Plugin<GraphQLContext> {
  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(subscribeSharingResults as never);
    },
  };
}

/** Results per source event and group; events are shared objects, so this lives as long as they do. */
const executions = new WeakMap<object, Map<string, Promise<ExecutionResult> | ExecutionResult>>();
const documentIds = new WeakMap<DocumentNode, number>();
let nextDocumentId = 0;

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

async function subscribeSharingResults(args: ExecutionArgs): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const source = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in Object(source))) return source as ExecutionResult;
  const events = source as AsyncIterableIterator<unknown>;
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
  // A plain iterator, not an async generator: one delivery costs one or two promises, however many subscribers there are.
  const results: AsyncIterableIterator<ExecutionResult> = {
    next() {
      return events.next().then((next): IteratorResult<ExecutionResult> | Promise<IteratorResult<ExecutionResult>> => {
        if (next.done) return { done: true, value: undefined };
        const result = shared(next.value);
        return result instanceof Promise ? result.then((value) => ({ done: false, value })) : { done: false, value: result };
      });
    },
    async return() {
      await events.return?.(undefined);
      return { done: true, value: undefined };
    },
    async throw(error: unknown) {
      await events.return?.(undefined);
      throw error;
    },
    [Symbol.asyncIterator]() {
      return results;
    },
  };
  return results;
}

function withCursor(executed: ExecutionResult, event: unknown): ExecutionResult {
  const cursor = (event as { cursor?: unknown } | null)?.cursor;
  if (typeof cursor !== 'string') return executed;
  return { ...executed, extensions: { ...executed.extensions, cursor } };
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
