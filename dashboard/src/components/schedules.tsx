import { dateTime, typeLabel } from '../format';
import type { Schedule } from '../model/types';

/** The schedules the caller may see (an admin: the catalogue's and every rule's), with their next run. */
export function Schedules({ schedules, loaded }: { schedules: Schedule[]; loaded: boolean }) {
  if (!loaded) return <p class="muted">Loading…</p>;
  if (schedules.length === 0) return <p class="muted">No schedules you can see.</p>;
  return (
    <table class="schedule-table">
      <thead>
        <tr>
          <th scope="col">Schedule</th>
          <th scope="col">Job</th>
          <th scope="col">When</th>
          <th scope="col">Next run</th>
          <th scope="col">Last run</th>
        </tr>
      </thead>
      <tbody>
        {schedules.map((schedule) => (
          <tr key={schedule.id} data-schedule-id={schedule.id}>
            <th scope="row">{schedule.id}</th>
            <td>{typeLabel(schedule.jobType)}</td>
            <td>
              <code>{schedule.cron}</code> {schedule.timezone}
            </td>
            <td>{schedule.enabled ? dateTime(schedule.nextRunAt) : 'disabled'}</td>
            <td>{dateTime(schedule.lastRunAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
