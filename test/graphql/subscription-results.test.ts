/**
 * The contract between a subscription's pushed results and a transport's sink
 * (src/graphql/shared-subscription-execution.ts): once the sink says its client is behind, nothing
 * more is written until it resumes, and what came meanwhile is written then, in order. The source
 * here behaves as followJobChanges does: a pending `next()`, and events handed over at once while
 * one is pending.
 */
import { describe, expect, it } from 'vitest';
import type { ExecutionResult } from 'graphql';
import { SubscriptionResults } from '../../src/graphql/shared-subscription-execution.js';

/** Lets every pending promise callback run. */
const settled = () => new Promise((resolve) => setImmediate(resolve));

function handingOffSource() {
  const queue: number[] = [];
  let waiting: ((result: IteratorResult<number>) => void) | null = null;
  let take: ((event: number) => boolean) | null = null;
  const source = {
    handOffTo: (taker: typeof take) => void (take = taker),
    next: () =>
      queue.length
        ? Promise.resolve({ done: false as const, value: queue.shift()! })
        : new Promise<IteratorResult<number>>((resolve) => {
            waiting = resolve;
          }),
    return: async () => ({ done: true as const, value: undefined }),
    [Symbol.asyncIterator]() {
      return source;
    },
  };
  const deliver = (event: number) => {
    if (waiting && queue.length === 0) {
      if (take?.(event)) return;
      const resolve = waiting;
      waiting = null;
      resolve({ done: false, value: event });
    } else queue.push(event);
  };
  return { source, deliver };
}

describe('pushed subscription results', () => {
  it('write nothing while the client is behind, then what came meanwhile, in order', async () => {
    const { source, deliver } = handingOffSource();
    const results = new SubscriptionResults(
      source as never,
      (event) => ({ data: { n: event } }),
      (error) => error as Error,
    );
    const written: number[] = [];
    let behind = false;
    results.push({
      write: (result: ExecutionResult) => {
        written.push((result.data as { n: number }).n);
        return !behind;
      },
      end() {},
      fail() {},
    });
    await settled();
    deliver(1);
    behind = true;
    deliver(2); // written, and the sink says its client is behind
    deliver(3);
    deliver(4);
    await settled();
    expect(written).toEqual([1, 2]);

    behind = false;
    results.resume();
    await settled();
    expect(written).toEqual([1, 2, 3, 4]);
    deliver(5);
    expect(written).toEqual([1, 2, 3, 4, 5]);
    await results.return();
  });
});
