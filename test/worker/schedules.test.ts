import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCHEDULE_QUEUE, upsertRuleScheduler } from '../../src/jobs/rule-schedules.js';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { startWorker as spawnWorker, type Proc as SpawnedProcess } from '../helpers/processes.js';
import { seedRuleCorpus, subjectsWhere } from '../helpers/rule-corpus.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const CREATE_RULE = `mutation($input: CreateRuleInput!) { createRule(input: $input) { id schedule enabled nextRunAt } }`;
const UPDATE_RULE = `mutation($id: ID!, $input: UpdateRuleInput!) { updateRule(id: $id, input: $input) { id schedule enabled nextRunAt } }`;
const DELETE_RULE = `mutation($id: ID!) { deleteRule(id: $id) { id } }`;
const RULE = `query($id: ID!) { rule(id: $id) { id lastRunAt } }`;
const JOB = `query($id: ID!) { job(id: $id) { id type trigger ownerId status } }`;
const EVERY_SECOND = '*/1 * * * * *';
const NEVER_IN_THIS_TEST = '0 0 1 1 *';

interface JobRow {
  id: string;
  status: string;
  trigger: string;
  owner_id: string;
  idempotency_key: string;
  result: any;
}

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let admin: string;
let schedules: Queue;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env, { vars: { SCHEDULER_ENABLED: 'true', SCHEDULE_OVERRIDES: `apply-retention-daily=${EVERY_SECOND}` } });
  alice = await env.token('alice');
  admin = await env.token('root', 'admin');
  schedules = system.apiServices.queues.get(SCHEDULE_QUEUE);
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

async function createAccount(name: string): Promise<string> {
  return (await gqlOk<{ createAccount: { id: string } }>(system.url, alice, CREATE_ACCOUNT, { name })).createAccount.id;
}

async function createRule(accountId: string, input: Record<string, unknown>) {
  return (
    await gqlOk<{ createRule: any }>(system.url, alice, CREATE_RULE, {
      input: {
        accountId,
        name: 'scheduled',
        conditions: { conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: 'digest' }] },
        actions: [{ type: 'LABEL', label: 'scheduled' }],
        ...input,
      },
    })
  ).createRule;
}

/** The pattern of a job scheduler, or null when there is none. */
async function schedulerPattern(id: string): Promise<string | null> {
  const all = await schedules.getJobSchedulers();
  const found = all.find((scheduler) => scheduler.key === id);
  return found ? (found.pattern ?? null) : null;
}

function ruleJobs(ruleId: string): Promise<JobRow[]> {
  return env.sql<JobRow>(
    `SELECT id, status, trigger, owner_id, idempotency_key, result FROM job WHERE type = 'run_rule' AND payload->>'ruleId' = $1 ORDER BY created_at`,
    [ruleId],
  );
}

/** The tick instant (ms) in a key `schedule:repeat:<scheduler id>:<ms>`. */
function tickTime(key: string): number {
  return Number(key.slice(key.lastIndexOf(':') + 1));
}

describe("a rule's schedule", () => {
  it('fires through the sidecar: run_rule jobs with trigger RULE, owned by the rule owner, one per tick', async () => {
    const accountId = await createAccount('scheduled');
    await seedRuleCorpus(system, alice, accountId);
    const rule = await createRule(accountId, { schedule: EVERY_SECOND });
    expect(rule).toMatchObject({ schedule: EVERY_SECOND, enabled: true });
    expect(Date.parse(rule.nextRunAt) - Date.now()).toBeLessThanOrEqual(1_000);
    expect(await schedulerPattern(`rule:${rule.id}`)).toBe(EVERY_SECOND);

    const jobs = await waitFor('two completed scheduled runs', async () => {
      const rows = await ruleJobs(rule.id);
      return rows.filter((row) => row.status === 'COMPLETED').length >= 2 ? rows : null;
    });
    const keyPattern = new RegExp(`^schedule:repeat:rule:${rule.id}:\\d+$`);
    for (const job of jobs) {
      expect(job).toMatchObject({ trigger: 'RULE', owner_id: 'alice' });
      expect(job.idempotency_key).toMatch(keyPattern);
    }
    expect(new Set(jobs.map((job) => job.idempotency_key)).size).toBe(jobs.length);
    const completed = jobs.filter((job) => job.status === 'COMPLETED');
    expect(completed[0]!.result).toEqual({ ruleId: rule.id, scanned: 9, matched: 3, affected: 3 });
    expect(completed[1]!.result).toMatchObject({ matched: 3, affected: 0 });

    // The owner sees the runs as their own jobs; the rule records the run.
    expect((await gqlOk<{ job: any }>(system.url, alice, JOB, { id: completed[0]!.id })).job).toMatchObject({
      type: 'run_rule',
      trigger: 'RULE',
      ownerId: 'alice',
    });
    expect((await gqlOk<{ rule: any }>(system.url, alice, RULE, { id: rule.id })).rule.lastRunAt).not.toBeNull();
    expect(await subjectsWhere(env, accountId, `'scheduled' = ANY(labels)`)).toEqual([
      'Weekly digest #1',
      'Weekly digest #2',
      'Weekly digest #3',
    ]);

    // Disabling removes the scheduler at once; enabling brings it back; deleting removes it for good.
    const disabled = (await gqlOk<{ updateRule: any }>(system.url, alice, UPDATE_RULE, { id: rule.id, input: { enabled: false } }))
      .updateRule;
    expect(disabled).toMatchObject({ enabled: false, schedule: EVERY_SECOND, nextRunAt: null });
    expect(await schedulerPattern(`rule:${rule.id}`)).toBeNull();
    await gqlOk(system.url, alice, UPDATE_RULE, { id: rule.id, input: { enabled: true, schedule: NEVER_IN_THIS_TEST } });
    expect(await schedulerPattern(`rule:${rule.id}`)).toBe(NEVER_IN_THIS_TEST);
    const unscheduled = (await gqlOk<{ updateRule: any }>(system.url, alice, UPDATE_RULE, { id: rule.id, input: { schedule: null } }))
      .updateRule;
    expect(unscheduled).toMatchObject({ schedule: null, enabled: true, nextRunAt: null });
    expect(await schedulerPattern(`rule:${rule.id}`)).toBeNull();
    await gqlOk(system.url, alice, UPDATE_RULE, { id: rule.id, input: { schedule: NEVER_IN_THIS_TEST } });
    await gqlOk(system.url, alice, DELETE_RULE, { id: rule.id });
    expect(await schedulerPattern(`rule:${rule.id}`)).toBeNull();
  });

  it('rejects an invalid cron pattern with BAD_USER_INPUT and registers nothing', async () => {
    const accountId = await createAccount('bad-cron');
    const before = (await schedules.getJobSchedulers()).length;
    for (const schedule of ['every minute', '* * * * * * *', '0 25 * * *']) {
      const response = await gql(system.url, alice, CREATE_RULE, {
        input: {
          accountId,
          name: 'x',
          conditions: { conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: 'x' }] },
          actions: [{ type: 'TRASH' }],
          schedule,
        },
      });
      expect(response.errors?.[0]?.extensions?.code, schedule).toBe('BAD_USER_INPUT');
    }
    expect(await env.sql('SELECT id FROM rule WHERE account_id = $1', [accountId])).toHaveLength(0);
    expect((await schedules.getJobSchedulers()).length).toBe(before);
  });

  it('is restored by the sidecar when Redis lost it, and a stale scheduler of a missing or disabled rule fires nothing', async () => {
    const accountId = await createAccount('heal');
    const rule = await createRule(accountId, { schedule: NEVER_IN_THIS_TEST });
    await schedules.removeJobScheduler(`rule:${rule.id}`);
    await waitFor('the rule schedule to be re-registered', async () => (await schedulerPattern(`rule:${rule.id}`)) === NEVER_IN_THIS_TEST);

    // A disabled rule has no scheduler; one left behind in Redis (say, by a crash) is removed unfired.
    const disabled = await createRule(accountId, { schedule: EVERY_SECOND, enabled: false });
    expect(disabled.nextRunAt).toBeNull();
    expect(await schedulerPattern(`rule:${disabled.id}`)).toBeNull();
    const missingRuleId = randomUUID();
    await upsertRuleScheduler(schedules, env.config, disabled.id, EVERY_SECOND);
    await upsertRuleScheduler(schedules, env.config, missingRuleId, EVERY_SECOND);
    await waitFor('stale rule schedulers to be removed', async () => {
      return (await schedulerPattern(`rule:${disabled.id}`)) === null && (await schedulerPattern(`rule:${missingRuleId}`)) === null;
    });
    expect(await ruleJobs(disabled.id)).toHaveLength(0);
    expect(await ruleJobs(missingRuleId)).toHaveLength(0);
    expect(await env.one('SELECT enabled, schedule FROM rule WHERE id = $1', [disabled.id])).toEqual({
      enabled: false,
      schedule: EVERY_SECOND,
    });
  });
});

describe('the apply-retention daily schedule', () => {
  it('fires when overridden, as owner system with trigger SCHEDULE, and applies enabled policies', async () => {
    const accountId = await createAccount('retention');
    await seedRuleCorpus(system, alice, accountId);
    const { createRetentionPolicy: policy } = await gqlOk<{ createRetentionPolicy: { id: string } }>(
      system.url,
      alice,
      `mutation($input: CreateRetentionPolicyInput!) { createRetentionPolicy(input: $input) { id } }`,
      { input: { accountId, name: 'trash after 90 days', olderThanDays: 90, action: 'TRASH' } },
    );
    const query = `SELECT id, status, trigger, owner_id, idempotency_key, result FROM job WHERE type = 'apply_retention' ORDER BY created_at`;
    const appliedBy = (rows: JobRow[]) =>
      rows.find(
        (row) =>
          row.status === 'COMPLETED' &&
          row.result?.results?.some((r: { policyId: string; affected: number }) => r.policyId === policy.id && r.affected === 3),
      );
    const rows = await waitFor('a scheduled retention run to apply the policy', async () => {
      const all = await env.sql<JobRow>(query);
      return appliedBy(all) ? all : null;
    });
    expect(await subjectsWhere(env, accountId, 'deleted_at IS NOT NULL')).toEqual([
      'Invoice March',
      'Weekly digest #1',
      'Weekly digest #2',
    ]);
    for (const row of rows) {
      expect(row).toMatchObject({ trigger: 'SCHEDULE', owner_id: 'system' });
      expect(row.idempotency_key).toMatch(/^schedule:repeat:apply-retention-daily:\d+$/);
    }
    expect(new Set(rows.map((row) => row.idempotency_key)).size).toBe(rows.length);
    const applied = appliedBy(rows);

    // System jobs are the operators' to see.
    expect((await gqlOk<{ job: unknown }>(system.url, alice, JOB, { id: applied!.id })).job).toBeNull();
    expect((await gqlOk<{ job: any }>(system.url, admin, JOB, { id: applied!.id })).job).toMatchObject({
      trigger: 'SCHEDULE',
      ownerId: 'system',
    });
  });
});

describe('two worker sidecars', () => {
  let env2: TestEnv;
  let workers: SpawnedProcess[] = [];

  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.stop()));
    await env2?.cleanup();
  });

  it('never fire a tick twice: one job row per tick, ticks a second apart', async () => {
    env2 = await createTestEnv();
    const vars = { ...env2.vars, SCHEDULER_ENABLED: 'true', SCHEDULE_OVERRIDES: `purge-archive-trash-daily=${EVERY_SECOND}` };
    workers = await Promise.all([spawnWorker(vars), spawnWorker(vars)]);
    const query = `SELECT id, status, trigger, owner_id, idempotency_key, result FROM job WHERE type = 'purge_archive_trash' ORDER BY created_at`;
    await waitFor('four scheduled purges', async () => (await env2.sql<JobRow>(query)).length >= 4, 30_000);
    await Promise.all(workers.map((worker) => worker.stop()));

    const rows = await env2.sql<JobRow>(query);
    expect(rows.length).toBeGreaterThanOrEqual(4);
    for (const row of rows) {
      expect(row).toMatchObject({ trigger: 'SCHEDULE', owner_id: 'system' });
      expect(row.idempotency_key).toMatch(/^schedule:repeat:purge-archive-trash-daily:\d+$/);
    }
    expect(new Set(rows.map((row) => row.idempotency_key)).size).toBe(rows.length);
    const ticks = rows.map((row) => tickTime(row.idempotency_key)).sort((a, b) => a - b);
    expect(new Set(ticks).size).toBe(rows.length);
    for (let i = 1; i < ticks.length; i++) {
      const gap = ticks[i]! - ticks[i - 1]!;
      // Whole seconds: a busy box may skip a tick, never split or repeat one.
      expect(gap % 1_000, `gap ${gap}`).toBe(0);
      expect(gap).toBeGreaterThanOrEqual(1_000);
    }
    const oneSecondGaps = ticks.slice(1).filter((tick, i) => tick - ticks[i]! === 1_000).length;
    expect(oneSecondGaps).toBeGreaterThanOrEqual(Math.floor((ticks.length - 1) / 2));
    for (const worker of workers) expect(worker.output()).toContain('schedule registered');
  }, 90_000);
});
