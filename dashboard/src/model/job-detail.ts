import { CancelJob, JobDetailChanges, JobDetailSnapshot, JobLogLines, RetryJob } from '../api/documents';
import { type GraphQLRequestError, request } from '../api/graphql';
import { type ConnectionState, resumableStream } from '../api/resumable-stream';
import type { Session } from '../api/session';
import { Store } from './store';
import { FINAL_STATUSES, type JobDetail, type JobEvent, type JobLogLine } from './types';

/** Lines kept on the page; the API keeps at most JOB_LOG_MAX_LINES per job anyway. */
const MAX_LOG_LINES = 2_000;

/**
 * One job, opened: its whole state (typed input and output, attempts, metadata), kept live by
 * `jobEvents(filter: { ids: [id] })` from the position of the query that read it, and its log
 * from `jobLogs`, which sends the stored lines and then new ones until the job ends. A retried
 * job runs again, so its log is followed again from the last line shown.
 */
export class JobDetailModel extends Store {
  job: JobDetail | null = null;
  notFound = false;
  logs: JobLogLine[] = [];
  logsLive = false;
  connection: ConnectionState = 'connecting';
  error: GraphQLRequestError | null = null;
  /** The last action's outcome, for the live region. */
  notice: string | null = null;
  private stopJob: (() => void) | null = null;
  private stopLogs: (() => void) | null = null;
  private stopped = false;

  constructor(
    private readonly session: Session,
    readonly jobId: string,
    /** The job's GraphQL type (e.g. ImportMboxJob), for its typed input and output; null if unknown yet. */
    private readonly typename: string | null,
  ) {
    super();
  }

  async start(): Promise<void> {
    try {
      const data = await request<{ jobs: { nodes: JobDetail[]; streamCursor: string } }>(
        this.session.token,
        JobDetailSnapshot(this.typename),
        {
          id: this.jobId,
        },
      );
      if (this.stopped) return;
      this.job = data.jobs.nodes[0] ?? null;
      this.notFound = !this.job;
      this.changed();
      if (!this.job) return;
      this.followLogs();
      this.stopJob = resumableStream<{ jobEvents: JobEvent<JobDetail> }>({
        token: this.session.token,
        // The type the snapshot said: a list row or a form may not have known it.
        document: JobDetailChanges(this.job.__typename),
        after: data.jobs.streamCursor,
        variables: (after) => ({ id: this.jobId, after }),
        cursorOf: (event) => event.jobEvents.cursor,
        onEvent: (event) => {
          this.job = event.jobEvents.job;
          if (!FINAL_STATUSES.includes(this.job.status) && !this.logsLive) this.followLogs();
          this.changed();
        },
        onState: (state) => {
          this.connection = state;
          this.changed();
        },
        onRefused: (error) => this.fail(error),
      });
    } catch (error) {
      this.fail(error as GraphQLRequestError);
    }
  }

  stop(): void {
    this.stopped = true;
    this.stopJob?.();
    this.stopLogs?.();
  }

  async cancel(): Promise<void> {
    await this.act(CancelJob, 'Cancel requested.');
  }

  async retry(): Promise<void> {
    await this.act(RetryJob, 'Retry queued.');
  }

  /** Runs a mutation on this job; `done` is what the page then says. */
  private async act(mutation: string, done: string): Promise<void> {
    this.notice = null;
    this.error = null;
    try {
      await request(this.session.token, mutation, { id: this.jobId });
      this.notice = done;
    } catch (error) {
      this.error = error as GraphQLRequestError;
    }
    this.changed();
  }

  /** The log from the last line shown: stored lines first, then live ones until the job ends. */
  private followLogs(): void {
    this.stopLogs?.();
    this.logsLive = true;
    this.stopLogs = resumableStream<{ jobLogs: JobLogLine }>({
      token: this.session.token,
      document: JobLogLines,
      after: this.logs[this.logs.length - 1]?.cursor ?? null,
      variables: (after) => ({ jobId: this.jobId, after }),
      cursorOf: (line) => line.jobLogs.cursor,
      onEvent: (line) => {
        this.logs.push(line.jobLogs);
        if (this.logs.length > MAX_LOG_LINES) this.logs.splice(0, this.logs.length - MAX_LOG_LINES);
        this.changed();
      },
      onComplete: () => {
        // The log ends with the job; a replica that shuts down ends it too, and then it goes on.
        if (this.job && !FINAL_STATUSES.includes(this.job.status)) return this.followLogs();
        this.logsLive = false;
        this.changed();
      },
      onRefused: (error) => this.fail(error),
    });
  }

  private fail(error: GraphQLRequestError): void {
    this.error = error;
    this.changed();
  }
}
