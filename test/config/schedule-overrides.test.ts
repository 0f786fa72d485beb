/**
 * SCHEDULE_OVERRIDES as an operator writes it: a pattern that is no cron pattern is a configuration
 * error naming the setting and the schedule, and an id that names no schedule is reported (an
 * operator probe found both passed silently until the worker failed, or forever).
 */
import { expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/env.js';
import { unknownScheduleOverrides } from '../../src/engine/schedules.js';
import { jobCatalogue } from '../../src/jobs/registry.js';

it('refuses a pattern that is not a cron pattern, naming the setting and the schedule', () => {
  let refused: unknown;
  try {
    loadConfig({ SCHEDULE_OVERRIDES: 'purge-archive-trash-daily=0 5 * * *;apply-retention-daily=@gar' });
  } catch (error) {
    refused = error;
  }
  expect(refused).toBeInstanceOf(ConfigError);
  expect((refused as ConfigError).problems).toEqual([
    expect.stringMatching(/^SCHEDULE_OVERRIDES: apply-retention-daily: "@gar" is not a cron pattern/),
  ]);
  expect(loadConfig({ SCHEDULE_OVERRIDES: 'purge-archive-trash-daily=0 5 * * *' }).SCHEDULE_OVERRIDES).toContain('0 5');
});

it('tells which ids name no schedule of the catalogue', () => {
  const config = loadConfig({ SCHEDULE_OVERRIDES: 'purge-archive-trash-daily=0 5 * * *;purge-archive-trash=0 5 * * *' });
  expect(unknownScheduleOverrides(jobCatalogue, config)).toEqual(['purge-archive-trash']);
});
