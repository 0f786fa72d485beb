/**
 * Seeding an account with hand-built messages through the real `importMbox` path, and running a
 * job to its end. Build each message with `buildMessage` from `mbox-fixture.ts`.
 */
import { expect } from 'vitest';
import { gqlOk, gqlUpload } from './graphql-client.js';
import type { InProcessSystem } from './in-process.js';
import { waitFor } from './test-env.js';

/** The envelope line written before every message. */
const FROM_LINE = 'From sender@x Mon Jan  1 00:00:00 2024';

/**
 * An mboxrd file of the messages, in order: each preceded by a `From_` line, body lines matching
 * `>*From ` quoted with one more `>`, a blank line after each. Line endings become LF.
 */
export function mboxFromMessages(messages: string[]): Buffer {
  const parts = messages.map((message) => {
    let body = message.replace(/\r\n/g, '\n').replace(/^(>*From )/gm, '>$1');
    if (!body.endsWith('\n')) body += '\n';
    return `${FROM_LINE}\n${body}\n`;
  });
  return Buffer.from(parts.join(''), 'utf8');
}

const IMPORT = `mutation($accountId: ID!, $file: File!) { importMbox(accountId: $accountId, file: $file) { id } }`;
const JOB_STATE = `query($id: ID!) { job(id: $id) { id type status error processed total result attempts } }`;

/** A job's state as {@link waitForJob} returns it. */
export interface FinishedJob {
  id: string;
  type: string;
  status: 'COMPLETED' | 'FAILED' | 'CANCELLED';
  error: string | null;
  processed: number | null;
  total: number | null;
  result: any;
  attempts: number;
}

/** Polls the job until it is COMPLETED, FAILED or CANCELLED. */
export async function waitForJob(system: InProcessSystem, token: string, jobId: string, timeoutMs = 30_000): Promise<FinishedJob> {
  return waitFor(
    `job ${jobId} to finish`,
    async () => {
      const { job } = await gqlOk<{ job: FinishedJob | null }>(system.url, token, JOB_STATE, { id: jobId });
      return job && ['COMPLETED', 'FAILED', 'CANCELLED'].includes(job.status) ? job : null;
    },
    timeoutMs,
  );
}

/**
 * Imports the messages into the account with `importMbox` and waits for the import; fails the test
 * unless every message was stored. Returns the import's output.
 */
export async function importCorpus(
  system: InProcessSystem,
  token: string,
  accountId: string,
  messages: string[],
): Promise<{ total: number; imported: number; duplicates: number; malformed: number }> {
  const response = await gqlUpload<{ importMbox: { id: string } }>(
    system.url,
    token,
    IMPORT,
    { accountId, file: null },
    {
      path: 'file',
      content: mboxFromMessages(messages),
      filename: 'corpus.mbox',
    },
  );
  expect(response.errors).toBeUndefined();
  const job = await waitForJob(system, token, response.data!.importMbox.id);
  expect(job.status, job.error ?? '').toBe('COMPLETED');
  expect(job.result).toMatchObject({ total: messages.length, imported: messages.length, duplicates: 0, malformed: 0 });
  return job.result;
}

/**
 * Calls a mutation that enqueues a job (its only selection is `id`), waits for the job to finish
 * and returns it. `field` is the mutation's name, e.g. `scanPii`.
 */
export async function runJob(
  system: InProcessSystem,
  token: string,
  field: string,
  variables: Record<string, unknown>,
  signature = '$accountId: ID!',
  args = 'accountId: $accountId',
): Promise<FinishedJob> {
  const data = await gqlOk<Record<string, { id: string }>>(
    system.url,
    token,
    `mutation(${signature}) { ${field}(${args}) { id } }`,
    variables,
  );
  return waitForJob(system, token, data[field]!.id);
}
