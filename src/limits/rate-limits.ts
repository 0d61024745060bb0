/**
 * The provider limits besides concurrency (SPEC §10): rate limits over a window (LLM requests and
 * LLM tokens per minute) and a model's pause after the provider answered `429` with
 * `Retry-After`. Shared by every worker in redis mode (redis-limits.ts), in-process when embedded
 * (memory-limits.ts).
 */

export interface RateWindow {
  /** Units allowed per window. */
  max: number;
  windowMs: number;
}

export interface RateLimiter {
  /**
   * Takes `cost` units under `key` from a token bucket holding `window.max` units and refilled at
   * `window.max` per `window.windowMs` (a cost above `max` takes a full bucket). Resolves 0 when
   * taken, else the milliseconds after which that many units will be there (nothing is taken).
   */
  take(key: string, cost: number, window: RateWindow): Promise<number>;
}

export interface ModelPauses {
  /** Pauses `model` for `ms` from now (an existing longer pause is kept). */
  pause(model: string, ms: number): Promise<void>;
  /** Milliseconds left of `model`'s pause; 0 when it is not paused. */
  remainingMs(model: string): Promise<number>;
}

/** The rate limits and pauses, as the backends provide them (the leases are `backends.leases`). */
export interface RateLimits {
  rates: RateLimiter;
  pauses: ModelPauses;
  /** Closes what the driver opened of its own (redis: the pauses' subscriber connection). */
  close?(): Promise<void>;
}

/** The bucket arithmetic both drivers use: units in the bucket after refilling up to `nowMs`. */
export function refilled(tokens: number, atMs: number, nowMs: number, window: RateWindow): number {
  return Math.min(window.max, tokens + (Math.max(0, nowMs - atMs) * window.max) / window.windowMs);
}
