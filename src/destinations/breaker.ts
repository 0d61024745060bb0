/**
 * The circuit breaker of one destination, as pure functions of its record, the outcomes counted
 * in its window, and the time (SPEC §9). The drivers of `destination-store.ts` keep the record
 * and the window; this file decides.
 *
 * - closed: every delivery is attempted. Once the window holds at least `minAttempts` attempts
 *   and at least `failureRatio` of them failed, it opens.
 * - open: deliveries are held (not attempted; no retry used up) until the cool-down ends.
 * - half_open: the cool-down is over and one delivery, the probe, is attempted; the others stay
 *   held. Success closes the breaker (the window starts afresh, the cool-down is back to its
 *   base); failure opens it again with twice the cool-down, up to `cooldownMaxMs`. A probe whose
 *   worker died lapses after `probeMs`, and another delivery probes.
 *
 * Every change is a new record with `version + 1`, written only if the version is unchanged
 * (compare and set), so workers racing for the same change make it once.
 */

export const BREAKER_STATES = ['closed', 'open', 'half_open'] as const;
export type BreakerStateName = (typeof BREAKER_STATES)[number];

export interface BreakerSettings {
  /** Share of failed attempts in the window that opens the breaker (0..1]. */
  failureRatio: number;
  /** Fewest attempts in the window before it can open; 0 turns the breaker off. */
  minAttempts: number;
  /** How far back the window counts attempts. */
  windowMs: number;
  /** The first cool-down; each failed probe doubles it. */
  cooldownMs: number;
  /** The longest cool-down. */
  cooldownMaxMs: number;
  /** How long a probe's claim lasts (longer than one callback attempt). */
  probeMs: number;
}

export interface BreakerRecord {
  state: BreakerStateName;
  /** open: when the cool-down ends; half_open: when the probe's claim lapses; closed: 0. */
  untilMs: number;
  /** The cool-down of the last opening (0 while it never opened). */
  cooldownMs: number;
  /** Bumped by every change; the compare-and-set token. */
  version: number;
  /** When the state last changed (epoch ms). */
  changedAtMs: number;
}

/** Attempts counted in the window. */
export interface OutcomeWindow {
  ok: number;
  failed: number;
}

export const CLOSED: BreakerRecord = {
  state: 'closed',
  untilMs: 0,
  cooldownMs: 0,
  version: 0,
  changedAtMs: 0,
};

/**
 * Whether a delivery may be attempted now: `go` (as the probe, when `claim` is set: the record
 * to write first, and go only if that write wins), or `hold` until `untilMs`.
 */
export type Admission = { type: 'go'; claim?: BreakerRecord } | { type: 'hold'; untilMs: number };

export function admit(record: BreakerRecord, nowMs: number, settings: BreakerSettings): Admission {
  if (record.state === 'closed') return { type: 'go' };
  if (record.untilMs > nowMs) return { type: 'hold', untilMs: record.untilMs };
  // The cool-down is over, or a probe's claim lapsed: this delivery probes.
  return {
    type: 'go',
    claim: {
      ...record,
      state: 'half_open',
      untilMs: nowMs + settings.probeMs,
      version: record.version + 1,
      changedAtMs: record.state === 'half_open' ? record.changedAtMs : nowMs,
    },
  };
}

/**
 * The record after an attempt ended (`ok`), counted in `window` already; `null` when nothing
 * changes. `probe`: the attempt was the probe of a half-open breaker.
 */
export function afterOutcome(
  record: BreakerRecord,
  window: OutcomeWindow,
  ok: boolean,
  probe: boolean,
  nowMs: number,
  settings: BreakerSettings,
): BreakerRecord | null {
  if (probe && record.state === 'half_open') {
    if (ok)
      return { state: 'closed', untilMs: 0, cooldownMs: 0, version: record.version + 1, changedAtMs: nowMs };
    const cooldownMs = Math.min(settings.cooldownMaxMs, Math.max(settings.cooldownMs, record.cooldownMs * 2));
    return {
      state: 'open',
      untilMs: nowMs + cooldownMs,
      cooldownMs,
      version: record.version + 1,
      changedAtMs: nowMs,
    };
  }
  if (record.state !== 'closed' || ok || settings.minAttempts === 0) return null;
  const attempts = window.ok + window.failed;
  if (attempts < settings.minAttempts || window.failed < settings.failureRatio * attempts) return null;
  return {
    state: 'open',
    untilMs: nowMs + settings.cooldownMs,
    cooldownMs: settings.cooldownMs,
    version: record.version + 1,
    changedAtMs: nowMs,
  };
}

/** Share of the window's attempts that succeeded; 1 when it holds none. */
export function successRate(window: OutcomeWindow): number {
  const attempts = window.ok + window.failed;
  return attempts === 0 ? 1 : window.ok / attempts;
}

/** The window's buckets: ten, so an outcome leaves the count at most a tenth of a window late. */
export const WINDOW_BUCKETS = 10;

export function bucketOf(nowMs: number, windowMs: number): number {
  return Math.floor(nowMs / Math.max(1, Math.ceil(windowMs / WINDOW_BUCKETS)));
}

/** The oldest bucket still inside the window that ends at `nowMs`. */
export function oldestBucket(nowMs: number, windowMs: number): number {
  return bucketOf(nowMs, windowMs) - WINDOW_BUCKETS + 1;
}
