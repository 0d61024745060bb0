/** The limits of the embedded mode: one process, so plain maps and timestamps suffice. */
import type { Lease, LeaseLimiter } from './lease-limiter.js';
import { type LlmLimits, type ModelPauses, type RateLimiter, refilled } from './rate-limits.js';

export function createMemoryLeaseLimiter(): LeaseLimiter {
  const held = new Map<string, Map<number, number>>();
  let nextId = 1;
  const live = (key: string): Map<number, number> => {
    let leases = held.get(key);
    if (leases === undefined) {
      leases = new Map();
      held.set(key, leases);
    }
    const now = Date.now();
    for (const [id, expiresAt] of leases) if (expiresAt <= now) leases.delete(id);
    return leases;
  };
  return {
    async acquire(key, limit, ttlMs): Promise<Lease | null> {
      const leases = live(key);
      if (leases.size >= limit) return null;
      const id = nextId++;
      leases.set(id, Date.now() + ttlMs);
      return {
        async release() {
          leases.delete(id);
        },
      };
    },
    async count(key) {
      return live(key).size;
    },
  };
}

export function createMemoryRateLimiter(): RateLimiter {
  const buckets = new Map<string, { tokens: number; atMs: number }>();
  return {
    async take(key, cost, window) {
      const now = Date.now();
      const bucket = buckets.get(key) ?? { tokens: window.max, atMs: now };
      const tokens = refilled(bucket.tokens, bucket.atMs, now, window);
      const need = Math.min(cost, window.max);
      if (tokens >= need) {
        buckets.set(key, { tokens: tokens - need, atMs: now });
        return 0;
      }
      buckets.set(key, { tokens, atMs: now });
      return Math.ceil(((need - tokens) * window.windowMs) / window.max);
    },
  };
}

export function createMemoryModelPauses(): ModelPauses {
  const until = new Map<string, number>();
  return {
    async pause(model, ms) {
      until.set(model, Math.max(until.get(model) ?? 0, Date.now() + ms));
    },
    async remainingMs(model) {
      return Math.max(0, (until.get(model) ?? 0) - Date.now());
    },
  };
}

export function createMemoryLimits(): LlmLimits {
  return {
    leases: createMemoryLeaseLimiter(),
    rates: createMemoryRateLimiter(),
    pauses: createMemoryModelPauses(),
  };
}
