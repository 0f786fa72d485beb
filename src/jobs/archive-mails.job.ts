import { z } from 'zod';
import { archiveMessages } from '../mail/archive-store.js';
import { messageFilterSchema, selectMessageIds } from '../mail/message-filter.js';
import { accountOfNewJob } from './access.js';
import { defineJob } from '../engine/define-job.js';
import { InvalidInputError, PermanentJobError } from '../engine/errors.js';
import { loadJobAccount } from './job-subjects.js';

/** Messages copied per batch: one SELECT, parallel blob copies, one multi-row INSERT, one UPDATE. */
const BATCH_SIZE = 50;

const archiveInputSchema = z
  .object({
    accountId: z.guid(),
    ids: z.array(z.guid()).max(100_000).optional().describe('Archive these messages (of the account)...'),
    filter: messageFilterSchema.optional().describe('...or the messages matching this filter.'),
  })
  .meta({ id: 'ArchiveMailsInput' });

type ArchiveInput = z.infer<typeof archiveInputSchema>;

function checkInput(input: ArchiveInput): string | null {
  return (input.ids === undefined) === (input.filter === undefined) ? 'give exactly one of ids or filter' : null;
}

export const archiveMailsJob = defineJob({
  name: 'archive_mails',
  description:
    "Copies each picked message's raw EML and attachments into archive storage, records an `archive` row and marks the message archived. Messages already archived are skipped.",
  graphql: { mutation: 'archiveMails', typeName: 'ArchiveMailsJob' },
  unit: 'messages',
  args: z.object({ input: archiveInputSchema }),
  input: archiveInputSchema,
  output: z
    .object({
      matched: z.number().int().describe('Messages picked.'),
      archived: z.number().int().describe('Messages archived by this run.'),
      skipped: z.number().int().describe('Messages that already had an archive.'),
      missing: z.number().int().describe('Messages deleted since they were picked, or whose stored bytes are gone; not archived.'),
    })
    .meta({ id: 'ArchiveMailsOutput' }),
  async prepare({ input }) {
    const problem = checkInput(input);
    if (problem) throw new InvalidInputError(problem);
    return { input, accountId: accountOfNewJob(input.accountId) };
  },
  async handler(input, ctx) {
    const problem = checkInput(input);
    if (problem) throw new PermanentJobError(problem);
    const account = await loadJobAccount(ctx.em, input.accountId);
    // Fixed up front: archiving changes what an `archived: false` filter matches.
    const ids = await selectMessageIds(ctx.em, account.id, input);
    ctx.progress({ processed: 0, total: ids.length, message: 'archiving' });

    const result = { matched: ids.length, archived: 0, skipped: 0, missing: 0 };
    for (let start = 0; start < ids.length; start += BATCH_SIZE) {
      ctx.checkpoint();
      const chunk = ids.slice(start, start + BATCH_SIZE);
      const batch = await archiveMessages(ctx.em, ctx.storage, account, chunk);
      result.archived += batch.archived.length;
      result.skipped += batch.skipped;
      result.missing += batch.missing;
      ctx.progress({ processed: Math.min(start + BATCH_SIZE, ids.length), message: 'archiving' });
    }
    ctx.progress({ processed: ids.length, total: ids.length, message: 'archived' });
    ctx.log.info(
      `archived ${result.archived} of ${result.matched} messages; ${result.skipped} already archived, ${result.missing} missing`,
      result,
    );
    return result;
  },
});
