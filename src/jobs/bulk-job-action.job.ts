import type { EntityManager } from '@mikro-orm/postgresql';
import { z } from 'zod';
import { JOB_STATUSES, type JobRecord } from '../db/entities/job.entity.js';
import { defineJob, type JobControl } from '../engine/define-job.js';
import { InvalidInputError, InvalidStateError } from '../engine/errors.js';
import { QuotaExceededError } from '../engine/owner-quotas.js';
import { type JobHistoryFilter, listJobHistory, countJobHistory, MAX_FILTER_IDS } from '../engine/job-history.js';
import { isTerminal } from '../engine/job-store.js';

/** Jobs read (and acted on) per round. */
const BATCH_SIZE = 200;

export const BULK_JOB_ACTIONS = ['CANCEL', 'RETRY'] as const;
const bulkJobActionSchema = z.enum(BULK_JOB_ACTIONS).meta({ id: 'BulkJobActionKind' });

/** A `JobFilter` as stored in the payload: dates as ISO text. */
const storedFilterSchema = z
  .object({
    ids: z.array(z.guid()).max(MAX_FILTER_IDS).optional(),
    types: z.array(z.string()).optional(),
    statuses: z.array(z.enum(JOB_STATUSES)).optional(),
    accountId: z.guid().optional(),
    createdAfter: z.iso.datetime().optional(),
    createdBefore: z.iso.datetime().optional(),
    updatedAfter: z.iso.datetime().optional(),
    tags: z.array(z.string()).optional(),
  })
  .meta({ id: 'BulkJobFilter' });

const inputSchema = z
  .object({
    action: bulkJobActionSchema,
    filter: storedFilterSchema.describe('The jobs acted on, as given (dates as ISO text).'),
    all: z.boolean().describe('Whether an empty filter was meant: every job the caller may see.'),
    // Decided at enqueue: an admin acts on everyone's jobs, a user on their own.
    asAdmin: z.boolean().meta({ internal: true }),
  })
  .meta({ id: 'BulkJobActionInput' });

export type BulkJobActionInput = z.infer<typeof inputSchema>;

/** Why a matching job was left alone. */
const SKIP_REASONS = {
  ALREADY_ENDED: 'already ended (cancel)',
  NOT_FAILED_OR_CANCELLED: 'not FAILED or CANCELLED (retry)',
  TYPE_REMOVED: 'its type is no longer in the catalogue',
  OWNER_AT_CAP: 'its owner has MAX_UNFINISHED_JOBS_PER_OWNER jobs not finished (retry)',
  STILL_FINISHING: 'its last attempt was still finishing (retry)',
  ITSELF: 'the bulk job itself',
} as const;

/** The filter as `JobFilter` arguments give it, with the empty parts left out. */
export function storedFilter(filter: Record<string, unknown>): z.infer<typeof storedFilterSchema> {
  const stored: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(filter)) {
    if (value === null || value === undefined) continue;
    // An empty list of types, statuses or tags narrows nothing (an empty `ids` matches nothing, and stays).
    if (Array.isArray(value) && value.length === 0 && key !== 'ids') continue;
    stored[key] = value instanceof Date ? value.toISOString() : value;
  }
  return stored;
}

function historyFilter(filter: z.infer<typeof storedFilterSchema>): JobHistoryFilter {
  const date = (text: string | undefined) => (text ? new Date(text) : null);
  return {
    ...filter,
    createdAfter: date(filter.createdAfter),
    createdBefore: date(filter.createdBefore),
    updatedAfter: date(filter.updatedAfter),
  };
}

export const bulkJobActionJob = defineJob({
  name: 'bulk_job_action',
  description:
    'Cancels or retries every job matching a filter that the caller may see (a user: their own; an admin: all), in batches; enqueued by `cancelJobs` and `retryJobs`.',
  graphql: { mutation: 'cancelJobs', typeName: 'BulkJobActionJob', handWrittenMutations: true },
  unit: 'jobs',
  args: inputSchema.omit({ asAdmin: true }),
  input: inputSchema,
  output: z
    .object({
      action: bulkJobActionSchema,
      matched: z.number().int().describe('Jobs that matched the filter when the bulk job started.'),
      affected: z.number().int().describe('Jobs cancelled (or asked to stop, when running) or retried.'),
      skipped: z
        .array(z.object({ reason: z.string(), count: z.number().int() }).meta({ id: 'BulkJobSkip' }))
        .describe('Matching jobs left alone, counted by reason.'),
    })
    .meta({ id: 'BulkJobActionOutput' }),
  // A second run finds the jobs it already handled ended or retried, and skips them.
  // One bulk action per owner at a time: two over the same jobs would only skip each other's.
  options: { attempts: 3, ownerConcurrency: 1 },
  async prepare(args, ctx) {
    const filter = storedFilter(args.filter);
    if (Object.keys(filter).length === 0 && !args.all) {
      throw new InvalidInputError('filter: an empty filter matches every job you may see; say `all: true` if that is meant');
    }
    // Not the filter's account: it is the caller's to name, unchecked, and this job does not work on it.
    return { input: { action: args.action, filter, all: args.all, asAdmin: ctx.isAdmin }, accountId: null };
  },
  async handler(input, ctx) {
    const em = ctx.em as EntityManager;
    // The jobs that existed when it was enqueued: not itself, nor the jobs created after it.
    const self = (await listJobHistory(em, { ownerId: null, filter: { ids: [ctx.jobId] }, limit: 1 })).rows[0]?.node;
    const filter = historyFilter(input.filter);
    if (self && (!filter.createdBefore || filter.createdBefore > self.createdAt)) filter.createdBefore = self.createdAt;
    const scope = { ownerId: input.asAdmin ? null : ctx.ownerId, filter };
    const matched = await countJobHistory(em, scope, Number.MAX_SAFE_INTEGER);
    ctx.progress({ processed: 0, total: matched, message: `${input.action.toLowerCase()}: starting` });
    ctx.log.info(`${input.action.toLowerCase()}: ${matched} jobs match`, { matched, filter: input.filter });

    let affected = 0;
    let processed = 0;
    const skipped = new Map<string, number>();
    const skip = (reason: string) => skipped.set(reason, (skipped.get(reason) ?? 0) + 1);
    let after: { at: string; id: string } | null = null;
    for (;;) {
      ctx.checkpoint();
      const { rows } = await listJobHistory(em, { ...scope, after, limit: BATCH_SIZE });
      if (rows.length === 0) break;
      for (const { node: job } of rows) {
        const outcome = await act(input.action, job, ctx.jobId, ctx.jobs);
        if (outcome === 'affected') affected++;
        else skip(outcome);
        processed++;
      }
      const last = rows.at(-1)!;
      after = { at: last.cursor_ts, id: last.id };
      ctx.progress({ processed, total: Math.max(matched, processed), message: `${input.action.toLowerCase()}: ${affected} done` });
    }
    const output = {
      action: input.action,
      matched: processed,
      affected,
      skipped: [...skipped].map(([reason, count]) => ({ reason, count })),
    };
    ctx.log.info(`${input.action.toLowerCase()}: ${affected} of ${processed} jobs`, {
      affected,
      matched: processed,
      skipped: output.skipped,
    });
    return output;
  },
});

/** Applies the action to one job; returns 'affected', or why it was skipped. */
async function act(action: BulkJobActionInput['action'], job: JobRecord, selfId: string, jobs: JobControl): Promise<'affected' | string> {
  if (job.id === selfId) return SKIP_REASONS.ITSELF;
  if (action === 'CANCEL') {
    if (isTerminal(job.status)) return SKIP_REASONS.ALREADY_ENDED;
    const after = await jobs.cancel(job.id);
    // Ended meanwhile by its worker: not this job's doing.
    return after.status === 'CANCELLED' || after.cancelRequestedAt ? 'affected' : SKIP_REASONS.ALREADY_ENDED;
  }
  if (job.status !== 'FAILED' && job.status !== 'CANCELLED') return SKIP_REASONS.NOT_FAILED_OR_CANCELLED;
  try {
    await jobs.retry(job.id);
    return 'affected';
  } catch (error) {
    if (error instanceof InvalidInputError && /no longer in the catalogue/.test(error.message)) return SKIP_REASONS.TYPE_REMOVED;
    if (error instanceof QuotaExceededError) return SKIP_REASONS.OWNER_AT_CAP;
    if (error instanceof InvalidStateError) {
      return /still finishing/.test(error.message) ? SKIP_REASONS.STILL_FINISHING : SKIP_REASONS.NOT_FAILED_OR_CANCELLED;
    }
    throw error;
  }
}
