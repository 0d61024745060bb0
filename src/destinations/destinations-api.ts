/**
 * What the HTTP API shows and changes of the destinations (SPEC §9): their breakers, attempts in
 * flight, held deliveries, success rate over the breaker's window and last error, per client.
 */
import type { LeaseLimiter } from '../limits/lease-limiter.js';
import { type BreakerStateName, successRate } from './breaker.js';
import { leaseKeyOf } from './delivery-gate.js';
import { destinationOf } from './destination.js';
import type { DestinationStore } from './destination-store.js';

export interface DestinationSummary {
  destination: string;
  state: BreakerStateName;
  in_flight: number;
  held: number;
  success_rate: number;
  last_error: string | null;
  /** While open: when the next probe may go (ISO); else null. */
  open_until: string | null;
}

export interface DestinationsApi {
  list(namespace: string): Promise<DestinationSummary[]>;
  /** Closes the destination's breaker and releases what it held; `false` when unknown. */
  reset(namespace: string, destination: string): Promise<boolean>;
}

/** The origin a client wrote (`https://host`, `https://host:443/`, ...) in the form destinations are listed in, or null. */
export function normalizeDestination(text: string): string | null {
  try {
    const url = new URL(text);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    return destinationOf(text);
  } catch {
    return null;
  }
}

export function createDestinationsApi(deps: {
  store: DestinationStore;
  leases: LeaseLimiter;
  windowMs: number;
  now?: () => number;
}): DestinationsApi {
  const now = deps.now ?? Date.now;
  return {
    async list(namespace) {
      const nowMs = now();
      const views = await deps.store.list(namespace, nowMs, deps.windowMs);
      return Promise.all(
        views.map(
          async (view): Promise<DestinationSummary> => ({
            destination: view.destination,
            state: view.record.state,
            in_flight: await deps.leases.count(leaseKeyOf(view)),
            held: view.held,
            success_rate: successRate(view.window),
            last_error: view.lastError,
            open_until: view.record.state === 'open' ? new Date(view.record.untilMs).toISOString() : null,
          }),
        ),
      );
    },
    async reset(namespace, destination) {
      const normalized = normalizeDestination(destination);
      if (normalized === null) return false;
      return deps.store.reset({ namespace, destination: normalized }, now());
    },
  };
}
