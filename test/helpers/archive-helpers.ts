/** Helpers shared by the archive tests: seeding mail, running archive jobs to the end, downloading. */
import { join } from 'node:path';
import { expect } from 'vitest';
import { readStoredBlob, type StoredBlob } from '../../src/mail/message-store.js';
import { BlobStorage } from '../../src/storage/blob-storage.js';
import { CREATE_ACCOUNT, IMPORT_MBOX } from './fragments.js';
import { gql, gqlOk, gqlUpload } from './graphql-client.js';
import { waitFor, type TestEnv } from './test-env.js';

export const ARCHIVE_MAILS = `mutation($input: ArchiveMailsInput!) { archiveMails(input: $input) { id status } }`;
export const ENCRYPT_ARCHIVES = `mutation($accountId: ID!) { encryptArchives(accountId: $accountId) { id status } }`;
export const PURGE_ARCHIVE_TRASH = `mutation($options: EnqueueOptions) { purgeArchiveTrash(options: $options) { id status } }`;
export const UPDATE_SYSTEM_CONFIG = `mutation($input: SystemConfigInput!) {
  updateSystemConfig(input: $input) { archiveTrashPurgeEnabled archiveTrashRetentionDays }
}`;

export const ARCHIVE_FIELDS = `id accountId messageId size contentHash encrypted createdAt deletedAt inTrash downloadUrl
  files { kind filename contentType size }`;

export const ARCHIVES = `query($accountId: ID!, $filter: ArchiveFilter, $first: Int, $after: String) {
  archives(accountId: $accountId, filter: $filter, first: $first, after: $after) {
    nodes { ${ARCHIVE_FIELDS} }
    pageInfo { hasNextPage endCursor }
  }
}`;
export const TRASH_ARCHIVE = `mutation($id: ID!) { trashArchive(id: $id) { ${ARCHIVE_FIELDS} } }`;
export const RESTORE_ARCHIVE = `mutation($id: ID!) { restoreArchive(id: $id) { ${ARCHIVE_FIELDS} } }`;

const ARCHIVE_JOB = `query($id: ID!) { job(id: $id) { id type status error attempts processed total message
  ... on ArchiveMailsJob { output { matched archived skipped missing } }
  ... on EncryptArchivesJob { output { encrypted skipped missing } }
  ... on PurgeArchiveTrashJob { output { enabled purged filesDeleted } }
  ... on ImportMboxJob { output { total imported duplicates malformed } }
} }`;

const TERMINAL = ['COMPLETED', 'FAILED', 'CANCELLED'];

export async function createAccount(url: string, token: string, name: string): Promise<string> {
  return (await gqlOk<{ createAccount: { id: string } }>(url, token, CREATE_ACCOUNT, { name })).createAccount.id;
}

/** The job as the API shows it, once it reached a terminal status. */
export async function waitForJob(url: string, token: string, id: string, timeoutMs = 30_000): Promise<any> {
  return waitFor(
    `job ${id} to finish`,
    async () => {
      const { job } = await gqlOk<{ job: any }>(url, token, ARCHIVE_JOB, { id });
      return job && TERMINAL.includes(job.status) ? job : null;
    },
    timeoutMs,
  );
}

/** Imports an mbox into the account and waits for the import to complete. */
export async function importMailbox(url: string, token: string, accountId: string, mbox: Buffer): Promise<any> {
  const response = await gqlUpload<{ importMbox: { id: string } }>(
    url,
    token,
    IMPORT_MBOX,
    { accountId, file: null },
    {
      path: 'file',
      content: mbox,
      filename: 'inbox.mbox',
    },
  );
  expect(response.errors).toBeUndefined();
  const job = await waitForJob(url, token, response.data!.importMbox.id, 120_000);
  expect(job.status).toBe('COMPLETED');
  return job.output;
}

/** Enqueues a job through its mutation (the first field of `data`) and waits for its end. */
export async function runJob(url: string, token: string, document: string, variables: Record<string, unknown> = {}): Promise<any> {
  const data = await gqlOk<Record<string, { id: string }>>(url, token, document, variables);
  const job = Object.values(data)[0]!;
  return waitForJob(url, token, job.id, 60_000);
}

/** The GraphQL error code of a call expected to fail. */
export async function errorCode(
  url: string,
  token: string,
  document: string,
  variables: Record<string, unknown> = {},
): Promise<string | undefined> {
  const response = await gql(url, token, document, variables);
  return response.errors?.[0]?.extensions?.code;
}

export interface Download {
  status: number;
  contentType: string | null;
  body: Buffer;
}

/** `GET <origin><downloadUrl>` with (or without) a bearer token. */
export async function download(graphqlUrl: string, token: string | null, path: string): Promise<Download> {
  const response = await fetch(new URL(path, graphqlUrl), { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: response.status, contentType: response.headers.get('content-type'), body: Buffer.from(await response.arrayBuffer()) };
}

/** The bytes of a stored message or attachment row (its slice of a pack, or a blob of its own). */
export async function storedBytes(env: TestEnv, stored: StoredBlob): Promise<Buffer> {
  return readStoredBlob(new BlobStorage(env.vars.STORAGE_DIR!), stored);
}

/** Whether a deleted row's bytes are gone: its blob removed, or its slice of a pack overwritten with zeros. */
export async function storedBytesGone(env: TestEnv, stored: StoredBlob): Promise<boolean> {
  const storage = new BlobStorage(env.vars.STORAGE_DIR!);
  if (!(await storage.exists(stored.blob_key))) return true;
  if (stored.blob_offset === null) return false;
  return (await storage.getRange(stored.blob_key, stored.blob_offset, stored.size)).every((byte) => byte === 0);
}

/** The columns of a message or attachment row that say where its bytes are. */
export const STORED_BLOB = 'blob_key, blob_offset, size';

/** Where a blob key lives on disk in this test file's storage directory. */
export function blobPath(env: TestEnv, key: string): string {
  return join(env.vars.STORAGE_DIR!, key);
}
