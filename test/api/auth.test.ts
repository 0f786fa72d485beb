import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_ACCOUNT, IMPORT_MBOX, JOB, JOB_PROGRESS } from '../helpers/fragments.js';
import { gql, gqlOk, gqlUpload, subscribe } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let bob: string;
let admin: string;
let aliceJobId: string;
let aliceAccountId: string;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env);
  [alice, bob, admin] = await Promise.all([env.token('alice'), env.token('bob'), env.token('root', 'admin')]);
  aliceAccountId = (await gqlOk<{ createAccount: { id: string } }>(system.url, alice, CREATE_ACCOUNT, { name: 'private' })).createAccount
    .id;
  const response = await gqlUpload<{ importMbox: { id: string } }>(
    system.url,
    alice,
    IMPORT_MBOX,
    { accountId: aliceAccountId, file: null },
    {
      path: 'file',
      content: buildMbox({ count: 5, seed: 5 }).mbox,
      filename: 'secret.mbox',
    },
  );
  aliceJobId = response.data!.importMbox.id;
  await waitFor(
    'alice import',
    async () => (await gqlOk<{ job: any }>(system.url, alice, JOB, { id: aliceJobId })).job.status === 'COMPLETED',
  );
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

describe('authentication', () => {
  it('answers UNAUTHENTICATED without a token, with a bad one, and with an expired one', async () => {
    const expired = await env.token('alice', 'user', -10);
    for (const token of [null, 'not-a-jwt', expired]) {
      const response = await gql(system.url, token, '{ jobs { nodes { id } } }');
      expect(response.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      expect(response.data ?? null).toBeNull();
    }
  });

  it('stops accepting a token the moment it expires, although verified tokens are remembered', async () => {
    const shortLived = await env.token('alice', 'user', 2);
    expect((await gql(system.url, shortLived, '{ jobs { nodes { id } } }')).errors).toBeUndefined();
    const refused = await waitFor(
      'the token to expire',
      async () => (await gql(system.url, shortLived, '{ jobs { nodes { id } } }')).errors?.[0]?.extensions?.code,
      10_000,
      200,
    );
    expect(refused).toBe('UNAUTHENTICATED');
  });

  it('refuses a token signed with another secret', async () => {
    const { mintToken } = await import('../../src/auth/tokens.js');
    const forged = await mintToken('another-secret-that-is-long-enough-000000', { sub: 'alice', role: 'admin' });
    const response = await gql(system.url, forged, '{ jobs { nodes { id } } }');
    expect(response.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('ends a subscription with UNAUTHENTICATED when the token expires', async () => {
    const shortLived = await env.token('alice', 'user', 2);
    const sub = subscribe<{ jobEvents: any }>('ws', system.url, shortLived, 'subscription { jobEvents { jobId } }');
    const outcome = await sub.done.then(
      () => 'completed',
      (error: unknown) => (error instanceof Error ? error.message : JSON.stringify(error)),
    );
    expect(outcome === 'completed' ? JSON.stringify(sub.results) : outcome).toContain('UNAUTHENTICATED');
  });
});

describe('ownership', () => {
  it("never shows bob alice's job, account or messages", async () => {
    expect((await gqlOk<{ job: unknown }>(system.url, bob, JOB, { id: aliceJobId })).job).toBeNull();
    const bobJobs = await gqlOk<{ jobs: { nodes: { id: string }[] } }>(system.url, bob, '{ jobs(first: 200) { nodes { id } } }');
    expect(bobJobs.jobs.nodes.map((n) => n.id)).not.toContain(aliceJobId);
    const messages = await gql(system.url, bob, 'query($a: ID!) { messages(accountId: $a) { nodes { id } } }', { a: aliceAccountId });
    expect(messages.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(
      (await gqlOk<{ account: unknown }>(system.url, bob, 'query($id: ID!) { account(id: $id) { id } }', { id: aliceAccountId })).account,
    ).toBeNull();
    expect((await gqlOk<{ accounts: unknown[] }>(system.url, bob, '{ accounts { id } }')).accounts).toEqual([]);
  });

  it("answers bob's cancel, retry and subscription on alice's job exactly like a missing job", async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    for (const mutation of ['cancelJob', 'retryJob']) {
      const theirs = await gql(system.url, bob, `mutation($id: ID!) { ${mutation}(id: $id) { id } }`, { id: aliceJobId });
      const none = await gql(system.url, bob, `mutation($id: ID!) { ${mutation}(id: $id) { id } }`, { id: missing });
      expect(theirs.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      expect(theirs.errors?.[0]?.message).toBe(none.errors?.[0]?.message.replace(missing, aliceJobId));
    }
    for (const transport of ['sse', 'ws'] as const) {
      const sub = subscribe<{ jobProgress: any }>(transport, system.url, bob, JOB_PROGRESS, { jobId: aliceJobId });
      const outcome = await sub.done.then(
        () => JSON.stringify(sub.results),
        (error: unknown) => (error instanceof Error ? error.message : JSON.stringify(error)),
      );
      expect(outcome).toContain('NOT_FOUND');
      expect(outcome).not.toContain('COMPLETED');
    }
  });

  it("streams to bob's dashboard only bob's job events, and everything to an admin", async () => {
    const bobDash = subscribe<{ jobEvents: any }>('sse', system.url, bob, 'subscription { jobEvents { jobId type status } }');
    const adminDash = subscribe<{ jobEvents: any }>('ws', system.url, admin, 'subscription { jobEvents { jobId type status } }');
    const bobAccount = (await gqlOk<{ createAccount: { id: string } }>(system.url, bob, CREATE_ACCOUNT, { name: 'bob' })).createAccount.id;
    // Both subscriptions are live once each has seen a marker job of bob's (jobEvents without `after` starts from now).
    const upload = (token: string, accountId: string) =>
      gqlUpload<{ importMbox: { id: string } }>(
        system.url,
        token,
        IMPORT_MBOX,
        { accountId, file: null },
        {
          path: 'file',
          content: buildMbox({ count: 3, seed: Math.floor(Math.random() * 1000) }).mbox,
          filename: 'x.mbox',
        },
      );
    let bobJob = '';
    await waitFor('dashboards to receive events', async () => {
      bobJob = (await upload(bob, bobAccount)).data!.importMbox.id;
      const seen = (dashboard: typeof bobDash) => dashboard.results.some((r) => r.data?.jobEvents.jobId === bobJob);
      return waitFor('the marker on both dashboards', () => seen(adminDash) && seen(bobDash), 2_000, 10).then(
        () => true,
        () => false,
      );
    });
    const aliceJob = (await upload(alice, aliceAccountId)).data!.importMbox.id;
    await waitFor('admin to see alice complete', () =>
      adminDash.results.some((r) => r.data?.jobEvents.jobId === aliceJob && r.data.jobEvents.status === 'COMPLETED'),
    );
    await waitFor('bob to see his job complete', () =>
      bobDash.results.some((r) => r.data?.jobEvents.jobId === bobJob && r.data.jobEvents.status === 'COMPLETED'),
    );
    bobDash.close();
    adminDash.close();
    expect(bobDash.results.every((r) => r.data?.jobEvents.jobId !== aliceJob)).toBe(true);
    expect(adminDash.results.some((r) => r.data?.jobEvents.jobId === bobJob)).toBe(true);
  });

  it('lets an admin see every job and the queues; a user gets FORBIDDEN for admin-only fields', async () => {
    expect((await gqlOk<{ job: { id: string } }>(system.url, admin, JOB, { id: aliceJobId })).job.id).toBe(aliceJobId);
    const stats = await gqlOk<{ queueStats: { queue: string; completed: number }[] }>(
      system.url,
      admin,
      '{ queueStats { queue completed waiting } }',
    );
    expect(stats.queueStats.find((q) => q.queue === 'import_mbox')!.completed).toBeGreaterThanOrEqual(1);
    for (const query of [
      '{ queueStats { queue } }',
      'mutation { updateSystemConfig(input: { archiveTrashPurgeEnabled: true }) { archiveTrashPurgeEnabled } }',
      'mutation { purgeArchiveTrash { id } }',
    ]) {
      const response = await gql(system.url, alice, query);
      expect(response.errors?.[0]?.extensions?.code, query).toBe('FORBIDDEN');
    }
  });
});

describe('protection', () => {
  it('masks unexpected errors and never returns a stack or SQL', async () => {
    const response = await gql(system.url, alice, '{ jobs(after: "Zm9vfGJhcg") { nodes { id } } }');
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(JSON.stringify(response)).not.toMatch(/stack|SELECT|at \//);
  });

  it('limits query depth and aliases', async () => {
    const aliases = Array.from({ length: 40 }, (_, i) => `a${i}: jobTypes { name }`).join(' ');
    const tooWide = await gql(system.url, alice, `{ ${aliases} }`);
    expect(tooWide.errors?.length).toBeGreaterThan(0);
    expect(tooWide.data ?? null).toBeNull();
  });

  it('refuses the form posts a cross-site page can send: without a token, and without a CSRF-proof header', async () => {
    const form = new FormData();
    form.set('operations', JSON.stringify({ query: '{ jobTypes { name } }' }));
    form.set('map', '{}');
    // A multipart post is an upload, admitted only with a token (which a browser form cannot send).
    const multipart = await fetch(system.url, { method: 'POST', body: form });
    expect(multipart.status).toBe(401);
    const urlEncoded = await fetch(system.url, { method: 'POST', body: new URLSearchParams({ query: '{ jobTypes { name } }' }) });
    expect(urlEncoded.status).toBe(403);
  });

  it('tells an event stream opened without a token (as an EventSource opens it) that it needs one', async () => {
    const url = new URL(system.url);
    url.searchParams.set('query', 'subscription { jobEvents { cursor } }');
    const response = await fetch(url, { headers: { accept: 'text/event-stream' } });
    expect(response.status).toBe(401);
    const body = await response.json();
    expect(body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(body.errors[0].message).toMatch(/EventSource/);
  });

  it('refuses an upload larger than the limit', async () => {
    const small = await startInProcess(env, { worker: false, vars: { MAX_UPLOAD_BYTES: '1000' } });
    try {
      const response = await gqlUpload(
        small.url,
        alice,
        IMPORT_MBOX,
        { accountId: aliceAccountId, file: null },
        {
          path: 'file',
          content: buildMbox({ count: 20, seed: 9 }).mbox,
          filename: 'big.mbox',
        },
      );
      expect(response.errors?.length).toBeGreaterThan(0);
      const { count } = await env.one<{ count: number }>("SELECT count(*)::int AS count FROM job WHERE payload->>'filename' = 'big.mbox'");
      expect(count).toBe(0);
    } finally {
      await small.stop();
    }
  });
});
