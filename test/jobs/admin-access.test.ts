/**
 * Job handlers have exactly the access decided when the job was enqueued: an admin's job on another
 * user's account runs to the end, another user is refused at enqueue time, and only an account (or
 * rule) that is really gone fails a job for good — a database blip is retried.
 */
import { ConnectionException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnyJobDeclaration, JobContext } from '../../src/engine/define-job.js';
import { PermanentJobError } from '../../src/engine/errors.js';
import { loadJobAccount, loadJobPolicy, loadJobRule } from '../../src/jobs/job-subjects.js';
import { jobCatalogue } from '../../src/jobs/registry.js';
import { importCorpus, waitForJob, type FinishedJob } from '../helpers/corpus.js';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMessage } from '../helpers/mbox-fixture.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

/** Every job type whose handler loads an account (directly, or through a rule). */
const ACCOUNT_JOB_TYPES = [
  'bulk_operation',
  'run_rule',
  'archive_mails',
  'encrypt_archives',
  'scan_unsubscribe',
  'scan_tracking',
  'scan_pii',
];

/** Job types whose next subject load fails once with a lost connection (see `flaky`). */
const armed = new Set<string>();

function connectionLost(): Error {
  return new ConnectionException(Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' }));
}

/** The job's entity manager, except that its first `findOne` fails as a dropped connection would. */
function flakyEm(em: EntityManager, type: string): EntityManager {
  return new Proxy(em, {
    get(target, prop) {
      if (prop === 'findOne' && armed.delete(type)) return async () => Promise.reject(connectionLost());
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** The real declarations; only an armed type sees the flaky entity manager, once. */
const declarations: AnyJobDeclaration[] = jobCatalogue.map((declaration) =>
  ACCOUNT_JOB_TYPES.includes(declaration.name)
    ? {
        ...declaration,
        handler: (input: unknown, ctx: JobContext) =>
          declaration.handler(input, armed.has(declaration.name) ? { ...ctx, em: flakyEm(ctx.em, declaration.name) } : ctx),
      }
    : declaration,
);

const MUTATIONS: Record<string, { document: string; field: string }> = {
  bulk_operation: {
    document: `mutation($input: BulkOperationInput!, $options: EnqueueOptions) { bulkOperation(input: $input, options: $options) { id status } }`,
    field: 'bulkOperation',
  },
  run_rule: {
    document: `mutation($ruleId: ID!, $options: EnqueueOptions) { runRule(ruleId: $ruleId, options: $options) { id status } }`,
    field: 'runRule',
  },
  archive_mails: {
    document: `mutation($input: ArchiveMailsInput!, $options: EnqueueOptions) { archiveMails(input: $input, options: $options) { id status } }`,
    field: 'archiveMails',
  },
  encrypt_archives: {
    document: `mutation($accountId: ID!, $options: EnqueueOptions) { encryptArchives(accountId: $accountId, options: $options) { id status } }`,
    field: 'encryptArchives',
  },
  scan_unsubscribe: {
    document: `mutation($accountId: ID!, $options: EnqueueOptions) { scanUnsubscribe(accountId: $accountId, options: $options) { id status } }`,
    field: 'scanUnsubscribe',
  },
  scan_tracking: {
    document: `mutation($accountId: ID!, $options: EnqueueOptions) { scanTracking(accountId: $accountId, options: $options) { id status } }`,
    field: 'scanTracking',
  },
  scan_pii: {
    document: `mutation($accountId: ID!, $options: EnqueueOptions) { scanPii(accountId: $accountId, options: $options) { id status } }`,
    field: 'scanPii',
  },
};

const CREATE_RULE = `mutation($input: CreateRuleInput!) { createRule(input: $input) { id } }`;

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let bob: string;
let admin: string;
/** Alice's account, seeded with CORPUS. */
let accountId: string;
/** Alice's rule on it: subject contains "Daily" → label `ruled`. */
let ruleId: string;

const CORPUS = [
  buildMessage({
    from: 'Daily News <news@daily.example>',
    subject: 'Daily 1 March',
    headers: [
      ['List-Unsubscribe', '<https://daily.example/u/1>'],
      ['List-Unsubscribe-Post', 'List-Unsubscribe=One-Click'],
    ],
  }),
  buildMessage({
    from: 'news@tracker.example',
    subject: 'Pixel',
    html: '<p>Hello</p><img src="https://pixel.example.org/open.gif?u=1" width="1" height="1">',
  }),
  buildMessage({ from: 'shop@example.com', subject: 'Your card', text: 'Paid with 4111 1111 1111 1111, thanks.\n' }),
  buildMessage({ from: 'Friend <friend@example.com>', subject: 'Lunch?', text: 'Lunch on Friday?\n' }),
];

/** The mutation's variables for a job of `type` on `account` (and `rule`, for run_rule). */
function variablesFor(type: string, account: string, rule: string): Record<string, unknown> {
  switch (type) {
    case 'bulk_operation':
      return { input: { accountId: account, action: 'STAR', filter: { subjectContains: 'Lunch' } } };
    case 'run_rule':
      return { ruleId: rule };
    case 'archive_mails':
      return { input: { accountId: account, filter: { subjectContains: 'Lunch' } } };
    default:
      return { accountId: account };
  }
}

/** Enqueues a job of `type` as `token`; returns its id. */
async function enqueue(type: string, token: string, variables: Record<string, unknown>): Promise<string> {
  const { document, field } = MUTATIONS[type]!;
  const data = await gqlOk<Record<string, { id: string }>>(system.url, token, document, variables);
  return data[field]!.id;
}

async function createAccount(token: string, name: string): Promise<string> {
  return (await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, { name })).createAccount.id;
}

async function createRule(token: string, account: string): Promise<string> {
  const input = {
    accountId: account,
    name: 'daily',
    conditions: { conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: 'Daily' }] },
    actions: [{ type: 'LABEL', label: 'ruled' }],
  };
  return (await gqlOk<{ createRule: { id: string } }>(system.url, token, CREATE_RULE, { input })).createRule.id;
}

async function jobCount(): Promise<number> {
  return (await env.one<{ count: number }>('SELECT count(*)::int AS count FROM job')).count;
}

/** Runs a job of `type` as the admin on Alice's account and checks the row: the admin's, on her account. */
async function runAsAdmin(type: string): Promise<FinishedJob> {
  const id = await enqueue(type, admin, variablesFor(type, accountId, ruleId));
  const job = await waitForJob(system, admin, id);
  expect(job.status, `${type}: ${job.error ?? ''}`).toBe('COMPLETED');
  expect(job.attempts).toBe(1);
  expect(await env.one('SELECT owner_id, account_id FROM job WHERE id = $1', [id])).toEqual({ owner_id: 'root', account_id: accountId });
  return job;
}

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env, { declarations });
  [alice, bob, admin] = await Promise.all([env.token('alice'), env.token('bob'), env.token('root', 'admin')]);
  accountId = await createAccount(alice, 'alice-mail');
  await importCorpus(system, alice, accountId, CORPUS);
  ruleId = await createRule(alice, accountId);
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

describe("an admin's job on another user's account", () => {
  it('import_mbox: the admin imports into her account; the messages are hers', async () => {
    const extra = buildMessage({ from: 'admin@example.com', subject: 'Imported by an admin' });
    const other = await createAccount(alice, 'alice-import');
    await importCorpus(system, admin, other, [extra]);
    expect(await env.sql('SELECT owner_id, subject FROM message WHERE account_id = $1', [other])).toEqual([
      { owner_id: 'alice', subject: 'Imported by an admin' },
    ]);
  });

  it('bulk_operation: stars her message', async () => {
    const job = await runAsAdmin('bulk_operation');
    expect(job.result).toMatchObject({ action: 'STAR', matched: 1, affected: 1 });
    expect(await env.sql('SELECT subject FROM message WHERE account_id = $1 AND is_starred', [accountId])).toEqual([{ subject: 'Lunch?' }]);
  });

  it('run_rule: runs her rule over her messages', async () => {
    const job = await runAsAdmin('run_rule');
    expect(job.result).toMatchObject({ ruleId, scanned: CORPUS.length, matched: 1, affected: 1 });
    expect(await env.sql(`SELECT subject FROM message WHERE account_id = $1 AND 'ruled' = ANY(labels)`, [accountId])).toEqual([
      { subject: 'Daily 1 March' },
    ]);
    expect(await env.one('SELECT last_run_at IS NOT NULL AS ran FROM rule WHERE id = $1', [ruleId])).toEqual({ ran: true });
  });

  it('archive_mails: archives her message; the archive is hers', async () => {
    const job = await runAsAdmin('archive_mails');
    expect(job.result).toMatchObject({ matched: 1, archived: 1, skipped: 0, missing: 0 });
    const rows = await env.sql<{ owner_id: string; encrypted: boolean }>('SELECT owner_id, encrypted FROM archive WHERE account_id = $1', [
      accountId,
    ]);
    expect(rows).toEqual([{ owner_id: 'alice', encrypted: false }]);
    expect(await env.sql('SELECT subject FROM message WHERE account_id = $1 AND archived_at IS NOT NULL', [accountId])).toEqual([
      { subject: 'Lunch?' },
    ]);
  });

  it('encrypt_archives: encrypts her archive', async () => {
    const job = await runAsAdmin('encrypt_archives');
    expect(job.result).toMatchObject({ encrypted: 1, skipped: 0, missing: 0 });
    expect(await env.sql('SELECT owner_id, encrypted FROM archive WHERE account_id = $1', [accountId])).toEqual([
      { owner_id: 'alice', encrypted: true },
    ]);
  });

  it('scan_unsubscribe: finds her newsletter; the row is hers', async () => {
    const job = await runAsAdmin('scan_unsubscribe');
    expect(job.result).toMatchObject({ scanned: CORPUS.length, newsletters: 1, oneClick: 1 });
    expect(await env.sql('SELECT owner_id, sender FROM newsletter WHERE account_id = $1', [accountId])).toEqual([
      { owner_id: 'alice', sender: 'news@daily.example' },
    ]);
  });

  it('scan_tracking: finds the pixel in her mail; the finding is hers', async () => {
    const job = await runAsAdmin('scan_tracking');
    expect(job.result).toMatchObject({ scanned: CORPUS.length });
    const rows = await env.sql<{ owner_id: string; kind: string }>(
      `SELECT owner_id, kind FROM finding WHERE account_id = $1 AND scan = 'TRACKING'`,
      [accountId],
    );
    expect(rows).toContainEqual({ owner_id: 'alice', kind: 'PIXEL' });
    expect(new Set(rows.map((row) => row.owner_id))).toEqual(new Set(['alice']));
  });

  it('scan_pii: finds the card number in her mail; the finding is hers', async () => {
    const job = await runAsAdmin('scan_pii');
    expect(job.result).toMatchObject({ scanned: CORPUS.length, messagesWithPii: 1 });
    expect(await env.sql(`SELECT owner_id, kind FROM finding WHERE account_id = $1 AND scan = 'PII'`, [accountId])).toEqual([
      { owner_id: 'alice', kind: 'CARD' },
    ]);
  });

  it('she sees the results of those jobs as her own', async () => {
    const { newsletters } = await gqlOk<{ newsletters: { sender: string }[] }>(
      system.url,
      alice,
      'query($accountId: ID!) { newsletters(accountId: $accountId) { sender } }',
      {
        accountId,
      },
    );
    expect(newsletters.map((n) => n.sender)).toEqual(['news@daily.example']);
  });
});

describe("another user's attempt on the same account", () => {
  it.each(ACCOUNT_JOB_TYPES)('%s: NOT_FOUND, and no job row', async (type) => {
    const before = await jobCount();
    const { document } = MUTATIONS[type]!;
    const response = await gql(system.url, bob, document, variablesFor(type, accountId, ruleId));
    expect(response.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(response.data).toBeNull();
    expect(await jobCount()).toBe(before);
    expect(await env.sql(`SELECT id FROM job WHERE owner_id = 'bob'`)).toEqual([]);
  });
});

describe('an account deleted between enqueue and run', () => {
  it('fails every job type on it permanently, after one attempt, with "no longer exists"', async () => {
    const doomed = await createAccount(alice, 'doomed');
    await importCorpus(system, alice, doomed, CORPUS);
    const doomedRule = await createRule(alice, doomed);
    // Delayed, so the account is gone before any of them starts.
    const options = { delayMs: 3_000 };
    const ids = new Map<string, string>();
    for (const type of ACCOUNT_JOB_TYPES) ids.set(type, await enqueue(type, admin, { ...variablesFor(type, doomed, doomedRule), options }));
    await env.sql('DELETE FROM account WHERE id = $1', [doomed]);
    expect(await env.sql('SELECT id FROM job WHERE id = ANY($1::uuid[]) AND started_at IS NOT NULL', [[...ids.values()]])).toEqual([]);

    for (const [type, id] of ids) {
      const job = await waitForJob(system, admin, id);
      expect({ type, status: job.status, attempts: job.attempts, error: job.error }).toEqual({
        type,
        status: 'FAILED',
        attempts: 1,
        error: `account ${doomed} no longer exists`,
      });
    }
    expect(
      await env.sql(`SELECT id FROM message WHERE account_id = $1 AND (is_starred OR archived_at IS NOT NULL OR 'ruled' = ANY(labels))`, [
        doomed,
      ]),
    ).toEqual([]);
    expect(
      await env.sql('SELECT id FROM finding WHERE account_id = $1 UNION ALL SELECT id FROM newsletter WHERE account_id = $1', [doomed]),
    ).toEqual([]);
  });
});

describe('a retention policy deleted between enqueue and run', () => {
  it('fails the run of that policy permanently, after one attempt, and changes nothing', async () => {
    const input = { accountId, name: 'trash all', olderThanDays: 1, action: 'TRASH' };
    const { createRetentionPolicy: policy } = await gqlOk<{ createRetentionPolicy: { id: string } }>(
      system.url,
      alice,
      `mutation($input: CreateRetentionPolicyInput!) { createRetentionPolicy(input: $input) { id } }`,
      { input },
    );
    const { applyRetention: queued } = await gqlOk<{ applyRetention: { id: string } }>(
      system.url,
      admin,
      `mutation($policyId: ID, $options: EnqueueOptions) { applyRetention(policyId: $policyId, options: $options) { id } }`,
      { policyId: policy.id, options: { delayMs: 1_500 } },
    );
    await env.sql('DELETE FROM retention_policy WHERE id = $1', [policy.id]);
    const job = await waitForJob(system, admin, queued.id);
    expect({ status: job.status, attempts: job.attempts, error: job.error }).toEqual({
      status: 'FAILED',
      attempts: 1,
      error: `retention policy ${policy.id} no longer exists`,
    });
    expect(await env.sql('SELECT id FROM message WHERE account_id = $1 AND deleted_at IS NOT NULL', [accountId])).toEqual([]);
  });
});

describe('a database error while loading the account', () => {
  it.each(ACCOUNT_JOB_TYPES)('%s: is retried, not permanent, and the job completes on the next attempt', async (type) => {
    armed.add(type);
    const id = await enqueue(type, admin, variablesFor(type, accountId, ruleId));
    const job = await waitForJob(system, admin, id);
    expect(armed.has(type)).toBe(false);
    expect({ status: job.status, attempts: job.attempts, error: job.error }).toEqual({ status: 'COMPLETED', attempts: 2, error: null });
  });

  it('the loaders: a missing row is permanent; any other error passes through unchanged', async () => {
    const id = '00000000-0000-4000-8000-000000000001';
    const missing = { findOne: async () => null } as unknown as EntityManager;
    for (const [load, what] of [
      [loadJobAccount, 'account'],
      [loadJobRule, 'rule'],
      [loadJobPolicy, 'retention policy'],
    ] as const) {
      const gone = await load(missing, id).catch((error: unknown) => error);
      expect(gone).toBeInstanceOf(PermanentJobError);
      expect((gone as Error).message).toBe(`${what} ${id} no longer exists`);

      const lost = connectionLost();
      const broken = { findOne: async () => Promise.reject(lost) } as unknown as EntityManager;
      const passed = await load(broken, id).catch((error: unknown) => error);
      expect(passed).toBe(lost);
      expect(passed).not.toBeInstanceOf(PermanentJobError);
    }
  });
});
