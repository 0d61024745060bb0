import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useRedisConnections } from '../../test/support/redis-server.js';
import { defineRateLimitsContractTests } from './rate-limits.contract.js';
import { createRedisRateLimits } from './redis-limits.js';

const { connect } = useRedisConnections();

defineRateLimitsContractTests('redis', () => createRedisRateLimits(connect(), 'test:'));

describe('redis rate limits', () => {
  it('hold one bucket and one pause across two connections (two worker processes)', async () => {
    const a = createRedisRateLimits(connect(), 'shared:');
    const b = createRedisRateLimits(connect(), 'shared:');
    const key = `k-${randomUUID()}`;
    const window = { max: 4, windowMs: 60_000 };
    const taken = await Promise.all(
      Array.from({ length: 10 }, (_, n) => (n % 2 ? a : b).rates.take(key, 1, window)),
    );
    expect(taken.filter((wait) => wait === 0)).toHaveLength(4);
    await a.pauses.pause('model-x', 5000);
    expect(await b.pauses.remainingMs('model-x')).toBeGreaterThan(1000);
  });
});
