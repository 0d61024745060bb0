/** The rate limits and model pauses of the embedded mode: one process, so maps of timestamps suffice. */
import { type ModelPauses, type RateLimiter, type RateLimits, refilled } from './rate-limits.js';

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

export function createMemoryRateLimits(): RateLimits {
  return {
    rates: createMemoryRateLimiter(),
    pauses: createMemoryModelPauses(),
  };
}
