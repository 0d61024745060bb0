import { describe, expect, it } from 'vitest';
import {
  admit,
  afterOutcome,
  type BreakerRecord,
  type BreakerSettings,
  CLOSED,
  successRate,
} from './breaker.js';

const SETTINGS: BreakerSettings = {
  failureRatio: 0.7,
  minAttempts: 10,
  windowMs: 300_000,
  cooldownMs: 30_000,
  cooldownMaxMs: 300_000,
  probeMs: 15_000,
};
const NOW = 1_000_000;

describe('circuit breaker', () => {
  it('stays closed below the fewest attempts, or below the failure ratio', () => {
    expect(afterOutcome(CLOSED, { ok: 0, failed: 9 }, false, false, NOW, SETTINGS)).toBeNull();
    expect(afterOutcome(CLOSED, { ok: 4, failed: 6 }, false, false, NOW, SETTINGS)).toBeNull();
    expect(afterOutcome(CLOSED, { ok: 3, failed: 7 }, true, false, NOW, SETTINGS)).toBeNull();
  });

  it('opens at the ratio over enough attempts, for the base cool-down', () => {
    expect(afterOutcome(CLOSED, { ok: 3, failed: 7 }, false, false, NOW, SETTINGS)).toEqual({
      state: 'open',
      untilMs: NOW + 30_000,
      cooldownMs: 30_000,
      version: 1,
      changedAtMs: NOW,
    });
  });

  it('is off with minAttempts 0', () => {
    expect(
      afterOutcome(CLOSED, { ok: 0, failed: 1000 }, false, false, NOW, { ...SETTINGS, minAttempts: 0 }),
    ).toBeNull();
  });

  it('holds while open, then lets one delivery claim the probe', () => {
    const open: BreakerRecord = {
      state: 'open',
      untilMs: NOW + 30_000,
      cooldownMs: 30_000,
      version: 3,
      changedAtMs: NOW,
    };
    expect(admit(open, NOW + 29_999, SETTINGS)).toEqual({ type: 'hold', untilMs: NOW + 30_000 });
    const probe = admit(open, NOW + 30_000, SETTINGS);
    expect(probe).toEqual({
      type: 'go',
      claim: {
        state: 'half_open',
        untilMs: NOW + 45_000,
        cooldownMs: 30_000,
        version: 4,
        changedAtMs: NOW + 30_000,
      },
    });
    // While the probe is out, others hold; once its claim lapses, another may probe.
    const halfOpen = (probe as { claim: BreakerRecord }).claim;
    expect(admit(halfOpen, NOW + 31_000, SETTINGS)).toEqual({ type: 'hold', untilMs: NOW + 45_000 });
    expect(admit(halfOpen, NOW + 45_000, SETTINGS)).toMatchObject({
      type: 'go',
      claim: { state: 'half_open', version: 5 },
    });
    expect(admit(CLOSED, NOW, SETTINGS)).toEqual({ type: 'go' });
  });

  it('closes on a good probe; a failed one re-opens it for twice as long, up to the cap', () => {
    const halfOpen: BreakerRecord = {
      state: 'half_open',
      untilMs: NOW + 15_000,
      cooldownMs: 30_000,
      version: 4,
      changedAtMs: NOW,
    };
    expect(afterOutcome(halfOpen, { ok: 0, failed: 10 }, true, true, NOW, SETTINGS)).toMatchObject({
      state: 'closed',
      cooldownMs: 0,
      version: 5,
    });
    expect(afterOutcome(halfOpen, { ok: 0, failed: 11 }, false, true, NOW, SETTINGS)).toMatchObject({
      state: 'open',
      untilMs: NOW + 60_000,
      cooldownMs: 60_000,
    });
    const long = { ...halfOpen, cooldownMs: 240_000 };
    expect(afterOutcome(long, { ok: 0, failed: 11 }, false, true, NOW, SETTINGS)).toMatchObject({
      cooldownMs: 300_000,
    });
    // An attempt that started before the breaker opened changes nothing.
    expect(afterOutcome(halfOpen, { ok: 1, failed: 10 }, true, false, NOW, SETTINGS)).toBeNull();
  });

  it('rates success over the window, 1 when it is empty', () => {
    expect(successRate({ ok: 0, failed: 0 })).toBe(1);
    expect(successRate({ ok: 3, failed: 1 })).toBe(0.75);
  });
});
