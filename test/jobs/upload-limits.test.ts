import { request, type IncomingMessage } from 'node:http';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gqlOk } from '../helpers/graphql-client.js';
import { CREATE_ACCOUNT, IMPORT_MBOX } from '../helpers/fragments.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

/** A small limit, so the tests move kilobytes rather than the default 100 MiB. */
const LIMIT = 64 * 1024;

let env: TestEnv;
let system: InProcessSystem;
let token: string;
let accountId: string;

beforeAll(async () => {
  env = await createTestEnv({ MAX_UPLOAD_BYTES: String(LIMIT) });
  // No worker: accepted uploads stay on disk, so what a request left there can be seen.
  system = await startInProcess(env, { worker: false });
  token = await env.token('alice');
  accountId = (await gqlOk<{ createAccount: { id: string } }>(system.url, token, CREATE_ACCOUNT, { name: 'limits' })).createAccount.id;
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

/** Every file under the storage dir, relative to it; temporary files included. */
async function storedFiles(): Promise<string[]> {
  const names = await readdir(env.vars.STORAGE_DIR!, { recursive: true });
  const files: string[] = [];
  for (const name of names) {
    if ((await stat(join(env.vars.STORAGE_DIR!, name))).isFile()) files.push(name);
  }
  return files.sort();
}

const jobCount = async () => (await env.one<{ count: number }>('SELECT count(*)::int AS count FROM job')).count;

/** A multipart importMbox request, returning the HTTP status with the body. */
async function uploadRaw(url: string, content: Buffer, filename = 'inbox.mbox') {
  const form = new FormData();
  form.set('operations', JSON.stringify({ query: IMPORT_MBOX, variables: { accountId, file: null } }));
  form.set('map', JSON.stringify({ 0: ['variables.file'] }));
  form.set('0', new Blob([new Uint8Array(content)], { type: 'application/mbox' }), filename);
  const response = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
  const body = (await response.json()) as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] };
  return { status: response.status, ...body };
}

/** An mbox of exactly `size` bytes (a real one, padded with blank lines at the end). */
function mboxOfSize(size: number): Buffer {
  const mbox = buildMbox({ count: 3, seed: 31 }).mbox;
  expect(mbox.length).toBeLessThanOrEqual(size);
  return Buffer.concat([mbox, Buffer.alloc(size - mbox.length, '\n')]);
}

describe('upload size limit (MAX_UPLOAD_BYTES)', () => {
  it('accepts a file of exactly MAX_UPLOAD_BYTES', async () => {
    const response = await uploadRaw(system.url, mboxOfSize(LIMIT), 'exact.mbox');
    expect(response.errors).toBeUndefined();
    const job = response.data.importMbox;
    expect(job.input.size).toBe(LIMIT);
    expect((await stat(join(env.vars.STORAGE_DIR!, 'uploads', `${job.id}.mbox`))).size).toBe(LIMIT);
  });

  it('refuses a file one byte over the limit with 413 and a coded error; no row, no file', async () => {
    const files = await storedFiles();
    const jobs = await jobCount();
    const response = await uploadRaw(system.url, mboxOfSize(LIMIT + 1), 'over.mbox');
    expect(response.status).toBe(413);
    expect(response.errors?.[0]?.extensions?.code).toBe('REQUEST_ENTITY_TOO_LARGE');
    expect(response.errors?.[0]?.message).toMatch(new RegExp(`${LIMIT} bytes`));
    expect(response.data?.importMbox ?? null).toBeNull();
    expect(await jobCount()).toBe(jobs);
    expect(await storedFiles()).toEqual(files);
  });

  it('refuses a body far over the limit before reading it; no row, no file', async () => {
    const files = await storedFiles();
    const jobs = await jobCount();
    const response = await uploadRaw(system.url, Buffer.alloc(4 * 1024 * 1024, 'x'), 'huge.mbox');
    expect(response.status).toBe(413);
    expect(response.errors?.[0]?.extensions?.code).toBe('REQUEST_ENTITY_TOO_LARGE');
    expect(await jobCount()).toBe(jobs);
    expect(await storedFiles()).toEqual(files);
  });

  it('leaves nothing behind when the client goes away mid-upload', async () => {
    const files = await storedFiles();
    const jobs = await jobCount();
    const boundary = 'jobwire-abort-boundary';
    const head = Buffer.from(
      [
        `--${boundary}`,
        'Content-Disposition: form-data; name="operations"',
        '',
        JSON.stringify({ query: IMPORT_MBOX, variables: { accountId, file: null } }),
        `--${boundary}`,
        'Content-Disposition: form-data; name="map"',
        '',
        JSON.stringify({ 0: ['variables.file'] }),
        `--${boundary}`,
        'Content-Disposition: form-data; name="0"; filename="cut.mbox"',
        'Content-Type: application/mbox',
        '',
        '',
      ].join('\r\n'),
    );
    const half = mboxOfSize(LIMIT / 2);
    const url = new URL(system.url);
    const arrived = new Promise<IncomingMessage>((resolve) => system.api.server.once('request', resolve));
    const req = request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      agent: false,
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': `multipart/form-data; boundary=${boundary}`,
        // Announces a whole file, then sends half of it and hangs up.
        'content-length': String(head.length + LIMIT - 1024),
      },
    });
    req.on('error', () => {});
    req.write(head);
    await new Promise<void>((resolve) => req.write(half, () => resolve()));
    const onServer = await arrived;
    const closed = new Promise((resolve) => (onServer.closed ? resolve(null) : onServer.once('close', resolve)));
    req.destroy();
    await closed;
    expect(await jobCount()).toBe(jobs);
    expect(await storedFiles()).toEqual(files);
  });

  it('is MAX_UPLOAD_BYTES and not yoga’s 25 MB default', async () => {
    const limit = 30_000_000;
    const big = await startInProcess(env, { worker: false, vars: { MAX_UPLOAD_BYTES: String(limit) } });
    try {
      const content = Buffer.concat([mboxOfSize(8192), Buffer.alloc(26_000_000 - 8192, 'x')]);
      const accepted = await uploadRaw(big.url, content, 'big.mbox');
      expect(accepted.errors).toBeUndefined();
      expect(accepted.data.importMbox.input.size).toBe(26_000_000);
      const refused = await uploadRaw(big.url, Buffer.alloc(limit + 1, 'x'), 'too-big.mbox');
      expect(refused.status).toBe(413);
      expect(refused.errors?.[0]?.extensions?.code).toBe('REQUEST_ENTITY_TOO_LARGE');
    } finally {
      await big.stop();
    }
  });
});
