import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { useRedisConnections } from '../../test/support/redis-server.js';
import { waitFor } from '../dev/harness.js';
import { defineRateLimitsContractTests } from './rate-limits.contract.js';
import { createRedisRateLimits } from './redis-limits.js';

const { connect } = useRedisConnections();

defineRateLimitsContractTests('redis', () => createRedisRateLimits(connect(), 'test:'));
defineRateLimitsContractTests('redis, with a subscriber', () =>
  createRedisRateLimits(connect(), 'test-sub:', connect),
);

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

  it('tell every subscribed process of a pause as it is set, with no read per check', async () => {
    const a = createRedisRateLimits(connect(), 'heard:', connect);
    const bClient = connect();
    const b = createRedisRateLimits(bClient, 'heard:', connect);
    const model = `m-${randomUUID()}`;
    // A pause set before b listened is found by a read of its key.
    await a.pauses.pause(`${model}-early`, 5000);
    expect(await b.pauses.remainingMs(`${model}-early`)).toBeGreaterThan(1000);
    // b's first check opened its subscription: both processes listen once Redis counts two.
    await waitFor(async () => {
      const [, listeners] = (await bClient.pubsub('NUMSUB', 'heard:pauses')) as [string, number];
      return listeners === 2;
    }, 'b to subscribe');
    // b reads `model`'s key once (no pause), during its subscription; from then on it learns of
    // pauses as they are set.
    await waitFor(async () => {
      const reads = vi.spyOn(bClient, 'pttl');
      const ms = await b.pauses.remainingMs(model);
      const read = reads.mock.calls.length > 0;
      reads.mockRestore();
      return ms === 0 && !read;
    }, 'b to check without a read');
    const reads = vi.spyOn(bClient, 'pttl');
    for (let n = 0; n < 20; n++) expect(await b.pauses.remainingMs(model)).toBe(0);
    await a.pauses.pause(model, 3000);
    await waitFor(async () => (await b.pauses.remainingMs(model)) > 1000, 'b to hear of the pause');
    expect(reads).not.toHaveBeenCalled();
    await a.close?.();
    await b.close?.();
  });
});
