import { describe, expect, it } from 'vitest';
import { retryAfterToMs } from './retry-after.js';

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
