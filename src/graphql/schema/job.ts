import { z } from 'zod';
import { isUuid } from '../../engine/validation.js';
import { callerOf, mayAccess, ownerFilter } from '../../auth/access.js';
import { JOB_STATUSES, JOB_TRIGGERS, type JobRecord } from '../../db/entities/job.entity.js';
import type { AnyJobDeclaration } from '../../engine/define-job.js';
import { MAX_TAGS, TAG_PATTERN, TAG_RULE } from '../../engine/enqueue.js';
import { MAX_METADATA_BYTES } from '../../engine/json-values.js';
import {
  countFinishedPerMinute,
  countJobHistory,
  countJobsByTypeAndStatus,
  type JobCountRow,
  type JobHistoryFilter,
  listJobHistory,
  MAX_FILTER_IDS,
  MAX_THROUGHPUT_MINUTES,
  type ThroughputRow,
  TOTAL_COUNT_CAP,
} from '../../engine/job-history.js';
import { parseInput } from '../../engine/validation.js';
import { parseSnapshot, positionAt, type PositionCodec } from '../../realtime/stream-position.js';
import { findJob } from '../../engine/job-store.js';
import { findJobType, jobCatalogue } from '../../jobs/registry.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { graphqlError } from '../errors.js';
import { decodeCursor, keysetConnection, pageSize, selectsChild, toPage } from '../pagination.js';
import { fieldType, hasPublicFields, internalKeys } from '../zod-to-graphql.js';

export const JobStatusRef = builder.enumType('JobStatus', {
  values: JOB_STATUSES,
  description: 'PENDING → ACTIVE → COMPLETED | FAILED | CANCELLED; DELAYED while waiting for `runAt` or the next attempt.',
});
export const JobTriggerRef = builder.enumType('JobTrigger', { values: JOB_TRIGGERS });

/** The job, or null when it is missing or not the caller's: the two look the same. */
async function findVisibleJob(ctx: GraphQLContext, id: string): Promise<JobRecord | null> {
  const job = isUuid(id) ? await findJob(ctx.em, id) : null;
  return job && mayAccess(callerOf(ctx.viewer), job.ownerId) ? job : null;
}

/** The job, if the caller may see it; someone else's job is reported exactly like a missing one. */
export async function loadVisibleJob(ctx: GraphQLContext, id: string): Promise<JobRecord> {
  const job = await findVisibleJob(ctx, id);
  if (!job) throw graphqlError('NOT_FOUND', `job ${id} not found`);
  return job;
}

export const JobRef = builder.interfaceRef<JobRecord>('Job').implement({
  description: 'A background job. Each job type has its own concrete type with typed `input` and `output`.',
  resolveType: (job) => findJobType(job.type)?.graphql.typeName ?? UNKNOWN_JOB_TYPE,
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Database id (UUID); stable across retries.' }),
    type: t.exposeString('type', { description: 'Catalogue name, e.g. `import_mbox`.' }),
    status: t.field({ type: JobStatusRef, resolve: (job) => job.status }),
    progress: t.exposeFloat('progress', { description: '0 to 100.' }),
    processed: t.exposeInt('processed', { nullable: true, description: 'Units done (messages, archives, ...).' }),
    total: t.exposeInt('total', { nullable: true, description: 'Units expected; null while unknown.' }),
    message: t.exposeString('message', { nullable: true, description: 'Human-readable current step.' }),
    attempts: t.exposeInt('attempts', { description: 'Attempts made so far.' }),
    maxAttempts: t.exposeInt('maxAttempts'),
    priority: t.exposeInt('priority', { nullable: true, description: 'BullMQ priority, 1 = highest.' }),
    payload: t.field({
      type: 'JSON',
      description: 'The stored input, as JSON; internal fields (storage paths) left out.',
      resolve: publicPayload,
    }),
    result: t.field({ type: 'JSON', nullable: true, resolve: (job) => job.result }),
    error: t.exposeString('error', { nullable: true, description: 'Last error message; never a stack trace.' }),
    trigger: t.field({ type: JobTriggerRef, resolve: (job) => job.trigger }),
    idempotencyKey: t.exposeString('idempotencyKey', { nullable: true }),
    ownerId: t.exposeString('ownerId', { nullable: true }),
    createdAt: t.field({ type: 'DateTime', resolve: (job) => job.createdAt }),
    updatedAt: t.field({
      type: 'DateTime',
      description: 'When the row last changed; `jobs(orderBy: UPDATED_AT)` and `filter.updatedAfter` use it.',
      resolve: (job) => job.updatedAt,
    }),
    startedAt: t.field({ type: 'DateTime', nullable: true, resolve: (job) => job.startedAt }),
    finishedAt: t.field({ type: 'DateTime', nullable: true, resolve: (job) => job.finishedAt }),
    runAt: t.field({ type: 'DateTime', nullable: true, description: 'When a delayed job becomes due.', resolve: (job) => job.runAt }),
    cancelRequestedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Set by cancelJob at once; the status follows when the worker stops.',
      resolve: (job) => job.cancelRequestedAt,
    }),
    expiresAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Not started by then, the job ends CANCELLED, "expired before it started" (`options.expiresInMs`).',
      resolve: (job) => job.expiresAt,
    }),
    run: t.exposeInt('run', { description: '1, plus one per `retryJob`: `attempts` counts the attempts of this run.' }),
    tags: t.exposeStringList('tags', {
      description: `Labels given at enqueue (\`options.tags\`): at most ${MAX_TAGS}, each ${TAG_RULE.replace('a tag is ', '')}. Find jobs by them with \`JobFilter.tags\`.`,
    }),
    metadata: t.field({
      type: 'JSON',
      description: `A JSON object (at most ${MAX_METADATA_BYTES} bytes serialised): given at enqueue (\`options.metadata\`), and shallow-merged by the handler while it runs (e.g. an import's bytes read). \`{}\` when none.`,
      resolve: (job) => job.metadata,
    }),
  }),
});

/** One concrete `Job` type per declaration, e.g. `ImportMboxJob`, with typed `input` and `output`. */
function defineConcreteJobType(declaration: AnyJobDeclaration) {
  const name = declaration.graphql.typeName;
  // A type whose stored input has nothing a client may see gets no `input` field at all.
  const input = hasPublicFields(declaration.input) ? fieldType(declaration.input, 'params', `${name}Input`) : null;
  const output = fieldType(declaration.output, 'output', `${name}Output`);
  return builder.objectRef<JobRecord>(name).implement({
    description: declaration.description,
    interfaces: [JobRef],
    isTypeOf: (value) => (value as JobRecord).type === declaration.name,
    fields: (t) => ({
      ...(input
        ? {
            input: t.field({
              type: input.type,
              nullable: true,
              description: 'The payload, typed; null if it no longer matches the declared shape.',
              resolve: (job) => {
                const parsed = declaration.input.safeParse(job.payload);
                return parsed.success ? parsed.data : null;
              },
            }),
          }
        : {}),
      output: t.field({
        type: output.type,
        nullable: true,
        description: 'The result, typed; null until the job completes.',
        resolve: (job) => {
          if (job.status !== 'COMPLETED') return null;
          const parsed = declaration.output.safeParse(job.result);
          return parsed.success ? parsed.data : null;
        },
      }),
    }),
  });
}

/** Per job type, the stored input fields marked internal (storage paths and the like). */
const internalPayloadKeys = new Map(jobCatalogue.map((declaration) => [declaration.name, internalKeys(declaration.input)]));

/** The stored payload as clients may see it: internal fields left out. */
function publicPayload(job: JobRecord): unknown {
  const hidden = internalPayloadKeys.get(job.type);
  if (!hidden?.length || !job.payload || typeof job.payload !== 'object') return job.payload;
  return Object.fromEntries(Object.entries(job.payload).filter(([key]) => !hidden.includes(key)));
}

export const concreteJobTypes = new Map(jobCatalogue.map((declaration) => [declaration.name, defineConcreteJobType(declaration)]));

/** History outlives the catalogue: a job whose type was removed is still listed, without a typed view. */
const UNKNOWN_JOB_TYPE = 'UnknownJob';

builder.objectRef<JobRecord>(UNKNOWN_JOB_TYPE).implement({
  description: 'A job of a type no longer in the catalogue: its history stays readable through the `Job` fields (`payload`, `result`).',
  interfaces: [JobRef],
  isTypeOf: (value) => !findJobType((value as JobRecord).type),
  fields: () => ({}),
});

export type JobFilterInput = JobHistoryFilter;

/** One enum value per catalogue type, so a misspelt type fails validation instead of matching nothing. */
export const JobTypeNameRef = builder.enumType('JobTypeName', {
  description: 'A job type of the catalogue, e.g. `import_mbox`.',
  values: Object.fromEntries(
    jobCatalogue.map((declaration) => [declaration.name, { value: declaration.name, description: declaration.description }]),
  ),
});

export const JobFilterRef = builder.inputType('JobFilter', {
  description: 'Which jobs to list, count or stream; every field given narrows the set.',
  fields: (t) => ({
    ids: t.idList({ required: false, description: `Only these jobs, at most ${MAX_FILTER_IDS}; an empty list matches nothing.` }),
    types: t.field({ type: [JobTypeNameRef], required: false }),
    statuses: t.field({ type: [JobStatusRef], required: false }),
    accountId: t.id({ required: false }),
    createdAfter: t.field({ type: 'DateTime', required: false, description: 'Inclusive.' }),
    createdBefore: t.field({ type: 'DateTime', required: false, description: 'Exclusive.' }),
    updatedAfter: t.field({
      type: 'DateTime',
      required: false,
      description: 'Inclusive: jobs whose state changed at or after this instant (any change, progress included).',
    }),
    tags: t.stringList({
      required: false,
      description: `Jobs holding every one of these tags (at most ${MAX_TAGS}); an empty list narrows nothing.`,
    }),
  }),
});

export const JobOrderRef = builder.enumType('JobOrder', {
  description: 'The order of `jobs`, newest first; each has its own keyset cursor.',
  values: {
    CREATED_AT: { value: 'CREATED_AT', description: 'By creation time: a job keeps its place.' },
    UPDATED_AT: {
      value: 'UPDATED_AT',
      description:
        'By last change: a job changed while you page moves ahead of your cursor, so fetch `updatedAfter` the time you started to catch it.',
    },
  } as const,
});

const JobConnectionRef = keysetConnection<JobRecord>('Job', JobRef, {
  totalCount: `How many jobs the caller may see match the filter, across all pages (\`after\` and \`first\` aside). Exact up to ${TOTAL_COUNT_CAP.toLocaleString('en-US')}; when more match, the count stops there and says ${TOTAL_COUNT_CAP.toLocaleString('en-US')}, which then means "at least". Computed only when selected.`,
});

/** The position a `jobs` page reflects, as the cursor `jobEvents(after:)` takes. */
function streamCursorOf(positions: PositionCodec, snapshotText: string): string {
  const snapshot = parseSnapshot(snapshotText, Date.now());
  if (!snapshot) throw new Error(`unexpected snapshot text ${snapshotText}`);
  return positions.encode(positionAt(snapshot));
}

builder.objectField(JobConnectionRef, 'streamCursor', (t) =>
  t.string({
    description:
      'The stream position this page reflects: subscribe to `jobEvents(filter, after: streamCursor)` to get every change since, then live, with nothing missed between this query and the subscription.',
    // Signed only when selected: most pages are read without it.
    resolve: (page, _args, ctx) => streamCursorOf(ctx.services.positions, (page as unknown as { snapshot: string }).snapshot),
  }),
);

export const JobCountRef = builder.objectRef<JobCountRow>('JobCount').implement({
  description: 'How many jobs of one type are in one status.',
  fields: (t) => ({
    type: t.field({ type: JobTypeNameRef, resolve: (row) => row.type }),
    status: t.field({ type: JobStatusRef, resolve: (row) => row.status }),
    count: t.exposeInt('count'),
  }),
});

export const JobThroughputRef = builder.objectRef<ThroughputRow>('JobThroughput').implement({
  description: 'Jobs that ended in one minute.',
  fields: (t) => ({
    minute: t.expose('minute', { type: 'DateTime', description: "The minute's start." }),
    completed: t.exposeInt('completed'),
    failed: t.exposeInt('failed'),
  }),
});

const throughputRules = z.object({
  minutes: z.number().int().min(1, 'at least 1 minute').max(MAX_THROUGHPUT_MINUTES, `at most ${MAX_THROUGHPUT_MINUTES} minutes (a day)`),
});

/** What GraphQL types cannot say about a filter. */
const jobFilterRules = z.object({
  ids: z.array(z.string()).max(MAX_FILTER_IDS, `at most ${MAX_FILTER_IDS} ids`).nullish(),
  tags: z.array(z.string().regex(TAG_PATTERN, TAG_RULE)).max(MAX_TAGS, `at most ${MAX_TAGS} tags`).nullish(),
});

/**
 * The filter of `jobs`, `jobCounts`, `jobEvents` and the bulk job actions, checked (BAD_USER_INPUT
 * when it breaks a rule), its lists as sets: a type, status, id or tag given twice narrows nothing
 * more, and a list of thousands of repeats would otherwise become as many SQL parameters (past
 * PostgreSQL's 65,535) and, for a bulk action, a job payload of that size in every event about it.
 */
export function checkJobFilter(filter: JobFilterInput | null | undefined): JobFilterInput | null {
  if (!filter) return null;
  const checked: JobFilterInput = { ...filter };
  for (const list of ['types', 'statuses', 'ids', 'tags'] as const) {
    if (filter[list]) checked[list] = [...new Set<string>(filter[list])] as never;
  }
  parseInput(jobFilterRules, checked, 'filter');
  return checked;
}

builder.queryFields((t) => ({
  job: t.field({
    type: JobRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => findVisibleJob(ctx, String(id)),
  }),
  jobs: t.field({
    type: JobConnectionRef,
    description: 'Job history from PostgreSQL, newest first (by `orderBy`), with a keyset cursor.',
    args: {
      filter: t.arg({ type: JobFilterRef, required: false }),
      orderBy: t.arg({ type: JobOrderRef, required: false, defaultValue: 'CREATED_AT' }),
      first: t.arg.int({ required: false, defaultValue: 50 }),
      after: t.arg.string({ required: false }),
    },
    resolve: async (_root, args, ctx, info) => {
      const size = pageSize(args.first);
      const scope = { ownerId: ownerFilter(callerOf(ctx.viewer)), filter: checkJobFilter(args.filter as JobFilterInput | null) };
      const order = args.orderBy ?? 'CREATED_AT';
      // CREATED_AT is the default order: its cursors stay those issued before `orderBy` existed.
      const cursorOrder = order === 'CREATED_AT' ? undefined : order;
      const after = args.after ? decodeCursor(args.after, cursorOrder) : null;
      // A selected count runs beside the page, on a second connection, not after it.
      const counting = selectsChild(info, 'totalCount') ? countJobHistory(ctx.em, scope) : null;
      // Should the page fail first, the count's own failure has no field left to report it.
      counting?.catch(() => {});
      const { rows, snapshot } = await listJobHistory(ctx.em, {
        ...scope,
        order,
        after: after && { at: after.createdAt, id: after.id },
        limit: size + 1,
      });
      const page = toPage(rows, size, (row) => row.node, args.after, {
        order: cursorOrder,
        count: () => counting ?? countJobHistory(ctx.em, scope),
      });
      return Object.assign(page, { snapshot });
    },
  }),
  jobCounts: t.field({
    type: [JobCountRef],
    description:
      "Jobs the caller may see (a user: their own; an admin: everyone's) matching the filter, counted by type and status; exact. Pairs with no job are left out.",
    args: { filter: t.arg({ type: JobFilterRef, required: false }) },
    resolve: async (_root, args, ctx) => {
      const scope = { ownerId: ownerFilter(callerOf(ctx.viewer)), filter: checkJobFilter(args.filter as JobFilterInput | null) };
      // Rows of a type since removed from the catalogue have no JobTypeName to report them under.
      return (await countJobsByTypeAndStatus(ctx.em, scope)).filter((row) => findJobType(row.type));
    },
  }),
  jobThroughput: t.field({
    type: [JobThroughputRef],
    description: `Jobs the caller may see (a user: their own; an admin: everyone's) matching the filter that completed or failed, per minute of \`finishedAt\`, over the last \`minutes\` minutes (1 to ${MAX_THROUGHPUT_MINUTES}, the current one included), oldest first. Minutes when none ended are left out. From \`jobEvents\`, an event whose status is COMPLETED or FAILED and differs from its \`previousStatus\` is one more, in the minute of its \`finishedAt\`; but this counts each job once, by its current status and \`finishedAt\`, so a FAILED job that is retried leaves the minute it failed in, which no event can say (it carries no previous \`finishedAt\`). Counts kept from the stream can so run high after retries (unlike \`jobCounts\`, which stays exact from it): query this again now and then, and on each resubscribe.`,
    args: { minutes: t.arg.int({ required: false, defaultValue: 60 }), filter: t.arg({ type: JobFilterRef, required: false }) },
    resolve: async (_root, args, ctx) => {
      const { minutes } = parseInput(throughputRules, { minutes: args.minutes ?? 60 });
      const scope = { ownerId: ownerFilter(callerOf(ctx.viewer)), filter: checkJobFilter(args.filter as JobFilterInput | null) };
      return countFinishedPerMinute(ctx.em, scope, minutes);
    },
  }),
}));
