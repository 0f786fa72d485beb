import type { JobRow } from '../model/types';

/** A progress bar with processed/total and the current step, e.g. "1,200 / 5,000 · storing messages". */
export function JobProgress({ job }: { job: JobRow }) {
  const counts = job.total ? `${(job.processed ?? 0).toLocaleString()} / ${job.total.toLocaleString()}` : null;
  const text = [counts, job.status === 'FAILED' ? job.error : job.message].filter(Boolean).join(' · ');
  return (
    <div class="progress">
      <progress max={100} value={job.progress} aria-label={`${Math.round(job.progress)}% done`} data-progress={job.progress} />
      <span class="progress-text">{text || `${Math.round(job.progress)}%`}</span>
    </div>
  );
}
