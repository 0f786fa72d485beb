import type { EntityManager } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnyJobDeclaration, JobContext } from '../../src/engine/define-job.js';
import { jobCatalogue } from '../../src/jobs/registry.js';
import { runRuleJob } from '../../src/jobs/run-rule.job.js';
import type { StoredBlob } from '../../src/mail/message-store.js';
import { STORED_BLOB, storedBytesGone } from '../helpers/archive-helpers.js';
import { waitForJob } from '../helpers/corpus.js';
import { CREATE_ACCOUNT, IMPORT_MBOX } from '../helpers/fragments.js';
import { gql, gqlOk, gqlUpload } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { messageStates, RULE_CORPUS, seedRuleCorpus, subjectsWhere } from '../helpers/rule-corpus.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const RULE_FIELDS = `id accountId ownerId name schedule enabled nextRunAt lastRunAt
  conditions { match conditions { field op value } } actions { type label }`;
const CREATE_RULE = `mutation($input: CreateRuleInput!) { createRule(input: $input) { ${RULE_FIELDS} } }`;
const UPDATE_RULE = `mutation($id: ID!, $input: UpdateRuleInput!) { updateRule(id: $id, input: $input) { ${RULE_FIELDS} } }`;
const DELETE_RULE = `mutation($id: ID!) { deleteRule(id: $id) { id name } }`;
const RULES = `query($accountId: ID) { rules(accountId: $accountId) { id name } }`;
const RULE = `query($id: ID!) { rule(id: $id) { id name } }`;
const RUN_RULE = `mutation($ruleId: ID!, $options: EnqueueOptions) {
  runRule(ruleId: $ruleId, options: $options) { id status trigger ownerId input { ruleId } }
}`;
const PREVIEW_BY_ID = `query($ruleId: ID!) { previewRule(ruleId: $ruleId, sampleSize: 100) { accountId scanned matched sample { subject } } }`;
const PREVIEW_CONDITIONS = `query($accountId: ID!, $conditions: RuleConditionsInput!) {
  previewRule(accountId: $accountId, conditions: $conditions, sampleSize: 100) { accountId scanned matched sample { subject } }
}`;
const RUN_RULE_JOB = `query($id: ID!) { job(id: $id) { id status processed total error attempts
  ... on RunRuleJob { output { ruleId scanned matched affected } } } }`;

/** Rule ids whose scans are slowed down, so a cancellation can land between two batches. */
const slowRules = new Set<string>();

function delayedEm(em: EntityManager, ms: number): EntityManager {
  const connection = em.getConnection();
  const slowConnection = new Proxy(connection, {
    get(target, prop) {
      if (prop === 'execute') {
        return async (sql: string, ...rest: unknown[]) => {
          if (/^SELECT id, from_address/.test(sql)) await new Promise((resolve) => setTimeout(resolve, ms));
          return (target.execute as (...args: unknown[]) => unknown)(sql, ...rest);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return new Proxy(em, {
    get(target, prop) {
      if (prop === 'getConnection') return () => slowConnection;
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** The real run_rule declaration; only its database reads are slowed for the rules in `slowRules`. */
const slowableRunRule: AnyJobDeclaration = {
  ...runRuleJob,
  handler: (input: { ruleId: string }, ctx: JobContext) =>
    runRuleJob.handler(input, slowRules.has(input.ruleId) ? { ...ctx, em: delayedEm(ctx.em, 1_000) } : ctx),
};

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let bob: string;
let admin: string;
let accountId: string;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env, { declarations: jobCatalogue.map((d) => (d.name === 'run_rule' ? slowableRunRule : d)) });
  alice = await env.token('alice');
  bob = await env.token('bob');
  admin = await env.token('root', 'admin');
  accountId = await createAccount(alice, 'rules');
  await seedRuleCorpus(system, alice, accountId);
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

async function createAccount(token: string, name: string): Promise<string> {
  return (await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, { name })).createAccount.id;
}

type Condition = { field: string; op?: string; value: string };

async function createRule(input: Record<string, unknown>, token = alice): Promise<any> {
  return (await gqlOk<{ createRule: any }>(system.url, token, CREATE_RULE, { input: { accountId, name: 'rule', ...input } })).createRule;
}

async function preview(ruleId: string, token = alice) {
  return (
    await gqlOk<{ previewRule: { accountId: string; scanned: number; matched: number; sample: { subject: string }[] } }>(
      system.url,
      token,
      PREVIEW_BY_ID,
      { ruleId },
    )
  ).previewRule;
}

async function runRule(ruleId: string, token = alice) {
  const { runRule: job } = await gqlOk<{ runRule: any }>(system.url, token, RUN_RULE, { ruleId });
  expect(job).toMatchObject({ status: 'PENDING', trigger: 'API', input: { ruleId } });
  const done = await waitForJob(system, token, job.id);
  expect(done.status, done.error ?? '').toBe('COMPLETED');
  return (await gqlOk<{ job: any }>(system.url, token, RUN_RULE_JOB, { id: job.id })).job;
}

function errorCode(response: { errors?: { extensions?: { code?: string } }[] }): string | undefined {
  return response.errors?.[0]?.extensions?.code;
}

/** Runs a rule after previewing it, and checks the preview counted exactly what the run matched. */
async function previewThenRun(ruleId: string, expectedSubjects: string[]) {
  const before = await preview(ruleId);
  expect(before.sample.map((m) => m.subject).sort()).toEqual([...expectedSubjects].sort());
  const job = await runRule(ruleId);
  expect(job.output).toMatchObject({ ruleId, scanned: before.scanned, matched: before.matched });
  expect(job.output.matched).toBe(expectedSubjects.length);
  expect(job.processed).toBe(before.scanned);
  return job.output as { scanned: number; matched: number; affected: number };
}

describe('rules: saved, previewed and run', () => {
  it('labels and marks read old newsletters only; a second run matches again but changes nothing', async () => {
    const rule = await createRule({
      name: 'old newsletters',
      conditions: {
        match: 'ALL',
        conditions: [
          { field: 'FROM', op: 'CONTAINS', value: 'news.example' },
          { field: 'AGE_DAYS', op: 'GT', value: '30' },
        ],
      },
      actions: [{ type: 'LABEL', label: 'old-news' }, { type: 'MARK_READ' }],
    });
    expect(rule).toMatchObject({
      accountId,
      ownerId: 'alice',
      name: 'old newsletters',
      schedule: null,
      enabled: true,
      nextRunAt: null,
      lastRunAt: null,
      conditions: {
        match: 'ALL',
        conditions: [
          { field: 'FROM', op: 'CONTAINS', value: 'news.example' },
          { field: 'AGE_DAYS', op: 'GT', value: '30' },
        ],
      },
      actions: [
        { type: 'LABEL', label: 'old-news' },
        { type: 'MARK_READ', label: null },
      ],
    });

    const output = await previewThenRun(rule.id, ['Weekly digest #1', 'Weekly digest #2']);
    expect(output).toEqual({ ruleId: rule.id, scanned: RULE_CORPUS.length, matched: 2, affected: 2 });

    const states = await messageStates(env, accountId);
    for (const [subject, state] of states) {
      const hit = subject === 'Weekly digest #1' || subject === 'Weekly digest #2';
      expect(state, subject).toMatchObject({ labels: hit ? ['old-news'] : [], is_read: hit, trashed: false, archived: false });
    }
    const { lastRunAt } = (await gqlOk<{ rules: any[] }>(system.url, alice, `query { rules { id lastRunAt } }`)).rules.find(
      (r) => r.id === rule.id,
    );
    expect(lastRunAt).not.toBeNull();

    const again = await runRule(rule.id);
    expect(again.output).toEqual({ ruleId: rule.id, scanned: RULE_CORPUS.length, matched: 2, affected: 0 });

    // Conditions on labels and read state see what the run did.
    const labelled = await gqlOk<{ previewRule: any }>(system.url, alice, PREVIEW_CONDITIONS, {
      accountId,
      conditions: {
        conditions: [
          { field: 'LABEL', op: 'HAS', value: 'old-news' },
          { field: 'IS_READ', value: 'true' },
        ],
      },
    });
    expect(labelled.previewRule.matched).toBe(2);
  });

  it('archives large messages with attachments: a real archive copy per message', async () => {
    const rule = await createRule({
      conditions: {
        conditions: [
          { field: 'HAS_ATTACHMENTS', value: 'true' },
          { field: 'SIZE', op: 'GT', value: '100000' },
        ],
      },
      actions: [{ type: 'ARCHIVE' }],
    });
    const output = await previewThenRun(rule.id, ['Holiday photos', 'Invoice June', 'Invoice March']);
    expect(output.affected).toBe(3);
    expect(await subjectsWhere(env, accountId, 'archived_at IS NOT NULL')).toEqual(['Holiday photos', 'Invoice June', 'Invoice March']);
    expect(await subjectsWhere(env, accountId, 'deleted_at IS NOT NULL')).toEqual([]);
    const archives = await env.sql<{ files: { kind: string }[] }>(
      'SELECT a.files FROM archive a JOIN message m ON m.id = a.message_id WHERE m.account_id = $1',
      [accountId],
    );
    expect(archives).toHaveLength(3);
    for (const archive of archives) expect(archive.files.filter((f) => f.kind === 'attachment').length).toBeGreaterThan(0);
  });

  it('trashes on ANY of a regular expression and a recipient; trashed mail is no longer scanned', async () => {
    const rule = await createRule({
      conditions: {
        match: 'ANY',
        conditions: [
          { field: 'SUBJECT', op: 'MATCHES', value: '^lunch (last month|tomorrow)$' },
          { field: 'TO', op: 'CONTAINS', value: 'team@' },
        ],
      },
      actions: [{ type: 'TRASH' }],
    });
    const output = await previewThenRun(rule.id, ['Lunch last month', 'Lunch tomorrow']);
    expect(output).toMatchObject({ scanned: RULE_CORPUS.length, affected: 2 });
    expect(await subjectsWhere(env, accountId, 'deleted_at IS NOT NULL')).toEqual(['Lunch last month', 'Lunch tomorrow']);
    expect((await preview(rule.id)).scanned).toBe(RULE_CORPUS.length - 2);
  });

  it('deletes matching messages with their attachments and blobs', async () => {
    const victim = await env.one<StoredBlob & { id: string }>(
      `SELECT id, ${STORED_BLOB} FROM message WHERE account_id = $1 AND subject = $2`,
      [accountId, 'Invoice March'],
    );
    const attachments = await env.sql<StoredBlob>(`SELECT ${STORED_BLOB} FROM message_attachment WHERE message_id = $1`, [victim.id]);
    expect(attachments).toHaveLength(1);
    expect(await storedBytesGone(env, victim)).toBe(false);

    const rule = await createRule({
      conditions: {
        conditions: [
          { field: 'FROM', op: 'EQUALS', value: 'Billing@Shop.example' },
          { field: 'AGE_DAYS', op: 'GT', value: '30' },
        ],
      },
      actions: [{ type: 'DELETE' }],
    });
    const scannedBefore = (await preview(rule.id)).scanned;
    const output = await previewThenRun(rule.id, ['Invoice March']);
    expect(output).toEqual({ ruleId: rule.id, scanned: scannedBefore, matched: 1, affected: 1 });
    expect(await env.sql('SELECT id FROM message WHERE id = $1', [victim.id])).toHaveLength(0);
    expect(await env.sql('SELECT id FROM message_attachment WHERE message_id = $1', [victim.id])).toHaveLength(0);
    expect(await storedBytesGone(env, victim)).toBe(true);
    for (const attachment of attachments) expect(await storedBytesGone(env, attachment)).toBe(true);
    expect(await subjectsWhere(env, accountId, 'true')).not.toContain('Invoice March');
  });

  it('previews unsaved conditions exactly like the saved rule, and lists, reads, updates and deletes rules', async () => {
    const conditions = { match: 'ALL', conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: 'digest' }] };
    const rule = await createRule({ name: 'digests', conditions, actions: [{ type: 'MARK_READ' }] });
    const unsaved = (await gqlOk<{ previewRule: any }>(system.url, alice, PREVIEW_CONDITIONS, { accountId, conditions })).previewRule;
    expect(unsaved).toEqual(await preview(rule.id));
    expect(unsaved.sample.map((m: { subject: string }) => m.subject).sort()).toEqual([
      'Weekly digest #1',
      'Weekly digest #2',
      'Weekly digest #3',
    ]);

    const listed = (await gqlOk<{ rules: { id: string }[] }>(system.url, alice, RULES, { accountId })).rules.map((r) => r.id);
    expect(listed).toContain(rule.id);
    expect((await gqlOk<{ rule: any }>(system.url, alice, RULE, { id: rule.id })).rule).toEqual({ id: rule.id, name: 'digests' });

    const updated = (
      await gqlOk<{ updateRule: any }>(system.url, alice, UPDATE_RULE, {
        id: rule.id,
        input: {
          name: 'newest digest',
          conditions: {
            conditions: [
              { field: 'AGE_DAYS', op: 'LT', value: '7' },
              { field: 'SUBJECT', op: 'CONTAINS', value: 'digest' },
            ],
          },
        },
      })
    ).updateRule;
    expect(updated).toMatchObject({ name: 'newest digest', actions: [{ type: 'MARK_READ' }] });
    expect(updated.conditions.conditions).toHaveLength(2);
    expect((await preview(rule.id)).sample.map((m) => m.subject)).toEqual(['Weekly digest #3']);

    expect((await gqlOk<{ deleteRule: any }>(system.url, alice, DELETE_RULE, { id: rule.id })).deleteRule).toEqual({
      id: rule.id,
      name: 'newest digest',
    });
    expect((await gqlOk<{ rule: any }>(system.url, alice, RULE, { id: rule.id })).rule).toBeNull();
    expect(await env.sql('SELECT id FROM rule WHERE id = $1', [rule.id])).toHaveLength(0);
  });
});

describe('rules: bad input and access', () => {
  async function rejected(input: Record<string, unknown>, expectedMessage: RegExp) {
    const before = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM rule');
    const response = await gql(system.url, alice, CREATE_RULE, {
      input: {
        accountId,
        name: 'bad',
        conditions: { conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: 'x' }] },
        actions: [{ type: 'TRASH' }],
        ...input,
      },
    });
    expect(errorCode(response), JSON.stringify(response.errors)).toBe('BAD_USER_INPUT');
    expect(response.errors![0]!.message).toMatch(expectedMessage);
    expect(await env.one<{ count: number }>('SELECT count(*)::int AS count FROM rule')).toEqual(before);
  }
  const only = (condition: Condition) => ({ conditions: [condition] });

  it('rejects invalid conditions with the rule engine message, and saves nothing', async () => {
    await rejected(
      { conditions: only({ field: 'SUBJECT', op: 'MATCHES', value: '(unclosed' }) },
      /conditions\[0\]: invalid regular expression/,
    );
    await rejected({ conditions: only({ field: 'SUBJECT', op: 'MATCHES', value: '(a)\\1' }) }, /invalid regular expression/);
    await rejected({ conditions: only({ field: 'SIZE', op: 'GT', value: 'big' }) }, /value must be a non-negative number for SIZE/);
    await rejected({ conditions: only({ field: 'AGE_DAYS', op: 'GT', value: '-3' }) }, /non-negative number/);
    await rejected({ conditions: only({ field: 'HAS_ATTACHMENTS', value: 'yes' }) }, /"true" or "false"/);
    await rejected({ conditions: only({ field: 'FROM', value: 'x' }) }, /FROM needs an operator/);
    await rejected({ conditions: only({ field: 'FROM', op: 'GT', value: 'x' }) }, /unknown operator "GT" for a text field/);
    await rejected({ conditions: only({ field: 'LABEL', op: 'CONTAINS', value: 'x' }) }, /unknown operator "CONTAINS" for LABEL/);
    await rejected({ conditions: { conditions: [] } }, /at least one condition/);
  });

  it('rejects invalid actions, names and cron schedules', async () => {
    await rejected({ actions: [] }, /at least one action/);
    await rejected({ actions: [{ type: 'LABEL' }] }, /actions\[0\]: LABEL needs a non-empty label/);
    await rejected({ actions: [{ type: 'TRASH', label: 'x' }] }, /TRASH takes no label/);
    await rejected({ actions: [{ type: 'DELETE' }, { type: 'LABEL', label: 'x' }] }, /DELETE .* cannot be combined/);
    await rejected({ actions: [{ type: 'TRASH' }, { type: 'TRASH' }] }, /listed twice/);
    await rejected({ name: '   ' }, /name must be 1 to 255 characters/);
    await rejected({ schedule: 'not a cron at all' }, /not a valid cron pattern/);
    await rejected({ schedule: '* * *' }, /5 fields/);
    await rejected({ schedule: '61 * * * *' }, /not a valid cron pattern/);
    await rejected({ schedule: '0 0 30 2 *' }, /not a valid cron pattern|never fires/);
  });

  it('rejects bad previews and updates with BAD_USER_INPUT and leaves the rule as it was', async () => {
    const rule = await createRule({
      name: 'keep me',
      conditions: only({ field: 'SUBJECT', op: 'CONTAINS', value: 'digest' }),
      actions: [{ type: 'MARK_READ' }],
    });
    const badPreview = await gql(system.url, alice, PREVIEW_CONDITIONS, {
      accountId,
      conditions: only({ field: 'SUBJECT', op: 'MATCHES', value: '[' }),
    });
    expect(errorCode(badPreview)).toBe('BAD_USER_INPUT');
    const neither = await gql(system.url, alice, `query { previewRule { matched } }`);
    expect(errorCode(neither)).toBe('BAD_USER_INPUT');

    for (const input of [
      { conditions: only({ field: 'SUBJECT', op: 'MATCHES', value: '(?<=x)y' }) },
      { schedule: 'every day' },
      { actions: [{ type: 'LABEL' }] },
    ]) {
      const response = await gql(system.url, alice, UPDATE_RULE, { id: rule.id, input: { name: 'changed', ...input } });
      expect(errorCode(response), JSON.stringify(input)).toBe('BAD_USER_INPUT');
    }
    const row = await env.one<{ name: string; conditions: unknown; schedule: string | null }>(
      'SELECT name, conditions, schedule FROM rule WHERE id = $1',
      [rule.id],
    );
    expect(row).toEqual({
      name: 'keep me',
      conditions: { match: 'ALL', conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: 'digest' }] },
      schedule: null,
    });
  });

  it('gives another owner NOT_FOUND for everything about a rule, and creates no job; an admin sees it', async () => {
    const rule = await createRule({
      name: 'private',
      conditions: only({ field: 'SUBJECT', op: 'CONTAINS', value: 'x' }),
      actions: [{ type: 'TRASH' }],
    });
    const attempts: [string, Record<string, unknown>][] = [
      [RUN_RULE, { ruleId: rule.id }],
      [PREVIEW_BY_ID, { ruleId: rule.id }],
      [PREVIEW_CONDITIONS, { accountId, conditions: only({ field: 'SUBJECT', op: 'CONTAINS', value: 'x' }) }],
      [UPDATE_RULE, { id: rule.id, input: { name: 'mine now' } }],
      [DELETE_RULE, { id: rule.id }],
      [RULES, { accountId }],
      [
        CREATE_RULE,
        {
          input: {
            accountId,
            name: 'intruder',
            conditions: only({ field: 'SUBJECT', op: 'CONTAINS', value: 'x' }),
            actions: [{ type: 'DELETE' }],
          },
        },
      ],
    ];
    for (const [query, variables] of attempts) {
      const response = await gql(system.url, bob, query, variables);
      expect(errorCode(response), query).toBe('NOT_FOUND');
      expect(JSON.stringify(response.errors)).not.toContain('private');
    }
    expect((await gqlOk<{ rule: unknown }>(system.url, bob, RULE, { id: rule.id })).rule).toBeNull();
    expect((await gqlOk<{ rules: unknown[] }>(system.url, bob, RULES, {})).rules).toEqual([]);
    expect(await env.sql(`SELECT id FROM job WHERE type = 'run_rule' AND payload->>'ruleId' = $1`, [rule.id])).toHaveLength(0);
    expect(await env.one('SELECT name FROM rule WHERE id = $1', [rule.id])).toEqual({ name: 'private' });

    expect((await gqlOk<{ rule: any }>(system.url, admin, RULE, { id: rule.id })).rule).toEqual({ id: rule.id, name: 'private' });
    expect((await preview(rule.id, admin)).accountId).toBe(accountId);
  });
});

describe('rules: failures and cancellation', () => {
  it('fails at once, without retries, when the saved rule has become invalid', async () => {
    const rule = await createRule({
      conditions: { conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: 'x' }] },
      actions: [{ type: 'TRASH' }],
    });
    await env.sql(`UPDATE rule SET conditions = $2 WHERE id = $1`, [
      rule.id,
      JSON.stringify({ match: 'ALL', conditions: [{ field: 'SUBJECT', op: 'MATCHES', value: '(' }] }),
    ]);
    const { runRule: job } = await gqlOk<{ runRule: any }>(system.url, alice, RUN_RULE, { ruleId: rule.id });
    const done = await waitForJob(system, alice, job.id);
    expect(done).toMatchObject({ status: 'FAILED', attempts: 1 });
    expect(done.error).toMatch(/is invalid: conditions\[0\]: invalid regular expression/);
    const preview = await gql(system.url, alice, PREVIEW_BY_ID, { ruleId: rule.id });
    expect(errorCode(preview)).toBe('BAD_USER_INPUT');
  });

  it('fails without retries when the rule was deleted before its queued run started', async () => {
    const rule = await createRule({
      conditions: { conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: 'x' }] },
      actions: [{ type: 'TRASH' }],
    });
    const { runRule: job } = await gqlOk<{ runRule: any }>(system.url, alice, RUN_RULE, { ruleId: rule.id, options: { delayMs: 1_000 } });
    expect(job.status).toBe('DELAYED');
    await gqlOk(system.url, alice, DELETE_RULE, { id: rule.id });
    const done = await waitForJob(system, alice, job.id);
    expect(done).toMatchObject({ status: 'FAILED', attempts: 1 });
    expect(done.error).toMatch(/no longer exists/);
  });

  it('stops between batches when cancelled mid-run: only whole batches changed, no retry', async () => {
    const bigAccount = await createAccount(alice, 'big');
    // Two batches, of 500 and 200: the slowed scan leaves time to cancel after the first.
    const fixture = buildMbox({ count: 700, attachmentEvery: 0, seed: 5 });
    const upload = await gqlUpload<{ importMbox: { id: string } }>(
      system.url,
      alice,
      IMPORT_MBOX,
      { accountId: bigAccount, file: null },
      {
        path: 'file',
        content: fixture.mbox,
        filename: 'big.mbox',
      },
    );
    expect((await waitForJob(system, alice, upload.data!.importMbox.id, 60_000)).status).toBe('COMPLETED');
    const total = fixture.expected.unique;

    const rule = await createRule({
      accountId: bigAccount,
      conditions: { conditions: [{ field: 'SIZE', op: 'GT', value: '0' }] },
      actions: [{ type: 'LABEL', label: 'seen' }],
    });
    slowRules.add(rule.id);
    const { runRule: job } = await gqlOk<{ runRule: any }>(system.url, alice, RUN_RULE, { ruleId: rule.id });
    await waitFor('the first batch', async () => {
      const { job: state } = await gqlOk<{ job: any }>(system.url, alice, RUN_RULE_JOB, { id: job.id });
      return state.status === 'ACTIVE' && state.processed >= 500;
    });
    await gqlOk(system.url, alice, `mutation($id: ID!) { cancelJob(id: $id) { id } }`, { id: job.id });
    const done = await waitForJob(system, alice, job.id);
    expect(done).toMatchObject({ status: 'CANCELLED', attempts: 1, result: null });
    expect(done.total).toBe(total);

    const { count } = await env.one<{ count: number }>(
      `SELECT count(*)::int AS count FROM message WHERE account_id = $1 AND 'seen' = ANY(labels)`,
      [bigAccount],
    );
    expect(count).toBe(500);
    expect(done.processed).toBe(count);
    expect((await env.one<{ last_run_at: Date | null }>('SELECT last_run_at FROM rule WHERE id = $1', [rule.id])).last_run_at).toBeNull();
  });
});
