import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedisServer } from '../../test/support/redis-server.js';
import { loadConfig } from '../config.js';
import { createSqliteJobQueue } from '../queue/sqlite-job-queue.js';
import { createLogger } from '../shared/logger.js';
import { createMetrics } from '../shared/metrics.js';
import { createRedisClient } from '../shared/redis-connection.js';
import { openSqliteDatabase } from '../store/sqlite-database.js';
import { createSqliteStore } from '../store/sqlite-store.js';
import { buildServer } from './server.js';

let redis: RedisServer;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  redis = await startRedisServer();
});

afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await redis.stop();
});

/** One API process of the redis mode, as far as rate limiting goes: its own Redis client. */
async function apiProcess(prefix: string, server: RedisServer = redis) {
  const config = loadConfig({ RATE_LIMIT: '5/minute', LOG_LEVEL: 'silent', QUEUE_PREFIX: prefix });
  const db = openSqliteDatabase({ path: ':memory:' });
  const store = createSqliteStore(db, {
    historyMaxMessages: 20,
    historyTtlSeconds: 3600,
    taskRetentionSeconds: 3600,
  });
  const queue = createSqliteJobQueue(db, {});
  const client = createRedisClient(server.url, { role: 'command' });
  const app = await buildServer({
    config,
    logger: createLogger('silent'),
    store,
    queue,
    metrics: createMetrics(),
    rateLimitRedis: client,
  });
  closers.push(async () => {
    await app.close();
    await queue.close({ timeoutMs: 1000 });
    await store.close();
    db.close();
    client.disconnect();
  });
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
