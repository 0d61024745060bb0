import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { buildTestServer } from '../../test/support/http-harness.js';
import { type RedisServer, startRedisServer } from '../../test/support/redis-server.js';
import { createRedisClient } from '../backends/redis/redis-connection.js';

let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedisServer();
});

afterAll(async () => {
  await redis.stop();
});

/** One API process of the redis mode, as far as rate limiting goes: its own Redis client. */
async function apiProcess(prefix: string, server: RedisServer = redis) {
  const client = createRedisClient(server.url, { role: 'command' });
  // Registered first, so it runs after the server has closed.
  onTestFinished(() => client.disconnect());
  const { app } = await buildTestServer(
    { RATE_LIMIT: '5/minute', QUEUE_PREFIX: prefix },
    { rateLimitRedis: client },
  );
  return app;
}

describe('rate limit in redis mode', () => {
  it('shares the counters between API processes', async () => {
    const prefix = `{t-${Date.now()}}`;
    const first = await apiProcess(prefix);
    const second = await apiProcess(prefix);
    const post = (app: typeof first) => app.inject({ method: 'POST', url: '/callback', payload: {} });
    const statuses: number[] = [];
    for (const app of [first, second, first, second, first]) statuses.push((await post(app)).statusCode);
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    const limited = await post(second);
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toEqual({ detail: 'Rate limit exceeded: 5 per 1 minute' });
    expect(limited.headers['ratelimit-remaining']).toBe('0');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('lets requests through, promptly, while Redis is down', async () => {
    const own = await startRedisServer();
    try {
      const app = await apiProcess(`{t-${Date.now()}}`, own);
      expect((await app.inject({ method: 'POST', url: '/callback', payload: {} })).statusCode).toBe(200);
      await own.stop();
      const startedAt = Date.now();
      const response = await app.inject({ method: 'POST', url: '/callback', payload: {} });
      expect(response.statusCode).toBe(200);
      expect(Date.now() - startedAt).toBeLessThan(10_000);
    } finally {
      await own.stop();
    }
  });
});
