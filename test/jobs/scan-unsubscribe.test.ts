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

const NEWSLETTERS = `query($accountId: ID!) {
  newsletters(accountId: $accountId) { id accountId sender messageCount lastSeen unsubscribeUrls mailtos oneClick oneClickUrl updatedAt }
}`;

async function createAccount(name: string, as = token): Promise<string> {
  return (await gqlOk<{ createAccount: { id: string } }>(system.url, as, CREATE_ACCOUNT, { name })).createAccount.id;
}

async function newsletters(accountId: string, as = token): Promise<any[]> {
  return (await gqlOk<{ newsletters: any[] }>(system.url, as, NEWSLETTERS, { accountId })).newsletters;
}

/** Newsletters and other mail; the subjects are unique, so the message ids are too. */
function corpus(): string[] {
  return [
    buildMessage({
      from: 'Daily News <News@Daily.example>',
      subject: 'Daily 1 March',
      date: new Date('2024-03-01T08:00:00Z'),
      headers: [
        ['List-Unsubscribe', '<https://daily.example/u/new>, <mailto:unsub@daily.example?subject=stop>'],
        ['List-Unsubscribe-Post', 'List-Unsubscribe=One-Click'],
      ],
    }),
    buildMessage({
      from: 'news@daily.example',
      subject: 'Daily 1 February',
      date: new Date('2024-02-01T08:00:00Z'),
      headers: [['List-Unsubscribe', '<https://daily.example/u/old>']],
    }),
    buildMessage({
      from: 'Shop <promo@shop.example>',
      subject: 'Sale!',
      date: new Date('2024-01-15T10:00:00Z'),
      headers: [['List-Unsubscribe', '<mailto:leave@shop.example?subject=unsubscribe>']],
    }),
    // One-click over plain http is not RFC 8058 one-click.
    buildMessage({
      from: 'alerts@plain.example',
      subject: 'Alert',
      date: new Date('2024-01-10T10:00:00Z'),
      headers: [
        ['List-Unsubscribe', '<http://plain.example/unsub>'],
        ['List-Unsubscribe-Post', 'List-Unsubscribe=One-Click'],
      ],
    }),
    buildMessage({ from: 'Friend <friend@example.com>', subject: 'Lunch?', text: 'Lunch on Friday?\n' }),
    // No usable URI: not a newsletter.
    buildMessage({ from: 'bogus@example.com', subject: 'Bogus', headers: [['List-Unsubscribe', '<javascript:alert(1)>']] }),
    // Trashed before the scan: not scanned.
    buildMessage({ from: 'trashed@news.example', subject: 'In the trash', headers: [['List-Unsubscribe', '<https://news.example/u>']] }),
  ];
}

describe('scan_unsubscribe', () => {
  it('finds newsletters by sender, flags one-click, and a re-run leaves exactly the current set', async () => {
    const accountId = await createAccount('newsletters');
    await importCorpus(system, token, accountId, corpus());
    await env.sql("UPDATE message SET deleted_at = now() WHERE account_id = $1 AND subject = 'In the trash'", [accountId]);

    const job = await runJob(system, token, 'scanUnsubscribe', { accountId });
    expect(job).toMatchObject({ type: 'scan_unsubscribe', status: 'COMPLETED', processed: 6, total: 6 });
    expect(job.result).toEqual({ scanned: 6, newsletters: 3, oneClick: 1 });

    const typed = await gqlOk<{ job: any }>(
      system.url,
      token,
      `query($id: ID!) { job(id: $id) {
      ... on ScanUnsubscribeJob { input { accountId } output { scanned newsletters oneClick } } } }`,
      { id: job.id },
    );
    expect(typed.job).toEqual({ input: { accountId }, output: { scanned: 6, newsletters: 3, oneClick: 1 } });

    const first = await newsletters(accountId);
    expect(first.map(({ id: _id, updatedAt: _u, ...rest }) => rest)).toEqual([
      {
        accountId,
        sender: 'news@daily.example',
        messageCount: 2,
        lastSeen: '2024-03-01T08:00:00.000Z',
        unsubscribeUrls: ['https://daily.example/u/new', 'https://daily.example/u/old'],
        mailtos: ['mailto:unsub@daily.example?subject=stop'],
        oneClick: true,
        oneClickUrl: 'https://daily.example/u/new',
      },
      {
        accountId,
        sender: 'alerts@plain.example',
        messageCount: 1,
        lastSeen: '2024-01-10T10:00:00.000Z',
        unsubscribeUrls: ['http://plain.example/unsub'],
        mailtos: [],
        oneClick: false,
        oneClickUrl: null,
      },
      {
        accountId,
        sender: 'promo@shop.example',
        messageCount: 1,
        lastSeen: '2024-01-15T10:00:00.000Z',
        unsubscribeUrls: [],
        mailtos: ['mailto:leave@shop.example?subject=unsubscribe'],
        oneClick: false,
        oneClickUrl: null,
      },
    ]);

    // The same mail again: the same rows, under the same ids.
    const again = await runJob(system, token, 'scanUnsubscribe', { accountId });
    expect(again.result).toEqual({ scanned: 6, newsletters: 3, oneClick: 1 });
    const second = await newsletters(accountId);
    expect(second.map((n) => [n.id, n.sender])).toEqual(first.map((n) => [n.id, n.sender]));
    const { count } = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM newsletter WHERE account_id = $1', [accountId]);
    expect(count).toBe(3);

    // The daily newsletter's mail goes to the trash: its row goes, the others stay as they were.
    await env.sql("UPDATE message SET deleted_at = now() WHERE account_id = $1 AND from_address ILIKE 'news@daily.example'", [accountId]);
    const third = await runJob(system, token, 'scanUnsubscribe', { accountId });
    expect(third.result).toEqual({ scanned: 4, newsletters: 2, oneClick: 0 });
    const after = await newsletters(accountId);
    expect(after.map((n) => [n.id, n.sender, n.messageCount])).toEqual([
      [first[1].id, 'alerts@plain.example', 1],
      [first[2].id, 'promo@shop.example', 1],
    ]);
    const rows = await env.sql('SELECT sender FROM newsletter WHERE account_id = $1 ORDER BY sender', [accountId]);
    expect(rows).toEqual([{ sender: 'alerts@plain.example' }, { sender: 'promo@shop.example' }]);
  });

  it('scans an empty account to an empty list', async () => {
    const accountId = await createAccount('empty');
    const job = await runJob(system, token, 'scanUnsubscribe', { accountId });
    expect(job).toMatchObject({ status: 'COMPLETED', result: { scanned: 0, newsletters: 0, oneClick: 0 } });
    expect(await newsletters(accountId)).toEqual([]);
  });

  it("gives another user NOT_FOUND for the account's newsletters and scan; an admin sees them", async () => {
    const accountId = await createAccount('private');
    await importCorpus(system, token, accountId, corpus().slice(0, 2));
    await runJob(system, token, 'scanUnsubscribe', { accountId });

    const bob = await env.token('bob');
    const query = await gql(system.url, bob, NEWSLETTERS, { accountId });
    expect(query.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(query.data).toBeNull();
    const mutation = await gql(system.url, bob, 'mutation($accountId: ID!) { scanUnsubscribe(accountId: $accountId) { id } }', {
      accountId,
    });
    expect(mutation.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(await env.sql("SELECT id FROM job WHERE type = 'scan_unsubscribe' AND owner_id = 'bob'")).toHaveLength(0);
    const missing = await gql(system.url, token, NEWSLETTERS, { accountId: '00000000-0000-4000-8000-000000000000' });
    expect(missing.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');

    const admin = await env.token('root', 'admin');
    expect((await newsletters(accountId, admin)).map((n) => n.sender)).toEqual(['news@daily.example']);
  });
});
