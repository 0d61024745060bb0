/**
 * THE destination seam: each destination's breaker record, the outcomes of its recent attempts,
 * its last error and the deliveries it holds. The SQLite driver serves the embedded mode, the
 * Redis one the redis mode (shared by every worker); both run destination-store.contract.ts.
 *
 * A destination is a client's callback origin: `namespace` (the client, '' with tokens off) and
 * `destination` (`https://host:443`). Two clients sending to one origin have breakers of their
 * own, so one client's failing endpoint never holds another's deliveries.
 *
 * Invariants:
 * - The record survives a restart (embedded) and is one record for every worker (redis).
 * - `transition` is a compare-and-set on `version`: of two racing changes, one wins.
 * - `hold` is idempotent per job; a held job stays counted until `unhold`, `releaseHeld` or `reset`.
 */
import type { BreakerRecord, OutcomeWindow } from './breaker.js';

export interface DestinationRef {
  namespace: string;
  destination: string;
}

export interface DestinationView extends DestinationRef {
  record: BreakerRecord;
  window: OutcomeWindow;
  held: number;
  lastError: string | null;
}

export interface DestinationStore {
  /** The breaker record (closed and version 0 for a destination never seen). */
  get(ref: DestinationRef): Promise<BreakerRecord>;
  /**
   * Counts one attempt's outcome in the window ending at `nowMs` (`error`: why it failed, kept as
   * the last error), and `extraOk` successes besides (counted by the caller since its last call,
   * default 0), and resolves the window's totals and the record as they are now.
   */
  recordOutcome(
    ref: DestinationRef,
    ok: boolean,
    error: string | null,
    nowMs: number,
    windowMs: number,
    extraOk?: number,
  ): Promise<{ record: BreakerRecord; window: OutcomeWindow }>;
  /** Writes `next` if the record's version is still `expectedVersion`; resolves whether it did. */
  transition(ref: DestinationRef, expectedVersion: number, next: BreakerRecord): Promise<boolean>;
  /** Counts `jobId` as held since `sinceMs` (kept on a second call); resolves how many held ones are older. */
  hold(ref: DestinationRef, jobId: string, sinceMs: number): Promise<number>;
  /** No longer held (it failed at the end of its delivery window). */
  unhold(ref: DestinationRef, jobId: string): Promise<void>;
  /** Nothing held any more: the breaker closed (or was reset). */
  releaseHeld(ref: DestinationRef): Promise<void>;
  /** The namespace's destinations, with their windows ending at `nowMs`. */
  list(namespace: string, nowMs: number, windowMs: number): Promise<DestinationView[]>;
  /** Closes the breaker, empties the window and releases what it held; `false` when the destination is unknown. */
  reset(ref: DestinationRef, nowMs: number): Promise<boolean>;
}
