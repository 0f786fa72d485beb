/**
 * Job history through the real HTTP API (issue 8, filters and counts): `ids`, `updatedAfter` and
 * the `JobTypeName` enum in `JobFilter`, `orderBy: UPDATED_AT` with its own keyset cursor,
 * `totalCount`, `jobCounts` and `jobThroughput` — for a user (their own jobs only) and an admin (everyone's).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countJobHistory } from '../../src/engine/job-history.js';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let bob: string;
let admin: string;
/** Jobs enqueued through the API, per owner. */
const enqueued: Record<'alice' | 'bob', string[]> = { alice: [], bob: [] };

const TYPES = ['import_mbox', 'scan_pii', 'bulk_operation', 'archive_mails'];
const STATUSES = ['COMPLETED', 'FAILED', 'PENDING', 'CANCELLED', 'ACTIVE'];

/**
 * `n` job rows for `owner`, types and statuses in rotation; every third row shares its
 * `created_at` and `updated_at` with the next, so keyset paging must break ties by id.
 */
async function seed(owner: string, n: number, accountId: string): Promise<void> {
  await env.sql(
    `INSERT INTO job (id, type, status, progress, attempts, max_attempts, payload, trigger, owner_id, account_id, created_at, updated_at, version)
     SELECT gen_random_uuid(), ($3::text[])[1 + g % array_length($3::text[], 1)], ($4::text[])[1 + (g / 2) % array_length($4::text[], 1)],
            0, 1, 3, jsonb_build_object('accountId', $5::text), 'API', $1, $5::uuid,
            now() - interval '1 day' + (g - g % 3) * interval '1 second',
            now() - interval '1 hour' + (g - g % 3) * interval '1 millisecond' + interval '7 microseconds',
            1
       FROM generate_series(1, $2::int) AS g`,
    [owner, n, TYPES, STATUSES, accountId],
  );
}

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env, { worker: false });
  [alice, bob, admin] = await Promise.all([env.token('alice'), env.token('bob'), env.token('root', 'admin')]);
  for (const [name, token] of [
    ['alice', alice],
    ['bob', bob],
  ] as const) {
    const accountId = (await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, { name: `${name}'s inbox` }))
      .createAccount.id;
    for (let i = 0; i < 3; i++) {
      const job = await gqlOk<{ scanPii: { id: string } }>(system.url, token, 'mutation($a: ID!) { scanPii(accountId: $a) { id } }', {
        a: accountId,
      });
      enqueued[name].push(job.scanPii.id);
    }
    await seed(name, name === 'alice' ? 120 : 45, accountId);
  }
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

interface JobNode {
  id: string;
  ownerId: string;
  type: string;
  status: string;
}

interface JobsPage {
  jobs: {
    totalCount?: number;
    edges: { cursor: string; node: JobNode }[];
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
  };
}

const JOBS = `query($filter: JobFilter, $orderBy: JobOrder, $first: Int, $after: String) {
  jobs(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    edges { cursor node { id ownerId type status } }
    pageInfo { hasNextPage endCursor }
  }
}`;

const JOBS_WITH_COUNT = `query($filter: JobFilter) {
  jobs(filter: $filter, first: 5) { totalCount edges { node { id ownerId } } }
}`;

const JOB_COUNTS = 'query($filter: JobFilter) { jobCounts(filter: $filter) { type status count } }';

async function ids(token: string, filter: Record<string, unknown>): Promise<string[]> {
  const data = await gqlOk<JobsPage>(system.url, token, JOBS, { filter, first: 200 });
  return data.jobs.edges.map((edge) => edge.node.id);
}

/** Every job of an owner (or everyone's, for null), straight from the table. */
async function tableIds(owner: string | null): Promise<string[]> {
  const rows = await env.sql<{ id: string }>('SELECT id FROM job WHERE $1::text IS NULL OR owner_id = $1 ORDER BY id', [owner]);
  return rows.map((row) => row.id);
}

async function expectCode(token: string, query: string, variables: Record<string, unknown>, code: string): Promise<void> {
  const response = await gql(system.url, token, query, variables);
  expect(response.errors?.[0]?.extensions?.code, JSON.stringify(response)).toBe(code);
}

describe('filter ids', () => {
  it("returns the named jobs the caller may see, and never someone else's", async () => {
    const wanted = [enqueued.alice[0]!, enqueued.alice[2]!, enqueued.bob[1]!];
    expect((await ids(alice, { ids: wanted })).sort()).toEqual([enqueued.alice[0], enqueued.alice[2]].sort());
    expect((await ids(bob, { ids: wanted })).sort()).toEqual([enqueued.bob[1]]);
    expect((await ids(admin, { ids: wanted })).sort()).toEqual([...wanted].sort());
    const counted = await gqlOk<JobsPage>(system.url, alice, JOBS_WITH_COUNT, { filter: { ids: wanted } });
    expect(counted.jobs.totalCount).toBe(2);
  });

  it('matches nothing for an empty list, and combines with the other fields', async () => {
    expect(await ids(alice, { ids: [] })).toEqual([]);
    expect(await ids(alice, { ids: enqueued.alice, statuses: ['COMPLETED'] })).toEqual([]);
    expect((await ids(alice, { ids: enqueued.alice, types: ['scan_pii'] })).sort()).toEqual([...enqueued.alice].sort());
  });

  it('refuses more than 100 ids with BAD_USER_INPUT', async () => {
    const many = Array.from({ length: 101 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    await expectCode(alice, JOBS, { filter: { ids: many } }, 'BAD_USER_INPUT');
    await expectCode(alice, JOB_COUNTS, { filter: { ids: many } }, 'BAD_USER_INPUT');
    expect(await ids(alice, { ids: many.slice(0, 100) })).toEqual([]);
  });
});

describe('filter updatedAfter', () => {
  it('returns the jobs changed at or after the instant (inclusive)', async () => {
    const changed = (await tableIds('alice')).slice(0, 4);
    const { since } = await env.one<{ since: Date }>("SELECT date_trunc('second', now()) + interval '1 minute' AS since");
    await env.sql('UPDATE job SET updated_at = $2, version = version + 1 WHERE id = ANY($1::uuid[])', [changed, since]);
    expect((await ids(alice, { updatedAfter: since.toISOString() })).sort()).toEqual([...changed].sort());
    expect(await ids(alice, { updatedAfter: new Date(since.getTime() + 1).toISOString() })).toEqual([]);
    expect(await ids(bob, { updatedAfter: since.toISOString() })).toEqual([]);
    const counted = await gqlOk<JobsPage>(system.url, alice, JOBS_WITH_COUNT, { filter: { updatedAfter: since.toISOString() } });
    expect(counted.jobs.totalCount).toBe(4);
  });
});

describe('types as a JobTypeName enum', () => {
  it('accepts catalogue names as literals and as variables', async () => {
    const literal = await gqlOk<JobsPage>(
      system.url,
      alice,
      '{ jobs(first: 200, filter: { types: [scan_pii] }) { edges { node { id type } } } }',
    );
    expect(literal.jobs.edges.length).toBeGreaterThan(3);
    expect(new Set(literal.jobs.edges.map((edge) => edge.node.type))).toEqual(new Set(['scan_pii']));
    expect((await ids(alice, { types: ['scan_pii'] })).sort()).toEqual(literal.jobs.edges.map((edge) => edge.node.id).sort());
  });

  it('fails validation on a misspelt type', async () => {
    await expectCode(alice, '{ jobs(filter: { types: [scan_ppi] }) { nodes { id } } }', {}, 'GRAPHQL_VALIDATION_FAILED');
    await expectCode(alice, '{ jobs(filter: { types: ["scan_pii"] }) { nodes { id } } }', {}, 'GRAPHQL_VALIDATION_FAILED');
    await expectCode(alice, '{ jobCounts(filter: { types: [scan_ppi] }) { count } }', {}, 'GRAPHQL_VALIDATION_FAILED');
    await expectCode(alice, JOBS, { filter: { types: ['scan_ppi'] } }, 'BAD_USER_INPUT');
  });
});

/** Walks `jobs(orderBy)` page by page, calling `between` after each page. */
async function walk(
  token: string,
  orderBy: string,
  first: number,
  between?: (page: number, seen: readonly JobNode[]) => Promise<void>,
): Promise<JobNode[]> {
  const seen: JobNode[] = [];
  let after: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const data: JobsPage = await gqlOk<JobsPage>(system.url, token, JOBS, { orderBy, first, after });
    seen.push(...data.jobs.edges.map((edge) => edge.node));
    if (!data.jobs.pageInfo.hasNextPage) return seen;
    after = data.jobs.pageInfo.endCursor;
    await between?.(page, seen);
  }
  throw new Error('walk did not end');
}

describe('orderBy', () => {
  it('UPDATED_AT: newest change first, every row once, ties broken by id', async () => {
    const seen = await walk(alice, 'UPDATED_AT', 7);
    expect(seen.map((node) => node.id).sort()).toEqual(await tableIds('alice'));
    const order = await env.sql<{ id: string }>("SELECT id FROM job WHERE owner_id = 'alice' ORDER BY updated_at DESC, id DESC");
    expect(seen.map((node) => node.id)).toEqual(order.map((row) => row.id));
  });

  it('UPDATED_AT while rows change: no duplicates, nothing untouched missed, the changed ones caught by updatedAfter', async () => {
    const all = await tableIds('alice');
    const start = (await env.one<{ t: Date }>('SELECT clock_timestamp() AS t')).t;
    const touched = new Set<string>();
    const seen = await walk(alice, 'UPDATED_AT', 9, async (page, seenSoFar) => {
      // Each time, one job already listed and one not yet listed move to the top of the order.
      const listed = new Set(seenSoFar.map((node) => node.id));
      const pick = [all.find((id) => listed.has(id) && !touched.has(id)), all.find((id) => !listed.has(id) && !touched.has(id))];
      for (const id of pick.filter(Boolean) as string[]) {
        touched.add(id);
        await env.sql('UPDATE job SET updated_at = clock_timestamp(), progress = $2, version = version + 1 WHERE id = $1', [id, page]);
      }
    });
    const seenIds = seen.map((node) => node.id);
    expect(new Set(seenIds).size).toBe(seenIds.length);
    for (const id of all) if (!touched.has(id)) expect(seenIds).toContain(id);
    const caughtUp = await ids(alice, { updatedAfter: start.toISOString() });
    expect(new Set([...seenIds, ...caughtUp])).toEqual(new Set(all));
    expect(touched.size).toBeGreaterThan(10);
  });

  it('CREATED_AT stays the default, ties broken by id', async () => {
    const seen = await walk(alice, 'CREATED_AT', 11);
    const order = await env.sql<{ id: string }>("SELECT id FROM job WHERE owner_id = 'alice' ORDER BY created_at DESC, id DESC");
    expect(seen.map((node) => node.id)).toEqual(order.map((row) => row.id));
    const byDefault = await gqlOk<JobsPage>(system.url, alice, JOBS, { first: 11 });
    expect(byDefault.jobs.edges.map((edge) => edge.node.id)).toEqual(order.slice(0, 11).map((row) => row.id));
  });

  it('refuses a cursor from the other order with BAD_USER_INPUT', async () => {
    const byCreation = await gqlOk<JobsPage>(system.url, alice, JOBS, { orderBy: 'CREATED_AT', first: 3 });
    const byUpdate = await gqlOk<JobsPage>(system.url, alice, JOBS, { orderBy: 'UPDATED_AT', first: 3 });
    await expectCode(alice, JOBS, { orderBy: 'UPDATED_AT', after: byCreation.jobs.pageInfo.endCursor }, 'BAD_USER_INPUT');
    await expectCode(alice, JOBS, { orderBy: 'CREATED_AT', after: byUpdate.jobs.pageInfo.endCursor }, 'BAD_USER_INPUT');
    await expectCode(alice, JOBS, { after: byUpdate.jobs.pageInfo.endCursor }, 'BAD_USER_INPUT');
    const next = await gqlOk<JobsPage>(system.url, alice, JOBS, {
      orderBy: 'UPDATED_AT',
      first: 3,
      after: byUpdate.jobs.pageInfo.endCursor,
    });
    expect(next.jobs.edges).toHaveLength(3);
  });
});

describe('counts', () => {
  it("totalCount: the caller's matching jobs across pages; an admin's: everyone's", async () => {
    const own = await gqlOk<JobsPage>(system.url, alice, JOBS_WITH_COUNT, {});
    expect(own.jobs.totalCount).toBe((await tableIds('alice')).length);
    expect(own.jobs.edges.every((edge) => edge.node.ownerId === 'alice')).toBe(true);
    expect((await gqlOk<JobsPage>(system.url, bob, JOBS_WITH_COUNT, {})).jobs.totalCount).toBe((await tableIds('bob')).length);
    expect((await gqlOk<JobsPage>(system.url, admin, JOBS_WITH_COUNT, {})).jobs.totalCount).toBe((await tableIds(null)).length);

    const filter = { statuses: ['FAILED', 'PENDING'], types: ['scan_pii', 'import_mbox'] };
    const { n } = await env.one<{ n: number }>(
      "SELECT count(*)::int AS n FROM job WHERE owner_id = 'alice' AND status IN ('FAILED', 'PENDING') AND type IN ('scan_pii', 'import_mbox')",
    );
    expect((await gqlOk<JobsPage>(system.url, alice, JOBS_WITH_COUNT, { filter })).jobs.totalCount).toBe(n);
  });

  it('totalCount stops at the cap', async () => {
    const em = system.apiServices.orm.em.fork();
    expect(await countJobHistory(em, { ownerId: 'alice' }, 10)).toBe(10);
    expect(await countJobHistory(em, { ownerId: 'alice', filter: { ids: enqueued.alice } }, 10)).toBe(3);
  });

  it('jobCounts: by type and status, a user their own, an admin everyone', async () => {
    const expected = async (owner: string | null) =>
      (
        await env.sql<{ type: string; status: string; count: number }>(
          'SELECT type, status, count(*)::int AS count FROM job WHERE $1::text IS NULL OR owner_id = $1 GROUP BY type, status ORDER BY type, status',
          [owner],
        )
      ).map((row) => ({ ...row }));
    const forAlice = await gqlOk<{ jobCounts: { type: string; status: string; count: number }[] }>(system.url, alice, JOB_COUNTS);
    expect(forAlice.jobCounts).toEqual(await expected('alice'));
    const forBob = await gqlOk<{ jobCounts: { type: string; status: string; count: number }[] }>(system.url, bob, JOB_COUNTS);
    expect(forBob.jobCounts).toEqual(await expected('bob'));
    const forAdmin = await gqlOk<{ jobCounts: { type: string; status: string; count: number }[] }>(system.url, admin, JOB_COUNTS);
    expect(forAdmin.jobCounts).toEqual(await expected(null));

    // With a filter, and someone else's ids never counted.
    const filtered = await gqlOk<{ jobCounts: { type: string; status: string; count: number }[] }>(system.url, alice, JOB_COUNTS, {
      filter: { ids: [...enqueued.alice, ...enqueued.bob] },
    });
    expect(filtered.jobCounts).toEqual([{ type: 'scan_pii', status: 'PENDING', count: 3 }]);
  });
});

describe('throughput', () => {
  const THROUGHPUT =
    'query($minutes: Int, $filter: JobFilter) { jobThroughput(minutes: $minutes, filter: $filter) { minute completed failed } }';

  it("jobThroughput: completed and failed per minute of finishedAt, in the window, a user's own and an admin's all", async () => {
    // Owners of their own, so the other tests' counts stay as they were. Five minutes ago: gail 2
    // completed and 1 failed, hank 1 completed; two hours ago: gail 1 completed.
    const gail = await env.token('gail');
    const { minute } = await env.one<{ minute: Date }>("SELECT date_trunc('minute', now()) - interval '5 minutes' AS minute");
    const finished = [
      ['gail', 'COMPLETED', "interval '5 minutes'"],
      ['gail', 'COMPLETED', "interval '5 minutes'"],
      ['gail', 'FAILED', "interval '5 minutes'"],
      ['hank', 'COMPLETED', "interval '5 minutes'"],
      ['gail', 'COMPLETED', "interval '2 hours'"],
    ];
    for (const [owner, status, ago] of finished) {
      await env.sql(
        `INSERT INTO job (id, type, status, progress, attempts, max_attempts, payload, trigger, owner_id, created_at, updated_at, finished_at, version)
         VALUES (gen_random_uuid(), 'bulk_operation', $2, 100, 1, 3, '{}', 'API', $1, now() - interval '3 hours',
                 date_trunc('minute', now()) - ${ago} + interval '10 seconds', date_trunc('minute', now()) - ${ago} + interval '10 seconds', 1)`,
        [owner, status],
      );
    }
    const filter = { types: ['bulk_operation'] };
    const forGail = await gqlOk<{ jobThroughput: unknown[] }>(system.url, gail, THROUGHPUT, { minutes: 60, filter });
    expect(forGail.jobThroughput).toEqual([{ minute: minute.toISOString(), completed: 2, failed: 1 }]);
    const forAdmin = await gqlOk<{ jobThroughput: unknown[] }>(system.url, admin, THROUGHPUT, { minutes: 60, filter });
    expect(forAdmin.jobThroughput).toEqual([{ minute: minute.toISOString(), completed: 3, failed: 1 }]);
    const wider = await gqlOk<{ jobThroughput: { completed: number }[] }>(system.url, gail, THROUGHPUT, { minutes: 180, filter });
    expect(wider.jobThroughput.map((row) => row.completed)).toEqual([1, 2]);
  });

  it('refuses a window outside 1 to 1440 minutes with BAD_USER_INPUT', async () => {
    for (const minutes of [0, 1441]) {
      const response = await gql(system.url, alice, THROUGHPUT, { minutes });
      expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
  });
});

describe('isolation', () => {
  it("never lists another owner's jobs, in either order and under any filter", async () => {
    for (const orderBy of ['CREATED_AT', 'UPDATED_AT']) {
      const seen = await walk(bob, orderBy, 50);
      expect(seen.every((node) => node.ownerId === 'bob')).toBe(true);
      expect(seen.map((node) => node.id).sort()).toEqual(await tableIds('bob'));
    }
    const aliceAccount = (await env.one<{ account_id: string }>("SELECT account_id FROM job WHERE owner_id = 'alice' LIMIT 1")).account_id;
    expect(await ids(bob, { accountId: aliceAccount })).toEqual([]);
    expect(await ids(bob, { ids: enqueued.alice })).toEqual([]);
    const counted = await gqlOk<{ jobCounts: unknown[] }>(system.url, bob, JOB_COUNTS, { filter: { accountId: aliceAccount } });
    expect(counted.jobCounts).toEqual([]);
    expect((await gqlOk<JobsPage>(system.url, bob, JOBS_WITH_COUNT, { filter: { accountId: aliceAccount } })).jobs.totalCount).toBe(0);
  });
});

describe('jobs of a type no longer in the catalogue', () => {
  it('are still listed, as UnknownJob with their stored payload', async () => {
    const owner = 'retired-owner';
    const token = await env.token(owner);
    const { id } = await env.one<{ id: string }>(
      `INSERT INTO job (id, type, status, progress, attempts, max_attempts, payload, trigger, owner_id, created_at, updated_at, version)
       VALUES (gen_random_uuid(), 'retired_type', 'COMPLETED', 100, 1, 3, '{"legacy": true}', 'API', $1, now(), now(), 1) RETURNING id`,
      [owner],
    );
    const { jobs } = await gqlOk<{ jobs: { nodes: any[] } }>(system.url, token, '{ jobs { nodes { __typename id type payload } } }');
    expect(jobs.nodes).toEqual([{ __typename: 'UnknownJob', id, type: 'retired_type', payload: { legacy: true } }]);
  });
});
