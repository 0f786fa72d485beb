import { z } from 'zod';
import { Account } from '../db/entities/account.entity.js';
import { countMboxMessages, splitMbox } from '../mail/mbox.js';
import {
  messagePackPlace,
  removeUnrecordedPacks,
  removeUnrecordedPacksOfEndedJob,
  storeMessages,
  type IncomingMessage,
} from '../mail/message-store.js';
import { MalformedMessageError, type ParsedMessage } from '../mail/parse-message.js';
import { messageParser } from '../mail/parser-thread.js';
import { checkAccountAccess, uploadSchema } from './access.js';
import { defineJob } from '../engine/define-job.js';
import { InvalidInputError, PermanentJobError } from '../engine/errors.js';

/** Messages parsed before one pack of blobs and one multi-row INSERT. */
const BATCH_SIZE = 200;
/**
 * A batch is also cut once its messages (raw bytes plus decoded attachments) reach this size, so
 * a file of big messages holds two batches of this size at most, not 2 × 200 big messages.
 */
const BATCH_BYTES = 32 * 1024 * 1024;
/** Per-message errors kept in the result; the counts cover all of them. */
const MAX_REPORTED_ERRORS = 20;
/**
 * Messages being parsed ahead of the one being handled, and their bytes at most. Parses in flight
 * together keep the parser's thread busy where one at a time leaves it waiting between a parser's
 * steps: 64 at once parse 5,000 messages in about two thirds of the time and CPU of one by one.
 */
const PARSE_AHEAD = 64;
const PARSE_AHEAD_BYTES = 16 * 1024 * 1024;

export const importMboxJob = defineJob({
  name: 'import_mbox',
  description: 'Imports an uploaded mbox file into an account, skipping messages it already holds.',
  graphql: { mutation: 'importMbox', typeName: 'ImportMboxJob' },
  unit: 'messages',
  // The heaviest job per message (parsing, blob writes), and users enqueue a folder of files at
  // once: one running per owner leaves the type's other slots to other owners.
  options: { ownerConcurrency: 1 },
  args: z.object({
    accountId: z.guid().describe('The account to import into.'),
    file: uploadSchema.describe('The mbox file (multipart upload).'),
  }),
  input: z
    .object({
      accountId: z.guid(),
      // A storage path: the worker needs it, clients have no use for it.
      uploadKey: z.string().meta({ internal: true }),
      filename: z.string().nullable(),
      size: z.number().int(),
    })
    .meta({ id: 'ImportMboxInput' }),
  output: z
    .object({
      total: z.number().int().describe('Messages found in the file.'),
      imported: z.number().int().describe('Messages stored.'),
      duplicates: z.number().int().describe('Messages skipped because the account already held them.'),
      malformed: z.number().int().describe('Entries that were not parseable messages.'),
      errors: z
        .array(z.object({ index: z.number().int(), error: z.string() }).meta({ id: 'ImportMessageError' }))
        .describe(`The first ${MAX_REPORTED_ERRORS} per-message errors.`),
    })
    .meta({ id: 'ImportMboxOutput' }),
  async prepare(args, ctx) {
    const account = await checkAccountAccess(ctx.em, args.accountId, ctx);
    if (args.file.size > ctx.config.MAX_UPLOAD_BYTES) {
      throw new InvalidInputError(`file is larger than the ${ctx.config.MAX_UPLOAD_BYTES}-byte upload limit`);
    }
    const uploadKey = `uploads/${ctx.jobId}.mbox`;
    const discard = () => ctx.storage.delete(uploadKey);
    // putStream removes its temporary file itself when the source fails (a client gone mid-upload).
    const size = await ctx.storage.putStream(uploadKey, args.file.stream() as unknown as AsyncIterable<Uint8Array>);
    try {
      if (size === 0) throw new InvalidInputError('file is empty');
      // The declared size can lie; the bytes written cannot.
      if (size > ctx.config.MAX_UPLOAD_BYTES) {
        throw new InvalidInputError(`file is larger than the ${ctx.config.MAX_UPLOAD_BYTES}-byte upload limit`);
      }
    } catch (error) {
      await discard();
      throw error;
    }
    return {
      input: { accountId: account.id, uploadKey, filename: args.file.name || null, size },
      accountId: account.id,
      discard,
    };
  },
  // The upload is only read by this job: once it has ended for good, nothing needs it; nor does a
  // pack an attempt wrote and never recorded.
  async release(input, { jobId, storage, em }) {
    await storage.delete(input.uploadKey);
    await removeUnrecordedPacksOfEndedJob(em, storage, { accountId: input.accountId, jobId });
  },
  async handler(input, ctx) {
    // Access was checked when the job was enqueued (an admin may import into anyone's account).
    const account = await ctx.em.findOne(Account, { id: input.accountId });
    if (!account) throw new PermanentJobError(`account ${input.accountId} no longer exists`);
    if (!(await ctx.storage.exists(input.uploadKey))) throw new PermanentJobError('the uploaded file is gone');

    ctx.progress({ processed: 0, total: null, message: 'counting messages' });
    const total = await countMboxMessages(ctx.storage.stream(input.uploadKey));
    ctx.progress({ processed: 0, total, message: 'importing' });
    ctx.log.info(`importing ${total} messages from ${input.filename ?? 'the upload'}`, { total, bytes: input.size });

    // What an earlier attempt of this job wrote but never recorded (it crashed in between) goes first.
    const packPlace = messagePackPlace(account.id, ctx);
    await removeUnrecordedPacks(ctx.em, ctx.storage, packPlace);

    const result = { total, imported: 0, duplicates: 0, malformed: 0, errors: [] as { index: number; error: string }[] };
    let stored = 0;
    let batch: IncomingMessage[] = [];
    // Storing a batch (a pack, one INSERT) overlaps with parsing the next one: parsing is CPU,
    // storing is I/O, and the import runs at the speed of the slower of the two, not their sum.
    let storing: Promise<void> = Promise.resolve();
    const store = (messages: IncomingMessage[]) => {
      storing = storing.then(async () => {
        const outcome = await storeMessages(ctx.em, ctx.storage, account, messages, packPlace);
        result.imported += outcome.inserted;
        result.duplicates += outcome.duplicates;
        stored += messages.length;
        ctx.progress({ processed: stored + result.malformed, message: 'importing' });
      });
      // Awaited before the next batch and at the end; until then a failure must not count as unhandled.
      storing.catch(() => {});
    };

    const malformed = (index: number, error: string) => {
      ctx.log.warn(`message ${index} skipped: ${error}`, { index });
      result.malformed++;
      if (result.errors.length < MAX_REPORTED_ERRORS) result.errors.push({ index, error });
    };
    const maxMessageBytes = ctx.config.MAX_MESSAGE_BYTES;
    let batchBytes = 0;
    let index = 0;
    let bytesRead = 0;
    // Messages are parsed a window ahead of the one handled here, and handled in file order.
    // An entry over MAX_MESSAGE_BYTES is not parsed: only its size is known.
    const ahead: ({ index: number; raw: Buffer; parsed: Promise<ParsedMessage> } | { index: number; size: number })[] = [];
    let aheadBytes = 0;
    const handleOldest = async () => {
      const oldest = ahead.shift()!;
      if ('size' in oldest) {
        malformed(oldest.index, `Message is larger than the ${maxMessageBytes}-byte limit (MAX_MESSAGE_BYTES): ${oldest.size} bytes`);
      } else {
        aheadBytes -= oldest.raw.length;
        try {
          const message = await oldest.parsed;
          batch.push({ raw: oldest.raw, parsed: message });
          batchBytes += oldest.raw.length + message.attachments.reduce((sum, attachment) => sum + attachment.size, 0);
        } catch (error) {
          if (!(error instanceof MalformedMessageError)) throw error;
          malformed(oldest.index, error.message);
        }
      }
      if (batch.length >= BATCH_SIZE || batchBytes >= BATCH_BYTES) {
        // At most one batch is stored while the next is parsed, which bounds memory.
        await storing;
        ctx.setMetadata({ bytesRead });
        store(batch);
        batch = [];
        batchBytes = 0;
      }
    };
    for await (const entry of splitMbox(ctx.storage.stream(input.uploadKey), { maxMessageBytes })) {
      ctx.checkpoint();
      bytesRead += Buffer.isBuffer(entry) ? entry.length : entry.size;
      if (Buffer.isBuffer(entry)) {
        // Parsed on the parser's thread while this one splits the file and stores what is parsed.
        const parsed = messageParser.parse(entry);
        // Awaited in turn by handleOldest; until then a malformed message must not count as unhandled.
        parsed.catch(() => {});
        ahead.push({ index, raw: entry, parsed });
        aheadBytes += entry.length;
      } else {
        ahead.push({ index, size: entry.size });
      }
      index++;
      while (ahead.length >= PARSE_AHEAD || aheadBytes >= PARSE_AHEAD_BYTES) await handleOldest();
    }
    while (ahead.length > 0) await handleOldest();
    store(batch);
    await storing;
    ctx.setMetadata({ bytesRead });
    ctx.progress({ processed: index, total, message: 'imported' });
    ctx.log.info(`imported ${result.imported} messages; ${result.duplicates} already held, ${result.malformed} malformed`, {
      imported: result.imported,
      duplicates: result.duplicates,
      malformed: result.malformed,
    });
    return result;
  },
});
