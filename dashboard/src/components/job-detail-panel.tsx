import { useEffect, useMemo, useRef } from 'preact/hooks';
import type { Session } from '../api/session';
import { dateTime, duration, typeLabel } from '../format';
import { JobDetailModel } from '../model/job-detail';
import { useStore } from '../model/store';
import { FINAL_STATUSES } from '../model/types';
import { ConnectionIndicator } from './connection-indicator';
import { JobProgress } from './job-progress';
import { useNow } from './use-now';
import { ValueView } from './value-view';

/**
 * One job, opened beside the list: its typed input and output, attempts, log (live while it runs),
 * metadata and timestamps, with Cancel and Retry. Escape or Close returns focus to the list.
 */
export function JobDetailPanel({
  session,
  jobId,
  typename,
  onClose,
}: {
  session: Session;
  jobId: string;
  typename: string | null;
  onClose(): void;
}) {
  const model = useMemo(() => new JobDetailModel(session, jobId, typename), [session, jobId, typename]);
  useEffect(() => {
    void model.start();
    return () => model.stop();
  }, [model]);
  useStore(model);
  const now = useNow(1_000);
  const heading = useRef<HTMLHeadingElement>(null);
  const opener = useRef<Element | null>(document.activeElement);

  useEffect(() => {
    heading.current?.focus();
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement | null;
      // Escape in a field elsewhere on the page (the start form, the filters) belongs to that field.
      const typingElsewhere = target?.matches('input, textarea, select') && !target.closest('.detail');
      if (event.key === 'Escape' && !typingElsewhere) onClose();
    };
    document.addEventListener('keydown', onKey);
    const returnTo = opener.current;
    return () => {
      document.removeEventListener('keydown', onKey);
      // Back where the user was; if that is gone (a row scrolled out, a form reset), to the list.
      if (returnTo instanceof HTMLElement && returnTo.isConnected && !returnTo.matches(':disabled')) returnTo.focus();
      else document.getElementById('jobs-heading')?.focus();
    };
  }, [onClose]);

  const job = model.job;
  const input = job?.input;
  const output = job?.output;

  return (
    <section class="detail" role="dialog" aria-modal="false" aria-labelledby="detail-heading" data-job-id={jobId} data-status={job?.status}>
      <header>
        <h2 id="detail-heading" tabIndex={-1} ref={heading}>
          {job ? typeLabel(job.type) : 'Job'} <span class="job-id">{jobId}</span>
        </h2>
        <ConnectionIndicator state={model.connection} main={false} />
        <button type="button" onClick={onClose}>
          Close
        </button>
      </header>
      {model.error && (
        <p role="alert" class="error">
          {model.error.message} <code>{model.error.code}</code>
        </p>
      )}
      {model.notice && (
        <p role="status" class="notice">
          {model.notice}
        </p>
      )}
      {model.notFound && <p>This job does not exist, or is not yours.</p>}
      {job && (
        <>
          <div class="detail-status">
            <span class="visually-hidden">Status:</span>
            <span class={`badge status-${job.status.toLowerCase()}`}>{job.status.toLowerCase()}</span>
            {/* One polite announcement per status, for a job that runs while you read something else. */}
            <span class="visually-hidden" aria-live="polite">
              {typeLabel(job.type)} job {job.status.toLowerCase()}
            </span>
            <JobProgress job={job} />
            <div class="actions">
              {!FINAL_STATUSES.includes(job.status) && (
                <button
                  type="button"
                  onClick={() => model.cancel().then(() => heading.current?.focus())}
                  disabled={job.cancelRequestedAt !== null}
                >
                  {job.cancelRequestedAt ? 'Cancelling…' : 'Cancel job'}
                </button>
              )}
              {(job.status === 'FAILED' || job.status === 'CANCELLED') && (
                <button type="button" onClick={() => model.retry().then(() => heading.current?.focus())}>
                  Retry job
                </button>
              )}
            </div>
          </div>
          {job.error && (
            <p class="error">
              <strong>Error:</strong> {job.error}
            </p>
          )}
          <dl class="facts">
            <dt>Owner</dt>
            <dd>{job.ownerId ?? 'system'}</dd>
            <dt>Trigger</dt>
            <dd>{job.trigger.toLowerCase()}</dd>
            <dt>Attempts</dt>
            <dd>
              {job.attempts} of {job.maxAttempts} (run {job.run})
            </dd>
            <dt>Created</dt>
            <dd>{dateTime(job.createdAt)}</dd>
            {job.runAt && (
              <>
                <dt>Due</dt>
                <dd>{dateTime(job.runAt)}</dd>
              </>
            )}
            <dt>Started</dt>
            <dd>{dateTime(job.startedAt)}</dd>
            <dt>Finished</dt>
            <dd>{dateTime(job.finishedAt)}</dd>
            <dt>Duration</dt>
            <dd>{duration(job.startedAt, job.finishedAt, now) ?? '—'}</dd>
            {job.expiresAt && (
              <>
                <dt>Expires</dt>
                <dd>{dateTime(job.expiresAt)}</dd>
              </>
            )}
            {job.tags.length > 0 && (
              <>
                <dt>Tags</dt>
                <dd>{job.tags.join(', ')}</dd>
              </>
            )}
            {job.idempotencyKey && (
              <>
                <dt>Idempotency key</dt>
                <dd>{job.idempotencyKey}</dd>
              </>
            )}
          </dl>
          <h3>Input</h3>
          <ValueView value={input ?? null} />
          <h3>Output</h3>
          {output === null || output === undefined ? <p class="muted">None yet.</p> : <ValueView value={output} />}
          <h3>Metadata</h3>
          {Object.keys(job.metadata).length ? <ValueView value={job.metadata} /> : <p class="muted">None.</p>}
          <h3>Attempts</h3>
          {job.attemptHistory.length === 0 ? (
            <p class="muted">Not started yet.</p>
          ) : (
            <table class="attempts">
              <thead>
                <tr>
                  <th scope="col">Run</th>
                  <th scope="col">#</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">Worker</th>
                  <th scope="col">Started</th>
                  <th scope="col">Duration</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {job.attemptHistory.map((attempt) => (
                  <tr key={`${attempt.run}.${attempt.number}`}>
                    <td>{attempt.run}</td>
                    <td>{attempt.number}</td>
                    <td>{attempt.outcome?.toLowerCase() ?? 'running'}</td>
                    <td>{attempt.worker}</td>
                    <td>{dateTime(attempt.startedAt)}</td>
                    <td>{attempt.durationMs !== null ? duration(attempt.startedAt, attempt.finishedAt, now) : '—'}</td>
                    <td>{attempt.error ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h3>Log {model.logsLive && <span class="badge live">live</span>}</h3>
          {model.logs.length === 0 ? (
            <p class="muted">No lines.</p>
          ) : (
            <ol class="log" aria-label="Job log">
              {model.logs.map((line) => (
                <li key={line.cursor} class={`level-${line.level.toLowerCase()}`}>
                  <time dateTime={line.at}>{new Date(line.at).toLocaleTimeString()}</time>
                  <span class="level">{line.level}</span>
                  <span class="message">{line.message}</span>
                  {line.fields && <code class="fields">{JSON.stringify(line.fields)}</code>}
                </li>
              ))}
            </ol>
          )}
        </>
      )}
    </section>
  );
}
