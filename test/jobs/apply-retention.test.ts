import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForJob } from '../helpers/corpus.js';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { DAY_MS, RULE_CORPUS, seedRuleCorpus, subjectsWhere } from '../helpers/rule-corpus.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

const POLICY_FIELDS = 'id ownerId accountId name olderThanDays action enabled';
const CREATE_POLICY = `mutation($input: CreateRetentionPolicyInput!) { createRetentionPolicy(input: $input) { ${POLICY_FIELDS} } }`;
const UPDATE_POLICY = `mutation($id: ID!, $input: UpdateRetentionPolicyInput!) { updateRetentionPolicy(id: $id, input: $input) { ${POLICY_FIELDS} } }`;
const DELETE_POLICY = `mutation($id: ID!) { deleteRetentionPolicy(id: $id) { id name } }`;
const POLICIES = `query($accountId: ID) { retentionPolicies(accountId: $accountId) { id name } }`;
const APPLY = `mutation($policyId: ID, $allOwners: Boolean) {
  applyRetention(policyId: $policyId, allOwners: $allOwners) { id status trigger ownerId input { policyId allOwners } }
}`;
const APPLY_JOB = `query($id: ID!) { job(id: $id) { id status error processed total
  ... on ApplyRetentionJob { output { policies matched affected results { policyId name action cutoff matched affected } } } } }`;

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let bob: string;
let admin: string;
const accounts: Record<'a1' | 'a2' | 'b', string> = { a1: '', a2: '', b: '' };
const policies: Record<'p1' | 'p2' | 'p3' | 'pb', any> = { p1: null, p2: null, p3: null, pb: null };

async function createAccount(token: string, name: string): Promise<string> {
  return (await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, { name })).createAccount.id;
}

async function createPolicy(token: string, input: Record<string, unknown>) {
  return (await gqlOk<{ createRetentionPolicy: any }>(system.url, token, CREATE_POLICY, { input })).createRetentionPolicy;
}

async function apply(token: string, variables: Record<string, unknown> = {}) {
  const { applyRetention: job } = await gqlOk<{ applyRetention: any }>(system.url, token, APPLY, variables);
  expect(job).toMatchObject({ status: 'PENDING', trigger: 'API' });
  const done = await waitForJob(system, token, job.id);
  expect(done.status, done.error ?? '').toBe('COMPLETED');
  return (await gqlOk<{ job: any }>(system.url, token, APPLY_JOB, { id: job.id })).job;
}

const code = (response: { errors?: { extensions?: { code?: string } }[] }) => response.errors?.[0]?.extensions?.code;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env);
  alice = await env.token('alice');
  bob = await env.token('bob');
  admin = await env.token('root', 'admin');
  accounts.a1 = await createAccount(alice, 'alice-1');
  accounts.a2 = await createAccount(alice, 'alice-2');
  accounts.b = await createAccount(bob, 'bob');
  for (const [token, accountId] of [
    [alice, accounts.a1],
    [alice, accounts.a2],
    [bob, accounts.b],
  ] as const) {
    await seedRuleCorpus(system, token, accountId);
  }
  // Undated mail ages by when it was stored: in alice-1 it was stored 100 days ago.
  await env.sql(`UPDATE message SET created_at = now() - interval '100 days' WHERE account_id = $1 AND date IS NULL`, [accounts.a1]);
  // Already in the trash: TRASH and ARCHIVE policies leave it alone, DELETE does not.
  await env.sql(`UPDATE message SET deleted_at = now() WHERE account_id = $1 AND subject = 'Weekly digest #2'`, [accounts.a1]);

  policies.p1 = await createPolicy(alice, { accountId: accounts.a1, name: 'trash after 90 days', olderThanDays: 90, action: 'TRASH' });
  policies.p2 = await createPolicy(alice, { name: 'delete after a year', olderThanDays: 365, action: 'DELETE' });
  policies.p3 = await createPolicy(alice, {
    accountId: accounts.a2,
    name: 'archive after 30 days',
    olderThanDays: 30,
    action: 'ARCHIVE',
    enabled: false,
  });
  policies.pb = await createPolicy(bob, { accountId: accounts.b, name: 'bob archives', olderThanDays: 30, action: 'ARCHIVE' });
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

describe('retention policies', () => {
  it('are saved with their owner and scope, and listed per owner and per account', async () => {
    expect(policies.p1).toMatchObject({ ownerId: 'alice', accountId: accounts.a1, olderThanDays: 90, action: 'TRASH', enabled: true });
    expect(policies.p2).toMatchObject({ ownerId: 'alice', accountId: null, action: 'DELETE' });
    expect(policies.p3).toMatchObject({ enabled: false, action: 'ARCHIVE' });
    const names = async (token: string, accountId?: string) =>
      (await gqlOk<{ retentionPolicies: { name: string }[] }>(system.url, token, POLICIES, { accountId })).retentionPolicies.map(
        (p) => p.name,
      );
    expect(await names(alice)).toEqual(['trash after 90 days', 'delete after a year', 'archive after 30 days']);
    expect(await names(alice, accounts.a2)).toEqual(['delete after a year', 'archive after 30 days']);
    expect(await names(bob)).toEqual(['bob archives']);
    expect(await names(admin)).toHaveLength(4);
  });

  it("applies the caller's enabled policies in order: exact messages trashed and deleted, by date or, undated, by when stored", async () => {
    const job = await apply(alice);
    expect(job.output).toMatchObject({ policies: 2, matched: 5, affected: 5 });
    expect(job.output.results).toEqual([
      { policyId: policies.p1.id, name: 'trash after 90 days', action: 'TRASH', cutoff: expect.any(String), matched: 3, affected: 3 },
      { policyId: policies.p2.id, name: 'delete after a year', action: 'DELETE', cutoff: expect.any(String), matched: 2, affected: 2 },
    ]);
    const cutoff = Date.parse(job.output.results[0].cutoff);
    expect(Math.abs(Date.now() - 90 * DAY_MS - cutoff)).toBeLessThan(60_000);
    expect(job.processed).toBe(5);

    const all = RULE_CORPUS.map((m) => m.subject).sort();
    // alice-1: the 400-day digest deleted (after P1 trashed it); the 100-day invoice and the undated notice stored 100 days ago trashed.
    expect(await subjectsWhere(env, accounts.a1, 'true')).toEqual(all.filter((s) => s !== 'Weekly digest #1'));
    expect(await subjectsWhere(env, accounts.a1, 'deleted_at IS NOT NULL')).toEqual([
      'Invoice March',
      'Undated notice',
      'Weekly digest #2',
    ]);
    // alice-2: only the year-old digest is gone; nothing trashed or archived (P3 is disabled).
    expect(await subjectsWhere(env, accounts.a2, 'true')).toEqual(all.filter((s) => s !== 'Weekly digest #1'));
    expect(await subjectsWhere(env, accounts.a2, 'deleted_at IS NOT NULL OR archived_at IS NOT NULL')).toEqual([]);
    // bob: untouched.
    expect(await subjectsWhere(env, accounts.b, 'true')).toEqual(all);
    expect(await subjectsWhere(env, accounts.b, 'deleted_at IS NOT NULL OR archived_at IS NOT NULL')).toEqual([]);

    const again = await apply(alice);
    expect(again.output).toMatchObject({ policies: 2, matched: 0, affected: 0 });
  });

  it('runs one policy by id, even a disabled one; ARCHIVE copies messages into the archive and counts changes only', async () => {
    const job = await apply(alice, { policyId: policies.p3.id });
    expect(job.output).toMatchObject({ policies: 1, matched: 4, affected: 4 });
    expect(await subjectsWhere(env, accounts.a2, 'archived_at IS NOT NULL')).toEqual([
      'Holiday photos',
      'Invoice March',
      'Lunch last month',
      'Weekly digest #2',
    ]);
    expect(await subjectsWhere(env, accounts.a2, 'deleted_at IS NOT NULL')).toEqual([]);
    expect((await apply(alice, { policyId: policies.p3.id })).output).toMatchObject({ matched: 4, affected: 0 });
  });

  it("keeps owners apart: NOT_FOUND for another's policy or account, FORBIDDEN for allOwners, and no job", async () => {
    const jobsBefore = await env.one<{ count: number }>(`SELECT count(*)::int AS count FROM job WHERE type = 'apply_retention'`);
    expect(code(await gql(system.url, bob, APPLY, { policyId: policies.p1.id }))).toBe('NOT_FOUND');
    expect(code(await gql(system.url, bob, APPLY, { allOwners: true }))).toBe('FORBIDDEN');
    expect(code(await gql(system.url, bob, UPDATE_POLICY, { id: policies.p1.id, input: { olderThanDays: 1 } }))).toBe('NOT_FOUND');
    expect(code(await gql(system.url, bob, DELETE_POLICY, { id: policies.p1.id }))).toBe('NOT_FOUND');
    expect(code(await gql(system.url, bob, POLICIES, { accountId: accounts.a1 }))).toBe('NOT_FOUND');
    expect(
      code(await gql(system.url, bob, CREATE_POLICY, { input: { accountId: accounts.a1, name: 'x', olderThanDays: 1, action: 'DELETE' } })),
    ).toBe('NOT_FOUND');
    expect(await env.one<{ count: number }>(`SELECT count(*)::int AS count FROM job WHERE type = 'apply_retention'`)).toEqual(jobsBefore);
    expect(await env.one('SELECT older_than_days FROM retention_policy WHERE id = $1', [policies.p1.id])).toEqual({ older_than_days: 90 });
  });

  it('rejects bad input with BAD_USER_INPUT and saves nothing', async () => {
    const before = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM retention_policy');
    for (const input of [
      { name: 'zero', olderThanDays: 0, action: 'TRASH' },
      { name: 'too old', olderThanDays: 40_000, action: 'TRASH' },
      { name: '  ', olderThanDays: 10, action: 'TRASH' },
    ]) {
      expect(code(await gql(system.url, alice, CREATE_POLICY, { input })), JSON.stringify(input)).toBe('BAD_USER_INPUT');
    }
    expect(code(await gql(system.url, alice, UPDATE_POLICY, { id: policies.p1.id, input: { olderThanDays: -1 } }))).toBe('BAD_USER_INPUT');
    expect(code(await gql(system.url, alice, APPLY, { policyId: 'not-a-uuid' }))).toBe('BAD_USER_INPUT');
    expect(await env.one<{ count: number }>('SELECT count(*)::int AS count FROM retention_policy')).toEqual(before);
  });

  it("lets an admin apply every owner's enabled policies, as the daily schedule does", async () => {
    const job = await apply(admin, { allOwners: true });
    expect(job.output).toMatchObject({ policies: 3, matched: 5, affected: 5 });
    expect(job.output.results.map((r: { name: string }) => r.name)).toEqual(['trash after 90 days', 'delete after a year', 'bob archives']);
    expect(await subjectsWhere(env, accounts.b, 'archived_at IS NOT NULL')).toEqual([
      'Holiday photos',
      'Invoice March',
      'Lunch last month',
      'Weekly digest #1',
      'Weekly digest #2',
    ]);
  });

  it('updates and deletes policies', async () => {
    const updated = (
      await gqlOk<{ updateRetentionPolicy: any }>(system.url, alice, UPDATE_POLICY, {
        id: policies.p3.id,
        input: { olderThanDays: 45, enabled: true, accountId: null, name: 'archive after 45 days' },
      })
    ).updateRetentionPolicy;
    expect(updated).toMatchObject({
      id: policies.p3.id,
      accountId: null,
      olderThanDays: 45,
      enabled: true,
      name: 'archive after 45 days',
      action: 'ARCHIVE',
    });
    expect(code(await gql(system.url, alice, UPDATE_POLICY, { id: policies.p3.id, input: { accountId: accounts.b } }))).toBe('NOT_FOUND');

    expect(
      (await gqlOk<{ deleteRetentionPolicy: any }>(system.url, alice, DELETE_POLICY, { id: policies.p3.id })).deleteRetentionPolicy,
    ).toEqual({
      id: policies.p3.id,
      name: 'archive after 45 days',
    });
    expect(await env.sql('SELECT id FROM retention_policy WHERE id = $1', [policies.p3.id])).toHaveLength(0);
    expect(code(await gql(system.url, alice, APPLY, { policyId: policies.p3.id }))).toBe('NOT_FOUND');
  });
});
