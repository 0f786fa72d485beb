/**
 * `isoString` prints every DateTime and every job event's dates in place of V8's slower
 * `toISOString`: it must give the same text for every instant, and refuse what that refuses.
 */
import { describe, expect, it } from 'vitest';
import { isoString } from '../../src/engine/json-values.js';

const MAX_TIME = 8.64e15;

describe('isoString', () => {
  it('prints what toISOString prints, across the years PostgreSQL and Date hold', () => {
    const instants = [
      0,
      -1,
      1,
      Date.UTC(999, 11, 31, 23, 59, 59, 999),
      Date.UTC(1000, 0, 1),
      Date.UTC(2024, 1, 29, 12, 0, 0, 7),
      Date.UTC(2026, 10, 29, 9, 5, 3, 40),
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      Date.UTC(10000, 0, 1),
      Date.UTC(-1, 0, 1),
      MAX_TIME,
      -MAX_TIME,
    ];
    for (let time = -MAX_TIME; time <= MAX_TIME; time += 7_777_777_777_777) instants.push(time);
    for (const time of instants) expect(isoString(new Date(time))).toBe(new Date(time).toISOString());
  });

  it('throws for an invalid date, as toISOString does', () => {
    expect(() => isoString(new Date(Number.NaN))).toThrow(RangeError);
  });
});
