import { JobChanges, JobList, RetryJobs } from '../api/documents';
import { type GraphQLRequestError, request } from '../api/graphql';
import { type ConnectionState, resumableStream } from '../api/resumable-stream';
import type { Session } from '../api/session';
import { Store } from './store';
import type { JobCount, JobEvent, JobListFilter, JobRow, JobStatus, ThroughputMinute } from './types';

/** Rows fetched per page of history. */
export const PAGE_SIZE = 50;
/** How long a first read that found the API away waits before it tries again. */
const START_RETRY_MS = 2_000;
/** Minutes the throughput chart covers. */
export const THROUGHPUT_MINUTES = 60;

interface JobListData {
  jobs: { nodes: JobRow[]; pageInfo: { hasNextPage: boolean; endCursor: string | null }; totalCount: number; streamCursor: string };
  jobCounts?: JobCount[];
  jobThroughput?: ThroughputMinute[];
}

const newestFirst = (a: JobRow, b: JobRow) => (a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1);
const countKey = (type: string, status: JobStatus) => `${type}\u0000${status}`;
const minuteOf = (iso: string) => Math.floor(Date.parse(iso) / 60_000) * 60_000;

/** The filter as `JobFilter` takes it: empty parts left out. */
export function jobFilterOf(filter: JobListFilter): Record<string, unknown> | null {
  const value: Record<string, unknown> = {};
  if (filter.types.length) value.types = filter.types;
  if (filter.statuses.length) value.statuses = filter.statuses;
  if (filter.tags.length) value.tags = filter.tags;
  return Object.keys(value).length ? value : null;
}

/**
 * The job list, live: a page of history (newest first) with the counts per type and status and
 * the throughput per minute, all from one query, then every change after that query's position
 * from `jobEvents`. A change updates its row in place or adds a new one at its place; counts and
 * throughput follow from each event's `previousStatus`, the status this page last knew. When the
 * connection drops, the stream resumes from the last event's cursor: nothing is missed or doubled.
 *
 * Rows accumulate as the user loads older pages and as new jobs arrive; the table renders only
 * the visible ones (see JobTable), so ten thousand rows stay cheap.
 */
export class JobListModel extends Store {
  rows: JobRow[] = [];
  private readonly byId = new Map<string, JobRow>();
  /** Changes of jobs older than every loaded row, until their page arrives. */
  private readonly awaitingPage = new Map<string, JobRow>();
  private readonly counts = new Map<string, number>();
  private readonly throughput = new Map<number, { completed: number; failed: number }>();
  totalCount = 0;
  hasMore = false;
  private endCursor: string | null = null;
  loading = true;
  loadingMore = false;
  connection: ConnectionState = 'connecting';
  error: GraphQLRequestError | null = null;
  private stopStream: (() => void) | null = null;
  private stopped = false;

  constructor(
    private readonly session: Session,
    readonly filter: JobListFilter,
  ) {
    super();
  }

  async start(): Promise<void> {
    try {
      const data = await this.fetchPage(null, true);
      if (this.stopped) return;
      this.reset();
      for (const row of data.jobCounts ?? []) this.counts.set(countKey(row.type, row.status), row.count);
      for (const minute of data.jobThroughput ?? [])
        this.throughput.set(minuteOf(minute.minute), { completed: minute.completed, failed: minute.failed });
      this.totalCount = data.jobs.totalCount;
      this.addPage(data);
      this.loading = false;
      this.changed();
      this.stopStream = resumableStream<{ jobEvents: JobEvent<JobRow> }>({
        token: this.session.token,
        document: JobChanges,
        after: data.jobs.streamCursor,
        variables: (after) => ({ filter: jobFilterOf(this.filter), after }),
        cursorOf: (event) => event.jobEvents.cursor,
        onEvent: (event) => this.apply(event.jobEvents),
        onState: (state) => {
          this.connection = state;
          this.changed();
        },
        onRefused: (error) => {
          // Away for longer than the stream keeps changes (STREAM_RETENTION_HOURS): read it all again.
          if (error.code === 'CURSOR_EXPIRED') void this.start();
          else this.fail(error);
        },
      });
    } catch (error) {
      const refused = error as GraphQLRequestError;
      if (refused.code !== 'NETWORK' || this.stopped) return this.fail(refused);
      // The API is away (a replica restarting): try again, as the stream itself would.
      this.connection = 'reconnecting';
      this.changed();
      setTimeout(() => void (this.stopped || this.start()), START_RETRY_MS);
    }
  }

  private reset(): void {
    this.rows = [];
    this.byId.clear();
    this.awaitingPage.clear();
    this.counts.clear();
    this.throughput.clear();
    this.error = null;
  }

  stop(): void {
    this.stopped = true;
    this.stopStream?.();
  }

  /** The next page of older jobs. */
  async loadMore(): Promise<void> {
    if (!this.hasMore || this.loadingMore) return;
    this.loadingMore = true;
    this.changed();
    try {
      this.addPage(await this.fetchPage(this.endCursor, false));
      this.error = null;
    } catch (error) {
      this.error = error as GraphQLRequestError;
    } finally {
      this.loadingMore = false;
      this.changed();
    }
  }

  /** Retries the given failed or cancelled jobs with one bulk action; returns the bulk job's id. */
  async retry(ids: string[]): Promise<string> {
    const data = await request<{ retryJobs: { id: string } }>(this.session.token, RetryJobs, { ids });
    return data.retryJobs.id;
  }

  count(type: string | null, status: JobStatus | null): number {
    let sum = 0;
    for (const [key, value] of this.counts) {
      const [rowType, rowStatus] = key.split('\u0000');
      if ((type === null || rowType === type) && (status === null || rowStatus === status)) sum += value;
    }
    return sum;
  }

  /** Job types with at least one job counted, by name. */
  countedTypes(): string[] {
    const types = new Set<string>();
    for (const [key, value] of this.counts) if (value > 0) types.add(key.split('\u0000')[0]!);
    return [...types].sort();
  }

  /** Completed and failed per minute over the last THROUGHPUT_MINUTES minutes, oldest first, gaps as zeros. */
  throughputSeries(now = Date.now()): { minutes: number[]; completed: number[]; failed: number[] } {
    const last = Math.floor(now / 60_000) * 60_000;
    const minutes: number[] = [];
    const completed: number[] = [];
    const failed: number[] = [];
    for (let at = last - (THROUGHPUT_MINUTES - 1) * 60_000; at <= last; at += 60_000) {
      const bucket = this.throughput.get(at);
      minutes.push(at / 1000);
      completed.push(bucket?.completed ?? 0);
      failed.push(bucket?.failed ?? 0);
    }
    return { minutes, completed, failed };
  }

  private fetchPage(after: string | null, withSummary: boolean): Promise<JobListData> {
    return request<JobListData>(this.session.token, JobList, {
      filter: jobFilterOf(this.filter),
      first: PAGE_SIZE,
      after,
      withSummary,
      minutes: THROUGHPUT_MINUTES,
    });
  }

  private addPage(data: JobListData): void {
    for (const row of data.jobs.nodes) this.upsert(row, true);
    this.hasMore = data.jobs.pageInfo.hasNextPage;
    this.endCursor = data.jobs.pageInfo.endCursor;
  }

  /** Whether the list's status filter takes a job in this status (no filter: every status). */
  private shows(status: JobStatus): boolean {
    return this.filter.statuses.length === 0 || this.filter.statuses.includes(status);
  }

  /**
   * One change: the counts move from the status this page last knew the job in to its new one;
   * with a status filter, a job that leaves it is taken off the list and out of the counts (the
   * stream reports that change too, then no more until it comes back).
   */
  private apply(event: JobEvent<JobRow>): void {
    const { job } = event;
    const before = event.previousStatus ?? null;
    const wasShown = before !== null && this.shows(before);
    const isShown = this.shows(job.status);
    if (before !== job.status) {
      if (wasShown) this.bump(job.type, before, -1);
      if (isShown) this.bump(job.type, job.status, +1);
      this.totalCount += Number(isShown) - Number(wasShown);
      if (isShown && (job.status === 'COMPLETED' || job.status === 'FAILED') && job.finishedAt) {
        const minute = minuteOf(job.finishedAt);
        const bucket = this.throughput.get(minute) ?? { completed: 0, failed: 0 };
        if (job.status === 'COMPLETED') bucket.completed += 1;
        else bucket.failed += 1;
        this.throughput.set(minute, bucket);
      }
    }
    if (isShown) this.upsert(job);
    else this.remove(job.id);
    this.changed();
  }

  private remove(jobId: string): void {
    this.awaitingPage.delete(jobId);
    const known = this.byId.get(jobId);
    if (!known) return;
    this.byId.delete(jobId);
    this.rows.splice(this.rows.indexOf(known), 1);
  }

  private bump(type: string, status: JobStatus, by: number): void {
    const key = countKey(type, status);
    this.counts.set(key, Math.max(0, (this.counts.get(key) ?? 0) + by));
  }

  /**
   * Puts a job's latest state in its place (newest first). A streamed job older than every loaded
   * row is left for the page that will bring it, so the list never has holes.
   */
  private upsert(job: JobRow, fromPage = false): void {
    const known = this.byId.get(job.id);
    if (known) {
      // An event can be older than the page that brought the row: keep the newer state.
      if (known.updatedAt > job.updatedAt) return;
      this.rows[this.rows.indexOf(known)] = job;
      this.byId.set(job.id, job);
      return;
    }
    const oldest = this.rows[this.rows.length - 1];
    if (!fromPage && this.hasMore && oldest && newestFirst(job, oldest) > 0) {
      // Kept aside: the page may have been read before this change and bring an older state.
      this.awaitingPage.set(job.id, job);
      return;
    }
    const streamed = fromPage ? this.awaitingPage.get(job.id) : undefined;
    if (streamed) {
      this.awaitingPage.delete(job.id);
      if (streamed.updatedAt > job.updatedAt) job = streamed;
    }
    let low = 0;
    let high = this.rows.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (newestFirst(this.rows[middle]!, job) < 0) low = middle + 1;
      else high = middle;
    }
    this.rows.splice(low, 0, job);
    this.byId.set(job.id, job);
  }

  private fail(error: GraphQLRequestError): void {
    this.error = error;
    this.loading = false;
    this.changed();
  }
}
