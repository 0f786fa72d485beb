import type { JobListModel } from '../model/job-list';
import { JOB_STATUSES, type JobTypeInfo } from '../model/types';
import { typeLabel } from '../format';

/**
 * Counts per status across the list's filter, then per job type: its queue depth (waiting:
 * PENDING and DELAYED), running and finished jobs. Kept live from the stream.
 */
export function JobCounts({ list, jobTypes }: { list: JobListModel; jobTypes: JobTypeInfo[] }) {
  const paused = new Set(jobTypes.filter((type) => type.paused).map((type) => type.name));
  const types = list.countedTypes();
  return (
    <>
      <ul class="status-counts">
        {JOB_STATUSES.map((status) => (
          <li key={status} class={`status-count status-${status.toLowerCase()}`} data-count-status={status}>
            <span class="label">{status.toLowerCase()}</span>
            <span class="value">{list.count(null, status).toLocaleString()}</span>
          </li>
        ))}
      </ul>
      {types.length > 0 && (
        <table class="type-counts">
          <caption class="visually-hidden">Jobs per type: queue depth, running and finished</caption>
          <thead>
            <tr>
              <th scope="col">Type</th>
              <th scope="col">Waiting</th>
              <th scope="col">Running</th>
              <th scope="col">Completed</th>
              <th scope="col">Failed</th>
              <th scope="col">Cancelled</th>
            </tr>
          </thead>
          <tbody>
            {types.map((type) => (
              <tr key={type} data-count-type={type}>
                <th scope="row">
                  {typeLabel(type)} {paused.has(type) && <span class="badge paused">paused</span>}
                </th>
                <td>{(list.count(type, 'PENDING') + list.count(type, 'DELAYED')).toLocaleString()}</td>
                <td>{list.count(type, 'ACTIVE').toLocaleString()}</td>
                <td>{list.count(type, 'COMPLETED').toLocaleString()}</td>
                <td>{list.count(type, 'FAILED').toLocaleString()}</td>
                <td>{list.count(type, 'CANCELLED').toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
