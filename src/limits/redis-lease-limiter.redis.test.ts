import { describe, expect, it } from 'vitest';
import { useRedisConnections } from '../../test/support/redis-server.js';
import { defineLeaseLimiterContractTests } from './lease-limiter.contract.js';
import { createRedisLeaseLimiter } from './redis-lease-limiter.js';
import { createReusingLeaseLimiter } from './reusing-lease-limiter.js';

const { connect } = useRedisConnections();

defineLeaseLimiterContractTests('redis', () => createRedisLeaseLimiter(connect(), 'test:'));
defineLeaseLimiterContractTests('redis, reusing', () =>
  createReusingLeaseLimiter(createRedisLeaseLimiter(connect(), 'test-reuse:'), {
    reuseMs: 1000,
    idleMs: 100,
  }),
);

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

  it('reused in one process, still hold the limit for another', async () => {
    const a = createReusingLeaseLimiter(createRedisLeaseLimiter(connect(), 'kept:'), {
      reuseMs: 1000,
      idleMs: 150,
    });
    const b = createRedisLeaseLimiter(connect(), 'kept:');
    await (await a.acquire('dest', 1, 60_000))!.release();
    // a keeps the place for its next attempt: b finds it taken, until a gives it back.
    expect(await b.acquire('dest', 1, 60_000)).toBeNull();
    const again = await a.acquire('dest', 1, 60_000);
    expect(again).not.toBeNull();
    await again!.release();
    await a.close();
    expect(await b.acquire('dest', 1, 60_000)).not.toBeNull();
  });
});
