import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { age, duration, typeLabel } from '../format';
import type { JobListModel } from '../model/job-list';
import { useNow } from './use-now';
import { JobProgress } from './job-progress';

/** The API's cap on `totalCount` (src/engine/job-history.ts): a count there means "at least". */
const TOTAL_COUNT_CAP = 10_000;
/** Each row's height in pixels (fixed, see .job-table tr): the table renders only the rows in view. */
const ROW_HEIGHT = 52;
/** Rows rendered beyond the visible ones, above and below. */
const OVERSCAN = 8;

/**
 * The job list, newest first. Only the rows in view are in the page (plus a few around), so ten
 * thousand loaded jobs scroll as fast as fifty; older pages load as the end comes into view, or
 * with the button. FAILED and CANCELLED rows can be selected and retried together.
 */
export function JobTable({
  list,
  showOwner,
  onOpen,
}: {
  list: JobListModel;
  showOwner: boolean;
  onOpen(jobId: string, typename: string | null): void;
}) {
  const now = useNow(1_000);
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(600);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [noticeText, setNotice] = useState<string | null>(null);

  useEffect(() => {
    const element = scroller.current!;
    const observer = new ResizeObserver(() => setViewport(element.clientHeight));
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  const rows = list.rows;
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((scrollTop + viewport) / ROW_HEIGHT) + OVERSCAN);
  useEffect(() => {
    if (last >= rows.length - OVERSCAN && list.hasMore && !list.loadingMore) void list.loadMore();
  }, [last, rows.length, list.hasMore, list.loadingMore, list]);

  // New jobs arrive above: a reader scrolled down keeps the rows they were reading in place.
  const anchor = useRef<{ id: string; index: number } | null>(null);
  useLayoutEffect(() => {
    const element = scroller.current!;
    const saved = anchor.current;
    if (saved && element.scrollTop > 0 && rows[saved.index]?.id !== saved.id) {
      const index = rows.findIndex((row) => row.id === saved.id);
      if (index >= 0) element.scrollTop += (index - saved.index) * ROW_HEIGHT;
    }
    const top = Math.floor(element.scrollTop / ROW_HEIGHT);
    anchor.current = rows[top] ? { id: rows[top]!.id, index: top } : null;
  });

  const retryable = rows.filter((row) => row.status === 'FAILED' || row.status === 'CANCELLED');
  const retryableIds = new Set(retryable.map((row) => row.id));
  const selection = [...selected].filter((id) => retryableIds.has(id));
  const toggle = (id: string, on: boolean) => {
    const next = new Set(selected);
    if (on) next.add(id);
    else next.delete(id);
    setSelected(next);
  };
  const retrySelected = async () => {
    try {
      const bulkId = await list.retry(selection.slice(0, 100));
      setSelected(new Set());
      setNotice(`Retrying ${Math.min(selection.length, 100)} jobs (bulk job ${bulkId.slice(0, 8)}).`);
    } catch (error) {
      setNotice(`Retry refused: ${(error as Error).message}`);
    }
  };
  const columns = showOwner ? 7 : 6;
  const filtered = list.filter.types.length + list.filter.statuses.length + list.filter.tags.length > 0;
  const notice = useRef<HTMLParagraphElement>(null);
  useEffect(() => notice.current?.focus(), [noticeText]);

  return (
    <div class="job-list">
      <div class="bulk-bar">
        <p class="total">
          {list.loading
            ? 'Loading…'
            : `${list.totalCount.toLocaleString()} ${list.totalCount === 1 ? 'job' : 'jobs'}${list.totalCount >= TOTAL_COUNT_CAP ? ' or more' : ''}`}
        </p>
        <button
          type="button"
          disabled={retryable.length === 0}
          onClick={() => setSelected(new Set(retryable.slice(0, 100).map((row) => row.id)))}
        >
          Select loaded failed and cancelled
        </button>
        <button type="button" disabled={selection.length === 0} onClick={retrySelected}>
          Retry selected ({selection.length})
        </button>
        {noticeText && (
          <p role="status" class="notice" tabIndex={-1} ref={notice}>
            {noticeText}
          </p>
        )}
      </div>
      <div class="job-scroller" ref={scroller} onScroll={(event) => setScrollTop((event.target as HTMLDivElement).scrollTop)}>
        <table class="job-table" aria-label="Jobs, newest first" aria-rowcount={rows.length + 1}>
          <thead>
            <tr aria-rowindex={1}>
              <th scope="col">
                <span class="visually-hidden">Select</span>
              </th>
              <th scope="col">Job</th>
              {showOwner && <th scope="col">Owner</th>}
              <th scope="col">Status</th>
              <th scope="col">Progress</th>
              <th scope="col">Age</th>
              <th scope="col">Duration</th>
            </tr>
          </thead>
          <tbody>
            {first > 0 && (
              <tr class="spacer">
                <td colSpan={columns} style={{ height: `${first * ROW_HEIGHT}px` }} />
              </tr>
            )}
            {rows.slice(first, last).map((job, offset) => {
              const canRetry = job.status === 'FAILED' || job.status === 'CANCELLED';
              return (
                <tr key={job.id} data-job-id={job.id} data-status={job.status} aria-rowindex={first + offset + 2} class="job-row">
                  <td>
                    {canRetry && (
                      <input
                        type="checkbox"
                        aria-label={`Select ${typeLabel(job.type)} job ${job.id.slice(0, 8)}`}
                        checked={selected.has(job.id)}
                        onChange={(event) => toggle(job.id, (event.target as HTMLInputElement).checked)}
                      />
                    )}
                  </td>
                  <td>
                    <button
                      type="button"
                      class="link"
                      onClick={() => onOpen(job.id, job.__typename ?? null)}
                      aria-label={`Open ${typeLabel(job.type)} job ${job.id.slice(0, 8)}`}
                    >
                      {typeLabel(job.type)}
                    </button>{' '}
                    <span class="job-id">{job.id.slice(0, 8)}</span>
                    {job.tags.length > 0 && (
                      <>
                        {' '}
                        <span class="tags">{job.tags.join(' ')}</span>
                      </>
                    )}
                  </td>
                  {showOwner && <td class="owner">{job.ownerId ?? 'system'}</td>}
                  <td>
                    <span class={`badge status-${job.status.toLowerCase()}`}>{job.status.toLowerCase()}</span>
                  </td>
                  <td>
                    <JobProgress job={job} />
                  </td>
                  <td>
                    <time dateTime={job.createdAt} title={new Date(job.createdAt).toLocaleString()}>
                      {age(job.createdAt, now)}
                    </time>
                  </td>
                  <td>{duration(job.startedAt, job.finishedAt, now) ?? '—'}</td>
                </tr>
              );
            })}
            {last < rows.length && (
              <tr class="spacer">
                <td colSpan={columns} style={{ height: `${(rows.length - last) * ROW_HEIGHT}px` }} />
              </tr>
            )}
          </tbody>
        </table>
        {!list.loading && rows.length === 0 && (
          <p class="empty">{filtered ? 'No jobs match these filters.' : 'No jobs yet. Start one with the form beside the list.'}</p>
        )}
      </div>
      {list.hasMore && (
        <button type="button" class="load-more" disabled={list.loadingMore} onClick={() => list.loadMore()}>
          {list.loadingMore ? 'Loading older jobs…' : 'Load older jobs'}
        </button>
      )}
    </div>
  );
}
