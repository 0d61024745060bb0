/**
 * The gate every callback attempt passes (SPEC §9): the destination's breaker decides whether it
 * may be attempted now, and a lease bounds the attempts in flight per destination across all
 * workers. A delivery that may not go now is not attempted and uses up nothing of its retry
 * schedule; its job waits (without holding a worker slot) and comes back:
 *
 * - `held`: the breaker is open (or a probe is out). The job waits for the cool-down's end, later
 *   the older it was held, so held deliveries come back roughly oldest first.
 * - `busy`: the destination has its most attempts in flight. The delivery waits in the process
 *   for 100 ms at most, so a fast receiver at its limit is not served through the queue's round
 *   trips: woken when an attempt of this process ends, or looking again every 10 ms when the
 *   attempts in flight are other workers'; then it goes back to the queue and looks again later,
 *   backing off to every 2 s, so a slow receiver's deliveries do not keep slots.
 *
 * `enterNow` is the same gate for a first attempt made by the generation's run: a place at once
 * to a healthy destination, else nothing (never a wait), and the delivery is queued.
 *
 * After the attempt, the caller releases the entry's place, and `settle` counts the outcome and
 * makes the breaker's change, if any (a closed breaker's successes are written once a second).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LeaseLimiter } from '../limits/lease-limiter.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import { admit, afterOutcome, type BreakerRecord, type BreakerSettings } from './breaker.js';
import type { DestinationRef, DestinationStore } from './destination-store.js';

export interface DeliveryGateSettings extends BreakerSettings {
  /** Attempts in flight at once per destination. */
  maxInFlight: number;
  /** A lease's life: longer than one attempt can take. */
  leaseMs: number;
}

export type GateEntry =
  | { type: 'go'; ref: DestinationRef; probe: boolean; release: () => Promise<void> }
  | { type: 'held'; untilMs: number }
  | { type: 'busy'; retryInMs: number };

/** How an attempt ended, for the breaker: `ok` (the receiver answered), `failed`, or not counted. */
export type GateOutcome = { ok: true } | { ok: false; error: string } | null;

export interface DeliveryGate {
  /** `waits`: how many times this delivery found its destination busy before (backs off). */
  enter(ref: DestinationRef, jobId: string, waits?: number): Promise<GateEntry>;
  /**
   * A place soon or nothing: `go` only when the destination's breaker is closed, no attempt of
   * it failed here in the last second, and it has a place in flight now, or within a second as
   * one of its attempts ends. `null` otherwise, and then nothing is counted or
   * held: the caller queues the delivery, which passes `enter` later.
   */
  enterNow(ref: DestinationRef): Promise<Extract<GateEntry, { type: 'go' }> | null>;
  settle(entry: Extract<GateEntry, { type: 'go' }>, outcome: GateOutcome): Promise<void>;
}

export interface DeliveryGateDeps {
  store: DestinationStore;
  leases: LeaseLimiter;
  settings: DeliveryGateSettings;
  logger: Logger;
  metrics: Metrics;
  now?: () => number;
  random?: () => number;
}

/** Between held deliveries woken after one cool-down: the oldest first, this far apart. */
const HELD_STAGGER_MS = 10;
/** The longest stagger (a very long queue of held deliveries comes back within it). */
const HELD_STAGGER_MAX_MS = 30_000;
/** How long a closed breaker's record is trusted without reading it again. */
const RECORD_CACHE_MS = 1000;
/** Most records kept (the cache starts afresh past it). */
const RECORD_CACHE_MAX = 10_000;
/** Longest a delivery waits in the process for one of its destination's local attempts to end. */
const BUSY_WAIT_MS = 100;
/**
 * Longest a first attempt waits so. It holds no slot meanwhile (its run has handed its
 * generation slot back), only its conversation's next run, so it waits longer than a queued
 * delivery, which holds a delivery slot: a burst of replies to one fast receiver then goes out
 * as places free, rather than through the queue's backoff.
 */
const FIRST_WAIT_MS = 1000;
/** How often a delivery looks again at a destination that other workers' attempts fill. */
const OTHERS_POLL_MS = 10;
/** Most deliveries waiting so per destination. */
const MAX_LOCAL_WAITERS = 10_000;
/** A delivery that finds its destination busy looks again after this, doubled each time. */
const BUSY_BACKOFF_MS = 100;
const BUSY_BACKOFF_MAX_MS = 2000;
/** While a probe is out, held deliveries look again this often. */
const PROBE_RECHECK_MS = 1000;
/** A closed breaker's successes are counted here and written to the store this often. */
const SUCCESS_FLUSH_MS = 1000;

/** The lease key of a destination's attempts in flight. */
export function leaseKeyOf(ref: DestinationRef): string {
  return `dest:${ref.namespace}|${ref.destination}`;
}

export function createDeliveryGate(deps: DeliveryGateDeps): DeliveryGate {
  const { store, leases, settings, logger, metrics } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  /**
   * Breaker records read in the last `RECORD_CACHE_MS`, by lease key: a healthy destination's
   * closed breaker is not read again for every delivery. A destination whose attempts failed in
   * that time is read afresh for each one, so a breaker opened by another worker holds here at
   * this worker's next failure at the latest; every change this process makes refreshes its copy.
   */
  const records = new Map<string, { record: BreakerRecord; atMs: number }>();
  const remember = (ref: DestinationRef, record: BreakerRecord): void => {
    if (records.size >= RECORD_CACHE_MAX) records.clear();
    records.set(leaseKeyOf(ref), { record, atMs: now() });
  };
  /** Destinations whose attempts failed in the last `RECORD_CACHE_MS`: read afresh every time. */
  const failing = new Map<string, number>();
  const failedRecently = (key: string): boolean => {
    const failedAt = failing.get(key);
    if (failedAt === undefined) return false;
    if (now() - failedAt < RECORD_CACHE_MS) return true;
    failing.delete(key);
    return false;
  };
  const readRecord = async (ref: DestinationRef): Promise<BreakerRecord> => {
    const key = leaseKeyOf(ref);
    const recentlyFailed = failedRecently(key);
    const cached = records.get(key);
    if (
      !recentlyFailed &&
      cached !== undefined &&
      cached.record.state === 'closed' &&
      now() - cached.atMs < RECORD_CACHE_MS
    ) {
      return cached.record;
    }
    const record = await store.get(ref);
    if (!recentlyFailed) remember(ref, record);
    return record;
  };
  /**
   * Successes of destinations whose breaker is closed, not yet written, by lease key: a success
   * changes nothing of a closed breaker, so they are written once a second (or with the next
   * failure, which is judged on them), not one store call per delivery.
   */
  const successes = new Map<string, { ref: DestinationRef; count: number }>();
  let flushTimer: NodeJS.Timeout | null = null;
  const flushSuccesses = async (): Promise<void> => {
    flushTimer = null;
    const due = [...successes.values()];
    successes.clear();
    const nowMs = now();
    await Promise.all(
      due.map(({ ref, count }) =>
        store
          .recordOutcome(ref, true, null, nowMs, settings.windowMs, count - 1)
          .catch((error: unknown) => logger.warn({ err: error }, 'could not count callback successes')),
      ),
    );
  };
  /** Takes the successes not yet written of `ref`'s destination. */
  const takeSuccesses = (ref: DestinationRef): number => {
    const key = leaseKeyOf(ref);
    const pending = successes.get(key)?.count ?? 0;
    successes.delete(key);
    return pending;
  };

  /** Adds `by` to a per-key count, forgetting the key at zero. */
  const count = (counts: Map<string, number>, key: string, by: 1 | -1): void => {
    const next = (counts.get(key) ?? 0) + by;
    if (next <= 0) counts.delete(key);
    else counts.set(key, next);
  };

  /** This process's attempts in flight, and the deliveries waiting for one to end, by lease key. */
  const localInFlight = new Map<string, number>();
  const localWaiters = new Map<string, Set<() => void>>();
  /** Deliveries of this process looking again at a destination other workers' attempts fill. */
  const pollers = new Map<string, number>();

  const logChange = (ref: DestinationRef, next: BreakerRecord, reason: string): void => {
    metrics.callbackBreakerTransitions.inc({ state: next.state });
    const fields = {
      destination: ref.destination,
      ...(ref.namespace === '' ? {} : { namespace: ref.namespace }),
      breaker: next.state,
      ...(next.state === 'open' ? { cooldown_ms: next.cooldownMs } : {}),
    };
    if (next.state === 'open') logger.warn(fields, `circuit breaker opened: ${reason}`);
    else
      logger.info(
        fields,
        next.state === 'closed' ? 'circuit breaker closed' : 'circuit breaker half-open: probing',
      );
  };

  const hold = async (ref: DestinationRef, jobId: string, untilMs: number): Promise<GateEntry> => {
    const older = await store.hold(ref, jobId, now());
    metrics.callbackDeliveriesDeferred.inc({ reason: 'breaker_open' });
    const stagger = Math.min(HELD_STAGGER_MAX_MS, older * HELD_STAGGER_MS) + random() * HELD_STAGGER_MS;
    return { type: 'held', untilMs: untilMs + stagger };
  };

  /** The entry of an attempt that holds `lease`, counted in flight here until released. */
  const admitted = (
    ref: DestinationRef,
    probe: boolean,
    lease: { release(): Promise<void> },
  ): Extract<GateEntry, { type: 'go' }> => {
    const key = leaseKeyOf(ref);
    count(localInFlight, key, 1);
    let released = false;
    const release = async (): Promise<void> => {
      if (released) return;
      released = true;
      count(localInFlight, key, -1);
      await lease.release();
      // The longest waiting delivery to this destination, if any, takes the place.
      localWaiters.get(key)?.values().next().value?.();
    };
    return { type: 'go', ref, probe, release };
  };

  /** Waits up to `waitMs` for one of this process's attempts to `key` to end. */
  const waitForLocal = (key: string, queue: Set<() => void>, waitMs: number): Promise<void> => {
    localWaiters.set(key, queue);
    return new Promise<void>((resolve) => {
      const timer = setTimeout(wake, waitMs);
      function wake(): void {
        clearTimeout(timer);
        queue.delete(wake);
        if (queue.size === 0 && localWaiters.get(key) === queue) localWaiters.delete(key);
        resolve();
      }
      queue.add(wake);
    });
  };

  /**
   * The destination is full: waits briefly for a place, until `waitUntil`. With attempts of this
   * process to it in flight, until one of them ends (its place then passes on here without a
   * round trip); when other workers' attempts fill it, `OTHERS_POLL_MS` before looking again, so
   * a fast receiver shared by several workers is not served through the queue's backoff (at most
   * `maxInFlight` deliveries per destination and process look so). False: no wait; give up.
   */
  const waitForPlace = async (key: string, waitUntil: number): Promise<boolean> => {
    const waitMs = waitUntil - now();
    if (waitMs <= 0) return false;
    if ((localInFlight.get(key) ?? 0) === 0) {
      if ((pollers.get(key) ?? 0) >= Math.min(MAX_LOCAL_WAITERS, settings.maxInFlight)) return false;
      count(pollers, key, 1);
      try {
        await sleep(Math.min(OTHERS_POLL_MS, waitMs));
      } finally {
        count(pollers, key, -1);
      }
      return true;
    }
    const queue = localWaiters.get(key) ?? new Set();
    if (queue.size >= MAX_LOCAL_WAITERS) return false;
    await waitForLocal(key, queue, waitMs);
    return true;
  };

  return {
    async enterNow(ref) {
      const key = leaseKeyOf(ref);
      const waitUntil = now() + FIRST_WAIT_MS;
      for (;;) {
        if (failedRecently(key) || (await readRecord(ref)).state !== 'closed') return null;
        const lease = await leases.acquire(key, settings.maxInFlight, settings.leaseMs);
        if (lease !== null) {
          if ((await readRecord(ref)).state === 'closed') return admitted(ref, false, lease);
          await lease.release();
          return null;
        }
        if (!(await waitForPlace(key, waitUntil))) return null;
      }
    },

    async enter(ref, jobId, waits = 0) {
      const key = leaseKeyOf(ref);
      const waitUntil = now() + BUSY_WAIT_MS;
      for (;;) {
        const record = await readRecord(ref);
        const nowMs = now();
        const admission = admit(record, nowMs, settings);
        if (admission.type === 'hold') {
          const untilMs =
            record.state === 'half_open'
              ? Math.min(admission.untilMs, nowMs + PROBE_RECHECK_MS)
              : admission.untilMs;
          return hold(ref, jobId, untilMs);
        }
        let probe = false;
        if (admission.claim !== undefined) {
          // One delivery probes; the others racing for the claim stay held.
          if (!(await store.transition(ref, record.version, admission.claim))) {
            records.delete(key);
            return hold(ref, jobId, nowMs + PROBE_RECHECK_MS);
          }
          remember(ref, admission.claim);
          logChange(ref, admission.claim, 'probing');
          probe = true;
        }
        // The probe may exceed the limit by one: attempts started before the breaker opened may
        // still be out.
        const lease = await leases.acquire(key, settings.maxInFlight + (probe ? 1 : 0), settings.leaseMs);
        if (lease !== null && !probe && (await readRecord(ref)).state !== 'closed') {
          // The breaker opened while this delivery waited for its place: it is held after all.
          await lease.release();
          continue;
        }
        if (lease !== null) return admitted(ref, probe, lease);
        // Full. Wait here, briefly (a probe does not wait: its claim lapses, and another delivery
        // probes), then look at the breaker again; after the wait, go back to the queue, backing off.
        if (probe || !(await waitForPlace(key, waitUntil))) {
          metrics.callbackDeliveriesDeferred.inc({ reason: 'in_flight_limit' });
          const backoffMs = Math.min(BUSY_BACKOFF_MAX_MS, BUSY_BACKOFF_MS * 2 ** Math.min(waits, 10));
          return { type: 'busy', retryInMs: backoffMs * (0.5 + random()) };
        }
      }
    },

    async settle(entry, outcome) {
      if (outcome === null) return;
      const key = leaseKeyOf(entry.ref);
      if (outcome.ok && !entry.probe && records.get(key)?.record.state === 'closed') {
        const pending = successes.get(key);
        if (pending === undefined) successes.set(key, { ref: entry.ref, count: 1 });
        else pending.count += 1;
        if (flushTimer === null) {
          flushTimer = setTimeout(() => void flushSuccesses(), SUCCESS_FLUSH_MS);
          flushTimer.unref();
        }
        return;
      }
      const nowMs = now();
      const { record, window } = await store.recordOutcome(
        entry.ref,
        outcome.ok,
        outcome.ok ? null : outcome.error,
        nowMs,
        settings.windowMs,
        takeSuccesses(entry.ref),
      );
      if (!outcome.ok) {
        // A failing destination is read afresh, so a breaker opened by another worker holds here
        // from the next delivery on.
        if (failing.size >= RECORD_CACHE_MAX) failing.clear();
        failing.set(leaseKeyOf(entry.ref), now());
        records.delete(leaseKeyOf(entry.ref));
      }
      const next = afterOutcome(record, window, outcome.ok, entry.probe, nowMs, settings);
      if (next === null) return;
      if (!(await store.transition(entry.ref, record.version, next))) {
        records.delete(leaseKeyOf(entry.ref));
        return;
      }
      remember(entry.ref, next);
      const reason = entry.probe
        ? 'the probe failed'
        : `${window.failed} of ${window.ok + window.failed} attempts failed in ${Math.round(settings.windowMs / 1000)} s`;
      logChange(entry.ref, next, reason);
      // Closed: what it held is released (each held job comes back at its own time).
      if (next.state === 'closed') await store.releaseHeld(entry.ref);
    },
  };
}
