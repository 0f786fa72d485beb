/**
 * A small mailbox for rule and retention tests: old and new mail (dates relative to now), a few
 * senders, small and large messages, with and without attachments, one undated message. Each
 * subject is unique, so tests name messages by subject.
 */
import { importCorpus } from './corpus.js';
import type { InProcessSystem } from './in-process.js';
import { buildMessage } from './mbox-fixture.js';
import type { TestEnv } from './test-env.js';

export const DAY_MS = 86_400_000;

/** One message of the corpus. */
export interface CorpusMessage {
  subject: string;
  from: string;
  to?: string[];
  /** Age in days at seeding time; null writes no Date header. */
  ageDays: number | null;
  /** Size of one attachment in bytes; none when absent. A 150 KB attachment makes a message > 100 KB. */
  attachmentBytes?: number;
}

/**
 * The default corpus. Senders: `digest@news.example` (newsletters), `billing@shop.example`,
 * `friend@mail.example`, `alice@example.com`. Large (> 100 KB): the two invoices and "Holiday photos".
 */
export const RULE_CORPUS: readonly CorpusMessage[] = [
  { subject: 'Weekly digest #1', from: 'Weekly Digest <digest@news.example>', ageDays: 400 },
  { subject: 'Weekly digest #2', from: 'Weekly Digest <digest@news.example>', ageDays: 200, attachmentBytes: 2_000 },
  { subject: 'Weekly digest #3', from: 'Weekly Digest <digest@news.example>', ageDays: 2 },
  { subject: 'Invoice March', from: 'Billing <billing@shop.example>', ageDays: 100, attachmentBytes: 150_000 },
  { subject: 'Invoice June', from: 'Billing <billing@shop.example>', ageDays: 1, attachmentBytes: 150_000 },
  { subject: 'Lunch last month', from: 'Friend <friend@mail.example>', to: ['me@jobwire.test', 'team@jobwire.test'], ageDays: 60 },
  { subject: 'Lunch tomorrow', from: 'Friend <friend@mail.example>', ageDays: 0.5 },
  { subject: 'Holiday photos', from: 'Alice <alice@example.com>', ageDays: 40, attachmentBytes: 200_000 },
  { subject: 'Undated notice', from: 'Weekly Digest <digest@news.example>', ageDays: null },
];

/** Deterministic pseudo-random bytes: incompressible enough that the size stays what was asked. */
function bytes(count: number, seed: number): Buffer {
  const out = Buffer.alloc(count);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}

/** The corpus as RFC 5322 messages, dated relative to `now`. */
export function corpusMessages(messages: readonly CorpusMessage[] = RULE_CORPUS, now = Date.now()): string[] {
  return messages.map((message, index) =>
    buildMessage({
      from: message.from,
      to: message.to ?? ['me@jobwire.test'],
      subject: message.subject,
      date: message.ageDays === null ? null : new Date(now - message.ageDays * DAY_MS),
      messageId: `corpus-${index}-${message.subject.replace(/\W+/g, '-')}@jobwire.test`,
      text: `${message.subject}\n`,
      attachments: message.attachmentBytes
        ? [{ filename: `file-${index}.bin`, contentType: 'application/octet-stream', content: bytes(message.attachmentBytes, index + 1) }]
        : [],
    }),
  );
}

/** Imports the corpus into the account through `importMbox` and waits until every message is stored. */
export async function seedRuleCorpus(
  system: InProcessSystem,
  token: string,
  accountId: string,
  messages: readonly CorpusMessage[] = RULE_CORPUS,
): Promise<void> {
  await importCorpus(system, token, accountId, corpusMessages(messages));
}

/** A message's state, as the tests compare it. */
export interface MessageState {
  subject: string;
  labels: string[];
  is_read: boolean;
  trashed: boolean;
  archived: boolean;
}

/** Every message of the account, by subject. */
export async function messageStates(env: TestEnv, accountId: string): Promise<Map<string, MessageState>> {
  const rows = await env.sql<MessageState>(
    `SELECT subject, labels, is_read, deleted_at IS NOT NULL AS trashed, archived_at IS NOT NULL AS archived
       FROM message WHERE account_id = $1 ORDER BY subject`,
    [accountId],
  );
  return new Map(rows.map((row) => [row.subject, row]));
}

/** Subjects of the account's messages satisfying a SQL condition over `message`, sorted. */
export async function subjectsWhere(env: TestEnv, accountId: string, condition: string, params: unknown[] = []): Promise<string[]> {
  const rows = await env.sql<{ subject: string }>(`SELECT subject FROM message WHERE account_id = $1 AND (${condition}) ORDER BY subject`, [
    accountId,
    ...params,
  ]);
  return rows.map((row) => row.subject);
}
