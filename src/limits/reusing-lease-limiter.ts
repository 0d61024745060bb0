/**
 * Keeps a released lease for a moment and hands it to this process's next `acquire` of the same
 * key, so a place freed and taken again at once (a busy destination's attempts, one after
 * another) costs no round trip to the shared backend. Wraps the redis mode's leases.
 *
 * The seam's invariants still hold: a kept lease stays counted in the backend, so no more than
 * `limit` places are ever out; a lease is reused only within a tenth of its ttl (at most
 * `reuseMs`) of being granted, so work started on it has at least 90 % of its ttl left; a kept
 * lease nobody takes within `idleMs` is released for good, so other processes get the place.
 */
import type { Lease, LeaseLimiter } from './lease-limiter.js';

export interface ReusingLeaseOptions {
  /** Longest a lease is reused after it was granted. */
  reuseMs: number;
  /** Longest a released lease is kept for reuse. */
  idleMs: number;
  now?: () => number;
}

export interface ReusingLeaseLimiter extends LeaseLimiter {
  /** Releases every kept lease; later releases go straight to the backend. */
  close(): Promise<void>;
}

interface Granted {
  lease: Lease;
  grantedAtMs: number;
  ttlMs: number;
}

interface Kept extends Granted {
  keptAtMs: number;
}

export function createReusingLeaseLimiter(
  inner: LeaseLimiter,
  options: ReusingLeaseOptions,
): ReusingLeaseLimiter {
  const now = options.now ?? Date.now;
  /** Kept leases by key; a key without any is removed. */
  const kept = new Map<string, Kept[]>();
  let sweeper: NodeJS.Timeout | null = null;
  let closed = false;

  const reuseWindowMs = (ttlMs: number): number => Math.min(options.reuseMs, ttlMs / 10);
  const fresh = (entry: Granted, nowMs: number): boolean =>
    nowMs - entry.grantedAtMs <= reuseWindowMs(entry.ttlMs);
  // The place expires by itself in the backend if this release fails.
  const releaseQuietly = (lease: Lease): void => void lease.release().catch(() => {});

  const sweep = (): void => {
    const nowMs = now();
    for (const [key, entries] of kept) {
      const stay: Kept[] = [];
      for (const entry of entries) {
        if (fresh(entry, nowMs) && nowMs - entry.keptAtMs < options.idleMs) stay.push(entry);
        else releaseQuietly(entry.lease);
      }
      if (stay.length === 0) kept.delete(key);
      else kept.set(key, stay);
    }
    if (kept.size === 0 && sweeper !== null) {
      clearInterval(sweeper);
      sweeper = null;
    }
  };

  const keep = (key: string, entry: Kept): void => {
    const entries = kept.get(key);
    if (entries === undefined) kept.set(key, [entry]);
    else entries.push(entry);
    if (sweeper === null) {
      sweeper = setInterval(sweep, Math.max(1, Math.floor(options.idleMs / 2)));
      sweeper.unref();
    }
  };

  /** The freshest kept lease of `key` good for `ttlMs`; stale ones are released on the way. */
  const takeKept = (key: string, ttlMs: number, nowMs: number): Kept | null => {
    const entries = kept.get(key);
    while (entries !== undefined && entries.length > 0) {
      const entry = entries.pop()!;
      if (entries.length === 0) kept.delete(key);
      if (fresh(entry, nowMs) && entry.ttlMs >= ttlMs) return entry;
      releaseQuietly(entry.lease);
    }
    return null;
  };

  /** One holder's handle on `entry`'s place: its own release, once. */
  const handle = (key: string, entry: Granted): Lease => {
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        const nowMs = now();
        if (closed || !fresh(entry, nowMs)) await entry.lease.release();
        else keep(key, { ...entry, keptAtMs: nowMs });
      },
    };
  };

  return {
    async acquire(key, limit, ttlMs) {
      const nowMs = now();
      const reused = takeKept(key, ttlMs, nowMs);
      if (reused !== null) return handle(key, reused);
      // Taken before the request goes out: the backend's lease runs at least this long from here.
      const lease = await inner.acquire(key, limit, ttlMs);
      return lease === null ? null : handle(key, { lease, grantedAtMs: nowMs, ttlMs });
    },

    async count(key) {
      return Math.max(0, (await inner.count(key)) - (kept.get(key)?.length ?? 0));
    },

    async close() {
      closed = true;
      if (sweeper !== null) clearInterval(sweeper);
      sweeper = null;
      const leases = [...kept.values()].flat().map((entry) => entry.lease);
      kept.clear();
      await Promise.allSettled(leases.map((lease) => lease.release()));
    },
  };
}
