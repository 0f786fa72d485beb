import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import {
  ARCHIVE_MAILS,
  ARCHIVES,
  blobPath,
  STORED_BLOB,
  storedBytes,
  createAccount,
  download,
  ENCRYPT_ARCHIVES,
  errorCode,
  importMailbox,
  runJob,
  waitForJob,
} from '../helpers/archive-helpers.js';
import type { StoredBlob } from '../../src/mail/message-store.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let bob: string;
let accountId: string;

interface ArchiveRow {
  id: string;
  message_id: string;
  encrypted: boolean;
  files: { kind: string; key: string; size: number; iv?: string; authTag?: string }[];
}

/** Plaintext of every archived file, by archive id, taken before encryption. */
const plaintexts = new Map<string, Buffer[]>();

const archiveRows = (account: string) =>
  env.sql<ArchiveRow>('SELECT id, message_id, encrypted, files FROM archive WHERE account_id = $1 ORDER BY id', [account]);

async function rawEml(messageId: string): Promise<Buffer> {
  return storedBytes(env, await env.one<StoredBlob>(`SELECT ${STORED_BLOB} FROM message WHERE id = $1`, [messageId]));
}

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env);
  [alice, bob] = await Promise.all([env.token('alice'), env.token('bob')]);
  accountId = await createAccount(system.url, alice, 'secret-mail');
  await importMailbox(system.url, alice, accountId, buildMbox({ count: 12, attachmentEvery: 3, seed: 8 }).mbox);
  // Archive all but one message now; the last one comes after the first encryption run.
  const last = await env.one<{ id: string }>('SELECT id FROM message WHERE account_id = $1 ORDER BY id DESC LIMIT 1', [accountId]);
  const ids = (await env.sql<{ id: string }>('SELECT id FROM message WHERE account_id = $1 AND id <> $2', [accountId, last.id])).map(
    (row) => row.id,
  );
  const job = await runJob(system.url, alice, ARCHIVE_MAILS, { input: { accountId, ids } });
  expect(job.output.archived).toBe(11);
  for (const archive of await archiveRows(accountId)) {
    plaintexts.set(archive.id, await Promise.all(archive.files.map((file) => readFile(blobPath(env, file.key)))));
  }
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

describe('encrypt_archives', () => {
  it('seals every file with AES-256-GCM under new keys, removes the plaintext, and downloads decrypt transparently', async () => {
    const before = await archiveRows(accountId);
    const job = await runJob(system.url, alice, ENCRYPT_ARCHIVES, { accountId });
    expect(job).toMatchObject({ type: 'encrypt_archives', status: 'COMPLETED', processed: 11, total: 11 });
    expect(job.output).toEqual({ encrypted: 11, skipped: 0, missing: 0 });

    const ivs = new Set<string>();
    for (const archive of await archiveRows(accountId)) {
      expect(archive.encrypted).toBe(true);
      const old = before.find((row) => row.id === archive.id)!;
      const originals = plaintexts.get(archive.id)!;
      for (const [index, file] of archive.files.entries()) {
        expect(file.key).not.toBe(old.files[index]!.key);
        expect(existsSync(blobPath(env, old.files[index]!.key))).toBe(false);
        expect(Buffer.from(file.iv!, 'base64')).toHaveLength(12);
        expect(Buffer.from(file.authTag!, 'base64')).toHaveLength(16);
        ivs.add(file.iv!);
        const stored = await readFile(blobPath(env, file.key));
        expect(stored).toHaveLength(originals[index]!.length);
        expect(stored.equals(originals[index]!)).toBe(false);
        expect(file.size).toBe(originals[index]!.length);
      }
      const eml = await download(system.url, alice, `/archives/${archive.id}/eml`);
      expect(eml.status).toBe(200);
      expect(eml.body.equals(await rawEml(archive.message_id))).toBe(true);
    }
    // A random IV per file.
    expect(ivs.size).toBe((await archiveRows(accountId)).reduce((sum, archive) => sum + archive.files.length, 0));

    const { archives } = await gqlOk<{ archives: any }>(system.url, alice, ARCHIVES, { accountId, filter: { encrypted: true } });
    expect(archives.nodes).toHaveLength(11);
    expect(archives.nodes.every((node: any) => node.encrypted)).toBe(true);
    const unencrypted = await gqlOk<{ archives: any }>(system.url, alice, ARCHIVES, { accountId, filter: { encrypted: false } });
    expect(unencrypted.archives.nodes).toHaveLength(0);
    const leak = await gql(system.url, alice, `query($a: ID!) { archives(accountId: $a) { nodes { files { iv authTag } } } }`, {
      a: accountId,
    });
    expect(leak.errors?.length).toBeGreaterThan(0);
  });

  it('skips archives already encrypted and encrypts only new ones on a re-run', async () => {
    const again = await runJob(system.url, alice, ENCRYPT_ARCHIVES, { accountId });
    expect(again.output).toEqual({ encrypted: 0, skipped: 11, missing: 0 });

    const late = await runJob(system.url, alice, ARCHIVE_MAILS, { input: { accountId, filter: { archived: false } } });
    expect(late.output).toMatchObject({ matched: 1, archived: 1 });
    const third = await runJob(system.url, alice, ARCHIVE_MAILS, { input: { accountId, filter: {} } });
    expect(third.output).toMatchObject({ archived: 0, skipped: 12 });
    const run = await runJob(system.url, alice, ENCRYPT_ARCHIVES, { accountId });
    expect(run.output).toEqual({ encrypted: 1, skipped: 11, missing: 0 });
    expect((await archiveRows(accountId)).every((archive) => archive.encrypted)).toBe(true);
  });

  it('removes plaintext left behind by a crash between the row update and the deletes', async () => {
    // One of the archives whose plaintext was kept before the first run (the twelfth came later).
    const archive = (await archiveRows(accountId)).find((row) => plaintexts.has(row.id));
    const plaintextKey = archive!.files[0]!.key.replace(/\.gcm$/, '');
    await writeFile(blobPath(env, plaintextKey), plaintexts.get(archive!.id)![0]!);
    const run = await runJob(system.url, alice, ENCRYPT_ARCHIVES, { accountId });
    expect(run.output).toEqual({ encrypted: 0, skipped: 12, missing: 0 });
    expect(existsSync(blobPath(env, plaintextKey))).toBe(false);
  });

  it('refuses to serve a tampered file: a clear 500 and no plaintext', async () => {
    const [tampered, intact] = await archiveRows(accountId);
    const path = blobPath(env, tampered!.files[0]!.key);
    await copyFile(path, `${path}.bak`);
    const bytes = await readFile(path);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = bytes[middle]! ^ 0x01;
    await writeFile(path, bytes);
    try {
      const response = await download(system.url, alice, `/archives/${tampered!.id}/eml`);
      expect(response.status).toBe(500);
      expect(response.contentType).toMatch(/application\/json/);
      expect(JSON.parse(response.body.toString())).toEqual({ error: 'archive integrity check failed' });
      // The other archives are unaffected.
      expect((await download(system.url, alice, `/archives/${intact!.id}/eml`)).status).toBe(200);
    } finally {
      await copyFile(`${path}.bak`, path);
    }
    const repaired = await download(system.url, alice, `/archives/${tampered!.id}/eml`);
    expect(repaired.body.equals(await rawEml(tampered!.message_id))).toBe(true);
  });

  it('seals each archive exactly once when two runs race on the same account', async () => {
    const account = await createAccount(system.url, alice, 'race');
    await importMailbox(system.url, alice, account, buildMbox({ count: 30, attachmentEvery: 2, seed: 13 }).mbox);
    const archived = await runJob(system.url, alice, ARCHIVE_MAILS, { input: { accountId: account, filter: {} } });
    const total = archived.output.archived as number;
    const [first, second] = await Promise.all(
      [1, 2].map(
        async () =>
          (await gqlOk<{ encryptArchives: { id: string } }>(system.url, alice, ENCRYPT_ARCHIVES, { accountId: account })).encryptArchives,
      ),
    );
    const jobs = await Promise.all([waitForJob(system.url, alice, first!.id), waitForJob(system.url, alice, second!.id)]);
    expect(jobs.map((job) => job.status)).toEqual(['COMPLETED', 'COMPLETED']);
    expect(jobs[0].output.encrypted + jobs[1].output.encrypted).toBe(total);
    for (const archive of await archiveRows(account)) {
      expect(archive.encrypted).toBe(true);
      const eml = await download(system.url, alice, `/archives/${archive.id}/eml`);
      expect(eml.status).toBe(200);
      expect(eml.body.equals(await rawEml(archive.message_id))).toBe(true);
    }
  });

  it('keeps other owners out: NOT_FOUND for the mutation, 404 for the download', async () => {
    const [archive] = await archiveRows(accountId);
    expect(await errorCode(system.url, bob, ENCRYPT_ARCHIVES, { accountId })).toBe('NOT_FOUND');
    expect((await download(system.url, bob, `/archives/${archive!.id}/eml`)).status).toBe(404);
    expect((await download(system.url, null, `/archives/${archive!.id}/eml`)).status).toBe(401);
  });
});

describe('encrypt_archives without ARCHIVE_KEY', () => {
  let keyless: TestEnv;
  let keylessSystem: InProcessSystem;
  let keyedApi: InProcessSystem;

  beforeAll(async () => {
    keyless = await createTestEnv({ ARCHIVE_KEY: '' });
    keylessSystem = await startInProcess(keyless);
    // A misconfigured deployment: an API that has a key in front of a worker that has none.
    keyedApi = await startInProcess(keyless, { worker: false, vars: { ARCHIVE_KEY: randomBytes(32).toString('base64') } });
  });

  afterAll(async () => {
    await keyedApi?.stop();
    await keylessSystem?.stop();
    await keyless?.cleanup();
  });

  it('is refused with BAD_USER_INPUT and a clear message, and no job is created', async () => {
    const token = await keyless.token('carol');
    const account = await createAccount(keylessSystem.url, token, 'plain');
    const response = await gql(keylessSystem.url, token, ENCRYPT_ARCHIVES, { accountId: account });
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(response.errors?.[0]?.message).toMatch(/ARCHIVE_KEY/);
    expect(await keyless.sql("SELECT id FROM job WHERE type = 'encrypt_archives'")).toHaveLength(0);
  });

  it('fails permanently in a worker that has no key, after one attempt', async () => {
    const token = await keyless.token('carol');
    const account = await createAccount(keyedApi.url, token, 'mismatch');
    const { encryptArchives } = await gqlOk<{ encryptArchives: { id: string } }>(keyedApi.url, token, ENCRYPT_ARCHIVES, {
      accountId: account,
    });
    const job = await waitForJob(keylessSystem.url, token, encryptArchives.id);
    expect(job).toMatchObject({ status: 'FAILED', attempts: 1 });
    expect(job.error).toMatch(/ARCHIVE_KEY/);
  });
});
