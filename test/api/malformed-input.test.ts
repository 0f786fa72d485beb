/**
 * Malformed input of every kind gets a coded GraphQL error and changes nothing (issue 7, defect 4),
 * through the real HTTP API: nothing the caller sends is answered with a masked INTERNAL error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_ACCOUNT } from '../helpers/fragments.js';
import { gql, gqlOk, subscribe } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let admin: string;
let accountId: string;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env, { worker: false });
  [alice, admin] = await Promise.all([env.token('alice'), env.token('root', 'admin')]);
  accountId = (await gqlOk<{ createAccount: { id: string } }>(system.url, alice, CREATE_ACCOUNT, { name: 'inbox' })).createAccount.id;
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

/** Rows and queue jobs that any of these calls could have created. */
async function footprint(): Promise<string> {
  const counts = await env.one<Record<string, string>>(
    `SELECT (SELECT count(*) FROM job) AS jobs, (SELECT count(*) FROM account) AS accounts, (SELECT count(*) FROM rule) AS rules,
            (SELECT count(*) FROM retention_policy) AS policies`,
  );
  return JSON.stringify(counts);
}

async function expectCode(query: string, variables: Record<string, unknown>, code: string, token = alice) {
  const before = await footprint();
  const response = await gql(system.url, token, query, variables);
  expect(response.errors?.[0]?.extensions?.code, JSON.stringify(response)).toBe(code);
  expect(response.errors![0]!.message.length).toBeLessThan(400);
  expect(await footprint()).toBe(before);
  return response;
}

const DASHES = '-'.repeat(36);
const BAD_CURSOR_DATE = Buffer.from(`2024-13-45 25:61:00.000000+00|00000000-0000-4000-8000-000000000000`).toString('base64url');
const BAD_CURSOR_ID = Buffer.from(`2024-01-01 00:00:00.000000+00|${DASHES}`).toString('base64url');

describe('malformed ids', () => {
  it('answers BAD_USER_INPUT for ids shaped like UUIDs that are not', async () => {
    await expectCode('query($id: ID!) { job(id: $id) { id } }', { id: DASHES }, 'BAD_USER_INPUT');
    await expectCode(`query { job(id: "${DASHES}") { id } }`, {}, 'BAD_USER_INPUT');
    await expectCode('mutation($id: ID!) { cancelJob(id: $id) { id } }', { id: 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz' }, 'BAD_USER_INPUT');
    await expectCode('query($id: ID!) { account(id: $id) { id } }', { id: DASHES }, 'BAD_USER_INPUT');
    await expectCode('mutation($a: ID!) { scanPii(accountId: $a) { id } }', { a: DASHES }, 'BAD_USER_INPUT');
    await expectCode('query($f: JobFilter) { jobs(filter: $f) { nodes { id } } }', { f: { accountId: DASHES } }, 'BAD_USER_INPUT');
  });

  it('checks only the operation that runs, however often the document runs', async () => {
    const document = `query Bad { job(id: "${DASHES}") { id } } query Good { jobs(first: 1) { nodes { ...Ids } } } fragment Ids on Job { id }`;
    const run = async (operationName: string) => {
      const response = await fetch(system.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
        body: JSON.stringify({ query: document, operationName }),
      });
      return (await response.json()) as any;
    };
    // Documents are parsed, validated and planned once and cached: each run must still be the operation it names.
    for (let round = 0; round < 3; round++) {
      const good = await run('Good');
      expect(good.errors).toBeUndefined();
      expect(good.data.jobs.nodes).toEqual([]);
      expect((await run('Bad')).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    }
  });

  it('answers NOT_FOUND for a well-formed id that matches nothing', async () => {
    await expectCode('mutation($id: ID!) { cancelJob(id: $id) { id } }', { id: '00000000-0000-4000-8000-000000000000' }, 'NOT_FOUND');
  });
});

describe('repeated documents', () => {
  it('answer exactly as their first run did, data, errors and codes alike (whatever is cached or compiled per document)', async () => {
    await gqlOk(system.url, alice, 'mutation($a: ID!) { scanPii(accountId: $a) { id } }', { a: accountId });
    const missing = '00000000-0000-4000-8000-000000000000';
    const documents: [string, Record<string, unknown>][] = [
      ['query($f: Int) { jobs(first: $f) { nodes { id } } }', { f: 500 }],
      [`query($id: ID!) { job(id: $id) { id status } }`, { id: missing }],
      ['mutation($id: ID!) { cancelJob(id: $id) { id } }', { id: missing }],
      ['query($s: [JobStatus!]) { jobs(filter: { statuses: $s }) { nodes { id } } }', { s: ['NOPE'] }],
      [
        `query { jobs(first: 5) { ...Counted streamCursor edges { node { __typename id type status createdAt payload ... on ScanPiiJob { input { accountId } output { findings } } } } pageInfo { hasNextPage endCursor } } } fragment Counted on JobConnection { totalCount }`,
        {},
      ],
    ];
    for (const [query, variables] of documents) {
      const runs: Awaited<ReturnType<typeof gql>>[] = [];
      for (let run = 0; run < 3; run++) runs.push(await gql(system.url, alice, query, variables));
      // The same answer each time but for the stream position, which moves with every write.
      const comparable = (response: (typeof runs)[number]) =>
        JSON.parse(JSON.stringify(response, (key, value) => (key === 'streamCursor' ? typeof value : value)));
      expect(comparable(runs[1]!), query).toEqual(comparable(runs[0]!));
      expect(comparable(runs[2]!), query).toEqual(comparable(runs[0]!));
    }
    // Variables that switch parts of the document on and off, and a field only admins may read.
    const switched = `query($count: Boolean!, $skipIds: Boolean!) { jobs(first: 3) { totalCount @include(if: $count) nodes { id @skip(if: $skipIds) status } } }`;
    for (const variables of [
      { count: true, skipIds: false },
      { count: false, skipIds: true },
      { count: true, skipIds: false },
      { count: false, skipIds: true },
    ]) {
      const { data } = await gql<any>(system.url, alice, switched, variables);
      expect(Object.keys(data.jobs).sort(), JSON.stringify(variables)).toEqual(variables.count ? ['nodes', 'totalCount'] : ['nodes']);
      expect(Object.keys(data.jobs.nodes[0]).sort(), JSON.stringify(variables)).toEqual(variables.skipIds ? ['status'] : ['id', 'status']);
    }
    for (let run = 0; run < 3; run++) {
      const refused = await gql(system.url, alice, '{ queueStats { active } }');
      expect(refused.errors?.[0]?.extensions?.code, JSON.stringify(refused)).toBe('FORBIDDEN');
    }
    // One document, several operations: each run answers the operation it names.
    const operations = 'query Jobs { jobs(first: 1) { nodes { id } } } query Types { jobTypes { name } }';
    for (const operationName of ['Jobs', 'Types', 'Jobs', 'Types', 'Types', 'Jobs']) {
      const response = await fetch(system.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
        body: JSON.stringify({ query: operations, operationName }),
      });
      const { data } = (await response.json()) as { data: Record<string, unknown> };
      expect(Object.keys(data), operationName).toEqual([operationName === 'Jobs' ? 'jobs' : 'jobTypes']);
    }
    const listed = await gql<any>(system.url, alice, documents[4]![0]);
    expect(listed.data.jobs.totalCount).toBe(1);
    expect(listed.data.jobs.edges[0].node).toMatchObject({ __typename: 'ScanPiiJob', input: { accountId } });
  });
});

describe('malformed cursors and dates', () => {
  it('refuses cursors that pass the format check but hold a bad date or id', async () => {
    for (const after of [BAD_CURSOR_DATE, BAD_CURSOR_ID, 'not-a-cursor']) {
      await expectCode('query($after: String) { jobs(after: $after) { nodes { id } } }', { after }, 'BAD_USER_INPUT');
    }
  });

  it("refuses DateTimes outside PostgreSQL's range", async () => {
    for (const date of ['+275760-09-13T00:00:00.000Z', '-271821-04-20T00:00:00.000Z', '10000-01-01T00:00:00Z', 'yesterday']) {
      await expectCode('query($f: JobFilter) { jobs(filter: $f) { nodes { id } } }', { f: { createdAfter: date } }, 'BAD_USER_INPUT');
    }
  });
});

describe('unstorable characters', () => {
  it('refuses NUL in stored and filtered strings, in variables and in literals', async () => {
    await expectCode(CREATE_ACCOUNT, { name: 'in\u0000box' }, 'BAD_USER_INPUT');
    await expectCode('mutation { createAccount(input: { name: "in\\u0000box" }) { id } }', {}, 'BAD_USER_INPUT');
    await expectCode(
      'query($f: JobFilter) { jobs(filter: $f) { nodes { id } } }',
      { f: { types: ['import\u0000mbox'] } },
      'BAD_USER_INPUT',
    );
    await expectCode(
      'mutation($a: ID!, $o: EnqueueOptions) { scanPii(accountId: $a, options: $o) { id } }',
      { a: accountId, o: { idempotencyKey: 'k\u0000' } },
      'BAD_USER_INPUT',
    );
  });

  it('refuses lone surrogates, which PostgreSQL cannot store either, wherever they are', async () => {
    const scan = 'mutation($a: ID!, $o: EnqueueOptions) { scanPii(accountId: $a, options: $o) { id } }';
    const response = await expectCode(scan, { a: accountId, o: { metadata: { note: 'half \ud800 a pair' } } }, 'BAD_USER_INPUT');
    expect(response.errors![0]!.message).toMatch(/lone surrogates/);
    await expectCode(scan, { a: accountId, o: { metadata: { '\udfff': 1 } } }, 'BAD_USER_INPUT');
    await expectCode(scan, { a: accountId, o: { tags: ['a\ud83d'] } }, 'BAD_USER_INPUT');
    // A whole pair is a character like any other.
    await gqlOk(system.url, alice, scan, { a: accountId, o: { metadata: { note: 'a pair: \ud83d\ude00' } } });
  });
});

describe('variables over HTTP', () => {
  it('answers BAD_USER_INPUT for a wrong enum value or a wrong type', async () => {
    await expectCode('query($f: JobFilter) { jobs(filter: $f) { nodes { id } } }', { f: { statuses: ['NOPE'] } }, 'BAD_USER_INPUT');
    await expectCode('query($n: Int) { jobs(first: $n) { nodes { id } } }', { n: 'ten' }, 'BAD_USER_INPUT');
    await expectCode('query($n: Int) { jobs(first: $n) { nodes { id } } }', { n: 1e12 }, 'BAD_USER_INPUT');
    await expectCode(
      'mutation($a: ID!, $o: EnqueueOptions) { scanPii(accountId: $a, options: $o) { id } }',
      { a: accountId, o: { priority: 'high' } },
      'BAD_USER_INPUT',
    );
    await expectCode('query($id: ID!) { job(id: $id) { id } }', {}, 'BAD_USER_INPUT');
  });

  it('never echoes more than a bounded slice of the input', async () => {
    const huge = 'x'.repeat(100_000);
    const response = await expectCode(
      'query($f: JobFilter) { jobs(filter: $f) { nodes { id } } }',
      { f: { statuses: [huge] } },
      'BAD_USER_INPUT',
    );
    expect(JSON.stringify(response).length).toBeLessThan(2_000);
  });

  it('never quotes an IMAP password back, whatever else in its input is wrong, over every transport', async () => {
    const password = 'correct "horse" battery\\staple';
    const query = 'mutation($imap: ImapSettingsInput) { createAccount(input: { name: "leak", imap: $imap }) { id } }';
    const wrong = [
      { host: 'imap.example.com', password }, // no user: graphql-js prints the whole object
      { host: 'imap.example.com', user: 'me', password, colour: 'red' }, // a field that does not exist
      { host: 'imap.example.com', user: 'me', port: 'imaps', password }, // a wrong type beside it
      { host: 'imap.example.com', user: 'me', password: 902_114_377 }, // the password itself of the wrong type
    ];
    for (const imap of wrong) {
      const response = await expectCode(query, { imap }, 'BAD_USER_INPUT');
      const text = JSON.stringify(response);
      expect(text).not.toContain('horse');
      expect(text).not.toContain('902114377');
      // Where graphql-js would have quoted it, it says so instead.
      if (imap.port === undefined) expect(text).toContain('<redacted>');
    }
    // Written into the document itself, a password of the wrong type is refused by validation.
    const literal = await gql(
      system.url,
      alice,
      'mutation { createAccount(input: { name: "leak", imap: { host: "imap.example.com", user: "me", password: 902114377 } }) { id } }',
    );
    expect(literal.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(JSON.stringify(literal)).not.toContain('902114377');
    const overWebSocket = subscribe('ws', system.url, alice, query, { imap: wrong[0] });
    const refusal = await overWebSocket.done.then(
      () => JSON.stringify(overWebSocket.results),
      (error: Error) => error.message,
    );
    expect(refusal).toContain('BAD_USER_INPUT');
    expect(refusal).not.toContain('horse');
    // graphql-sse's client keeps a refusal's body to itself: read it as it comes.
    const overGraphqlSse = await fetch(system.url.replace(/\/graphql$/, '/graphql/stream'), {
      method: 'POST',
      headers: { authorization: `Bearer ${alice}`, accept: 'text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify({ query, variables: { imap: wrong[0] } }),
    });
    const body = await overGraphqlSse.text();
    expect(body).toContain('BAD_USER_INPUT');
    expect(body).not.toContain('horse');
  });

  it('refuses a file mapped to a variable that is not a File, without storing it or printing its internals', async () => {
    const upload = async (query: string, variables: Record<string, unknown>, path: string) => {
      const form = new FormData();
      form.set('operations', JSON.stringify({ query, variables }));
      form.set('map', JSON.stringify({ 0: [`variables.${path}`] }));
      form.set('0', new Blob([new Uint8Array(2_000).fill(65)]), 'a.mbox');
      const response = await fetch(system.url, { method: 'POST', headers: { authorization: `Bearer ${alice}` }, body: form });
      return (await response.json()) as { errors?: { message: string; extensions: { code: string } }[] };
    };
    const before = await footprint();
    for (const [query, variables, path] of [
      ['mutation($a: ID!, $m: JSON) { scanPii(accountId: $a, options: { metadata: $m }) { id } }', { a: accountId, m: null }, 'm'],
      [
        'mutation($a: ID!, $m: JSON) { scanPii(accountId: $a, options: { metadata: $m }) { id } }',
        { a: accountId, m: { note: null } },
        'm.note',
      ],
      ['mutation($a: ID!) { scanPii(accountId: $a) { id } }', { a: null }, 'a'],
      ['mutation($o: EnqueueOptions) { scanPii(accountId: "00000000-0000-4000-8000-000000000000", options: $o) { id } }', { o: null }, 'o'],
    ] as const) {
      const response = await upload(query, variables, path);
      expect(response.errors?.[0]?.extensions.code, JSON.stringify(response)).toBe('BAD_USER_INPUT');
      expect(response.errors![0]!.message).toMatch(/a file may be sent only where the type is File/);
      expect(JSON.stringify(response)).not.toMatch(/blobParts|_buffer/);
    }
    expect(await footprint()).toBe(before);
  });

  it('takes a filter list of many repeats as the set it names: counts and pages answer, a bulk action stores each value once', async () => {
    const repeats = { statuses: Array(70_000).fill('FAILED'), types: Array(10_000).fill('scan_pii') };
    const { jobs, jobCounts } = await gqlOk<{ jobs: { totalCount: number; nodes: unknown[] }; jobCounts: unknown[] }>(
      system.url,
      alice,
      'query($f: JobFilter) { jobs(filter: $f) { totalCount nodes { id } } jobCounts(filter: $f) { count } }',
      { f: repeats },
    );
    expect(jobs).toEqual({ totalCount: 0, nodes: [] });
    expect(jobCounts).toEqual([]);
    const { cancelJobs } = await gqlOk<{ cancelJobs: { input: { filter: unknown } } }>(
      system.url,
      alice,
      'mutation($f: JobFilter!) { cancelJobs(filter: $f) { input { filter { statuses types } } } }',
      { f: repeats },
    );
    expect(cancelJobs.input.filter).toEqual({ statuses: ['FAILED'], types: ['scan_pii'] });
  });
});

describe('limits', () => {
  it('gives every query limit of graphql-armor a code, and says which limit without calling it a syntax error', async () => {
    const directives = `{ __typename ${'@include(if: true) '.repeat(25)}}`;
    const aliases = `{ ${Array.from({ length: 30 }, (_, i) => `a${i}: jobTypes { name }`).join(' ')} }`;
    const tokens = `{ ${'__typename '.repeat(3000)} }`;
    const costly = `{ ${Array.from({ length: 12 }, (_, i) => `j${i}: jobs(first: 100) { nodes { id status logs(first: 100) { edges { node { message } } } } }`).join(' ')} }`;
    for (const [query, code, limit] of [
      [directives, 'GRAPHQL_VALIDATION_FAILED', /^Directives limit/],
      [aliases, 'GRAPHQL_VALIDATION_FAILED', /^Aliases limit/],
      [tokens, 'GRAPHQL_PARSE_FAILED', /^Token limit/],
      [costly, 'GRAPHQL_VALIDATION_FAILED', /^Query Cost limit/],
    ] as const) {
      const response = await gql(system.url, alice, query);
      const error = response.errors?.[0];
      expect(error?.extensions?.code, JSON.stringify(response).slice(0, 300)).toBe(code);
      expect(error?.message).toMatch(limit);
    }
    // A real syntax error still says so.
    expect((await gql(system.url, alice, '{ jobs(')).errors?.[0]?.message).toMatch(/^Syntax Error: /);
  });
});

describe('request size', () => {
  it('limits a JSON request far below the upload limit', async () => {
    const response = await fetch(system.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
      body: JSON.stringify({ query: '{ __typename }', variables: { padding: 'x'.repeat(2 * 1024 * 1024) } }),
    });
    expect(response.status).toBe(413);
    expect(((await response.json()) as any).errors[0].extensions.code).toBe('REQUEST_ENTITY_TOO_LARGE');
  });
});

describe('malformed requests', () => {
  const post = (body: BodyInit, headers: Record<string, string>) => fetch(system.url, { method: 'POST', headers, body });

  it('answers bad request parameters with a coded, bounded error, never INTERNAL', async () => {
    const responses = [
      await fetch(`${system.url}?query=%7B__typename%7D&variables=%7Bx`, {
        headers: { 'x-graphql-yoga-csrf': '1', authorization: `Bearer ${alice}` },
      }),
      await fetch(`${system.url}?query=%7B__typename%7D&extensions=zz`, {
        headers: { 'x-graphql-yoga-csrf': '1', authorization: `Bearer ${alice}` },
      }),
      await post(`{"query":"${'x'.repeat(900_000)}`, { 'content-type': 'application/json', authorization: `Bearer ${alice}` }),
      await post(`{"query":"${'x'.repeat(900_000)}`, { 'content-type': 'application/json' }),
    ];
    for (const form of [
      { operations: '{"query":"{ __typename }"}', map: '[1]' },
      { operations: '{"query":"{ __typename }"}', map: '{"0":[5]}' },
    ]) {
      const body = new FormData();
      body.set('operations', form.operations);
      body.set('map', form.map);
      body.set('0', new Blob(['x']), 'x.txt');
      responses.push(await post(body, { authorization: `Bearer ${alice}`, 'x-graphql-yoga-csrf': '1' }));
    }
    for (const response of responses) {
      const text = await response.text();
      expect(text.length, text.slice(0, 200)).toBeLessThan(2_000);
      // application/json answers keep 200 for request errors, as the GraphQL-over-HTTP spec says; never a 5xx.
      expect(response.status, text.slice(0, 200)).toBeLessThan(500);
      const code = (JSON.parse(text) as { errors: { extensions?: { code?: string } }[] }).errors[0]!.extensions?.code;
      expect(['BAD_USER_INPUT', 'BAD_REQUEST', 'UNAUTHENTICATED']).toContain(code);
    }
  });

  it('refuses a streamed (chunked) JSON body, whose size cannot be checked up front', async () => {
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(JSON.stringify({ query: '{ __typename }' })));
        controller.close();
      },
    });
    const response = await fetch(system.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
      body: chunks,
      duplex: 'half',
    } as RequestInit);
    expect(response.status).toBe(411);
    expect(((await response.json()) as any).errors[0].extensions.code).toBe('LENGTH_REQUIRED');
  });

  it('refuses impossible calendar dates', async () => {
    await expectCode(
      'query($f: JobFilter) { jobs(filter: $f) { nodes { id } } }',
      { f: { createdAfter: '2023-02-29T00:00:00Z' } },
      'BAD_USER_INPUT',
    );
    const after = Buffer.from('2024-01-01 00:00:00.000000+99|00000000-0000-4000-8000-000000000000').toString('base64url');
    await expectCode('query($after: String) { jobs(after: $after) { nodes { id } } }', { after }, 'BAD_USER_INPUT');
  });
});

describe('systemConfig', () => {
  it('is for admins only', async () => {
    await expectCode('{ systemConfig { archiveTrashPurgeEnabled } }', {}, 'FORBIDDEN');
    const ok = await gql(system.url, admin, '{ systemConfig { archiveTrashPurgeEnabled } }');
    expect(ok.errors).toBeUndefined();
  });
});
