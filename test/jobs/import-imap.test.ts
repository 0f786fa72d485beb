// Runs against a real Dovecot on loopback (started by `.ci/run`, or by hand with `bash .ci/imap-server.sh`).
import { randomBytes, randomUUID } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importImapJob } from '../../src/jobs/import-imap.job.js';
import {
  appendMessages,
  createImapMailbox,
  deleteImapMailbox,
  IMAP_CONNECT_FAILED,
  type ImapSettings,
} from '../../src/mail/imap-source.js';
import { gql, gqlOk, subscribe } from '../helpers/graphql-client.js';
import { JOB_FIELDS, JOB_PROGRESS } from '../helpers/fragments.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMessage } from '../helpers/mbox-fixture.js';
import { freePort } from '../helpers/processes.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const imapHost = process.env.IMAP_TEST_HOST ?? '127.0.0.1';
const imapPort = Number(process.env.IMAP_TEST_PORT ?? 10143);
const runId = randomBytes(4).toString('hex');
/** Small enough for a test to exceed it, far above the other messages here. */
const MAX_MESSAGE_BYTES = 64 * 1024;

const CREATE_IMAP_ACCOUNT = `mutation($name: String!, $imap: ImapSettingsInput) {
  createAccount(input: { name: $name, imap: $imap }) { id }
}`;

const ACCOUNT = `query($id: ID!) { account(id: $id) { id name imap { host port secure user hasPassword } } }`;

const UPDATE_ACCOUNT_IMAP = `mutation($id: ID!, $imap: ImapSettingsInput) {
  updateAccountImap(id: $id, imap: $imap) { id imap { host port secure user hasPassword } }
}`;

const IMPORT_IMAP = `mutation($accountId: ID!, $mailbox: String, $options: EnqueueOptions) {
  importImap(accountId: $accountId, mailbox: $mailbox, options: $options) {
    ${JOB_FIELDS}
    input { accountId mailbox }
  }
}`;

const IMAP_JOB = `query($id: ID!) { job(id: $id) { ${JOB_FIELDS} payload
  ... on ImportImapJob {
    input { accountId mailbox }
    output { mailbox fetched imported duplicates malformed reset errors { uid error } }
  }
} }`;

let env: TestEnv;
let system: InProcessSystem;
let token: string;
/** Mailboxes made by this file, removed afterwards (INBOX cannot be). */
const cleanup: Array<{ settings: ImapSettings; mailbox: string }> = [];

/** Any "test-*" user exists on the test server with password "pw" and an empty mail tree of its own. */
function imapUser(label: string): ImapSettings {
  return { host: imapHost, port: imapPort, secure: false, user: `test-import-imap-${runId}-${label}`, password: 'pw' };
}

function mailboxName(settings: ImapSettings, label: string): string {
  const mailbox = `imp-${label}-${randomBytes(3).toString('hex')}`;
  cleanup.push({ settings, mailbox });
  return mailbox;
}

function message(label: string, n: number): Buffer {
  return Buffer.from(
    buildMessage({
      subject: `${label} message ${n}`,
      messageId: `${label}-${n}.${runId}@jobwire.test`,
      date: new Date(Date.UTC(2025, 0, 1, 12, 0, n % 60)),
      text: `Body of ${label} message ${n}.\n`,
    }),
  );
}

function messages(label: string, from: number, to: number): Buffer[] {
  return Array.from({ length: to - from + 1 }, (_, i) => message(label, from + i));
}

function subjects(label: string, from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `${label} message ${from + i}`);
}

async function imapGreets(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: imapHost, port: imapPort });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(3_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (chunk) => done(chunk.toString('latin1').startsWith('* OK')));
  });
}

async function createImapAccount(name: string, imap: ImapSettings | null, as = token): Promise<string> {
  const data = await gqlOk<{ createAccount: { id: string } }>(system.url, as, CREATE_IMAP_ACCOUNT, { name, imap });
  return data.createAccount.id;
}

async function importImap(accountId: string, mailbox?: string, options?: Record<string, unknown>, as = token): Promise<any> {
  return (await gqlOk<{ importImap: any }>(system.url, as, IMPORT_IMAP, { accountId, mailbox, options })).importImap;
}

async function finished(jobId: string, timeoutMs = 30_000, as = token): Promise<any> {
  return waitFor(
    `job ${jobId} to finish`,
    async () => {
      const job = (await gqlOk<{ job: any }>(system.url, as, IMAP_JOB, { id: jobId })).job;
      return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(job.status) ? job : null;
    },
    timeoutMs,
  );
}

async function storedSubjects(accountId: string): Promise<string[]> {
  const rows = await env.sql<{ subject: string }>('SELECT subject FROM message WHERE account_id = $1 ORDER BY subject', [accountId]);
  return rows.map((row) => row.subject);
}

async function syncState(accountId: string): Promise<Array<{ mailbox: string; uid_validity: string | null; last_uid: number }>> {
  return env.sql('SELECT mailbox, uid_validity, last_uid FROM imap_sync_state WHERE account_id = $1 ORDER BY mailbox', [accountId]);
}

beforeAll(async () => {
  if (!(await imapGreets())) {
    throw new Error(
      `No IMAP server answers on ${imapHost}:${imapPort}: these tests need the Dovecot test server. ` +
        'Start it with `bash .ci/imap-server.sh` (as root; `.ci/run` does it), or point IMAP_TEST_HOST / IMAP_TEST_PORT at one.',
    );
  }
  // IMAP_ALLOWED_HOSTS=127.0.0.1 (the test Dovecot) comes from the shared test environment.
  env = await createTestEnv({ MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) });
  system = await startInProcess(env);
  token = await env.token('alice');
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
  for (const { settings, mailbox } of cleanup) await deleteImapMailbox(settings, mailbox).catch(() => undefined);
});

describe('import_imap', () => {
  it('imports INBOX with progress up to COMPLETED, then only the new messages on each re-run', async () => {
    const settings = imapUser('incremental');
    // More than one batch (100), so the sync state is written more than once.
    await appendMessages(settings, 'INBOX', messages('inc', 1, 130));
    const accountId = await createImapAccount('imap-inbox', settings);

    const job = await importImap(accountId);
    expect(job).toMatchObject({
      type: 'import_imap',
      status: 'PENDING',
      trigger: 'API',
      maxAttempts: 5,
      input: { accountId, mailbox: 'INBOX' },
    });
    const sub = subscribe<{ jobProgress: any }>('sse', system.url, token, JOB_PROGRESS, { jobId: job.id });
    await sub.done;
    const events = sub.results.map((r) => r.data!.jobProgress);
    expect(events.at(-1)).toMatchObject({ status: 'COMPLETED', error: null, progress: 100, processed: 130, total: 130 });
    for (let i = 1; i < events.length; i++) expect(events[i].progress).toBeGreaterThanOrEqual(events[i - 1].progress);

    const first = await finished(job.id);
    expect(first.attempts).toBe(1);
    expect(first.output).toEqual({ mailbox: 'INBOX', fetched: 130, imported: 130, duplicates: 0, malformed: 0, reset: true, errors: [] });
    expect(await storedSubjects(accountId)).toEqual(subjects('inc', 1, 130).sort());
    const [state] = await syncState(accountId);
    expect(state).toMatchObject({ mailbox: 'INBOX', last_uid: 130 });
    expect(state!.uid_validity).toMatch(/^[1-9]\d*$/);

    // New mail: three new messages, a copy of one already imported, and bytes that are no message.
    await appendMessages(settings, 'INBOX', [...messages('inc', 131, 133), message('inc', 7), Buffer.from('no headers at all\r\n')]);
    const second = await finished((await importImap(accountId, 'INBOX')).id);
    expect(second).toMatchObject({ status: 'COMPLETED', processed: 5, total: 5 });
    expect(second.output).toEqual({
      mailbox: 'INBOX',
      fetched: 5,
      imported: 3,
      duplicates: 1,
      malformed: 1,
      reset: false,
      errors: [{ uid: 135, error: expect.stringMatching(/header/i) }],
    });
    expect(await storedSubjects(accountId)).toEqual(subjects('inc', 1, 133).sort());
    expect(await syncState(accountId)).toEqual([{ mailbox: 'INBOX', uid_validity: state!.uid_validity, last_uid: 135 }]);

    // Nothing new: nothing fetched.
    const third = await finished((await importImap(accountId)).id);
    expect(third).toMatchObject({ status: 'COMPLETED', processed: 0, total: 0, progress: 100 });
    expect(third.output).toMatchObject({ fetched: 0, imported: 0, duplicates: 0, malformed: 0, reset: false });
    expect(await storedSubjects(accountId)).toHaveLength(133);
  });

  it('fetches the whole mailbox again after a UIDVALIDITY change, and stores nothing twice', async () => {
    const settings = imapUser('reset');
    const mailbox = mailboxName(settings, 'reset');
    await appendMessages(settings, mailbox, messages('reset', 1, 5));
    const accountId = await createImapAccount('imap-reset', settings);

    const first = await finished((await importImap(accountId, mailbox)).id);
    expect(first.output).toMatchObject({ mailbox, fetched: 5, imported: 5, duplicates: 0, reset: true });
    const [before] = await syncState(accountId);

    // Deleting and recreating the mailbox restarts its UIDs under a new UIDVALIDITY.
    await deleteImapMailbox(settings, mailbox);
    await createImapMailbox(settings, mailbox);
    await appendMessages(settings, mailbox, [...messages('reset', 1, 5), ...messages('reset', 6, 7)]);

    const second = await finished((await importImap(accountId, mailbox)).id);
    expect(second).toMatchObject({ status: 'COMPLETED', processed: 7, total: 7 });
    expect(second.output).toMatchObject({ mailbox, fetched: 7, imported: 2, duplicates: 5, malformed: 0, reset: true });
    expect(await storedSubjects(accountId)).toEqual(subjects('reset', 1, 7).sort());
    const [after] = await syncState(accountId);
    expect(after).toMatchObject({ mailbox, last_uid: 7 });
    expect(after!.uid_validity).not.toBe(before!.uid_validity);
  });

  it('resumes after a crash from the last stored batch, without fetching it again', async () => {
    const settings = imapUser('crash');
    const mailbox = mailboxName(settings, 'crash');
    await appendMessages(settings, mailbox, messages('crash', 1, 130));
    const accountId = await createImapAccount('imap-crash', settings);

    // The handler as the worker runs it, dying at message 120: the first batch (100) is stored, 101..119 are not.
    const services = system.workerServices!;
    let seen = 0;
    // Its row, ACTIVE on attempt 1, as the worker's start leaves it: a batch is stored only for the job's current attempt.
    const jobId = randomUUID();
    await env.sql(
      `INSERT INTO job (id, type, status, attempts, max_attempts, payload, trigger, owner_id, created_at, updated_at)
       VALUES ($1, 'import_imap', 'ACTIVE', 1, 5, '{}', 'API', 'alice', now(), now())`,
      [jobId],
    );
    const crash = importImapJob.handler(
      { accountId, mailbox },
      {
        jobId,
        ownerId: 'alice',
        trigger: 'API',
        attempt: 1,
        run: 1,
        em: services.orm.em.fork() as never,
        progress: () => undefined,
        setMetadata: () => undefined,
        log: { info: () => undefined, warn: () => undefined, error: () => undefined },
        signal: new AbortController().signal,
        checkpoint: () => {
          if (++seen === 120) throw new Error('simulated crash');
        },
        logger: services.logger,
        storage: services.storage,
        config: services.config,
        jobs: { cancel: () => Promise.reject(new Error('unused')), retry: () => Promise.reject(new Error('unused')) },
      },
    );
    await expect(crash).rejects.toThrow('simulated crash');
    expect(await syncState(accountId)).toEqual([{ mailbox, uid_validity: expect.any(String), last_uid: 100 }]);
    expect(await storedSubjects(accountId)).toHaveLength(100);

    const resumed = await finished((await importImap(accountId, mailbox)).id);
    expect(resumed).toMatchObject({ status: 'COMPLETED', processed: 30, total: 30 });
    expect(resumed.output).toMatchObject({ fetched: 30, imported: 30, duplicates: 0, reset: false });
    expect(await storedSubjects(accountId)).toEqual(subjects('crash', 1, 130).sort());
  });

  it('fails a wrong password at once, with a clear error that never contains the password', async () => {
    const settings = imapUser('auth');
    const mailbox = mailboxName(settings, 'auth');
    await appendMessages(settings, mailbox, messages('auth', 1, 2));
    const password = `Wr0ng-${randomBytes(6).toString('hex')}-pässwörd`;
    const accountId = await createImapAccount('imap-auth', { ...settings, password });

    const job = await importImap(accountId, mailbox);
    const sub = subscribe<{ jobProgress: any }>('ws', system.url, token, JOB_PROGRESS, { jobId: job.id });
    const failed = await finished(job.id);
    await sub.done;
    expect(failed).toMatchObject({ status: 'FAILED', attempts: 1, maxAttempts: 5, output: null });
    expect(failed.error).toContain(`IMAP login as "${settings.user}" on ${imapHost}:${imapPort} was refused`);
    expect(failed.error).toContain('updateAccountImap');
    expect(sub.results.at(-1)!.data!.jobProgress).toMatchObject({ status: 'FAILED', error: failed.error });

    // Neither the API, the job row, the events nor the account's stored settings hold it in clear.
    const account = await gqlOk<{ account: any }>(system.url, token, ACCOUNT, { id: accountId });
    expect(account.account.imap).toEqual({ host: imapHost, port: imapPort, secure: false, user: settings.user, hasPassword: true });
    for (const text of [JSON.stringify(failed), JSON.stringify(account), JSON.stringify(sub.results)]) expect(text).not.toContain(password);
    const rows = await env.sql<{ row: string }>('SELECT row_to_json(job)::text AS row FROM job WHERE id = $1', [job.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.row).not.toContain(password);
    const stored = await env.one<{ row: string }>('SELECT row_to_json(account)::text AS row FROM account WHERE id = $1', [accountId]);
    expect(stored.row).not.toContain(password);
    expect(await storedSubjects(accountId)).toEqual([]);

    // The right password, set without recreating the account, makes the next import work.
    const updated = await gqlOk<{ updateAccountImap: any }>(system.url, token, UPDATE_ACCOUNT_IMAP, { id: accountId, imap: settings });
    expect(updated.updateAccountImap.imap).toMatchObject({ user: settings.user, hasPassword: true });
    expect(JSON.stringify(updated)).not.toContain('"pw"');
    const retried = await finished((await importImap(accountId, mailbox)).id);
    expect(retried.output).toMatchObject({ fetched: 2, imported: 2 });
  });

  it('updateAccountImap keeps the sync state for a new password, forgets it for another user, and removes settings', async () => {
    const settings = imapUser('update');
    const mailbox = mailboxName(settings, 'update');
    await appendMessages(settings, mailbox, messages('update', 1, 3));
    const accountId = await createImapAccount('imap-update', settings);
    await finished((await importImap(accountId, mailbox)).id);
    expect(await syncState(accountId)).toHaveLength(1);

    await gqlOk(system.url, token, UPDATE_ACCOUNT_IMAP, { id: accountId, imap: { ...settings, password: 'pw' } });
    expect(await syncState(accountId)).toHaveLength(1);

    const other = imapUser('update-other');
    await gqlOk(system.url, token, UPDATE_ACCOUNT_IMAP, { id: accountId, imap: other });
    expect(await syncState(accountId)).toHaveLength(0);

    const removed = await gqlOk<{ updateAccountImap: any }>(system.url, token, UPDATE_ACCOUNT_IMAP, { id: accountId, imap: null });
    expect(removed.updateAccountImap.imap).toBeNull();
    const response = await gql(system.url, token, IMPORT_IMAP, { accountId, mailbox });
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    const bob = await env.token('bob');
    const foreign = await gql(system.url, bob, UPDATE_ACCOUNT_IMAP, { id: accountId, imap: settings });
    expect(foreign.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('fails a missing mailbox at once', async () => {
    const settings = imapUser('missing');
    const accountId = await createImapAccount('imap-missing', settings);
    const failed = await finished((await importImap(accountId, 'no-such-mailbox')).id);
    expect(failed).toMatchObject({ status: 'FAILED', attempts: 1 });
    expect(failed.error).toBe(`mailbox "no-such-mailbox" does not exist on ${imapHost}:${imapPort}`);
  });

  it('retries an unreachable server with backoff (DELAYED between attempts), then FAILED', async () => {
    const port = await freePort();
    const accountId = await createImapAccount('imap-down', { host: '127.0.0.1', port, secure: false, user: 'nobody', password: 'pw' });
    // Delayed a little so the subscription is live before the first attempt runs.
    const job = await importImap(accountId, undefined, { delayMs: 1_000 });
    const sub = subscribe<{ jobProgress: any }>('sse', system.url, token, JOB_PROGRESS, { jobId: job.id });
    const failed = await finished(job.id);
    await sub.done;

    expect(failed).toMatchObject({ status: 'FAILED', attempts: 5, maxAttempts: 5 });
    // Only the generic text: the cause (ECONNREFUSED) is in the worker log, not in the job.
    expect(failed.error).toBe(IMAP_CONNECT_FAILED);
    // Every attempt is on record: four sent the job back to wait, the fifth failed it.
    const { job: record } = await gqlOk<{ job: { attemptHistory: { number: number; outcome: string; error: string | null }[] } }>(
      system.url,
      token,
      'query($id: ID!) { job(id: $id) { attemptHistory { number outcome error } } }',
      { id: job.id },
    );
    expect(record.attemptHistory.map((a) => [a.number, a.outcome, a.error])).toEqual([
      [1, 'RETRIED', IMAP_CONNECT_FAILED],
      [2, 'RETRIED', IMAP_CONNECT_FAILED],
      [3, 'RETRIED', IMAP_CONNECT_FAILED],
      [4, 'RETRIED', IMAP_CONNECT_FAILED],
      [5, 'FAILED', IMAP_CONNECT_FAILED],
    ]);
    // The subscriber saw the job wait between attempts with the error, and end FAILED. Not every
    // transition: two changes the replica reads at once reach it as the later one (the stream folds).
    const statuses = sub.results.map((r) => r.data!.jobProgress);
    const waits = statuses.filter((e) => e.status === 'DELAYED' && e.error);
    expect(waits.length).toBeGreaterThanOrEqual(1);
    expect(waits.every((e) => e.error === IMAP_CONNECT_FAILED)).toBe(true);
    expect(statuses.at(-1)).toMatchObject({ status: 'FAILED' });
  });

  it('stores the same error for a closed port, TLS against a plaintext server and a port that does not speak IMAP', async () => {
    // Accepts, says something that is not an IMAP greeting, and hangs up (an SSH or SMTP port, say).
    const other = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.end('SSH-2.0-OpenSSH_9.6\r\n');
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const targets: Array<Partial<ImapSettings>> = [
        { port: await freePort() },
        { port: imapPort, secure: true },
        { port: (other.address() as net.AddressInfo).port },
      ];
      const jobs = [];
      for (const [i, target] of targets.entries()) {
        const accountId = await createImapAccount(`imap-probe-${i}`, { ...imapUser(`probe-${i}`), ...target });
        jobs.push(await finished((await importImap(accountId)).id));
      }
      for (const job of jobs) {
        expect(job).toMatchObject({ status: 'FAILED', attempts: 5, error: IMAP_CONNECT_FAILED, output: null });
      }
      // Nothing else about the job differs either: its payload is the only place the target shows.
      const rows = await env.sql<{ error: string }>('SELECT error FROM job WHERE id = ANY($1::uuid[])', [jobs.map((j) => j.id)]);
      expect(rows.map((r) => r.error)).toEqual([IMAP_CONNECT_FAILED, IMAP_CONNECT_FAILED, IMAP_CONNECT_FAILED]);
    } finally {
      other.close();
    }
  });

  it('skips messages over MAX_MESSAGE_BYTES, counted as malformed, and imports the rest', async () => {
    const settings = imapUser('oversized');
    const mailbox = mailboxName(settings, 'oversized');
    const big = Buffer.concat([message('big', 2), Buffer.from(`${'x'.repeat(998)}\r\n`.repeat(70))]);
    expect(big.length).toBeGreaterThan(MAX_MESSAGE_BYTES);
    await appendMessages(settings, mailbox, [message('big', 1), big, message('big', 3)]);
    const accountId = await createImapAccount('imap-oversized', settings);

    const job = await finished((await importImap(accountId, mailbox)).id);
    expect(job).toMatchObject({ status: 'COMPLETED', processed: 3, total: 3 });
    expect(job.output).toEqual({
      mailbox,
      fetched: 3,
      imported: 2,
      duplicates: 0,
      malformed: 1,
      reset: true,
      errors: [{ uid: 2, error: `message of ${big.length} bytes is larger than MAX_MESSAGE_BYTES (${MAX_MESSAGE_BYTES})` }],
    });
    expect(await storedSubjects(accountId)).toEqual(['big message 1', 'big message 3']);
    // The skipped message is behind the sync state: the next run does not try it again.
    expect(await syncState(accountId)).toEqual([{ mailbox, uid_validity: expect.any(String), last_uid: 3 }]);
  });

  it("lets an admin import into another user's account: the access checked at enqueue is the handler's", async () => {
    const settings = imapUser('admin');
    const mailbox = mailboxName(settings, 'admin');
    await appendMessages(settings, mailbox, messages('admin', 1, 3));
    const accountId = await createImapAccount('imap-admin', settings);

    const admin = await env.token('root', 'admin');
    const job = await finished((await importImap(accountId, mailbox, undefined, admin)).id, 30_000, admin);
    expect(job).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    expect(job.output).toMatchObject({ fetched: 3, imported: 3 });
    expect(await storedSubjects(accountId)).toEqual(subjects('admin', 1, 3));
  });

  it('fails for good, without retries, when the account is deleted before the job runs', async () => {
    const accountId = await createImapAccount('imap-gone', imapUser('gone'));
    const job = await importImap(accountId, undefined, { delayMs: 500 });
    await env.sql('DELETE FROM account WHERE id = $1', [accountId]);
    const failed = await finished(job.id);
    expect(failed).toMatchObject({ status: 'FAILED', attempts: 1, error: `account ${accountId} no longer exists` });
  });

  it('refuses an account without IMAP settings with BAD_USER_INPUT and creates no job', async () => {
    const accountId = await createImapAccount('no-imap', null);
    const response = await gql(system.url, token, IMPORT_IMAP, { accountId });
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(response.errors?.[0]?.message).toContain('has no IMAP settings');
    expect(await env.sql("SELECT id FROM job WHERE payload->>'accountId' = $1", [accountId])).toHaveLength(0);
  });

  it("refuses another owner's account with NOT_FOUND and creates no job", async () => {
    const bobAccount = await createImapAccount('bob-imap', imapUser('bob'), await env.token('bob'));
    const response = await gql(system.url, token, IMPORT_IMAP, { accountId: bobAccount });
    expect(response.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(await env.sql("SELECT id FROM job WHERE payload->>'accountId' = $1", [bobAccount])).toHaveLength(0);
  });
});
