import type { ATTEMPT_OUTCOMES, JobAttempt, JobRecord } from '../../db/entities/job.entity.js';
import { listAttemptsOfJobs } from '../../engine/job-attempts.js';
import { builder } from '../builder.js';
import { JobRef } from './job.js';

const AttemptOutcomeRef = builder.enumType('AttemptOutcome', {
  description: 'How an attempt ended.',
  values: {
    COMPLETED: { value: 'COMPLETED', description: 'The handler returned: the job COMPLETED.' },
    FAILED: { value: 'FAILED', description: 'The handler threw and no attempt was left (or the error was permanent): the job FAILED.' },
    RETRIED: { value: 'RETRIED', description: 'The handler threw; the job waited (DELAYED) for another attempt.' },
    CANCELLED: { value: 'CANCELLED', description: 'Aborted by `cancelJob`.' },
    STALLED: {
      value: 'STALLED',
      description: "The worker stopped responding (crashed, killed, or lost its lock); `finishedAt` is the attempt's last sign of life.",
    },
    HANDED_BACK: { value: 'HANDED_BACK', description: 'The worker shut down and put the job back in the queue for another worker.' },
    TIMED_OUT: { value: 'TIMED_OUT', description: "The attempt ran past its type's timeout." },
  } satisfies Record<(typeof ATTEMPT_OUTCOMES)[number], unknown>,
});

const JobAttemptRef = builder.objectRef<JobAttempt>('JobAttempt').implement({
  description: 'One attempt of a job: when it ran, on which worker, and how it ended.',
  fields: (t) => ({
    run: t.exposeInt('run', { description: 'The run it belongs to: 1, plus one per `retryJob`.' }),
    number: t.exposeInt('number', { description: 'Its number within the run, from 1.' }),
    startedAt: t.field({ type: 'DateTime', resolve: (attempt) => attempt.startedAt }),
    finishedAt: t.field({ type: 'DateTime', nullable: true, description: 'Null while it runs.', resolve: (attempt) => attempt.finishedAt }),
    outcome: t.field({
      type: AttemptOutcomeRef,
      nullable: true,
      description: 'Null while it runs.',
      resolve: (attempt) => attempt.outcome,
    }),
    error: t.exposeString('error', { nullable: true, description: 'Why it did not complete; never a stack trace.' }),
    durationMs: t.int({
      nullable: true,
      description: '`finishedAt` − `startedAt`, in milliseconds; null while it runs.',
      resolve: (attempt) => (attempt.finishedAt ? attempt.finishedAt.getTime() - attempt.startedAt.getTime() : null),
    }),
    worker: t.exposeString('worker', { description: 'The worker that ran it, as `host:pid`.' }),
  }),
});

builder.interfaceField(JobRef, 'attemptHistory', (t) =>
  t.loadableGroup({
    type: JobAttemptRef,
    description:
      'Every attempt of the job, oldest first, across its runs: kept through retries (`retryJob` starts a new run), worker crashes (STALLED) and reconciliation.',
    // One query for every job of a list that selects it. Not cached: a subscription keeps its
    // context across events, and each event must show the attempts as they are then.
    loaderOptions: { cache: false },
    load: (jobIds: string[], ctx) => listAttemptsOfJobs(ctx.em, jobIds),
    group: (attempt) => attempt.jobId,
    resolve: (job: JobRecord) => job.id,
  }),
);
