import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { importCorpus, runJob } from '../helpers/corpus.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMessage } from '../helpers/mbox-fixture.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let token: string;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env);
  token = await env.token('alice');
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

const FINDINGS = `query($accountId: ID!, $kind: FindingKind, $scan: ScanKind, $first: Int, $after: String) {
  findings(accountId: $accountId, kind: $kind, scan: $scan, first: $first, after: $after) {
    nodes { id messageId scan kind subtype detail host source sender createdAt }
    pageInfo { hasNextPage endCursor }
  }
}`;

const SCAN_PII_JOB = `query($id: ID!) { job(id: $id) {
  result
  ... on ScanPiiJob { input { accountId } output { scanned messagesWithPii findings byKind { kind count } } }
} }`;

/** Every raw value in the corpus, in each written form; none may be stored or returned anywhere. */
const RAW_VALUES = [
  '4111111111111111',
  '4111 1111 1111 1111',
  '5555555555554444',
  '378282246310005',
  '3782 822463 10005',
  'GB82WEST12345698765432',
  'GB82 WEST 1234 5698 7654 32',
  '+44 20 7946 0958',
  '442079460958',
];

async function createAccount(name: string, as = token): Promise<string> {
  return (await gqlOk<{ createAccount: { id: string } }>(system.url, as, CREATE_ACCOUNT, { name })).createAccount.id;
}

async function allFindings(accountId: string, filter: Record<string, unknown> = {}, as = token): Promise<any[]> {
  const out: any[] = [];
  let after: string | null = null;
  do {
    const page: any = (await gqlOk<{ findings: any }>(system.url, as, FINDINGS, { accountId, first: 4, after, ...filter })).findings;
    out.push(...page.nodes);
    after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
  } while (after);
  return out;
}

async function subjectsById(accountId: string): Promise<Record<string, string>> {
  const rows = await env.sql<{ id: string; subject: string }>('SELECT id, subject FROM message WHERE account_id = $1', [accountId]);
  return Object.fromEntries(rows.map((row) => [row.id, row.subject]));
}

function shape(findings: any[], subjects: Record<string, string>): string[] {
  return findings
    .map((f) => `${subjects[f.messageId]} | ${f.scan} ${f.kind} ${f.subtype} | ${f.detail} | ${f.source} | ${f.sender} | ${f.host}`)
    .sort();
}

/** Strips separators, so a raw number is found whichever way it was written. */
function digitsOf(text: string): string {
  return text.replace(/[^0-9A-Za-z]/g, '');
}

function expectNoRawValue(text: string): void {
  const compact = digitsOf(text);
  for (const raw of RAW_VALUES) {
    expect(text).not.toContain(raw);
    expect(compact).not.toContain(digitsOf(raw));
  }
}

function corpus(): string[] {
  return [
    buildMessage({
      from: 'Shop <orders@shop.example>',
      subject: 'Card in text and html',
      text: 'Please charge card 4111 1111 1111 1111 for the order.\nCall me on +44 20 7946 0958.\n',
      html: '<p>Please charge card 4111&nbsp;1111&nbsp;1111&nbsp;1111 for the order.</p>',
    }),
    buildMessage({ from: 'typo@example.com', subject: 'Invalid card', text: 'Wrong card 4111 1111 1111 1112 and order 1234567890123.\n' }),
    buildMessage({ from: 'Bank <bank@bank.example>', subject: 'Valid IBAN', text: 'Pay to IBAN GB82 WEST 1234 5698 7654 32 please.\n' }),
    buildMessage({ from: 'bank@bank.example', subject: 'Invalid IBAN', text: 'Bad IBAN GB82 WEST 1234 5698 7654 33 here.\n' }),
    buildMessage({
      from: 'accounts@example.org',
      subject: 'Text attachment',
      text: 'See the attached statement.\n',
      attachments: [
        { filename: 'statement.txt', contentType: 'text/plain', content: 'Card on file: 5555555555554444\n' },
        // Not text: never read, whatever it holds.
        { filename: 'data.bin', contentType: 'application/octet-stream', content: 'Card 4111111111111111\n' },
      ],
    }),
    buildMessage({
      from: 'amex@example.net',
      subject: 'Amex in html only',
      html: '<html><body><p>Amex <b>3782</b> 822463 10005</p></body></html>',
    }),
    buildMessage({ from: 'friend@example.com', subject: 'Nothing personal', text: 'Lunch on Friday at 12:30? Room 4, floor 2.\n' }),
  ];
}

const EXPECTED = [
  'Amex in html only | PII CARD AMEX | **** ****** *0005 | html | amex@example.net | null',
  'Card in text and html | PII CARD VISA | **** **** **** 1111 | html | orders@shop.example | null',
  'Card in text and html | PII CARD VISA | **** **** **** 1111 | text | orders@shop.example | null',
  'Card in text and html | PII PHONE INTERNATIONAL | +** ** **** 0958 | text | orders@shop.example | null',
  'Text attachment | PII CARD MASTERCARD | ************4444 | attachment:statement.txt | accounts@example.org | null',
  'Valid IBAN | PII IBAN GB | **** **** **** **** **54 32 | text | bank@bank.example | null',
];

const EXPECTED_OUTPUT = {
  scanned: 7,
  messagesWithPii: 4,
  findings: 6,
  byKind: [
    { kind: 'CARD', count: 4 },
    { kind: 'IBAN', count: 1 },
    { kind: 'PHONE', count: 1 },
    { kind: 'NATIONAL_ID', count: 0 },
  ],
};

describe('scan_pii', () => {
  it('stores masked findings from bodies and text attachments only for valid values; a re-run adds nothing twice', async () => {
    const accountId = await createAccount('pii');
    await importCorpus(system, token, accountId, corpus());
    const subjects = await subjectsById(accountId);

    const job = await runJob(system, token, 'scanPii', { accountId });
    expect(job).toMatchObject({ type: 'scan_pii', status: 'COMPLETED', processed: 7, total: 7 });
    expect(job.result).toEqual(EXPECTED_OUTPUT);
    const typed = (await gqlOk<{ job: any }>(system.url, token, SCAN_PII_JOB, { id: job.id })).job;
    expect(typed.output).toEqual(EXPECTED_OUTPUT);
    expect(typed.input).toEqual({ accountId });

    const first = await allFindings(accountId);
    expect(shape(first, subjects)).toEqual(EXPECTED);
    expect(shape(await allFindings(accountId, { kind: 'CARD', scan: 'PII' }), subjects)).toEqual(
      EXPECTED.filter((l) => l.includes(' CARD ')),
    );
    expect(shape(await allFindings(accountId, { kind: 'IBAN' }), subjects)).toEqual(EXPECTED.filter((l) => l.includes(' IBAN ')));
    expect(await allFindings(accountId, { scan: 'TRACKING' })).toEqual([]);

    // Re-run: the same findings under the same ids, nothing added.
    const again = await runJob(system, token, 'scanPii', { accountId });
    expect(again.result).toEqual(EXPECTED_OUTPUT);
    const second = await allFindings(accountId);
    expect(second.map((f) => f.id).sort()).toEqual(first.map((f) => f.id).sort());
    const { count } = await env.one<{ count: number }>(
      "SELECT count(*)::int AS count FROM finding WHERE account_id = $1 AND scan = 'PII'",
      [accountId],
    );
    expect(count).toBe(6);

    // No raw value anywhere: not in the API's answers, the job rows, or any column of `finding`.
    expectNoRawValue(JSON.stringify(second));
    const jobs = await env.sql<{ row: string }>("SELECT row_to_json(j)::text AS row FROM job j WHERE type = 'scan_pii'");
    expect(jobs).toHaveLength(2);
    for (const { row } of jobs) expectNoRawValue(row);
    const stored = await env.sql<{ row: string }>('SELECT row_to_json(f)::text AS row FROM finding f WHERE account_id = $1', [accountId]);
    expect(stored).toHaveLength(6);
    for (const { row } of stored) expectNoRawValue(row);

    // The card leaves the text body: that finding goes, the html one stays.
    await env.sql(
      "UPDATE message SET text_body = 'Please charge the card on file.' WHERE account_id = $1 AND subject = 'Card in text and html'",
      [accountId],
    );
    const third = await runJob(system, token, 'scanPii', { accountId });
    expect(third.result).toMatchObject({ findings: 4, messagesWithPii: 4 });
    expect(shape(await allFindings(accountId), subjects)).toEqual(
      EXPECTED.filter((l) => !(l.startsWith('Card in text and html') && l.includes('| text |'))),
    );
  });

  it("gives another user NOT_FOUND for the account's findings and scan", async () => {
    const accountId = await createAccount('private');
    await importCorpus(system, token, accountId, corpus().slice(0, 1));
    await runJob(system, token, 'scanPii', { accountId });

    const bob = await env.token('bob');
    const query = await gql(system.url, bob, FINDINGS, { accountId });
    expect(query.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(JSON.stringify(query)).not.toContain('1111');
    const mutation = await gql(system.url, bob, 'mutation($accountId: ID!) { scanPii(accountId: $accountId) { id } }', { accountId });
    expect(mutation.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(await env.sql("SELECT id FROM job WHERE type = 'scan_pii' AND owner_id = 'bob'")).toHaveLength(0);

    const admin = await env.token('root', 'admin');
    expect(await allFindings(accountId, {}, admin)).toHaveLength(3);
  });
});
