import { describe, expect, it } from 'vitest';
import { useRedisConnections } from '../../test/support/redis-server.js';
import { defineLeaseLimiterContractTests } from './lease-limiter.contract.js';
import { createRedisLeaseLimiter } from './redis-lease-limiter.js';

const { connect } = useRedisConnections();

defineLeaseLimiterContractTests('redis', () => createRedisLeaseLimiter(connect(), 'test:'));

describe('redis leases', () => {
  it('hold one limit across two connections (two worker processes)', async () => {
    const a = createRedisLeaseLimiter(connect(), 'shared:');
    const b = createRedisLeaseLimiter(connect(), 'shared:');
    const granted = await Promise.all(
      Array.from({ length: 10 }, (_, index) => (index % 2 === 0 ? a : b).acquire('dest', 4, 60_000)),
    );
    expect(granted.filter((lease) => lease !== null)).toHaveLength(4);
    expect(await b.count('dest')).toBe(4);
  });

  it('leave no key behind once the last lease expired', async () => {
    const client = connect();
    const limiter = createRedisLeaseLimiter(client, 'gone:');
    await limiter.acquire('k', 2, 100);
    expect(await client.exists('gone:lease:k')).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(await client.exists('gone:lease:k')).toBe(0);
  });
});
