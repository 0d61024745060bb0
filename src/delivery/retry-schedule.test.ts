import { describe, expect, it } from 'vitest';
import { nextRetryDelayMs, retryAfterToMs } from './retry-schedule.js';

describe('nextRetryDelayMs', () => {
  const schedule = [5_000, 300_000, 1_800_000];

  it('walks the schedule one attempt at a time, then is spent', () => {
    expect(nextRetryDelayMs(schedule, 0)).toBe(0);
    expect(nextRetryDelayMs(schedule, 1)).toBe(5_000);
    expect(nextRetryDelayMs(schedule, 2)).toBe(300_000);
    expect(nextRetryDelayMs(schedule, 3)).toBe(1_800_000);
    expect(nextRetryDelayMs(schedule, 4)).toBeNull();
    expect(nextRetryDelayMs(schedule, 100)).toBeNull();
  });

  it('gives no retry for an empty schedule', () => {
    expect(nextRetryDelayMs([], 1)).toBeNull();
  });
});

describe('retryAfterToMs', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');

  it.each([
    ['120', 120_000],
    [' 0 ', 0],
    ['1.5', 1_500],
    ['Sun Nov  6 08:49:37 1994', 0],
    ['Wed, 01 Jan 2025 00:00:30 GMT', 30_000],
    ['Tuesday, 31-Dec-24 23:59:00 GMT', 0],
    ['Thu, 01 Jan 2099 00:00:00 GMT', 86_400_000],
    ['999999999', 86_400_000],
  ] as const)('%s → %s ms', (header, ms) => {
    expect(retryAfterToMs(header, now)).toBe(ms);
  });

  it.each([null, undefined, '', 'soon', '-5', '1e3', '12 seconds'])('%s → null', (header) => {
    expect(retryAfterToMs(header, now)).toBeNull();
  });
});
