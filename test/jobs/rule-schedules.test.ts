/**
 * Checking a cron pattern and telling when it fires next run in the API's event loop, per request;
 * what they cost is counted in calls of BullMQ's repeat strategy (the expensive part for a rare
 * date: one call walks up to four years), not in time.
 */
import { defaultRepeatStrategy } from 'bullmq';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { nextFireTime, nextRunOf } from '../../src/engine/schedules.js';
import { cronPatternProblem } from '../../src/jobs/rule-schedules.js';

vi.mock('bullmq', async (importOriginal) => {
  const actual = await importOriginal<typeof import('bullmq')>();
  return { ...actual, defaultRepeatStrategy: vi.fn(actual.defaultRepeatStrategy) };
});

const strategyCalls = () => vi.mocked(defaultRepeatStrategy).mock.calls.length;

beforeEach(() => {
  vi.mocked(defaultRepeatStrategy).mockClear();
});

describe('cronPatternProblem', () => {
  it('accepts 29 February after a few parser calls instead of walking centuries of fire times', () => {
    expect(cronPatternProblem('0 0 0 29 2 *', 'UTC', 300)).toBeNull();
    expect(strategyCalls()).toBeLessThanOrEqual(3);
  });

  it('still refuses a burst, also one hidden in a minute of one weekday', () => {
    expect(cronPatternProblem('*/10 * * * * *', 'UTC', 300)).toMatch(/fires every 10 s; rule schedules must be at least 300 s apart/);
    expect(cronPatternProblem('* 0 3 * * 1', 'Europe/Paris', 300)).toMatch(/fires every 1 s/);
    expect(cronPatternProblem('0,1 3 * * *', 'UTC', 300)).toMatch(/fires every 60 s/);
    expect(cronPatternProblem('*/5 * * * *', 'UTC', 300)).toBeNull();
    expect(cronPatternProblem('0 0 1 * *', 'UTC', 300)).toBeNull();
  });

  it('without a minimum interval, only parses the pattern', () => {
    expect(cronPatternProblem('* * * * * *', 'UTC')).toBeNull();
    expect(strategyCalls()).toBe(1);
    expect(cronPatternProblem('0 0 99 * *', 'UTC')).toMatch(/is not a valid cron pattern/);
  });
});

describe('nextFireTime', () => {
  it('asks the parser once per pattern and time zone until the answer has passed', () => {
    const now = Date.UTC(2025, 0, 1);
    const first = nextFireTime('0 0 0 29 2 *', 'UTC', now);
    expect(first?.toISOString()).toBe('2028-02-29T00:00:00.000Z');
    expect(nextFireTime('0 0 0 29 2 *', 'UTC', now + 1_000)).toEqual(first);
    expect(nextRunOf({ cron: '0 0 0 29 2 *', timezone: 'UTC', enabled: true })).toEqual(first);
    expect(strategyCalls()).toBe(1);

    // Another time zone is another answer.
    expect(nextFireTime('0 0 0 29 2 *', 'Asia/Tokyo', now)?.toISOString()).toBe('2028-02-28T15:00:00.000Z');
    expect(strategyCalls()).toBe(2);

    // Once the fire time has come, the next one is asked for.
    expect(nextFireTime('0 0 0 29 2 *', 'UTC', first!.getTime())?.toISOString()).toBe('2032-02-29T00:00:00.000Z');
    expect(strategyCalls()).toBe(3);
  });

  it('answers null for a pattern that does not parse, and remembers that too', () => {
    expect(nextFireTime('not a pattern', 'UTC', 0)).toBeNull();
    expect(nextFireTime('not a pattern', 'UTC', 1)).toBeNull();
    expect(strategyCalls()).toBe(1);
  });
});
