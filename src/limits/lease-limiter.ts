/**
 * THE lease seam: at most `limit` holders of a place under a key at once, across every process
 * that shares the backend. It bounds work that must not pile up on one party: callback attempts
 * in flight per destination, LLM calls in flight per deployment.
 *
 * Invariants every driver keeps (lease-limiter.contract.ts):
 * - `acquire` never grants more than `limit` unexpired leases under one key at once.
 * - A lease ends when released, or by itself `ttlMs` after it was granted: a process killed while
 *   holding one leaves no place taken for ever. Choose `ttlMs` longer than the work it guards.
 * - `release` is idempotent, and a late release of an expired lease frees nothing of another's.
 */

export interface Lease {
  /** Frees the place (no-op when already released or expired). */
  release(): Promise<void>;
}

export interface LeaseLimiter {
  /** Takes one of `limit` places under `key` for at most `ttlMs`; `null` when all are taken. */
  acquire(key: string, limit: number, ttlMs: number): Promise<Lease | null>;
  /** Unexpired leases held under `key` now. */
  count(key: string): Promise<number>;
}
