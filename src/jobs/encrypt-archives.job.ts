import { z } from 'zod';
import { decodeKey, type Config } from '../config/env.js';
import type { ArchiveFile } from '../db/entities/archive.entity.js';
import { seal } from '../storage/encryption.js';
import { accountOfNewJob } from './access.js';
import { defineJob } from '../engine/define-job.js';
import { InvalidInputError, PermanentJobError } from '../engine/errors.js';
import { loadJobAccount } from './job-subjects.js';

/** Archives listed per query; each one is then encrypted in its own short transaction. */
const BATCH_SIZE = 50;

/** Suffix of an encrypted file's key: ciphertext never overwrites the plaintext it came from. */
const SEALED_SUFFIX = '.gcm';

const NO_KEY_MESSAGE = 'archive encryption is not available: the server has no ARCHIVE_KEY configured';

/** The configured AES-256 key, or null when ARCHIVE_KEY is unset. */
export function archiveKey(config: Config): Buffer | null {
  return config.ARCHIVE_KEY ? decodeKey(config.ARCHIVE_KEY) : null;
}

function isMissingFile(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'ENOENT';
}

export const encryptArchivesJob = defineJob({
  name: 'encrypt_archives',
  description:
    'Encrypts every not-yet-encrypted archive file of an account with AES-256-GCM (random IV per file, key from ARCHIVE_KEY); downloads decrypt transparently. Archives already encrypted are skipped.',
  graphql: { mutation: 'encryptArchives', typeName: 'EncryptArchivesJob' },
  unit: 'archives',
  args: z.object({ accountId: z.guid().describe('The account whose archives to encrypt.') }),
  input: z.object({ accountId: z.guid() }).meta({ id: 'EncryptArchivesInput' }),
  output: z
    .object({
      encrypted: z.number().int().describe('Archives encrypted by this run.'),
      skipped: z.number().int().describe('Archives already encrypted (or encrypted meanwhile by another run).'),
      missing: z.number().int().describe('Archives left as they were because a stored file is gone.'),
    })
    .meta({ id: 'EncryptArchivesOutput' }),
  async prepare(args, ctx) {
    if (!archiveKey(ctx.config)) throw new InvalidInputError(NO_KEY_MESSAGE);
    const accountId = accountOfNewJob(args.accountId);
    return { input: { accountId }, accountId };
  },
  async handler(input, ctx) {
    const key = archiveKey(ctx.config);
    if (!key) throw new PermanentJobError(NO_KEY_MESSAGE);
    const account = await loadJobAccount(ctx.em, input.accountId);
    const connection = ctx.em.getConnection();

    const [counts] = (await connection.execute(
      `SELECT count(*) FILTER (WHERE NOT encrypted)::int AS todo, count(*) FILTER (WHERE encrypted)::int AS done
         FROM archive WHERE account_id = ?`,
      [account.id],
      'all',
    )) as [{ todo: number; done: number }];
    const result = { encrypted: 0, skipped: counts.done, missing: 0 };
    let processed = 0;
    ctx.progress({ processed: 0, total: counts.todo, message: 'encrypting' });
    ctx.log.info(`encrypting ${counts.todo} archives; ${counts.done} already encrypted`, {
      toEncrypt: counts.todo,
      alreadyEncrypted: counts.done,
    });

    let lastId = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      ctx.checkpoint();
      const batch: { id: string }[] = await connection.execute(
        'SELECT id FROM archive WHERE account_id = ? AND NOT encrypted AND id > ? ORDER BY id LIMIT ?',
        [account.id, lastId, BATCH_SIZE],
        'all',
      );
      if (batch.length === 0) break;
      lastId = batch[batch.length - 1]!.id;

      for (const { id } of batch) {
        ctx.checkpoint();
        // Order, so that no crash leaves a row and its bytes disagreeing: the ciphertext goes to
        // new keys; the row switches to them (files, IVs, tags, encrypted) in one UPDATE; only then
        // is the plaintext deleted. The row lock keeps two runs from sealing the same archive.
        const outcome = await connection.transactional(async (trx) => {
          const rows: { files: ArchiveFile[] }[] = await connection.execute(
            'SELECT files FROM archive WHERE id = ? AND NOT encrypted FOR UPDATE SKIP LOCKED',
            [id],
            'all',
            trx,
          );
          if (rows.length === 0) return { status: 'skipped' as const };
          const files = rows[0]!.files;
          let plaintexts: Buffer[];
          try {
            plaintexts = await Promise.all(files.map((file) => ctx.storage.get(file.key)));
          } catch (error) {
            if (isMissingFile(error)) return { status: 'missing' as const };
            throw error;
          }
          const sealedFiles = files.map((file, index): ArchiveFile & { ciphertext: Buffer } => {
            const sealed = seal(key, plaintexts[index]!);
            return {
              ...file,
              key: `${file.key}${SEALED_SUFFIX}`,
              iv: sealed.iv.toString('base64'),
              authTag: sealed.authTag.toString('base64'),
              ciphertext: sealed.ciphertext,
            };
          });
          await Promise.all(sealedFiles.map((file) => ctx.storage.put(file.key, file.ciphertext)));
          const stored = sealedFiles.map(({ ciphertext: _ciphertext, ...file }) => file);
          await connection.execute(
            'UPDATE archive SET files = ?::jsonb, encrypted = true WHERE id = ?',
            [JSON.stringify(stored), id],
            'run',
            trx,
          );
          return { status: 'encrypted' as const, plaintextKeys: files.map((file) => file.key) };
        });

        if (outcome.status === 'encrypted') {
          await Promise.all(outcome.plaintextKeys.map((plaintextKey) => ctx.storage.delete(plaintextKey)));
          result.encrypted++;
        } else if (outcome.status === 'missing') {
          ctx.log.warn(`archive ${id} left unencrypted: a stored file is missing`, { archiveId: id });
          result.missing++;
        } else {
          result.skipped++;
        }
        processed++;
        // Archives added while the job runs are picked up too; the total grows with them.
        ctx.progress({ processed, total: Math.max(counts.todo, processed), message: 'encrypting' });
      }
    }

    // A crash between the UPDATE and the deletes leaves plaintext next to its ciphertext; every
    // run removes such leftovers, so the plaintext does not outlive the next run.
    ctx.progress({ processed, message: 'removing leftover plaintext' });
    lastId = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      ctx.checkpoint();
      const batch: { id: string; files: ArchiveFile[] }[] = await connection.execute(
        'SELECT id, files FROM archive WHERE account_id = ? AND encrypted AND id > ? ORDER BY id LIMIT 500',
        [account.id, lastId],
        'all',
      );
      if (batch.length === 0) break;
      lastId = batch[batch.length - 1]!.id;
      const leftovers = batch.flatMap((archive) =>
        archive.files.filter((file) => file.key.endsWith(SEALED_SUFFIX)).map((file) => file.key.slice(0, -SEALED_SUFFIX.length)),
      );
      await Promise.all(leftovers.map((plaintextKey) => ctx.storage.delete(plaintextKey)));
    }
    ctx.progress({ processed, total: Math.max(counts.todo, processed), message: 'encrypted' });
    ctx.log.info(`encrypted ${result.encrypted} archives; ${result.skipped} skipped, ${result.missing} missing a file`, result);
    return result;
  },
});
