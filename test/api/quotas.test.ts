/**
 * Per-owner quotas through the real API (issue 7): the enqueue rate is shared by every replica,
 * unfinished jobs are capped, rule schedules have a minimum interval, admins are exempt, and each
 * refusal is RATE_LIMITED (or BAD_USER_INPUT for a schedule) with nothing created.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

const SCAN = 'mutation($a: ID!) { scanPii(accountId: $a) { id } }';
const LIMITS = `{ limits { exempt enqueueRateMax enqueuesRemaining maxUnfinishedJobs unfinishedJobs ruleScheduleMinIntervalSeconds maxUploadBytes } }`;
const CREATE_RULE = `mutation($input: CreateRuleInput!) { createRule(input: $input) { id schedule } }`;

let env: TestEnv;
/** Two replicas with a rate of 5 enqueues a minute; a third with at most 2 unfinished jobs. */
let replicaA: InProcessSystem;
let replicaB: InProcessSystem;
let capped: InProcessSystem;

beforeAll(async () => {
  env = await createTestEnv({
    RULE_SCHEDULE_MIN_INTERVAL_SECONDS: '300',
    MAX_SCHEDULED_RULES_PER_OWNER: '2',
    MAX_RETENTION_POLICIES_PER_OWNER: '3',
  });
  const rate = { ENQUEUE_RATE_MAX: '5', ENQUEUE_RATE_WINDOW_MS: '60000' };
  // No worker: jobs stay PENDING, so they count as unfinished.
  [replicaA, replicaB, capped] = await Promise.all([
    startInProcess(env, { worker: false, vars: rate }),
    startInProcess(env, { worker: false, vars: rate }),
    startInProcess(env, { worker: false, vars: { MAX_UNFINISHED_JOBS_PER_OWNER: '2' } }),
  ]);
});

afterAll(async () => {
  await Promise.all([replicaA, replicaB, capped].map((system) => system?.stop()));
  await env?.cleanup();
});

async function account(url: string, token: string): Promise<string> {
  return (await gqlOk<{ createAccount: { id: string } }>(url, token, CREATE_ACCOUNT, { name: 'inbox' })).createAccount.id;
}

async function jobsOf(owner: string): Promise<number> {
  return Number((await env.one<{ n: string }>('SELECT count(*) AS n FROM job WHERE owner_id = $1', [owner])).n);
}

describe('enqueue rate', () => {
  it('is one budget across replicas, refused with RATE_LIMITED and a retry-after hint', async () => {
    const token = await env.token('rita');
    const accountId = await account(replicaA.url, token);
    const outcomes: (string | undefined)[] = [];
    for (let call = 0; call < 8; call++) {
      const replica = call % 2 === 0 ? replicaA : replicaB;
      const response = await gql(replica.url, token, SCAN, { a: accountId });
      outcomes.push(response.errors ? response.errors[0]!.extensions!.code : 'OK');
      if (response.errors) expect((response.errors[0]!.extensions as { retryAfter?: number }).retryAfter).toBeGreaterThan(0);
    }
    expect(outcomes).toEqual(['OK', 'OK', 'OK', 'OK', 'OK', 'RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED']);
    expect(await jobsOf('rita')).toBe(5);
    const { limits } = await gqlOk<{ limits: any }>(replicaB.url, token, LIMITS);
    expect(limits).toMatchObject({ exempt: false, enqueueRateMax: 5, enqueuesRemaining: 0 });
  });

  it('is per owner, and admins are exempt', async () => {
    const [other, admin] = await Promise.all([env.token('otto'), env.token('root', 'admin')]);
    const accountId = await account(replicaA.url, other);
    for (let call = 0; call < 5; call++) await gqlOk(replicaA.url, other, SCAN, { a: accountId });
    for (let call = 0; call < 7; call++) await gqlOk(replicaB.url, admin, SCAN, { a: accountId });
    expect(await jobsOf('root')).toBe(7);
    expect((await gqlOk<{ limits: any }>(replicaA.url, admin, LIMITS)).limits).toMatchObject({ exempt: true, enqueueRateMax: null });
  });
});

describe('unfinished jobs', () => {
  it('caps the jobs an owner has not finished', async () => {
    const token = await env.token('una');
    const accountId = await account(capped.url, token);
    await gqlOk(capped.url, token, SCAN, { a: accountId });
    await gqlOk(capped.url, token, SCAN, { a: accountId });
    const refused = await gql(capped.url, token, SCAN, { a: accountId });
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED' });
    expect(refused.errors![0]!.message).toMatch(/not finished/);
    expect(await jobsOf('una')).toBe(2);
    expect((await gqlOk<{ limits: any }>(capped.url, token, LIMITS)).limits).toMatchObject({ maxUnfinishedJobs: 2, unfinishedJobs: 2 });
  });

  it('answers a repeated request with its first job even at the limit', async () => {
    const token = await env.token('ida');
    const accountId = await account(capped.url, token);
    const keyed = 'mutation($a: ID!, $k: String) { scanPii(accountId: $a, options: { idempotencyKey: $k }) { id } }';
    const first = await gqlOk<{ scanPii: { id: string } }>(capped.url, token, keyed, { a: accountId, k: 'nightly-1' });
    await gqlOk(capped.url, token, SCAN, { a: accountId });
    expect((await gql(capped.url, token, SCAN, { a: accountId })).errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    const repeat = await gqlOk<{ scanPii: { id: string } }>(capped.url, token, keyed, { a: accountId, k: 'nightly-1' });
    expect(repeat.scanPii.id).toBe(first.scanPii.id);
    expect(await jobsOf('ida')).toBe(2);
  });
});

describe('rule schedules', () => {
  it('refuses a schedule that fires more often than the minimum interval, and saves nothing', async () => {
    const token = await env.token('ruth');
    const accountId = await account(replicaA.url, token);
    const input = {
      accountId,
      name: 'too often',
      conditions: { conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: 'x' }] },
      actions: [{ type: 'MARK_READ' }],
    };
    for (const schedule of ['* * * * * *', '* * * * *', '*/4 * * * *', '0,1 3 * * *']) {
      const response = await gql(replicaA.url, token, CREATE_RULE, { input: { ...input, schedule } });
      expect(response.errors?.[0]?.extensions?.code, schedule).toBe('BAD_USER_INPUT');
      expect(response.errors![0]!.message).toMatch(/at least 300 s apart/);
    }
    expect(Number((await env.one<{ n: string }>("SELECT count(*) AS n FROM rule WHERE owner_id = 'ruth'")).n)).toBe(0);
    const ok = await gqlOk<{ createRule: { schedule: string } }>(replicaA.url, token, CREATE_RULE, {
      input: { ...input, schedule: '*/5 * * * *' },
    });
    expect(ok.createRule.schedule).toBe('*/5 * * * *');
  });
});

describe('scheduled rules', () => {
  it('are capped per owner, since their runs start outside the enqueue quota', async () => {
    const token = await env.token('sam');
    const accountId = await account(replicaA.url, token);
    const input = (name: string, schedule: string | null) => ({
      accountId,
      name,
      schedule,
      conditions: { conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: 'x' }] },
      actions: [{ type: 'MARK_READ' }],
    });
    await gqlOk(replicaA.url, token, CREATE_RULE, { input: input('one', '0 3 * * *') });
    await gqlOk(replicaB.url, token, CREATE_RULE, { input: input('two', '0 4 * * *') });
    const third = await gql(replicaA.url, token, CREATE_RULE, { input: input('three', '0 5 * * *') });
    expect(third.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    // Without a schedule it is fine; adding one later is refused, and nothing changes.
    const plain = await gqlOk<{ createRule: { id: string } }>(replicaA.url, token, CREATE_RULE, { input: input('three', null) });
    const update = await gql(replicaA.url, token, 'mutation($id: ID!) { updateRule(id: $id, input: { schedule: "0 5 * * *" }) { id } }', {
      id: plain.createRule.id,
    });
    expect(update.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    const rows = await env.sql<{ name: string; schedule: string | null }>(
      "SELECT name, schedule FROM rule WHERE owner_id = 'sam' ORDER BY name",
    );
    expect(rows).toEqual([
      { name: 'one', schedule: '0 3 * * *' },
      { name: 'three', schedule: null },
      { name: 'two', schedule: '0 4 * * *' },
    ]);
  });
});

describe('retention policies', () => {
  it('are capped per owner, since the daily retention job applies every one of them', async () => {
    const token = await env.token('hoarder');
    const create = (name: string) =>
      gql(
        replicaA.url,
        token,
        'mutation($n: String!) { createRetentionPolicy(input: { name: $n, action: TRASH, olderThanDays: 3650 }) { id } }',
        {
          n: name,
        },
      );
    for (const name of ['a', 'b', 'c']) expect((await create(name)).errors).toBeUndefined();
    const refused = await create('d');
    expect(refused.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    expect(refused.errors?.[0]?.message).toMatch(/MAX_RETENTION_POLICIES_PER_OWNER/);
    expect(Number((await env.one<{ n: string }>('SELECT count(*) AS n FROM retention_policy WHERE owner_id = $1', ['hoarder'])).n)).toBe(3);
    // Another owner has a budget of their own; the limits query says what it is.
    const other = await env.token('tidy');
    expect(
      (await gql(replicaA.url, other, 'mutation { createRetentionPolicy(input: { name: "x", action: TRASH, olderThanDays: 30 }) { id } }'))
        .errors,
    ).toBeUndefined();
    expect(
      (await gqlOk<{ limits: { maxRetentionPolicies: number } }>(replicaA.url, other, '{ limits { maxRetentionPolicies } }')).limits
        .maxRetentionPolicies,
    ).toBe(3);
  });
});
