import type { JobStatus } from '../db/entities/job.entity.js';

/**
 * A job's public state as it travels between processes. It carries everything a subscriber is
 * sent, so no replica reads the database per event; dates travel as ISO strings.
 */
export interface JobEventMessage {
  jobId: string;
  type: string;
  status: JobStatus;
  progress: number;
  processed: number | null;
  total: number | null;
  message: string | null;
  error: string | null;
  result: unknown;
  at: string;
  /** Row version after the change; lets a subscriber drop anything older than what it sent. */
  version: number;
  /** Used to filter `jobEvents` per caller; never sent to clients. */
  ownerId: string;
  accountId: string | null;
}

/** Asks whichever sidecar runs the job to abort it. */
export interface CancelRequestMessage {
  jobId: string;
}

/** The one table of pub/sub topics: channel name builders and the payload each carries. */
export const topics = {
  /** Events of one job, for `jobProgress`. */
  job: (jobId: string) => ({ channel: `job:${jobId}`, payload: undefined as unknown as JobEventMessage }),
  /** Events of every job, for `jobEvents` dashboards. */
  allJobs: () => ({ channel: 'jobs', payload: undefined as unknown as JobEventMessage }),
  /** Cancellation requests, for every sidecar. */
  cancel: () => ({ channel: 'cancel', payload: undefined as unknown as CancelRequestMessage }),
} as const;

export type Topic<T> = { channel: string; payload: T };
