import { describe, expect, it } from 'vitest';
import { nextRetryDelayMs } from './retry-schedule.js';

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
