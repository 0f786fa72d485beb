import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { importCorpus, runJob } from '../helpers/corpus.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMessage, TINY_PNG } from '../helpers/mbox-fixture.js';
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
    edges { cursor node { id } }
    pageInfo { hasNextPage endCursor }
  }
}`;

const SUMMARY = `query($accountId: ID!) {
  trackingSummary(accountId: $accountId) { sender messageCount trackedMessageCount pixelCount trackerHosts linkParams }
}`;

async function createAccount(name: string, as = token): Promise<string> {
  return (await gqlOk<{ createAccount: { id: string } }>(system.url, as, CREATE_ACCOUNT, { name })).createAccount.id;
}

async function allFindings(accountId: string, filter: Record<string, unknown> = {}): Promise<any[]> {
  const out: any[] = [];
  let after: string | null = null;
  do {
    const page: any = (await gqlOk<{ findings: any }>(system.url, token, FINDINGS, { accountId, first: 3, after, ...filter })).findings;
    out.push(...page.nodes);
    after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
  } while (after);
  return out;
}

async function messageIds(accountId: string): Promise<Record<string, string>> {
  const rows = await env.sql<{ id: string; subject: string }>('SELECT id, subject FROM message WHERE account_id = $1', [accountId]);
  return Object.fromEntries(rows.map((row) => [row.subject, row.id]));
}

/** Comparable view of findings: no ids or timestamps, in a fixed order. */
function shape(findings: any[], ids: Record<string, string>): string[] {
  const subjectOf = Object.fromEntries(Object.entries(ids).map(([subject, id]) => [id, subject]));
  return findings
    .map((f) => `${subjectOf[f.messageId]} | ${f.scan} ${f.kind} ${f.detail} | ${f.host} | ${f.source} | ${f.sender} | ${f.subtype}`)
    .sort();
}

function corpus(): string[] {
  return [
    buildMessage({
      from: 'Tracker News <news@tracker.example>',
      subject: 'Pixel and utm',
      html:
        '<p>Hello</p><img src="https://pixel.example.org/open.gif?u=123" width="1" height="1">' +
        '<a href="https://shop.example/sale?utm_source=newsletter&amp;utm_medium=email&amp;id=5">Sale</a>' +
        '<a href="https://shop.example/other?utm_source=again">Same parameter again</a>',
    }),
    buildMessage({
      from: 'news@tracker.example',
      subject: 'Hidden pixel and Mailchimp',
      text: 'Plain part.\n',
      html:
        '<img src="https://img.example.org/hidden.png?id=9" style="display:none">' +
        '<img src="https://xyz.list-manage.com/track/open.php?u=1" width="600" height="200">' +
        '<a href="https://example.com/read?mc_eid=abc">Read</a>',
    }),
    buildMessage({
      from: 'news@tracker.example',
      subject: 'Clean newsletter',
      html: '<p>No tracking <a href="https://example.com/page?id=1">here</a></p>',
    }),
    buildMessage({
      from: 'Friend <friend@example.com>',
      subject: 'Plain text only',
      text: 'Lunch? https://shop.example/?utm_source=text\n',
    }),
    buildMessage({
      from: 'friend@example.com',
      subject: 'Inline image',
      html: '<p>Photo</p><img src="cid:logo@x" width="1" height="1"><img src="data:image/png;base64,AAAA" width="1" height="1">',
      attachments: [{ filename: 'logo.png', contentType: 'image/png', content: TINY_PNG, disposition: 'inline', contentId: 'logo@x' }],
    }),
    buildMessage({
      from: 'Ads <ads@ads.example>',
      subject: 'Doubleclick',
      html: '<a href="https://ad.doubleclick.net/click?gclid=XYZ">Offer</a>',
    }),
  ];
}

const EXPECTED = [
  'Doubleclick | TRACKING LINK_PARAM gclid | ad.doubleclick.net | html | ads@ads.example | null',
  'Doubleclick | TRACKING TRACKER_HOST doubleclick.net | ad.doubleclick.net | html | ads@ads.example | null',
  'Hidden pixel and Mailchimp | TRACKING LINK_PARAM mc_eid | example.com | html | news@tracker.example | null',
  'Hidden pixel and Mailchimp | TRACKING PIXEL https://img.example.org/hidden.png | img.example.org | html | news@tracker.example | null',
  'Hidden pixel and Mailchimp | TRACKING TRACKER_HOST list-manage.com | xyz.list-manage.com | html | news@tracker.example | null',
  'Pixel and utm | TRACKING LINK_PARAM utm_medium | shop.example | html | news@tracker.example | null',
  'Pixel and utm | TRACKING LINK_PARAM utm_source | shop.example | html | news@tracker.example | null',
  'Pixel and utm | TRACKING PIXEL https://pixel.example.org/open.gif | pixel.example.org | html | news@tracker.example | null',
];

describe('scan_tracking', () => {
  it('stores exactly the pixels, tracker hosts and link parameters; a re-run adds nothing twice and drops stale ones', async () => {
    const accountId = await createAccount('tracking');
    await importCorpus(system, token, accountId, corpus());
    const ids = await messageIds(accountId);

    const job = await runJob(system, token, 'scanTracking', { accountId });
    expect(job).toMatchObject({ type: 'scan_tracking', status: 'COMPLETED', processed: 6, total: 6 });
    expect(job.result).toEqual({ scanned: 6, messagesWithTracking: 3, findings: 8 });
    const typed = await gqlOk<{ job: any }>(
      system.url,
      token,
      `query($id: ID!) { job(id: $id) {
      ... on ScanTrackingJob { input { accountId } output { scanned messagesWithTracking findings } } } }`,
      { id: job.id },
    );
    expect(typed.job).toEqual({ input: { accountId }, output: { scanned: 6, messagesWithTracking: 3, findings: 8 } });

    // Paged three at a time, newest first; every page's cursor leads to the next.
    const first = await allFindings(accountId);
    expect(shape(first, ids)).toEqual(EXPECTED);
    expect(new Set(first.map((f) => f.id)).size).toBe(8);
    expect(shape(await allFindings(accountId, { scan: 'TRACKING' }), ids)).toEqual(EXPECTED);
    expect(await allFindings(accountId, { scan: 'PII' })).toEqual([]);
    expect(shape(await allFindings(accountId, { kind: 'PIXEL' }), ids)).toEqual(EXPECTED.filter((line) => line.includes(' PIXEL ')));
    expect(shape(await allFindings(accountId, { kind: 'TRACKER_HOST', scan: 'TRACKING' }), ids)).toEqual(
      EXPECTED.filter((line) => line.includes(' TRACKER_HOST ')),
    );

    const summary = (await gqlOk<{ trackingSummary: any[] }>(system.url, token, SUMMARY, { accountId })).trackingSummary;
    expect(summary).toEqual([
      {
        sender: 'news@tracker.example',
        messageCount: 3,
        trackedMessageCount: 2,
        pixelCount: 2,
        trackerHosts: ['list-manage.com'],
        linkParams: ['mc_eid', 'utm_medium', 'utm_source'],
      },
      {
        sender: 'ads@ads.example',
        messageCount: 1,
        trackedMessageCount: 1,
        pixelCount: 0,
        trackerHosts: ['doubleclick.net'],
        linkParams: ['gclid'],
      },
    ]);

    // Re-run over the same mail: nothing added, the stored rows keep their ids.
    const again = await runJob(system, token, 'scanTracking', { accountId });
    expect(again.result).toEqual({ scanned: 6, messagesWithTracking: 3, findings: 8 });
    const second = await allFindings(accountId);
    expect(second.map((f) => f.id).sort()).toEqual(first.map((f) => f.id).sort());
    const { count } = await env.one<{ count: number }>('SELECT count(*)::int AS count FROM finding WHERE account_id = $1', [accountId]);
    expect(count).toBe(8);

    // One message loses its utm link, another goes to the trash: their stale findings go, the rest stay.
    await env.sql(
      `UPDATE message SET html_body = '<p>Hello</p><img src="https://pixel.example.org/open.gif?u=123" width="1" height="1">'
        WHERE account_id = $1 AND subject = 'Pixel and utm'`,
      [accountId],
    );
    await env.sql("UPDATE message SET deleted_at = now() WHERE account_id = $1 AND subject = 'Doubleclick'", [accountId]);
    const third = await runJob(system, token, 'scanTracking', { accountId });
    expect(third.result).toEqual({ scanned: 5, messagesWithTracking: 2, findings: 4 });
    const remaining = await allFindings(accountId);
    expect(shape(remaining, ids)).toEqual(EXPECTED.filter((line) => !line.startsWith('Doubleclick') && !/utm_/.test(line)));
    const kept = new Set(first.map((f) => f.id));
    expect(remaining.every((f) => kept.has(f.id))).toBe(true);
    const rows = await env.sql('SELECT kind, detail FROM finding WHERE account_id = $1 ORDER BY kind, detail', [accountId]);
    expect(rows).toHaveLength(4);
  });

  it("gives another user NOT_FOUND for the account's findings, summary and scan", async () => {
    const accountId = await createAccount('private');
    await importCorpus(system, token, accountId, corpus().slice(0, 1));
    await runJob(system, token, 'scanTracking', { accountId });

    const bob = await env.token('bob');
    for (const [query, variables] of [
      [FINDINGS, { accountId }],
      [SUMMARY, { accountId }],
      ['mutation($accountId: ID!) { scanTracking(accountId: $accountId) { id } }', { accountId }],
    ] as const) {
      const response = await gql(system.url, bob, query, variables);
      expect(response.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      expect(response.data).toBeNull();
    }
    expect(await env.sql("SELECT id FROM job WHERE type = 'scan_tracking' AND owner_id = 'bob'")).toHaveLength(0);

    const admin = await env.token('root', 'admin');
    const page = (await gqlOk<{ findings: any }>(system.url, admin, FINDINGS, { accountId })).findings;
    expect(page.nodes).toHaveLength(3);
    const bad = await gql(system.url, token, FINDINGS, { accountId, after: 'not-a-cursor' });
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});
