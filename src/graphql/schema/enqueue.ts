import type { z } from 'zod';
import { callerOf } from '../../auth/access.js';
import { releaseJobInput } from '../../engine/define-job.js';
import type { EnqueueDeps } from '../../engine/enqueue.js';
import { cancelJob, enqueueJob, MAX_TAGS, retryJob, TAG_RULE } from '../../engine/enqueue.js';
import { MAX_METADATA_BYTES } from '../../engine/json-values.js';
import { toEventMessage } from '../../engine/job-store.js';
import { findJobType, jobCatalogue } from '../../jobs/registry.js';
import { topics } from '../../pubsub/topics.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { graphqlError } from '../errors.js';
import { fieldType, stripNulls } from '../zod-to-graphql.js';
import { type BulkJobActionInput, bulkJobActionJob, storedFilter } from '../../jobs/bulk-job-action.job.js';
import { checkJobFilter, concreteJobTypes, type JobFilterInput, JobFilterRef, JobRef, loadVisibleJob } from './job.js';

export const EnqueueOptionsRef = builder.inputType('EnqueueOptions', {
  fields: (t) => ({
    priority: t.int({ required: false, description: "BullMQ priority, 1 = highest, up to 2097151. Default: the type's." }),
    delayMs: t.int({ required: false, description: 'Run no earlier than this many milliseconds from now (status DELAYED).' }),
    idempotencyKey: t.string({
      required: false,
      description: 'A second call with the same key by the same owner returns the first job instead of a new one.',
    }),
    expiresInMs: t.int({
      required: false,
      description:
        'Not started this many milliseconds after the enqueue, the job ends CANCELLED with message "expired before it started" (must exceed `delayMs`). A `retryJob` clears it. Default: never.',
    }),
    idempotencyTtlMs: t.int({
      required: false,
      description:
        'How long `idempotencyKey` answers a repeated call with the first job; after it, the same key enqueues a new job (the old one keeps its history, without the key). Default: forever.',
    }),
    tags: t.stringList({
      required: false,
      description: `Labels to find the job by (\`JobFilter.tags\`): at most ${MAX_TAGS}; ${TAG_RULE}. Duplicates are dropped.`,
    }),
    metadata: t.field({
      type: 'JSON',
      required: false,
      description: `A JSON object kept with the job as \`metadata\`, at most ${MAX_METADATA_BYTES} bytes serialised; the handler may add to it while it runs.`,
    }),
  }),
});

export function enqueueDeps(ctx: GraphQLContext): EnqueueDeps & { requestAbort(jobId: string): Promise<void> } {
  const { services } = ctx;
  return {
    em: ctx.em,
    queues: services.queues,
    storage: services.storage,
    config: services.config,
    inserts: services.jobInserts,
    publish: (job) => services.pubsub.publishJobEvent(toEventMessage(job)),
    release: (job) =>
      releaseJobInput(findJobType(job.type), job, services, (error) =>
        services.logger.warn({ jobId: job.id, err: error }, 'could not release the input of a cancelled job'),
      ),
    requestAbort: (jobId) => services.pubsub.publish(topics.cancel(), { jobId }),
  };
}

// One mutation per declared job type, its arguments built from the declaration's zod schema.
for (const declaration of jobCatalogue) {
  if (declaration.graphql.handWrittenMutations) continue;
  builder.mutationField(declaration.graphql.mutation, (t) => {
    const args = Object.fromEntries(
      Object.entries(declaration.args.shape as Record<string, z.core.$ZodType>).map(([name, schema]) => {
        const field = fieldType(schema, 'input', `${declaration.graphql.typeName}${name[0]!.toUpperCase()}${name.slice(1)}`);
        return [name, t.arg({ type: field.type, required: field.required, description: field.description } as never)];
      }),
    );
    return t.field({
      type: concreteJobTypes.get(declaration.name)!,
      description: `${declaration.description} Returns the job at once (PENDING, or DELAYED with delayMs).${declaration.graphql.adminOnly ? ' Admins only.' : ''}`,
      ...(declaration.graphql.adminOnly ? { authScopes: { admin: true } } : {}),
      args: { ...args, options: t.arg({ type: EnqueueOptionsRef, required: false }) } as never,
      resolve: async (_root, rawArgs: Record<string, unknown>, ctx) => {
        const { options, ...jobArgs } = rawArgs;
        const caller = callerOf(ctx.viewer);
        return enqueueJob(enqueueDeps(ctx), {
          declaration,
          args: stripNulls(jobArgs) as Record<string, unknown>,
          ownerId: caller.ownerId,
          isAdmin: caller.isAdmin,
          trigger: 'API',
          options: (options ?? {}) as never,
          admit: () => ctx.services.quotas.checkEnqueue(ctx.em, caller),
        });
      },
    });
  });
}

builder.mutationFields((t) => ({
  cancelJob: t.field({
    type: JobRef,
    description:
      'Queued: removed from the queue and CANCELLED. Running: `cancelRequestedAt` is set at once and the handler is aborted at its next checkpoint; the status follows.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, ctx) => {
      await loadVisibleJob(ctx, String(id));
      return cancelJob(enqueueDeps(ctx), String(id));
    },
  }),
  ...bulkJobActionMutations(t),
  retryJob: t.field({
    type: JobRef,
    description: 'Runs a FAILED or CANCELLED job again under the same id, with trigger RETRY.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, ctx) => {
      const job = await loadVisibleJob(ctx, String(id));
      // A bulk action enqueued by an admin acts on everyone's jobs: only an admin may run it again.
      if (job.type === bulkJobActionJob.name && job.payload.asAdmin === true && !callerOf(ctx.viewer).isAdmin) {
        throw graphqlError('FORBIDDEN', 'this bulk action was started by an admin, on every owner’s jobs: only an admin may retry it');
      }
      const declaration = findJobType(job.type);
      if (!declaration) throw graphqlError('BAD_USER_INPUT', `job type ${job.type} is no longer in the catalogue`);
      return retryJob(enqueueDeps(ctx), declaration, job.id, () => ctx.services.quotas.checkEnqueue(ctx.em, callerOf(ctx.viewer)));
    },
  }),
}));

/** `cancelJobs` and `retryJobs`: each enqueues one `bulk_job_action` job that acts on every matching job the caller may see. */
function bulkJobActionMutations(t: Parameters<Parameters<typeof builder.mutationFields>[0]>[0]) {
  const mutation = (action: BulkJobActionInput['action'], description: string) =>
    t.field({
      type: concreteJobTypes.get(bulkJobActionJob.name)!,
      description: `${description} Returns the bulk job at once: follow it like any job (progress counts jobs; \`output\` has matched, affected and skipped with reasons); cancelling it stops it between jobs. A user acts on their own jobs, an admin on everyone's. An empty filter is refused unless \`all: true\`.`,
      args: {
        filter: t.arg({ type: JobFilterRef, required: true }),
        all: t.arg.boolean({
          required: false,
          defaultValue: false,
          description: 'Required with an empty filter: act on every job you may see.',
        }),
        options: t.arg({ type: EnqueueOptionsRef, required: false }),
      },
      resolve: async (_root, { filter, all, options }, ctx) => {
        const caller = callerOf(ctx.viewer);
        const checked = checkJobFilter(filter as JobFilterInput) ?? {};
        return enqueueJob(enqueueDeps(ctx), {
          declaration: bulkJobActionJob,
          // Stored as the payload keeps it: dates as ISO text, empty lists left out.
          args: { action, filter: storedFilter(checked as Record<string, unknown>), all: all ?? false },
          ownerId: caller.ownerId,
          isAdmin: caller.isAdmin,
          trigger: 'API',
          options: (options ?? {}) as never,
          // Cancelling is how an owner at the unfinished-jobs cap gets below it: only the rate applies.
          admit: () => ctx.services.quotas.checkEnqueue(ctx.em, caller, { unfinishedCap: action !== 'CANCEL' }),
        });
      },
    });
  return {
    cancelJobs: mutation('CANCEL', 'Cancels every job matching `filter` that has not ended, as `cancelJob` would.'),
    retryJobs: mutation('RETRY', 'Retries every FAILED or CANCELLED job matching `filter`, as `retryJob` would.'),
  };
}
