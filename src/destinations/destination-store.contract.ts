/** The behaviour every `DestinationStore` driver must show; each driver's test file runs it. */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { BreakerRecord } from './breaker.js';
import type { DestinationRef, DestinationStore } from './destination-store.js';

const WINDOW_MS = 60_000;

export function defineDestinationStoreContractTests(name: string, open: () => DestinationStore): void {
  describe(`${name}: destination store contract`, () => {
    const ref = (namespace = ''): DestinationRef => ({
      namespace,
      destination: `https://${randomUUID()}.example:443`,
    });
    const opened = (base: BreakerRecord, nowMs: number): BreakerRecord => ({
      state: 'open',
      untilMs: nowMs + 30_000,
      cooldownMs: 30_000,
      version: base.version + 1,
      changedAtMs: nowMs,
    });

    it('knows an unseen destination as closed, version 0, and does not list it', async () => {
      const store = open();
      const unseen = ref();
      expect(await store.get(unseen)).toMatchObject({ state: 'closed', version: 0 });
      expect(await store.list(unseen.namespace, Date.now(), WINDOW_MS)).not.toContainEqual(
        expect.objectContaining({ destination: unseen.destination }),
      );
    });

    it('counts the successes a call carries besides its own outcome', async () => {
      const store = open();
      const d = ref();
      const t0 = Date.now();
      const first = await store.recordOutcome(d, true, null, t0, WINDOW_MS, 4);
      expect(first.window).toEqual({ ok: 5, failed: 0 });
      const second = await store.recordOutcome(d, false, 'HTTP 500', t0 + 1, WINDOW_MS, 2);
      expect(second.window).toEqual({ ok: 7, failed: 1 });
    });

    it('counts outcomes in the window, and forgets those older than it', async () => {
      const store = open();
      const d = ref();
      const t0 = Date.now();
      await store.recordOutcome(d, true, null, t0, WINDOW_MS);
      await store.recordOutcome(d, false, 'HTTP 500', t0 + 1, WINDOW_MS);
      const third = await store.recordOutcome(d, false, 'connect ECONNREFUSED', t0 + 2, WINDOW_MS);
      expect(third.window).toEqual({ ok: 1, failed: 2 });
      expect(third.record.state).toBe('closed');
      // Two windows later, all three have left it.
      const later = await store.recordOutcome(d, true, null, t0 + 2 * WINDOW_MS, WINDOW_MS);
      expect(later.window).toEqual({ ok: 1, failed: 0 });
      const [view] = (await store.list(d.namespace, t0 + 2 * WINDOW_MS, WINDOW_MS)).filter(
        (entry) => entry.destination === d.destination,
      );
      expect(view).toMatchObject({
        window: { ok: 1, failed: 0 },
        lastError: 'connect ECONNREFUSED',
        held: 0,
      });
    });

    it('changes the record only from the version it was read at (compare and set)', async () => {
      const store = open();
      const d = ref();
      const now = Date.now();
      const { record } = await store.recordOutcome(d, false, 'HTTP 503', now, WINDOW_MS);
      const next = opened(record, now);
      const results = await Promise.all([
        store.transition(d, record.version, next),
        store.transition(d, record.version, next),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.get(d)).toEqual(next);
      expect(await store.transition(d, record.version, { ...next, state: 'closed' })).toBe(false);
      expect((await store.get(d)).state).toBe('open');
    });

    it('counts held deliveries once each, oldest first, until released', async () => {
      const store = open();
      const d = ref();
      const now = Date.now();
      await store.recordOutcome(d, false, 'HTTP 500', now, WINDOW_MS);
      expect(await store.hold(d, 'job-a', now)).toBe(0);
      expect(await store.hold(d, 'job-b', now + 10)).toBe(1);
      // Held again: keeps its place.
      expect(await store.hold(d, 'job-a', now + 20)).toBe(0);
      const held = async (): Promise<number | undefined> =>
        (await store.list(d.namespace, now, WINDOW_MS)).find((entry) => entry.destination === d.destination)
          ?.held;
      expect(await held()).toBe(2);
      await store.unhold(d, 'job-a');
      expect(await held()).toBe(1);
      await store.releaseHeld(d);
      expect(await held()).toBe(0);
    });

    it('keeps each client to its own destinations', async () => {
      const store = open();
      const mine = ref(`ns-${randomUUID()}`);
      const theirs = { namespace: `ns-${randomUUID()}`, destination: mine.destination };
      await store.recordOutcome(mine, false, 'HTTP 500', Date.now(), WINDOW_MS);
      expect(
        (await store.list(mine.namespace, Date.now(), WINDOW_MS)).map((entry) => entry.destination),
      ).toEqual([mine.destination]);
      expect(await store.list(theirs.namespace, Date.now(), WINDOW_MS)).toEqual([]);
      expect(await store.reset(theirs, Date.now())).toBe(false);
    });

    it('resets a known destination: closed, window emptied, nothing held', async () => {
      const store = open();
      const d = ref();
      const now = Date.now();
      const { record } = await store.recordOutcome(d, false, 'HTTP 500', now, WINDOW_MS);
      await store.transition(d, record.version, opened(record, now));
      await store.hold(d, 'job-a', now);
      expect(await store.reset(d, now + 1)).toBe(true);
      const after = await store.get(d);
      expect(after).toMatchObject({ state: 'closed', untilMs: 0 });
      expect(after.version).toBeGreaterThan(record.version + 1);
      const [view] = (await store.list(d.namespace, now + 1, WINDOW_MS)).filter(
        (entry) => entry.destination === d.destination,
      );
      expect(view).toMatchObject({ held: 0, window: { ok: 0, failed: 0 } });
      expect(await store.reset(ref(), now)).toBe(false);
    });
  });
}
