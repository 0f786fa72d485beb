/**
 * previewRule runs in the API's event loop, so its work is bounded: at most
 * RULE_PREVIEW_MAX_MESSAGES messages, newest first, and RULE_PREVIEW_MAX_TESTS condition tests per
 * request across aliases. A preview cut short says so; a run is not capped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForJob } from '../helpers/corpus.js';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gqlOk } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { RULE_CORPUS, seedRuleCorpus } from '../helpers/rule-corpus.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

const MAX_MESSAGES = 4;
const MAX_TESTS = 30;

const PREVIEW_FIELDS = 'scanned matched partial conditionTests sample { subject }';
const PREVIEW = `query($accountId: ID!, $conditions: RuleConditionsInput!) {
  previewRule(accountId: $accountId, conditions: $conditions, sampleSize: 100) { ${PREVIEW_FIELDS} }
}`;
const THREE_PREVIEWS = `query($accountId: ID!, $conditions: RuleConditionsInput!) {
  a: previewRule(accountId: $accountId, conditions: $conditions) { ${PREVIEW_FIELDS} }
  b: previewRule(accountId: $accountId, conditions: $conditions) { ${PREVIEW_FIELDS} }
  c: previewRule(accountId: $accountId, conditions: $conditions) { ${PREVIEW_FIELDS} }
}`;
const CREATE_RULE = `mutation($input: CreateRuleInput!) { createRule(input: $input) { id } }`;
const RUN_RULE = `mutation($ruleId: ID!) { runRule(ruleId: $ruleId) { id } }`;
const RUN_OUTPUT = `query($id: ID!) { job(id: $id) { ... on RunRuleJob { output { scanned matched } } } }`;

interface Preview {
  scanned: number;
  matched: number;
  partial: boolean;
  conditionTests: number;
  sample: { subject: string }[];
}

const everything = { conditions: [{ field: 'SIZE', op: 'GT', value: '0' }] };

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let bigAccount: string;
let smallAccount: string;

beforeAll(async () => {
  env = await createTestEnv({ RULE_PREVIEW_MAX_MESSAGES: String(MAX_MESSAGES), RULE_PREVIEW_MAX_TESTS: String(MAX_TESTS) });
  system = await startInProcess(env);
  alice = await env.token('alice');
  bigAccount = await createAccount('big');
  smallAccount = await createAccount('small');
  await seedRuleCorpus(system, alice, bigAccount);
  // Imported after the corpus, so these two are the newest messages of the account.
  await seedRuleCorpus(system, alice, bigAccount, [
    { subject: 'Newest A', from: 'a@late.example', ageDays: 300 },
    { subject: 'Newest B', from: 'b@late.example', ageDays: 300 },
  ]);
  await seedRuleCorpus(system, alice, smallAccount, RULE_CORPUS.slice(0, 3));
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

async function createAccount(name: string): Promise<string> {
  return (await gqlOk<{ createAccount: { id: string } }>(system.url, alice, CREATE_ACCOUNT, { name })).createAccount.id;
}

async function preview(accountId: string, conditions: unknown): Promise<Preview> {
  return (await gqlOk<{ previewRule: Preview }>(system.url, alice, PREVIEW, { accountId, conditions })).previewRule;
}

describe('previewRule limits', () => {
  it('examines the newest messages up to the cap and says the preview is partial; a run still covers every message', async () => {
    const capped = await preview(bigAccount, everything);
    expect(capped).toMatchObject({ scanned: MAX_MESSAGES, matched: MAX_MESSAGES, partial: true, conditionTests: MAX_MESSAGES });
    expect(capped.sample.map((m) => m.subject)).toEqual(expect.arrayContaining(['Newest A', 'Newest B']));

    const rule = (
      await gqlOk<{ createRule: { id: string } }>(system.url, alice, CREATE_RULE, {
        input: { accountId: bigAccount, name: 'all', conditions: everything, actions: [{ type: 'MARK_READ' }] },
      })
    ).createRule;
    const { runRule: job } = await gqlOk<{ runRule: { id: string } }>(system.url, alice, RUN_RULE, { ruleId: rule.id });
    expect((await waitForJob(system, alice, job.id)).status).toBe('COMPLETED');
    const { job: done } = await gqlOk<{ job: { output: { scanned: number; matched: number } } }>(system.url, alice, RUN_OUTPUT, {
      id: job.id,
    });
    expect(done.output).toEqual({ scanned: RULE_CORPUS.length + 2, matched: RULE_CORPUS.length + 2 });
  });

  it('is complete, not partial, when the account holds no more than the cap', async () => {
    expect(await preview(smallAccount, everything)).toMatchObject({ scanned: 3, matched: 3, partial: false, conditionTests: 3 });
  });

  it('counts one test per condition and per recipient for TO', async () => {
    const conditions = {
      match: 'ANY',
      conditions: [
        { field: 'TO', op: 'MATCHES', value: '(x|y)+z' },
        { field: 'SUBJECT', op: 'CONTAINS', value: 'nothing like this' },
      ],
    };
    // Each corpus message has one recipient: two tests per message.
    expect(await preview(smallAccount, conditions)).toMatchObject({ scanned: 3, matched: 0, partial: false, conditionTests: 6 });
  });

  it('shares one budget of condition tests among the previews of a request, and stops each one it runs out on', async () => {
    // Five tests per message: the budget of 30 affords six messages in all, where the three previews want twelve.
    const conditions = {
      match: 'ANY',
      conditions: ['a', 'b', 'c', 'd', 'e'].map((value) => ({ field: 'SUBJECT', op: 'EQUALS', value })),
    };
    const response = await gqlOk<Record<'a' | 'b' | 'c', Preview>>(system.url, alice, THREE_PREVIEWS, {
      accountId: bigAccount,
      conditions,
    });
    const previews = Object.values(response);
    expect(previews.reduce((sum, p) => sum + p.conditionTests, 0)).toBe(MAX_TESTS);
    expect(previews.reduce((sum, p) => sum + p.scanned, 0)).toBe(MAX_TESTS / 5);
    for (const p of previews) expect(p).toMatchObject({ partial: true, conditionTests: p.scanned * 5 });

    // The next request has a budget of its own.
    expect(await preview(bigAccount, conditions)).toMatchObject({ scanned: MAX_MESSAGES, conditionTests: MAX_MESSAGES * 5 });
  });
});
