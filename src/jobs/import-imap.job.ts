import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { z } from 'zod';
import { decodeKey } from '../config/env.js';
import { Account } from '../db/entities/account.entity.js';
import { imapHostPolicy } from '../mail/imap-host-policy.js';
import {
  ImapAuthError,
  ImapConnectError,
  ImapMailboxNotFoundError,
  openImapMailbox,
  type ImapFetchState,
  type ImapMessage,
  type ImapOversizedMessage,
  type ImapSettings,
} from '../mail/imap-source.js';
import {
  messagePackPlace,
  removeUnrecordedPacks,
  removeUnrecordedPacksOfEndedJob,
  storeMessages,
  type IncomingMessage,
} from '../mail/message-store.js';
import { MalformedMessageError } from '../mail/parse-message.js';
import { messageParser } from '../mail/parser-thread.js';
import { openString } from '../storage/encryption.js';
import { loadOwnedAccount } from './access.js';
import { defineJob, type JobContext } from '../engine/define-job.js';
import { InvalidInputError, PermanentJobError } from '../engine/errors.js';

/** Messages fetched before one pack of blobs, one multi-row INSERT and one sync-state write. */
const BATCH_SIZE = 100;
/** A batch is also stored once its raw messages add up to this, so large mail does not pile up in memory. */
const BATCH_BYTES = 16 * 1024 * 1024;
/** Per-message errors kept in the result; the counts cover all of them. */
const MAX_REPORTED_ERRORS = 20;

/** The account's IMAP settings with the password opened, or why there are none. */
function imapSettings(account: Account, archiveKey: string | undefined): ImapSettings {
  if (!hasImapSettings(account)) {
    throw new PermanentJobError(`account ${account.id} has no IMAP settings (any more)`);
  }
  const key = archiveKey ? decodeKey(archiveKey) : null;
  if (!key) throw new PermanentJobError('the stored IMAP password cannot be opened: the server has no ARCHIVE_KEY configured');
  let password: string;
  try {
    password = openString(key, account.imapPasswordSealed!);
  } catch {
    throw new PermanentJobError(
      'the stored IMAP password cannot be opened with the current ARCHIVE_KEY; set it again with updateAccountImap',
    );
  }
  return { host: account.imapHost!, port: account.imapPort!, secure: account.imapSecure, user: account.imapUser!, password };
}

function hasImapSettings(account: Account): boolean {
  return account.imapHost !== null && account.imapPort !== null && account.imapUser !== null && account.imapPasswordSealed !== null;
}

async function loadSyncState(em: EntityManager, accountId: string, mailbox: string): Promise<ImapFetchState> {
  const rows: { uid_validity: string | null; last_uid: number }[] = await em
    .getConnection()
    .execute('SELECT uid_validity, last_uid FROM imap_sync_state WHERE account_id = ? AND mailbox = ?', [accountId, mailbox], 'all');
  const row = rows[0];
  return row ? { uidValidity: row.uid_validity, lastUid: row.last_uid } : { uidValidity: null, lastUid: 0 };
}

/**
 * Records how far the import got. Under the same UIDVALIDITY the last UID only moves forward, so
 * two imports of one mailbox running at once cannot move it back; a new UIDVALIDITY replaces it.
 */
async function saveSyncState(em: EntityManager, accountId: string, mailbox: string, state: ImapFetchState): Promise<void> {
  await em.getConnection().execute(
    `INSERT INTO imap_sync_state (id, account_id, mailbox, uid_validity, last_uid, updated_at)
     VALUES (?, ?, ?, ?, ?, now())
     ON CONFLICT (account_id, mailbox) DO UPDATE SET
       last_uid = CASE WHEN imap_sync_state.uid_validity IS NOT DISTINCT FROM EXCLUDED.uid_validity
                       THEN GREATEST(imap_sync_state.last_uid, EXCLUDED.last_uid) ELSE EXCLUDED.last_uid END,
       uid_validity = EXCLUDED.uid_validity,
       updated_at = EXCLUDED.updated_at`,
    [randomUUID(), accountId, mailbox, state.uidValidity, state.lastUid],
    'run',
  );
}

/**
 * What a failed IMAP operation becomes: wrong credentials, a missing mailbox and a host the policy
 * refuses fail the job at once; anything else (refused connection, timeout, dropped socket) is
 * thrown plainly and retried. A connection failure of any kind is stored as the same generic text,
 * its details only logged, so the job's error cannot be used to scan ports. Every message is
 * scrubbed of the password, whatever the server or the library put in it.
 */
function imapFailure(error: unknown, settings: ImapSettings, mailbox: string, ctx: Pick<JobContext, 'signal' | 'logger'>): unknown {
  // Cancellation and timeout: the runner tells them apart by the signal, not by the error.
  if (ctx.signal.aborted) return error;
  const scrub = (text: string): string => text.split(settings.password).join('***');
  if (error instanceof ImapConnectError) {
    ctx.logger.warn(
      { host: settings.host, port: settings.port, refused: error.refused, reason: scrub(error.reason) },
      'IMAP connection failed',
    );
    // A fresh error with the fixed text: nothing of the cause travels with it.
    return error.refused ? new PermanentJobError(error.message) : new Error(error.message);
  }
  if (error instanceof ImapAuthError) {
    return new PermanentJobError(`${scrub(error.message)}; check the account's IMAP user and password (updateAccountImap)`);
  }
  if (error instanceof ImapMailboxNotFoundError) {
    return new PermanentJobError(`mailbox "${mailbox}" does not exist on ${settings.host}:${settings.port}`);
  }
  const text = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  return new Error(
    `IMAP server ${settings.host}:${settings.port} failed: ${scrub(text)}${typeof code === 'string' && !text.includes(code) ? ` (${code})` : ''}`,
  );
}

/** The session's messages, with failures of the fetch itself mapped by {@link imapFailure}. */
async function* fetched(
  messages: AsyncGenerator<ImapMessage | ImapOversizedMessage>,
  mapError: (error: unknown) => unknown,
): AsyncGenerator<ImapMessage | ImapOversizedMessage> {
  try {
    yield* messages;
  } catch (error) {
    // Only errors of the fetch land here: the consumer's own throws close the generator instead.
    throw mapError(error);
  }
}

export const importImapJob = defineJob({
  name: 'import_imap',
  description:
    "Imports a mailbox from the account's IMAP server. Incremental: a re-run fetches only messages newer than the last " +
    'one imported (by UIDVALIDITY and UID), and messages the account already holds are skipped.',
  graphql: { mutation: 'importImap', typeName: 'ImportImapJob' },
  unit: 'messages',
  args: z.object({
    accountId: z.guid().describe('The account to import into; it must have IMAP settings.'),
    mailbox: z.string().min(1, 'mailbox must not be empty').max(512).default('INBOX').describe('The mailbox to import. (Default: "INBOX")'),
  }),
  input: z
    .object({
      accountId: z.guid(),
      mailbox: z.string().min(1).max(512),
    })
    .meta({ id: 'ImportImapInput' }),
  output: z
    .object({
      mailbox: z.string().describe('The mailbox imported.'),
      fetched: z.number().int().describe('Messages fetched from the server by the attempt that completed.'),
      imported: z.number().int().describe('Messages stored.'),
      duplicates: z.number().int().describe('Messages skipped because the account already held them.'),
      malformed: z.number().int().describe('Fetched messages that could not be parsed.'),
      reset: z
        .boolean()
        .describe('The whole mailbox was fetched: a first import, or the server changed its UIDVALIDITY since the last one.'),
      errors: z
        .array(z.object({ uid: z.number().int(), error: z.string() }).meta({ id: 'ImportImapMessageError' }))
        .describe(`The first ${MAX_REPORTED_ERRORS} per-message errors, by IMAP UID.`),
    })
    .meta({ id: 'ImportImapOutput' }),
  options: {
    // Connection failures are usually a server restarting or briefly refusing: give it about a
    // minute and a quarter (5 s, 10 s, 20 s, 40 s) before the job is FAILED.
    attempts: 5,
    backoff: { type: 'exponential', delayMs: 5_000 },
    // Every start is a TCP/TLS connection and a LOGIN, often to the same provider: bursts (a
    // dashboard syncing every account at once) would trip its anti-abuse limits. At most 5 per
    // second across every sidecar; the rest wait in the queue.
    rateLimit: { max: 5, durationMs: 1_000 },
  },
  async prepare(args, ctx) {
    const account = await loadOwnedAccount(ctx.em, args.accountId, ctx);
    if (!hasImapSettings(account)) {
      throw new InvalidInputError(
        `account ${account.id} has no IMAP settings: set host, user and password with updateAccountImap (or createAccount's imap input)`,
      );
    }
    return { input: { accountId: account.id, mailbox: args.mailbox }, accountId: account.id };
  },
  // Once the job has ended for good, a pack an attempt wrote and never recorded is nobody's.
  release: (input, { jobId, storage, em }) =>
    removeUnrecordedPacksOfEndedJob(em, storage, { accountId: input.accountId, jobId }).then(() => {}),
  async handler(input, ctx) {
    const { mailbox } = input;
    // Access was decided by `prepare` when the job was enqueued (an admin may import into anyone's
    // account): here only a vanished account is final; a database error is thrown as is, and retried.
    const account = await ctx.em.findOne(Account, { id: input.accountId });
    if (!account) throw new PermanentJobError(`account ${input.accountId} no longer exists`);
    const settings = imapSettings(account, ctx.config.ARCHIVE_KEY);
    const mapError = (error: unknown): unknown => imapFailure(error, settings, mailbox, ctx);
    const state = await loadSyncState(ctx.em, account.id, mailbox);

    ctx.progress({ processed: 0, total: null, message: `connecting to ${settings.host}` });
    const session = await openImapMailbox(settings, mailbox, state, {
      hostPolicy: imapHostPolicy(ctx.config.IMAP_ALLOWED_HOSTS),
      maxMessageBytes: ctx.config.MAX_MESSAGE_BYTES,
      signal: ctx.signal,
      logger: ctx.logger,
    }).catch((error) => {
      throw mapError(error);
    });
    try {
      const { info } = session;
      // The host only: the user and the vetted address stay out of a log the account's owner reads.
      ctx.log.info(`connected to ${settings.host}`, { host: settings.host });
      ctx.log.info(`opened ${mailbox} (UIDVALIDITY ${info.uidValidity}): ${info.toFetch} new messages to fetch`, {
        mailbox,
        uidValidity: info.uidValidity,
        exists: info.exists,
        toFetch: info.toFetch,
        reset: info.reset,
      });
      if (info.reset && state.uidValidity !== null) {
        ctx.log.warn(`UIDVALIDITY changed from ${state.uidValidity}: the whole mailbox is fetched again`, {
          previousUidValidity: state.uidValidity,
          uidValidity: info.uidValidity,
        });
      }
      ctx.progress({ processed: 0, total: info.toFetch, message: 'importing' });

      const result = {
        mailbox,
        fetched: 0,
        imported: 0,
        duplicates: 0,
        malformed: 0,
        reset: info.reset,
        errors: [] as { uid: number; error: string }[],
      };
      // After a UIDVALIDITY change the old last UID means nothing: count from zero.
      let lastUid = info.reset ? 0 : state.lastUid;
      let bytesFetched = 0;
      ctx.setMetadata({ mailbox, bytesFetched });
      // What an earlier attempt of this job wrote but never recorded (it crashed in between) goes first.
      const packPlace = messagePackPlace(account.id, ctx);
      await removeUnrecordedPacks(ctx.em, ctx.storage, packPlace);
      let batch: IncomingMessage[] = [];
      let batchBytes = 0;
      const flush = async (): Promise<void> => {
        const stored = await storeMessages(ctx.em, ctx.storage, account, batch, packPlace);
        result.imported += stored.inserted;
        result.duplicates += stored.duplicates;
        batch = [];
        batchBytes = 0;
        // Only once the batch is stored: a crash before this re-fetches it, and dedup skips what made it.
        await saveSyncState(ctx.em, account.id, mailbox, { uidValidity: info.uidValidity, lastUid });
        ctx.setMetadata({ mailbox, bytesFetched });
        ctx.progress({ processed: result.fetched, message: 'importing' });
      };
      const malformed = (uid: number, error: string): void => {
        ctx.log.warn(`message UID ${uid} skipped: ${error}`, { uid });
        result.malformed++;
        if (result.errors.length < MAX_REPORTED_ERRORS) result.errors.push({ uid, error });
      };

      for await (const message of fetched(session.messages(), mapError)) {
        ctx.checkpoint();
        result.fetched++;
        if (message.raw === null) {
          // Counted as malformed (as MAX_MESSAGE_BYTES documents), its body never downloaded.
          malformed(message.uid, `message of ${message.size} bytes is larger than MAX_MESSAGE_BYTES (${ctx.config.MAX_MESSAGE_BYTES})`);
          lastUid = message.uid;
          continue;
        }
        bytesFetched += message.raw.length;
        try {
          // On the parser's thread, as an mbox's: a hostile message fails alone, and never stalls the sidecar.
          batch.push({ raw: message.raw, parsed: await messageParser.parse(message.raw) });
          batchBytes += message.raw.length;
        } catch (error) {
          if (!(error instanceof MalformedMessageError)) throw error;
          malformed(message.uid, error.message);
        }
        lastUid = message.uid;
        if (batch.length >= BATCH_SIZE || batchBytes >= BATCH_BYTES) {
          await flush();
          ctx.checkpoint();
        }
      }
      // Also records a new UIDVALIDITY when nothing was left to fetch.
      await flush();
      // Messages expunged between the search and the fetch are not coming: the count is what arrived.
      ctx.progress({ processed: result.fetched, total: result.fetched, message: 'imported' });
      ctx.log.info(`imported ${result.imported} messages; ${result.duplicates} already held, ${result.malformed} malformed`, {
        fetched: result.fetched,
        imported: result.imported,
        duplicates: result.duplicates,
        malformed: result.malformed,
        bytesFetched,
      });
      return result;
    } finally {
      await session.close();
    }
  },
});
