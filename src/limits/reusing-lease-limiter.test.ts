import { describe, expect, it } from 'vitest';
import { defineLeaseLimiterContractTests } from './lease-limiter.contract.js';
import type { LeaseLimiter } from './lease-limiter.js';
import { createMemoryLeaseLimiter } from './memory-lease-limiter.js';
import { createReusingLeaseLimiter } from './reusing-lease-limiter.js';

defineLeaseLimiterContractTests('reusing (over memory)', () =>
  createReusingLeaseLimiter(createMemoryLeaseLimiter(), { reuseMs: 1_000, idleMs: 100 }),
);

/** A memory limiter on a clock of its own that counts the acquires and releases reaching it. */
function countingBackend(clock: { ms: number }) {
  const memory = createMemoryLeaseLimiter(() => clock.ms);
  const calls = { acquire: 0, release: 0 };
  const backend: LeaseLimiter = {
    async acquire(key, limit, ttlMs) {
      calls.acquire += 1;
      const lease = await memory.acquire(key, limit, ttlMs);
      if (lease === null) return null;
      return {
        release: async () => {
          calls.release += 1;
          await lease.release();
        },
      };
    },
    count: (key) => memory.count(key),
  };
  return { backend, calls };
}

describe('reusing leases', () => {
  it('hand a released place to the next acquire without asking the backend', async () => {
    const clock = { ms: 1_000_000 };
    const { backend, calls } = countingBackend(clock);
    const leases = createReusingLeaseLimiter(backend, { reuseMs: 1_000, idleMs: 100, now: () => clock.ms });
    for (let round = 0; round < 5; round++) {
      const lease = await leases.acquire('d', 2, 20_000);
      expect(lease).not.toBeNull();
      await lease!.release();
      clock.ms += 10;
    }
    expect(calls).toEqual({ acquire: 1, release: 0 });
    // A kept place is not counted as in use, but still holds its place in the backend.
    expect(await leases.count('d')).toBe(0);
    expect(await backend.count('d')).toBe(1);
    await leases.close();
    expect(calls.release).toBe(1);
    expect(await backend.count('d')).toBe(0);
  });

  it('never grant more than the limit, kept places included', async () => {
    const clock = { ms: 1_000_000 };
    const { backend } = countingBackend(clock);
    const leases = createReusingLeaseLimiter(backend, { reuseMs: 1_000, idleMs: 100, now: () => clock.ms });
    const first = await leases.acquire('d', 2, 20_000);
    const second = await leases.acquire('d', 2, 20_000);
    await first!.release();
    const reused = await leases.acquire('d', 2, 20_000);
    expect(reused).not.toBeNull();
    expect(await leases.acquire('d', 2, 20_000)).toBeNull();
    await second!.release();
    await reused!.release();
    await leases.close();
  });

  it('take a fresh lease once the kept one is older than its reuse window', async () => {
    const clock = { ms: 1_000_000 };
    const { backend, calls } = countingBackend(clock);
    // The window is the smaller of reuseMs and a tenth of the ttl: 500 ms here.
    const leases = createReusingLeaseLimiter(backend, {
      reuseMs: 1_000,
      idleMs: 10_000,
      now: () => clock.ms,
    });
    await (await leases.acquire('d', 1, 5_000))!.release();
    clock.ms += 400;
    await (await leases.acquire('d', 1, 5_000))!.release();
    expect(calls).toEqual({ acquire: 1, release: 0 });
    clock.ms += 200;
    const late = await leases.acquire('d', 1, 5_000);
    expect(late).not.toBeNull();
    expect(calls).toEqual({ acquire: 2, release: 1 });
    // Released past its window, it goes back to the backend at once.
    clock.ms += 600;
    await late!.release();
    expect(calls.release).toBe(2);
    expect(await backend.count('d')).toBe(0);
    await leases.close();
  });

  it('give a kept place back to the backend when nobody takes it within idleMs', async () => {
    const { backend, calls } = countingBackend({ ms: Date.now() });
    const leases = createReusingLeaseLimiter(backend, { reuseMs: 5_000, idleMs: 50 });
    await (await leases.acquire('d', 1, 60_000))!.release();
    expect(calls.release).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(calls.release).toBe(1);
    await leases.close();
  });

  it('do not reuse a lease for work that asks a longer ttl than it was granted with', async () => {
    const clock = { ms: 1_000_000 };
    const { backend, calls } = countingBackend(clock);
    const leases = createReusingLeaseLimiter(backend, { reuseMs: 1_000, idleMs: 100, now: () => clock.ms });
    await (await leases.acquire('d', 2, 20_000))!.release();
    expect(await leases.acquire('d', 2, 60_000)).not.toBeNull();
    expect(calls).toEqual({ acquire: 2, release: 1 });
    await leases.close();
  });
});
