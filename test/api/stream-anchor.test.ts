/**
 * A query that selects `streamCursor` reads everything at that position (issue 12's dashboard, on
 * issue 8's stream): counts from `jobCounts` and `totalCount`, kept up to date from
 * `jobEvents(after: streamCursor)` by each event's `previousStatus`, end equal to a fresh count,
 * however busy the writers were while the anchor was read. Real HTTP and graphql-ws.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gqlOk, type Subscription, subscribe } from '../helpers/graphql-client.js';
import { type InProcessSystem, startInProcess } from '../helpers/in-process.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

const ANCHOR = `query { jobs(first: 1) { streamCursor totalCount } jobCounts { type status count } }`;
const EVENTS = `subscription($after: String) { jobEvents(after: $after) { cursor previousStatus job { id type status } } }`;

interface Anchor {
  jobs: { streamCursor: string; totalCount: number };
  jobCounts: { type: string; status: string; count: number }[];
}
interface ChangeEvent {
  previousStatus: string | null;
  job: { id: string; type: string; status: string };
}

let env: TestEnv;
let system: InProcessSystem;
let token: string;

beforeAll(async () => {
  env = await createTestEnv();
  // No worker: the jobs wait PENDING until the test cancels them.
  system = await startInProcess(env, { worker: false });
  token = await env.token('olga');
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

/** Counts as `status → count` (one job type here), with totalCount under `*`. */
function countsOf(anchor: Anchor): Map<string, number> {
  const counts = new Map(anchor.jobCounts.map((row) => [row.status, row.count]));
  counts.set('*', anchor.jobs.totalCount);
  return counts;
}

/** An anchor's counts moved on by the events its subscription got. */
function followed(anchor: Anchor, events: ChangeEvent[]): Map<string, number> {
  const counts = countsOf(anchor);
  const bump = (key: string, by: number) => counts.set(key, (counts.get(key) ?? 0) + by);
  for (const { previousStatus, job } of events) {
    if (previousStatus === job.status) continue;
    if (previousStatus) bump(previousStatus, -1);
    else bump('*', 1);
    bump(job.status, 1);
  }
  for (const [key, value] of counts) if (value === 0) counts.delete(key);
  return counts;
}

describe('a query anchoring a stream', () => {
  it('reads its page, totalCount and jobCounts at its streamCursor, so the stream keeps them exact under concurrent writes', async () => {
    const accountId = (await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, { name: 'anchor' })).createAccount
      .id;
    const jobs: string[] = [];
    for (let i = 0; i < 120; i++) {
      jobs.push(
        (
          await gqlOk<{ scanPii: { id: string } }>(system.url, token, 'mutation($a: ID!) { scanPii(accountId: $a) { id } }', {
            a: accountId,
          })
        ).scanPii.id,
      );
    }

    // Four writers cancel every job and enqueue a few more, while anchors are read and followed.
    const writers = [0, 1, 2, 3].map(async (lane) => {
      for (let i = lane; i < jobs.length; i += 4) {
        await gqlOk(system.url, token, 'mutation($id: ID!) { cancelJob(id: $id) { id } }', { id: jobs[i] });
        if (i % 20 === lane) await gqlOk(system.url, token, 'mutation($a: ID!) { scanPii(accountId: $a) { id } }', { a: accountId });
      }
    });
    let writing = true;
    const allWritten = Promise.all(writers).finally(() => {
      writing = false;
    });
    const followers: { anchor: Anchor; events: ChangeEvent[]; subscription: Subscription<{ jobEvents: ChangeEvent }> }[] = [];
    while (writing) {
      const anchor = await gqlOk<Anchor>(system.url, token, ANCHOR);
      const subscription = subscribe<{ jobEvents: ChangeEvent }>('ws', system.url, token, EVENTS, { after: anchor.jobs.streamCursor });
      followers.push({ anchor, events: [], subscription });
    }
    await allWritten;
    expect(followers.length).toBeGreaterThan(2);

    const fresh = countsOf(await gqlOk<Anchor>(system.url, token, ANCHOR));
    for (const [index, follower] of followers.entries()) {
      const events = () => follower.subscription.results.map((result) => result.data!.jobEvents);
      await waitFor(
        `anchor ${index}'s counts, followed by its stream, to equal a fresh count`,
        () => JSON.stringify([...followed(follower.anchor, events())].sort()) === JSON.stringify([...fresh].sort()),
        20_000,
      );
      follower.subscription.close();
    }
  }, 120_000);
});
