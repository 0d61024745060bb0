import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { createMemoryLeaseLimiter } from '../limits/memory-lease-limiter.js';
import { createMemoryRateLimits } from '../limits/memory-limits.js';
import { createLlmGate, LLM_LEASE_KEY } from './llm-gate.js';

describe('createLlmGate', () => {
  it('lets calls through up to LLM_MAX_CONCURRENCY, then asks to wait; a release frees a place', async () => {
    const leases = createMemoryLeaseLimiter();
    const gate = createLlmGate(loadConfig({ LLM_MAX_CONCURRENCY: '2' }), leases, createMemoryRateLimits());
    const first = await gate.enter('m', 10);
    const second = await gate.enter('m', 10);
    expect([first.type, second.type]).toEqual(['pass', 'pass']);
    const third = await gate.enter('m', 10);
    expect(third).toMatchObject({ type: 'wait', reason: 'concurrency' });
    if (third.type === 'wait') expect(third.delayMs).toBeGreaterThan(0);
    if (first.type === 'pass') await first.release();
    expect((await gate.enter('m', 10)).type).toBe('pass');
    expect(await leases.count(LLM_LEASE_KEY)).toBe(2);
  });

  it('waits for the token and request buckets, giving back the place it took', async () => {
    const leases = createMemoryLeaseLimiter();
    const config = loadConfig({
      LLM_MAX_CONCURRENCY: '5',
      LLM_TOKEN_RATE_LIMIT: '100/minute',
      LLM_RATE_LIMIT: '2/minute',
    });
    const gate = createLlmGate(config, leases, createMemoryRateLimits());
    expect((await gate.enter('m', 90)).type).toBe('pass');
    const tokens = await gate.enter('m', 90);
    expect(tokens).toMatchObject({ type: 'wait', reason: 'tokens' });
    if (tokens.type === 'wait') expect(tokens.delayMs).toBeGreaterThan(40_000);
    expect((await gate.enter('m', 1)).type).toBe('pass');
    expect(await gate.enter('m', 1)).toMatchObject({ type: 'wait', reason: 'requests' });
    // The two that passed hold their places; the two that waited hold none.
    expect(await leases.count(LLM_LEASE_KEY)).toBe(2);
  });

  it('reports a model pause for that model only', async () => {
    const gate = createLlmGate(loadConfig({}), createMemoryLeaseLimiter(), createMemoryRateLimits());
    await gate.pause('m', 5000);
    expect(await gate.pausedMs('m')).toBeGreaterThan(4000);
    expect(await gate.pausedMs('other')).toBe(0);
  });
});
