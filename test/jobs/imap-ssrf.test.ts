// The worker must not become a port scanner for the operator's network (SPEC §6, issue 7 defect 1).
// This file runs with IMAP_ALLOWED_HOSTS empty, as production does by default; the allow-listed test
// Dovecot is exercised by import-imap.test.ts.
import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAP_CONNECT_FAILED } from '../../src/mail/imap-source.js';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import { JOB_FIELDS } from '../helpers/fragments.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const CREATE_ACCOUNT = `mutation($name: String!, $imap: ImapSettingsInput) {
  createAccount(input: { name: $name, imap: $imap }) { id imap { host port } }
}`;

const UPDATE_ACCOUNT_IMAP = `mutation($id: ID!, $imap: ImapSettingsInput) {
  updateAccountImap(id: $id, imap: $imap) { id imap { host port } }
}`;

const IMPORT_IMAP = `mutation($accountId: ID!) { importImap(accountId: $accountId) { id } }`;

const JOB = `query($id: ID!) { job(id: $id) { ${JOB_FIELDS} } }`;

/** Literal addresses inside the operator's network, in the spellings a user might try. */
const INTERNAL_HOSTS = [
  '127.0.0.1',
  '10.0.0.1',
  '169.254.169.254',
  '[::1]',
  '::1',
  '::ffff:127.0.0.1',
  'fd00::1',
  '0.0.0.0',
  '192.168.0.1',
  '100.64.0.1',
  'fe80::1',
  '2130706433',
  '0x7f.1',
  '127.1',
  'localhost',
  'LOCALHOST.',
];

let env: TestEnv;
let system: InProcessSystem;
let token: string;
/** Counts connections, so a refusal can be shown to have happened before any connect. */
let trap: net.Server;
let trapPort: number;
let trapConnections = 0;

function imap(host: string, port = 993) {
  return { host, port, secure: false, user: 'someone', password: 'pw' };
}

async function accountRows(): Promise<string[]> {
  const rows = await env.sql<{ row: string }>('SELECT row_to_json(account)::text AS row FROM account ORDER BY id');
  return rows.map((r) => r.row);
}

async function finished(jobId: string): Promise<any> {
  return waitFor(
    `job ${jobId} to finish`,
    async () => {
      const job = (await gqlOk<{ job: any }>(system.url, token, JOB, { id: jobId })).job;
      return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(job.status) ? job : null;
    },
    30_000,
  );
}

beforeAll(async () => {
  env = await createTestEnv({ IMAP_ALLOWED_HOSTS: '' });
  system = await startInProcess(env);
  token = await env.token('mallory');
  trap = net.createServer((socket) => {
    trapConnections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
  trapPort = (trap.address() as net.AddressInfo).port;
});

afterAll(async () => {
  trap?.close();
  await system?.stop();
  await env?.cleanup();
});

describe('IMAP hosts inside the network', () => {
  it.each(INTERNAL_HOSTS)('createAccount refuses %s with BAD_USER_INPUT and stores nothing', async (host) => {
    const before = await accountRows();
    const response = await gql(system.url, token, CREATE_ACCOUNT, { name: 'probe', imap: imap(host) });
    expect(response.data?.createAccount ?? null).toBeNull();
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(response.errors?.[0]?.message).toMatch(/^imap\.host: /);
    expect(await accountRows()).toEqual(before);
  });

  it.each(INTERNAL_HOSTS)('updateAccountImap refuses %s with BAD_USER_INPUT and changes nothing', async (host) => {
    const created = await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, {
      name: 'public',
      imap: imap('93.184.215.14'),
    });
    const before = await accountRows();
    const response = await gql(system.url, token, UPDATE_ACCOUNT_IMAP, { id: created.createAccount.id, imap: imap(host) });
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(await accountRows()).toEqual(before);
  });

  it('refuses ports outside 1-65535 and hosts that are not host names', async () => {
    const before = await accountRows();
    const bad = [
      imap('imap.example.com', 0),
      imap('imap.example.com', 65536),
      imap('imap.example.com', -1),
      imap('imap example.com'),
      imap('imap\u0000.example.com'),
      imap(`${`${'a'.repeat(60)}.`.repeat(5)}com`),
      imap('imap.example.com:143'),
      imap('http://imap.example.com'),
      imap('fe80::1%eth0'),
      imap('1.2.3.4.5'),
    ];
    for (const settings of bad) {
      const response = await gql(system.url, token, CREATE_ACCOUNT, { name: 'probe', imap: settings });
      expect(response.errors?.[0]?.extensions?.code, JSON.stringify(settings)).toBe('BAD_USER_INPUT');
      // A bounded message, never the whole input back.
      expect(response.errors![0]!.message.length).toBeLessThan(400);
    }
    expect(await accountRows()).toEqual(before);
  });

  it('accepts public addresses and host names, and stores an IPv6 literal without brackets', async () => {
    for (const [host, stored] of [
      ['imap.example.com', 'imap.example.com'],
      ['93.184.215.14', '93.184.215.14'],
      ['[2606:4700:4700::1111]', '2606:4700:4700::1111'],
    ] as const) {
      const data = await gqlOk<{ createAccount: any }>(system.url, token, CREATE_ACCOUNT, { name: 'ok', imap: imap(host) });
      expect(data.createAccount.imap).toEqual({ host: stored, port: 993 });
    }
  });

  it('fails the import, at once and with only the generic message, when the stored host turns out to be inside', async () => {
    // Rows written before the check existed, or names whose DNS answer changed after it: the
    // connect-time check is the one that counts. `localhost` resolves through /etc/hosts.
    for (const host of ['localhost', '127.0.0.1', '::ffff:127.0.0.1', '127.1']) {
      const created = await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, {
        name: 'rebound',
        imap: { ...imap('imap.example.com', trapPort), password: 'pw' },
      });
      const accountId = created.createAccount.id;
      await env.sql('UPDATE account SET imap_host = $1 WHERE id = $2', [host, accountId]);
      const job = await finished(
        (await gqlOk<{ importImap: { id: string } }>(system.url, token, IMPORT_IMAP, { accountId })).importImap.id,
      );
      expect(job, host).toMatchObject({ status: 'FAILED', attempts: 1, error: IMAP_CONNECT_FAILED });
    }
    expect(trapConnections).toBe(0);
  });

  it('fails the import of a host name that passes the API check but resolves inside', async (ctx) => {
    // The machine's own name: accepted as a name, resolved by the system resolver at connect time
    // (to 127.0.x.x or the container's private address on most machines).
    const name = os.hostname();
    const addresses = await dns.promises.lookup(name, { all: true }).catch(() => []);
    const inside =
      addresses.length > 0 &&
      addresses.every(({ address }) => /^(127\.|10\.|172\.(1[6-9]|2\d|3[01])\.|192\.168\.|::1$|f[cd])/.test(address));
    if (!inside || !/^[a-z0-9-]+(\.[a-z0-9-]+)*$/i.test(name) || name.toLowerCase() === 'localhost') {
      ctx.skip();
      return;
    }
    const created = await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, {
      name: 'own-name',
      imap: imap(name, trapPort),
    });
    const accountId = created.createAccount.id;
    const job = await finished((await gqlOk<{ importImap: { id: string } }>(system.url, token, IMPORT_IMAP, { accountId })).importImap.id);
    expect(job).toMatchObject({ status: 'FAILED', attempts: 1, error: IMAP_CONNECT_FAILED });
    expect(trapConnections).toBe(0);
  });
});
