/** The shapes the dashboard's operations return (see operations/*.graphql). */

export const JOB_STATUSES = ['PENDING', 'DELAYED', 'ACTIVE', 'COMPLETED', 'FAILED', 'CANCELLED'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Statuses a job does not leave by itself. */
export const FINAL_STATUSES: readonly JobStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];

export interface JobRow {
  __typename?: string;
  id: string;
  type: string;
  status: JobStatus;
  progress: number;
  processed: number | null;
  total: number | null;
  message: string | null;
  ownerId: string | null;
  tags: string[];
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
  cancelRequestedAt: string | null;
}

export interface JobAttempt {
  run: number;
  number: number;
  worker: string;
  outcome: string | null;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  error: string | null;
}

export interface JobDetail extends JobRow {
  __typename: string;
  metadata: Record<string, unknown>;
  attempts: number;
  maxAttempts: number;
  run: number;
  trigger: string;
  priority: number | null;
  idempotencyKey: string | null;
  runAt: string | null;
  expiresAt: string | null;
  attemptHistory: JobAttempt[];
  /** The typed input and output, selected for the job's own type (`...TypedJob`). */
  input?: unknown;
  output?: unknown;
}

export interface JobLogLine {
  cursor: string;
  at: string;
  level: 'INFO' | 'WARN' | 'ERROR';
  message: string;
  fields: Record<string, unknown> | null;
  run: number;
  attempt: number;
}

export interface JobCount {
  type: string;
  status: JobStatus;
  count: number;
}

export interface ThroughputMinute {
  minute: string;
  completed: number;
  failed: number;
}

export interface JobEvent<J> {
  cursor: string;
  previousStatus?: JobStatus | null;
  job: J;
}

export interface JobTypeInfo {
  name: string;
  mutation: string;
  graphqlType: string;
  description: string;
  paused: boolean;
}

export interface Schedule {
  id: string;
  jobType: string;
  cron: string;
  timezone: string;
  enabled: boolean;
  nextRunAt: string | null;
  lastRunAt: string | null;
}

export interface Account {
  id: string;
  name: string;
  email: string | null;
  ownerId: string;
}

/** What the list shows: every field given narrows it. */
export interface JobListFilter {
  types: string[];
  statuses: JobStatus[];
  tags: string[];
}
