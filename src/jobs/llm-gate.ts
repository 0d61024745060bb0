/**
 * What an LLM call must pass before it is made (SPEC §10): its model's pause after a provider
 * `429`, a place among `LLM_MAX_CONCURRENCY` calls in flight in the whole deployment, and the
 * `LLM_RATE_LIMIT` and `LLM_TOKEN_RATE_LIMIT` buckets. A call that cannot pass yet is not made:
 * the job returns a retry after the wait (a queue delay, so no worker slot is held while waiting
 * and no LLM retry is spent), and the conversation's later messages keep waiting behind it.
 */
import type { Config } from '../config.js';
import type { LeaseLimiter } from '../limits/lease-limiter.js';
import type { RateLimits } from '../limits/rate-limits.js';

export type GateResult =
  | { type: 'pass'; release(): Promise<void> }
  | { type: 'wait'; delayMs: number; reason: 'paused' | 'concurrency' | 'requests' | 'tokens' };

export interface LlmGate {
  /**
   * Milliseconds left of `model`'s pause (0: none). Asked apart from `enter`, and early, so that
   * in redis mode its round trip runs beside the job's other reads.
   */
  pausedMs(model: string): Promise<number>;
  /** Lets a call to `model` of about `tokens` tokens through the provider limits, or says how long to wait. */
  enter(model: string, tokens: number): Promise<GateResult>;
  /** Pauses `model` for every worker (a provider's `Retry-After`). */
  pause(model: string, ms: number): Promise<void>;
}

/** Key of the deployment's LLM calls in flight, among the leases. */
export const LLM_LEASE_KEY = 'llm-calls';
/**
 * A lease outlives its calls (a call and its context-length retry, each within LLM_TIMEOUT_MS) by
 * this much, so only a killed worker's lease lapses on its own.
 */
const LEASE_MARGIN_MS = 5000;
/** How long a call waits for a place in flight before it looks again: 50–200 ms, spread out. */
const placeWaitMs = (): number => 50 + Math.floor(Math.random() * 150);

export function createLlmGate(
  config: Readonly<Config>,
  leases: LeaseLimiter,
  { rates, pauses }: RateLimits,
): LlmGate {
  const leaseTtlMs = 2 * config.llmTimeoutMs + LEASE_MARGIN_MS;
  const noRelease = async (): Promise<void> => {};
  return {
    pausedMs: (model) => pauses.remainingMs(model),
    async enter(_model, tokens) {
      let release = noRelease;
      if (config.llmMaxConcurrency > 0) {
        const lease = await leases.acquire(LLM_LEASE_KEY, config.llmMaxConcurrency, leaseTtlMs);
        if (lease === null) return { type: 'wait', delayMs: placeWaitMs(), reason: 'concurrency' };
        release = () => lease.release();
      }
      try {
        if (config.llmTokenRateLimit !== null) {
          const { max, windowMs } = config.llmTokenRateLimit;
          const waitMs = await rates.take('llm-tokens', tokens, { max, windowMs });
          if (waitMs > 0) {
            await release();
            return { type: 'wait', delayMs: waitMs, reason: 'tokens' };
          }
        }
        if (config.llmRateLimit !== null) {
          const { max, windowMs } = config.llmRateLimit;
          const waitMs = await rates.take('llm-requests', 1, { max, windowMs });
          if (waitMs > 0) {
            await release();
            return { type: 'wait', delayMs: waitMs, reason: 'requests' };
          }
        }
      } catch (error) {
        await release().catch(() => {});
        throw error;
      }
      return { type: 'pass', release };
    },
    pause: (model, ms) => pauses.pause(model, ms),
  };
}
