import { defaultRepeatStrategy, type Queue } from 'bullmq';
import type { Config } from '../config/env.js';
import type { Rule } from '../db/entities/rule.entity.js';
import { withRedisDeadline, type JobQueues } from '../queue/job-queues.js';

/** The queue whose job schedulers tick; each tick enqueues the real job through the normal path. */
export const SCHEDULE_QUEUE = 'schedules';
/** Owner of jobs started by the system's own schedules; only admins see them. */
export const SYSTEM_OWNER = 'system';
/** Job type a rule's schedule starts. */
export const RUN_RULE_TYPE = 'run_rule';
/** Prefix of the job scheduler ids of saved rules; the sidecar never removes these as stale. */
export const RULE_SCHEDULER_PREFIX = 'rule:';

/** What a tick on the schedules queue carries; `ruleId` marks the tick of a saved rule's schedule. */
export interface TickData {
  type: string;
  input: Record<string, unknown>;
  ruleId?: string;
}

/**
 * Options of every tick job. A tick's enqueue is idempotent (its key is the tick id), so a tick
 * that failed on a passing database error is simply tried again.
 */
export const TICK_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 1_000 },
  removeOnComplete: 100,
  removeOnFail: 100,
} as const;

/** How long a scheduler change waits for Redis before it is reported as unavailable. */

/** Longest accepted cron pattern. */
const MAX_PATTERN_LENGTH = 255;

export function ruleSchedulerId(ruleId: string): string {
  return `${RULE_SCHEDULER_PREFIX}${ruleId}`;
}

/** The rule id of a `rule:<id>` scheduler, or null for any other scheduler. */
export function ruleIdOfScheduler(schedulerId: string | null | undefined): string | null {
  return schedulerId?.startsWith(RULE_SCHEDULER_PREFIX) ? schedulerId.slice(RULE_SCHEDULER_PREFIX.length) : null;
}

/**
 * Why a cron pattern is unusable, or null when BullMQ can schedule it. Accepts 5 fields, or 6
 * with seconds first, and the `@daily`-style aliases; the pattern must also have a next fire time.
 * BullMQ's own cron parser decides, so what is accepted here is exactly what it will run.
 */
export function cronPatternProblem(pattern: string, tz: string, minIntervalSeconds = 0): string | null {
  const trimmed = pattern.trim();
  if (trimmed === '') return 'schedule must not be empty';
  if (trimmed.length > MAX_PATTERN_LENGTH) return `schedule must be at most ${MAX_PATTERN_LENGTH} characters`;
  const fields = trimmed.split(/\s+/).length;
  if (!trimmed.startsWith('@') && fields !== 5 && fields !== 6) {
    return `schedule "${trimmed}" must be a cron pattern of 5 fields (minute hour day month weekday) or 6 (seconds first)`;
  }
  let next: number | undefined;
  try {
    next = defaultRepeatStrategy(Date.now(), { pattern: trimmed, tz });
  } catch (error) {
    return `schedule "${trimmed}" is not a valid cron pattern: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (typeof next !== 'number' || !Number.isFinite(next)) return `schedule "${trimmed}" never fires`;
  if (minIntervalSeconds <= 0) return null;
  const gap = shortestGapSeconds(trimmed, tz, next);
  if (gap !== null && gap < minIntervalSeconds) {
    return `schedule "${trimmed}" fires every ${gap} s; rule schedules must be at least ${minIntervalSeconds} s apart (RULE_SCHEDULE_MIN_INTERVAL_SECONDS)`;
  }
  return null;
}

/** Most fire times looked at to find the shortest gap. */
const GAP_SAMPLES = 200;
/**
 * How far past the first fire the samples go. A cron pattern repeats its fastest field first, so a
 * burst (even one hidden in one hour of one weekday) shows within a week of the first fire; a rare
 * date such as 29 February is not walked for centuries, one costly parser call per fire.
 */
const GAP_WINDOW_MS = 8 * 86_400_000;

/**
 * The shortest time between two consecutive fires, sampled from `first` until a fire lies past the
 * window or GAP_SAMPLES have been seen; null if it fires only once.
 */
function shortestGapSeconds(pattern: string, tz: string, first: number): number | null {
  let shortest: number | null = null;
  let previous = first;
  for (let sample = 0; sample < GAP_SAMPLES && previous <= first + GAP_WINDOW_MS; sample++) {
    const next = defaultRepeatStrategy(previous, { pattern, tz });
    if (typeof next !== 'number' || !Number.isFinite(next) || next <= previous) break;
    const gap = (next - previous) / 1000;
    shortest = shortest === null ? gap : Math.min(shortest, gap);
    previous = next;
  }
  return shortest;
}

/** Registers (or replaces) the job scheduler of a rule's cron schedule. */
export async function upsertRuleScheduler(queue: Queue, config: Config, ruleId: string, pattern: string): Promise<void> {
  const data: TickData = { type: RUN_RULE_TYPE, input: { ruleId }, ruleId };
  await queue.upsertJobScheduler(
    ruleSchedulerId(ruleId),
    { pattern, tz: config.SCHEDULE_TZ },
    { name: RUN_RULE_TYPE, data, opts: { ...TICK_JOB_OPTIONS, backoff: { ...TICK_JOB_OPTIONS.backoff } } },
  );
}

/**
 * Makes Redis agree with a saved rule: an enabled rule with a schedule has a `rule:<id>` job
 * scheduler, any other rule (or a deleted one, given as `{ id, schedule: null }`) has none.
 * Call it after the rule's row is committed: a scheduler then never exists for a row that does
 * not, which lets the sidecar remove schedulers of missing rules without racing a save.
 */
export async function syncRuleSchedule(
  queues: JobQueues,
  config: Config,
  rule: Pick<Rule, 'id' | 'schedule'> & { enabled?: boolean },
): Promise<void> {
  const queue = queues.get(SCHEDULE_QUEUE);
  if (rule.schedule && rule.enabled !== false) {
    await withRedisDeadline(upsertRuleScheduler(queue, config, rule.id, rule.schedule));
  } else {
    await withRedisDeadline(queue.removeJobScheduler(ruleSchedulerId(rule.id)));
  }
}
