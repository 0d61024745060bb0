/** The delivery gate against a real (in-memory SQLite) destination store and in-process leases. */
import { describe, expect, it } from 'vitest';
import { openSqliteDatabase } from '../backends/sqlite/sqlite-database.js';
import { loadConfig } from '../config.js';
import { createMemoryLeaseLimiter } from '../limits/memory-lease-limiter.js';
import { createLogger } from '../shared/logger.js';
import { createMetrics } from '../shared/metrics.js';
import { createDeliveryGate, leaseKeyOf } from './delivery-gate.js';
import { createSqliteDestinationStore } from './sqlite-destination-store.js';

/** The default breaker, two places in flight. */
const SETTINGS = { ...loadConfig({}).callbackBreaker, probeMs: 15_000, maxInFlight: 2, leaseMs: 20_000 };

function gateWith() {
  const store = createSqliteDestinationStore(openSqliteDatabase({ path: ':memory:' }));
  const leases = createMemoryLeaseLimiter();
  const gate = createDeliveryGate({
    store,
    leases,
    settings: SETTINGS,
    logger: createLogger('silent'),
    metrics: createMetrics(),
  });
  return { store, leases, gate };
}

const ref = { namespace: '', destination: 'http://127.0.0.1:9' };

describe('delivery gate', () => {
  it('lets a delivery through once a place held by another worker frees within the short wait', async () => {
    const { leases, gate } = gateWith();
    // Another worker's two attempts fill the destination; one of them ends 30 ms later.
    const others = [
      await leases.acquire(leaseKeyOf(ref), 2, 20_000),
      await leases.acquire(leaseKeyOf(ref), 2, 20_000),
    ];
    setTimeout(() => void others[0]!.release(), 30);
    const entry = await gate.enter(ref, 'deliver:t1');
    expect(entry.type).toBe('go');
  });

  it('sends a delivery back to the queue when other workers keep the destination full', async () => {
    const { leases, gate } = gateWith();
    for (let index = 0; index < 2; index++) await leases.acquire(leaseKeyOf(ref), 2, 20_000);
    const startedAt = Date.now();
    const entry = await gate.enter(ref, 'deliver:t2');
    expect(entry.type).toBe('busy');
    // It looked again for the short wait (100 ms), not longer.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(90);
    expect(Date.now() - startedAt).toBeLessThan(1000);
  });

  it('gives a first attempt a place when one of its own attempts ends within its wait, else none', async () => {
    const { leases, gate } = gateWith();
    const first = await gate.enterNow(ref);
    expect(first?.type).toBe('go');
    const second = await gate.enterNow(ref);
    expect(second?.type).toBe('go');
    // Full of this process's attempts: the third waits; the first ending 30 ms later passes it on.
    setTimeout(() => void first!.release(), 30);
    const third = await gate.enterNow(ref);
    expect(third?.type).toBe('go');
    // Full, and nothing of this process's ends within the first attempt's wait (1 s): none.
    const startedAt = Date.now();
    expect(await gate.enterNow(ref)).toBeNull();
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(990);
    expect(Date.now() - startedAt).toBeLessThan(3000);
    await gate.settle(first!, { ok: false, error: 'HTTP 500' });
    await second!.release();
    await third!.release();
    // A failure of the destination in the last second: queued, though places are free.
    expect(await leases.count(leaseKeyOf(ref))).toBe(0);
    expect(await gate.enterNow(ref)).toBeNull();
  });

  it('lets a first attempt through once a place held by another worker frees within its wait, else none', async () => {
    const { leases, gate } = gateWith();
    const others = [
      await leases.acquire(leaseKeyOf(ref), 2, 20_000),
      await leases.acquire(leaseKeyOf(ref), 2, 20_000),
    ];
    setTimeout(() => void others[0]!.release(), 30);
    expect((await gate.enterNow(ref))?.type).toBe('go');
    // Still full of the other worker's attempts after the wait: none, so the delivery is queued.
    const startedAt = Date.now();
    expect(await gate.enterNow(ref)).toBeNull();
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(990);
    expect(Date.now() - startedAt).toBeLessThan(3000);
  });

  it('counts a closed breaker’s successes in the store within about a second', async () => {
    const { store, gate } = gateWith();
    for (let index = 0; index < 3; index++) {
      const entry = await gate.enterNow(ref);
      await entry!.release();
      await gate.settle(entry!, { ok: true });
    }
    const windowOf = async () =>
      (await store.list('', Date.now(), SETTINGS.windowMs)).find(
        (view) => view.destination === ref.destination,
      )?.window;
    await expect.poll(windowOf, { timeout: 3000 }).toEqual({ ok: 3, failed: 0 });
  });
});
