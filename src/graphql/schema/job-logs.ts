import { callerOf, mayAccess } from '../../auth/access.js';
import { LOG_LEVELS, type JobRecord } from '../../db/entities/job.entity.js';
import { type JobLogEntry, readJobLog } from '../../engine/job-log.js';
import { isTerminal } from '../../engine/job-store.js';
import { isUuid } from '../../engine/validation.js';
import { topics } from '../../pubsub/topics.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { graphqlError } from '../errors.js';
import { keysetConnection, pageOf, pageSize } from '../pagination.js';
import { JobRef } from './job.js';
import { eventOrExpiry, guardSubscription, takeSubscriptionSlot } from './subscriptions.js';

/** Lines read per statement while a `jobLogs` subscriber catches up. */
const CATCH_UP_PAGE = 500;

const LogLevelRef = builder.enumType('LogLevel', { values: LOG_LEVELS });

/** A line's cursor: its place in the job's log. */
function encodeLogCursor(id: string): string {
  return Buffer.from(`log|${id}`, 'utf8').toString('base64url');
}

function decodeLogCursor(cursor: string): string {
  const text = cursor.length <= 64 ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const match = /^log\|([1-9][0-9]{0,17})$/.exec(text);
  if (!match) throw graphqlError('BAD_USER_INPUT', 'after: not a log cursor returned by this API');
  return match[1]!;
}

const JobLogLineRef = builder.objectRef<JobLogEntry>('JobLogLine').implement({
  description: "A line of a job's log, written by its handler (`ctx.log`).",
  fields: (t) => ({
    at: t.field({ type: 'DateTime', resolve: (line) => line.at }),
    level: t.field({ type: LogLevelRef, resolve: (line) => line.level }),
    message: t.exposeString('message', { description: 'At most 2,000 characters.' }),
    fields: t.field({
      type: 'JSON',
      nullable: true,
      description: 'Structured details (e.g. `{ "index": 12 }`), at most 4 KiB serialised; secret-named keys are redacted.',
      resolve: (line) => line.fields,
    }),
    attempt: t.exposeInt('attempt', { description: 'The attempt (of `run`) that wrote it.' }),
    run: t.exposeInt('run', { description: 'The run (1, plus one per `retryJob`) that wrote it.' }),
    cursor: t.string({
      description: 'Pass as `after` to `Job.logs` or `jobLogs` to read the lines after this one.',
      resolve: (line) => encodeLogCursor(line.id),
    }),
  }),
});

const JobLogConnectionRef = keysetConnection<JobLogEntry>('JobLog', JobLogLineRef);

builder.objectField(JobLogConnectionRef, 'droppedCount', (t) =>
  t.int({
    description:
      "Lines dropped from the start of this job's log to keep it within its bound (JOB_LOG_MAX_LINES, 1,000 by default): the log keeps the newest lines.",
    resolve: (page) => (page as unknown as { droppedCount: number }).droppedCount,
  }),
);

builder.interfaceField(JobRef, 'logs', (t) =>
  t.field({
    type: JobLogConnectionRef,
    description:
      "What the job's handler logged, oldest first, across every attempt and run. Bounded per job (JOB_LOG_MAX_LINES, 1,000 by default): the oldest lines beyond it are dropped and counted in `droppedCount`. Follow new lines live with `jobLogs`.",
    args: { first: t.arg.int({ required: false, defaultValue: 50 }), after: t.arg.string({ required: false }) },
    resolve: async (job: JobRecord, args, ctx) => {
      const size = pageSize(args.first);
      const afterId = args.after ? decodeLogCursor(args.after) : null;
      const page = await readJobLog(ctx.em, job.id, afterId, size + 1);
      const lines = pageOf(
        page.lines,
        size,
        (line) => line,
        (line) => encodeLogCursor(line.id),
        args.after,
      );
      const connection = { ...lines, droppedCount: page.job?.logLinesDropped ?? job.logLinesDropped };
      return connection as never;
    },
  }),
);

/** A job not running writes no lines: its fallback read (for a lost bell) comes this many times less often. */
const IDLE_POLL_FACTOR = 10;

/**
 * A job's log lines after `afterId`, then each new one, ending once the job is final and every
 * line is sent. PostgreSQL holds the lines; pub/sub (a flush of the job's log, or a change of the
 * job) only rings the bell, and a fallback read every STREAM_POLL_INTERVAL_MS (less often while
 * the job is not running) means a lost message delays a line, never loses it. Lines are read
 * only as the transport takes them, a page at a time.
 */
async function* followJobLog(ctx: GraphQLContext, jobId: string, afterId: string | null, signal: AbortSignal) {
  const { pubsub, orm, config } = ctx.services;
  let rang = false;
  let wake: (() => void) | null = null;
  const ring = () => {
    rang = true;
    wake?.();
  };
  // Listening before the first read: a line flushed in between still rings.
  const stops = await Promise.all([pubsub.listen(topics.jobLog(jobId), ring), pubsub.listen(topics.job(jobId), ring)]);
  signal.addEventListener('abort', ring);
  let timer: NodeJS.Timeout | undefined;
  try {
    let cursor = afterId;
    while (!signal.aborted) {
      rang = false;
      const page = await readJobLog(orm.em, jobId, cursor, CATCH_UP_PAGE);
      for (const line of page.lines) {
        yield line;
        cursor = line.id;
      }
      if (page.lines.length === CATCH_UP_PAGE) continue;
      // Read in one snapshot with the lines: a final job has flushed its last line before it ended.
      if (!page.job || isTerminal(page.job.status)) return;
      if (!rang) {
        const pollMs = config.STREAM_POLL_INTERVAL_MS * (page.job.status === 'ACTIVE' ? 1 : IDLE_POLL_FACTOR);
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, pollMs);
        });
        clearTimeout(timer);
        wake = null;
      }
    }
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', ring);
    for (const stop of stops) stop();
  }
}

builder.subscriptionField('jobLogs', (t) =>
  t.field({
    type: JobLogLineRef,
    description:
      "A job's log, live: the stored lines after `after` (every line without it), then each new line as the handler writes it; completes once the job is final and its last line is sent.",
    args: {
      jobId: t.arg.id({ required: true }),
      after: t.arg.string({
        required: false,
        description: "A line's `cursor` (from `Job.logs` or an earlier `jobLogs`): resume after it.",
      }),
    },
    subscribe: async (_root, { jobId, after }, ctx) => {
      const id = String(jobId);
      const afterId = after ? decodeLogCursor(after) : null;
      const found = isUuid(id) ? await readJobLog(ctx.services.orm.em, id, null, 0) : null;
      // Someone else's job looks exactly like a missing one.
      if (!found?.job || !mayAccess(callerOf(ctx.viewer), found.job.ownerId)) throw graphqlError('NOT_FOUND', `job ${id} not found`);
      const lease = await takeSubscriptionSlot(ctx, 'jobLogs');
      return guardSubscription(ctx, 'jobLogs', lease, (signal) => followJobLog(ctx, id, afterId, signal));
    },
    resolve: eventOrExpiry,
  }),
);
