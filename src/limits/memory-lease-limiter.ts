/**
 * The embedded mode's leases: one process holds them all, so a map of expiry times is the whole
 * state, and a restart frees every lease (nothing held them any more).
 */
import type { Lease, LeaseLimiter } from './lease-limiter.js';

export function createMemoryLeaseLimiter(now: () => number = Date.now): LeaseLimiter {
  /** Key → its leases (id → expiry, epoch ms) and the earliest expiry among them, or later. */
  const held = new Map<string, { leases: Map<number, number>; soonestMs: number }>();
  let issued = 0;

  const live = (key: string): Map<number, number> | undefined => {
    const entry = held.get(key);
    if (entry === undefined) return undefined;
    const at = now();
    // Nothing can have expired yet: no sweep (a full destination asks on every attempt).
    if (at < entry.soonestMs) return entry.leases;
    let soonestMs = Number.POSITIVE_INFINITY;
    for (const [id, expiresAt] of entry.leases) {
      if (expiresAt <= at) entry.leases.delete(id);
      else soonestMs = Math.min(soonestMs, expiresAt);
    }
    entry.soonestMs = soonestMs;
    if (entry.leases.size === 0) {
      held.delete(key);
      return undefined;
    }
    return entry.leases;
  };

  return {
    async acquire(key, limit, ttlMs) {
      // Expired leases matter only at the limit: they are swept then, not on every acquire.
      let leases = held.get(key)?.leases;
      if (leases !== undefined && leases.size >= limit) leases = live(key);
      if ((leases?.size ?? 0) >= limit) return null;
      issued += 1;
      const id = issued;
      const expiresAt = now() + Math.max(1, ttlMs);
      const entry = held.get(key);
      if (entry === undefined) held.set(key, { leases: new Map([[id, expiresAt]]), soonestMs: expiresAt });
      else {
        entry.leases.set(id, expiresAt);
        entry.soonestMs = Math.min(entry.soonestMs, expiresAt);
      }
      return {
        async release() {
          const current = held.get(key);
          if (current === undefined) return;
          current.leases.delete(id);
          if (current.leases.size === 0) held.delete(key);
        },
      } satisfies Lease;
    },
    async count(key) {
      return live(key)?.size ?? 0;
    },
  };
}
