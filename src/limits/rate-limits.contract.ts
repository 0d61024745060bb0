/** The behaviour every `RateLimits` driver must show; each driver's test file runs it. */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../dev/harness.js';
import type { RateLimits } from './rate-limits.js';

export function defineRateLimitsContractTests(name: string, open: () => RateLimits): void {
  describe(`${name}: rate limits contract`, () => {
    const key = (): string => `k-${randomUUID()}`;

    it('takes up to the bucket at once, then says how long to wait, and refills over the window', async () => {
      const { rates } = open();
      const k = key();
      const window = { max: 3, windowMs: 600 };
      expect(await rates.take(k, 1, window)).toBe(0);
      expect(await rates.take(k, 2, window)).toBe(0);
      const waitMs = await rates.take(k, 1, window);
      // One unit comes back every 200 ms: the wait is at most that.
      expect(waitMs).toBeGreaterThan(0);
      expect(waitMs).toBeLessThanOrEqual(200);
      await waitFor(async () => (await rates.take(k, 1, window)) === 0, 'a unit refilled', {
        timeoutMs: 5000,
      });
      // Another key has a bucket of its own.
      expect(await rates.take(key(), 3, window)).toBe(0);
    });

    it('lets a cost above the whole bucket through once the bucket is full, never for ever refused', async () => {
      const { rates } = open();
      const k = key();
      const window = { max: 10, windowMs: 60_000 };
      expect(await rates.take(k, 500, window)).toBe(0);
      const waitMs = await rates.take(k, 500, window);
      expect(waitMs).toBeGreaterThan(50_000);
      expect(waitMs).toBeLessThanOrEqual(60_000);
    });

    it('pauses a model for the time asked, keeping a longer pause, and then not', async () => {
      const { pauses } = open();
      const model = `m-${randomUUID()}`;
      expect(await pauses.remainingMs(model)).toBe(0);
      await pauses.pause(model, 400);
      await pauses.pause(model, 10);
      const left = await pauses.remainingMs(model);
      expect(left).toBeGreaterThan(100);
      expect(left).toBeLessThanOrEqual(400);
      expect(await pauses.remainingMs(`other-${model}`)).toBe(0);
      await waitFor(async () => (await pauses.remainingMs(model)) === 0, 'the pause to end', {
        timeoutMs: 5000,
      });
    });
  });
}
