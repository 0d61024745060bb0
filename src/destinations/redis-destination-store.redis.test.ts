import { describe, expect, it } from 'vitest';
import { useRedisConnections } from '../../test/support/redis-server.js';
import { defineDestinationStoreContractTests } from './destination-store.contract.js';
import { createRedisDestinationStore } from './redis-destination-store.js';

const { connect } = useRedisConnections();

function openStore(prefix = 'test:') {
  return createRedisDestinationStore(connect(), { keyPrefix: prefix, idleTtlMs: 3_600_000 });
}

defineDestinationStoreContractTests('redis', () => openStore());

describe('redis destinations', () => {
  it('are one record for every worker: a breaker opened through one connection is open for another', async () => {
    const a = openStore('shared:');
    const b = openStore('shared:');
    const ref = { namespace: 'client', destination: 'https://receiver.example:443' };
    const now = Date.now();
    const { record } = await a.recordOutcome(ref, false, 'HTTP 500', now, 60_000);
    const open = {
      state: 'open',
      untilMs: now + 30_000,
      cooldownMs: 30_000,
      version: record.version + 1,
      changedAtMs: now,
    } as const;
    expect(await a.transition(ref, record.version, open)).toBe(true);
    expect(await b.get(ref)).toEqual(open);
    const counted = await b.recordOutcome(ref, false, 'HTTP 500', now + 1, 60_000);
    expect(counted.window).toEqual({ ok: 0, failed: 2 });
  });
});
