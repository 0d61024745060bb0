import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedisServer } from '../../test/support/redis-server.js';
import { createRedisClient } from '../backends/redis/redis-connection.js';
import { defineLeaseLimiterContractTests } from './lease-limiter.contract.js';
import { createRedisLeaseLimiter } from './redis-lease-limiter.js';

let server: RedisServer;
const clients: Redis[] = [];

beforeAll(async () => {
  server = await startRedisServer();
});

afterAll(async () => {
  for (const client of clients) client.disconnect();
  await server?.stop();
});

function connect(): Redis {
  const client = createRedisClient(server.url, { role: 'command' });
  clients.push(client);
  return client;
}

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
