import { z } from 'zod';
import { applyMessageAction } from '../mail/message-actions.js';
import { messageFilterSchema, selectMessageIds } from '../mail/message-filter.js';
import { accountOfNewJob } from './access.js';
import { defineJob } from '../engine/define-job.js';
import { InvalidInputError, PermanentJobError } from '../engine/errors.js';
import { loadJobAccount } from './job-subjects.js';

const BATCH_SIZE = 500;

export const BULK_ACTIONS = [
  'TRASH',
  'RESTORE',
  'DELETE',
  'MARK_READ',
  'MARK_UNREAD',
  'STAR',
  'UNSTAR',
  'ADD_LABEL',
  'REMOVE_LABEL',
] as const;

const bulkActionSchema = z.enum(BULK_ACTIONS).meta({ id: 'BulkAction' });

const bulkInputSchema = z
  .object({
    accountId: z.guid(),
    action: bulkActionSchema,
    // The ids are the job's input, which every event of the job carries: past a few hundred KB, a filter picks them instead.
    ids: z.array(z.guid()).max(10_000).optional().describe('Pick these messages (of the account), at most 10,000...'),
    filter: messageFilterSchema.optional().describe('...or the messages matching this filter.'),
    label: z.string().min(1).max(100).optional().describe('The label, for ADD_LABEL and REMOVE_LABEL.'),
  })
  .meta({ id: 'BulkOperationInput' });

type BulkInput = z.infer<typeof bulkInputSchema>;

function checkInput(input: BulkInput): string | null {
  if ((input.ids === undefined) === (input.filter === undefined)) return 'give exactly one of ids or filter';
  const needsLabel = input.action === 'ADD_LABEL' || input.action === 'REMOVE_LABEL';
  if (needsLabel && !input.label) return `${input.action} needs a label`;
  if (!needsLabel && input.label) return `${input.action} takes no label`;
  return null;
}

export const bulkOperationJob = defineJob({
  name: 'bulk_operation',
  description: 'Applies one action to many messages of an account, picked by ids or by a filter, in batches.',
  graphql: { mutation: 'bulkOperation', typeName: 'BulkOperationJob' },
  unit: 'messages',
  args: z.object({ input: bulkInputSchema }),
  input: bulkInputSchema,
  output: z
    .object({
      action: bulkActionSchema,
      matched: z.number().int().describe('Messages picked.'),
      affected: z.number().int().describe('Messages changed (already-matching ones are not counted).'),
    })
    .meta({ id: 'BulkOperationOutput' }),
  async prepare({ input }) {
    const problem = checkInput(input);
    if (problem) throw new InvalidInputError(problem);
    return { input, accountId: accountOfNewJob(input.accountId) };
  },
  async handler(input, ctx) {
    const problem = checkInput(input);
    if (problem) throw new PermanentJobError(problem);
    const account = await loadJobAccount(ctx.em, input.accountId);
    const ids = await selectMessageIds(ctx.em, account.id, input);
    ctx.progress({ processed: 0, total: ids.length, message: `${input.action.toLowerCase()}: starting` });

    let affected = 0;
    for (let start = 0; start < ids.length; start += BATCH_SIZE) {
      ctx.checkpoint();
      const chunk = ids.slice(start, start + BATCH_SIZE);
      affected += (await applyMessageAction(ctx.em, ctx.storage, account.id, chunk, input.action, input.label)).length;
      ctx.progress({ processed: Math.min(start + BATCH_SIZE, ids.length), message: `${input.action.toLowerCase()}` });
    }
    // The final message says what was done (with no match, the loop never replaced "starting").
    ctx.progress({
      processed: ids.length,
      total: ids.length,
      message: ids.length === 0 ? 'no messages matched' : `${input.action.toLowerCase()}: ${affected} of ${ids.length} changed`,
    });
    ctx.log.info(`${input.action.toLowerCase()}: ${affected} of ${ids.length} messages changed`, {
      action: input.action,
      label: input.label,
      matched: ids.length,
      affected,
    });
    return { action: input.action, matched: ids.length, affected };
  },
});
