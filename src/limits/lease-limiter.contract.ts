/** The behaviour every `LeaseLimiter` driver must show; each driver's test file runs it. */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../dev/harness.js';
import type { LeaseLimiter } from './lease-limiter.js';

export function defineLeaseLimiterContractTests(name: string, open: () => LeaseLimiter): void {
  describe(`${name}: lease limiter contract`, () => {
    const key = (): string => `k-${randomUUID()}`;

    it('grants at most `limit` leases under a key, and counts them', async () => {
      const limiter = open();
      const k = key();
      const granted = await Promise.all(Array.from({ length: 8 }, () => limiter.acquire(k, 3, 60_000)));
      expect(granted.filter((lease) => lease !== null)).toHaveLength(3);
      expect(await limiter.count(k)).toBe(3);
      // Another key is not affected.
      expect(await limiter.acquire(key(), 3, 60_000)).not.toBeNull();
    });

    it('frees a place on release, once', async () => {
      const limiter = open();
      const k = key();
      const first = await limiter.acquire(k, 1, 60_000);
      expect(first).not.toBeNull();
      expect(await limiter.acquire(k, 1, 60_000)).toBeNull();
      await first!.release();
      const second = await limiter.acquire(k, 1, 60_000);
      expect(second).not.toBeNull();
      // A second release of the first lease frees nothing of the second's.
      await first!.release();
      expect(await limiter.acquire(k, 1, 60_000)).toBeNull();
      expect(await limiter.count(k)).toBe(1);
    });

    it('lets a lease that was never released expire after its ttl', async () => {
      const limiter = open();
      const k = key();
      expect(await limiter.acquire(k, 1, 150)).not.toBeNull();
      expect(await limiter.acquire(k, 1, 150)).toBeNull();
      await waitFor(async () => (await limiter.count(k)) === 0, 'the lease to expire', { timeoutMs: 5_000 });
      expect(await limiter.acquire(k, 1, 60_000)).not.toBeNull();
    });
  });
}
