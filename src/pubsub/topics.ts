import type { JobRecord } from '../db/entities/job.entity.js';

/** A job row as it travels between processes: every field, dates as ISO strings. */
export type JobWire = Omit<
  JobRecord,
  'createdAt' | 'updatedAt' | 'startedAt' | 'finishedAt' | 'runAt' | 'cancelRequestedAt' | 'expiresAt' | 'idempotencyExpiresAt'
> & {
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  runAt: string | null;
  cancelRequestedAt: string | null;
  expiresAt: string | null;
  idempotencyExpiresAt: string | null;
};

/**
 * A change of a job, as it travels between processes. It carries the job's whole state after the
 * change (and the status before it), so no replica reads the database per event; `job.version`
 * lets a subscriber drop anything older than what it sent, `job.ownerId` filters `jobEvents`.
 */
export interface JobEventMessage {
  job: JobWire;
}

/** Some jobs changed: rings every replica's change feed, which reads what changed from PostgreSQL. */
export interface JobChangeBell {
  /** How many job changes this ring announces (one ring may stand for a whole batch). */
  changes: number;
}

/** Asks whichever sidecar runs the job to abort it. */
export interface CancelRequestMessage {
  jobId: string;
}

/** New lines in a job's log: rings the bell of `jobLogs` subscribers, who read them from PostgreSQL. */
export interface JobLogMessage {
  jobId: string;
}

/** A job type was paused or resumed. */
export interface JobTypeChangeMessage {
  type: string;
}

/** The one table of pub/sub topics: channel name builders and the payload each carries. */
export const topics = {
  /** Events of one job, for `jobProgress`. */
  job: (jobId: string) => ({ channel: `job:${jobId}`, payload: undefined as unknown as JobEventMessage }),
  /** The change feed's doorbell: some job changed (see `JobChangeBell`). */
  jobChanges: () => ({ channel: 'jobs', payload: undefined as unknown as JobChangeBell }),
  /** New lines in one job's log, for `jobLogs`. */
  jobLog: (jobId: string) => ({ channel: `log:${jobId}`, payload: undefined as unknown as JobLogMessage }),
  /** Job types paused or resumed, for `jobTypeChanged`. */
  jobTypes: () => ({ channel: 'job-types', payload: undefined as unknown as JobTypeChangeMessage }),
  /** A schedule changed: every sidecar syncs its job schedulers now. */
  schedules: () => ({ channel: 'schedules', payload: undefined as unknown as { scheduleId: string } }),
  /** Cancellation requests, for every sidecar. */
  cancel: () => ({ channel: 'cancel', payload: undefined as unknown as CancelRequestMessage }),
} as const;

export type Topic<T> = { channel: string; payload: T };
