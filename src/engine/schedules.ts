import type { EntityManager } from '@mikro-orm/postgresql';
import { defaultRepeatStrategy } from 'bullmq';
import { type Config, scheduleOverrides } from '../config/env.js';
import type { OverlapPolicy } from '../db/entities/schedule-setting.entity.js';
import type { AnyJobDeclaration } from './define-job.js';
import { InvalidInputError } from './errors.js';
import type { JobRecord } from '../db/entities/job.entity.js';
import { rowToJob } from './job-store.js';

/**
 * Schedules as data. A system schedule is declared with its job type (the default), may be
 * overridden at deploy time (SCHEDULE_OVERRIDES), and changed at run time (`updateSchedule`, a
 * `schedule_setting` row, which wins). A saved rule's schedule (`rule:<id>`) is its rule's.
 * Every run a schedule starts carries the tag `schedule:<id>`: that finds its last run, and
 * whether its previous run is still going.
 */

/** One schedule as clients and the scheduler see it, with every setting in effect. */
export interface EffectiveSchedule {
  id: string;
  jobType: string;
  cron: string;
  timezone: string;
  enabled: boolean;
  overlap: OverlapPolicy;
  /** The input of each run (system schedules). */
  input: Record<string, unknown>;
  /** Whose jobs its runs are: the system, or the rule's owner. */
  ownerId: string;
  /** Set for a saved rule's schedule. */
  ruleId: string | null;
}

/** The tag every run of a schedule carries. */
export function scheduleTag(scheduleId: string): string {
  return `schedule:${scheduleId}`;
}

/** The ids SCHEDULE_OVERRIDES names that are no schedule of `declarations` (a typo, or a schedule since removed). */
export function unknownScheduleOverrides(declarations: readonly AnyJobDeclaration[], config: Config): string[] {
  const known = new Set(declarations.flatMap((declaration) => (declaration.schedules ?? []).map((schedule) => schedule.id)));
  return [...scheduleOverrides(config).keys()].filter((id) => !known.has(id));
}

/** The catalogue's schedules with what was changed at deploy and at run time applied. */
export async function loadSystemSchedules(
  em: EntityManager,
  declarations: readonly AnyJobDeclaration[],
  config: Config,
  systemOwner: string,
): Promise<EffectiveSchedule[]> {
  const overrides = scheduleOverrides(config);
  const rows: Record<string, unknown>[] = await em.getConnection().execute('SELECT * FROM schedule_setting', [], 'all');
  const settings = new Map(rows.map((row) => [String(row.id), row]));
  return declarations.flatMap((declaration) =>
    (declaration.schedules ?? []).map((schedule) => {
      const setting = settings.get(schedule.id);
      return {
        id: schedule.id,
        jobType: declaration.name,
        cron: (setting?.cron as string | null) ?? overrides.get(schedule.id) ?? schedule.cron,
        timezone: (setting?.timezone as string | null) ?? config.SCHEDULE_TZ,
        enabled: (setting?.enabled as boolean | null) ?? true,
        overlap: (setting?.overlap as OverlapPolicy | null) ?? schedule.overlap ?? 'ALLOW',
        input: schedule.input as Record<string, unknown>,
        ownerId: systemOwner,
        ruleId: null,
      };
    }),
  );
}

/** The schedules of saved rules (one owner's, or everyone's for null), as schedules. */
export async function loadRuleSchedules(
  em: EntityManager,
  ownerId: string | null,
  config: Config,
  ruleType: string,
): Promise<EffectiveSchedule[]> {
  const rows: Record<string, unknown>[] = await em
    .getConnection()
    .execute(
      `SELECT id, owner_id, schedule, enabled FROM rule WHERE schedule IS NOT NULL${ownerId === null ? '' : ' AND owner_id = ?'} ORDER BY created_at, id`,
      ownerId === null ? [] : [ownerId],
      'all',
    );
  return rows.map((row) => ({
    id: `rule:${row.id}`,
    jobType: ruleType,
    cron: String(row.schedule),
    timezone: config.SCHEDULE_TZ,
    enabled: Boolean(row.enabled),
    // A rule's run is skipped while its previous one is queued or running (see the scheduler).
    overlap: 'SKIP_IF_RUNNING' as const,
    input: { ruleId: String(row.id) },
    ownerId: String(row.owner_id),
    ruleId: String(row.id),
  }));
}

/** A change of a system schedule; an omitted field keeps its value. */
export interface ScheduleChange {
  cron?: string | null;
  timezone?: string | null;
  enabled?: boolean | null;
  overlap?: OverlapPolicy | null;
}

/** Records a change of a system schedule (checked by the caller). */
export async function saveScheduleSetting(em: EntityManager, id: string, change: ScheduleChange): Promise<void> {
  const value = (field: keyof ScheduleChange) => (change[field] === undefined ? null : change[field]);
  await em.getConnection().execute(
    `INSERT INTO schedule_setting (id, cron, timezone, enabled, overlap, updated_at) VALUES (?, ?, ?, ?, ?, clock_timestamp())
     ON CONFLICT (id) DO UPDATE SET
       cron = CASE WHEN ? THEN excluded.cron ELSE schedule_setting.cron END,
       timezone = CASE WHEN ? THEN excluded.timezone ELSE schedule_setting.timezone END,
       enabled = CASE WHEN ? THEN excluded.enabled ELSE schedule_setting.enabled END,
       overlap = CASE WHEN ? THEN excluded.overlap ELSE schedule_setting.overlap END,
       updated_at = excluded.updated_at`,
    [
      id,
      value('cron'),
      value('timezone'),
      value('enabled'),
      value('overlap'),
      change.cron !== undefined,
      change.timezone !== undefined,
      change.enabled !== undefined,
      change.overlap !== undefined,
    ],
    'run',
  );
}

/** Refuses a time zone the runtime does not know (BAD_USER_INPUT). */
export function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw new InvalidInputError(`timezone: "${timezone.slice(0, 64)}" is not an IANA time zone (e.g. Europe/Paris, UTC)`);
  }
}

/** Patterns whose next fire time is remembered by {@link nextFireTime}. */
const NEXT_FIRE_CACHE_SIZE = 1_000;
/** How long a pattern that never fires (or does not parse) is taken at its word before asking again. */
const NEVER_RECHECK_MS = 3_600_000;

// Key `${tz}\n${pattern}`; `at` is the next fire time, null for never, valid until `until`.
const nextFires = new Map<string, { at: number | null; until: number }>();

/**
 * When a cron pattern fires next after `now`, or null if it never does or does not parse. The
 * answer is cached (the last NEXT_FIRE_CACHE_SIZE patterns, by time zone) until that time passes:
 * BullMQ's parser takes tens of milliseconds for a rare date such as 29 February, and every
 * resolution of `nextRunAt` asks.
 */
export function nextFireTime(pattern: string, tz: string, now = Date.now()): Date | null {
  const key = `${tz}\n${pattern}`;
  let entry = nextFires.get(key);
  if (entry && now < entry.until) {
    // Re-inserted so the Map's order is least recently used first.
    nextFires.delete(key);
  } else {
    let at: number | null = null;
    try {
      const next = defaultRepeatStrategy(now, { pattern, tz });
      if (typeof next === 'number' && Number.isFinite(next)) at = next;
    } catch {
      at = null;
    }
    entry = { at, until: at ?? now + NEVER_RECHECK_MS };
    if (nextFires.size >= NEXT_FIRE_CACHE_SIZE) nextFires.delete(nextFires.keys().next().value as string);
  }
  nextFires.set(key, entry);
  return entry.at === null ? null : new Date(entry.at);
}

/** When an enabled schedule fires next; null when disabled or never. */
export function nextRunOf(schedule: Pick<EffectiveSchedule, 'cron' | 'timezone' | 'enabled'>): Date | null {
  if (!schedule.enabled) return null;
  return nextFireTime(schedule.cron, schedule.timezone);
}

/** The newest run a schedule started (whatever its state), or null. */
export async function lastRunOf(em: EntityManager, schedule: Pick<EffectiveSchedule, 'id' | 'ownerId'>): Promise<JobRecord | null> {
  const rows: Record<string, unknown>[] = await em
    .getConnection()
    .execute(
      `SELECT * FROM job WHERE owner_id = ? AND tags @> ARRAY[?]::text[] ORDER BY created_at DESC, id DESC LIMIT 1`,
      [schedule.ownerId, scheduleTag(schedule.id)],
      'all',
    );
  return rows[0] ? rowToJob(rows[0]) : null;
}

/** Whether a run the schedule started is still queued or running. */
export async function hasUnfinishedRun(em: EntityManager, schedule: Pick<EffectiveSchedule, 'id' | 'ownerId'>): Promise<boolean> {
  const rows: unknown[] = await em
    .getConnection()
    .execute(
      `SELECT 1 FROM job WHERE owner_id = ? AND tags @> ARRAY[?]::text[] AND status IN ('PENDING', 'DELAYED', 'ACTIVE') LIMIT 1`,
      [schedule.ownerId, scheduleTag(schedule.id)],
      'all',
    );
  return rows.length > 0;
}
