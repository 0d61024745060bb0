/**
 * The embedded mode's leases: one process holds them all, so a map of expiry times is the whole
 * state, and a restart frees every lease (nothing held them any more).
 */
import type { Lease, LeaseLimiter } from './lease-limiter.js';

export function createMemoryLeaseLimiter(now: () => number = Date.now): LeaseLimiter {
  /** Key → lease id → expiry (epoch ms). */
  const held = new Map<string, Map<number, number>>();
  let leases = 0;

  const live = (key: string): Map<number, number> | undefined => {
    const leases = held.get(key);
    if (leases === undefined) return undefined;
    const at = now();
    for (const [id, expiresAt] of leases) if (expiresAt <= at) leases.delete(id);
    if (leases.size === 0) {
      held.delete(key);
      return undefined;
    }
    return leases;
  };

  return {
    async acquire(key, limit, ttlMs) {
      // Expired leases matter only at the limit: they are swept then, not on every acquire.
      let current = held.get(key);
      if (current !== undefined && current.size >= limit) current = live(key);
      if ((current?.size ?? 0) >= limit) return null;
      leases += 1;
      const id = leases;
      const map = current ?? new Map<number, number>();
      map.set(id, now() + Math.max(1, ttlMs));
      held.set(key, map);
      return {
        async release() {
          const current = held.get(key);
          if (current === undefined) return;
          current.delete(id);
          if (current.size === 0) held.delete(key);
        },
      } satisfies Lease;
    },
    async count(key) {
      return live(key)?.size ?? 0;
    },
  };
}
