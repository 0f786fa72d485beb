import { jobTypeNames } from 'virtual:job-catalogue';
import { useState } from 'preact/hooks';
import { JOB_STATUSES, type JobListFilter, type JobStatus } from '../model/types';

/** Which jobs the list shows: one type, one status, and tags (all of them), or everything. */
export function JobFilters({ filter, onChange }: { filter: JobListFilter; onChange(filter: JobListFilter): void }) {
  const [tags, setTags] = useState(filter.tags.join(', '));
  const applyTags = () => {
    const next = tags
      .split(/[\s,]+/)
      .map((tag) => tag.trim())
      .filter(Boolean);
    if (next.join(',') !== filter.tags.join(',')) onChange({ ...filter, tags: next });
  };
  return (
    <form
      class="filters"
      aria-label="Filter jobs"
      onSubmit={(event) => {
        event.preventDefault();
        applyTags();
      }}
    >
      <label>
        Type{' '}
        <select
          name="type"
          value={filter.types[0] ?? ''}
          onChange={(event) => {
            const value = (event.target as HTMLSelectElement).value;
            onChange({ ...filter, types: value ? [value] : [] });
          }}
        >
          <option value="">All types</option>
          {jobTypeNames.map((name) => (
            <option key={name} value={name}>
              {name.replace(/_/g, ' ')}
            </option>
          ))}
        </select>
      </label>
      <label>
        Status{' '}
        <select
          name="status"
          value={filter.statuses[0] ?? ''}
          onChange={(event) => {
            const value = (event.target as HTMLSelectElement).value as JobStatus | '';
            onChange({ ...filter, statuses: value ? [value] : [] });
          }}
        >
          <option value="">All statuses</option>
          {JOB_STATUSES.map((status) => (
            <option key={status} value={status}>
              {status.toLowerCase()}
            </option>
          ))}
        </select>
      </label>
      <label>
        Tags{' '}
        <input
          name="tags"
          value={tags}
          placeholder="nightly, customer:7"
          onInput={(event) => setTags((event.target as HTMLInputElement).value)}
          onBlur={applyTags}
        />
      </label>
      <button type="submit">Apply</button>
    </form>
  );
}
