/**
 * Picks the drivers behind the two seams from the configuration (SPEC §2): SQLite in one file
 * under DATA_DIR when REDIS_URL is unset, Redis otherwise. The Redis drivers are imported
 * lazily, so the embedded mode never loads BullMQ or ioredis.
 */
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { LeaseLimiter } from '../limits/lease-limiter.js';
import type { RateLimits } from '../limits/rate-limits.js';
import type { JobQueue } from '../queue/job-queue.js';
import type { Logger } from '../shared/logger.js';
import type { Store, StoreLimits } from '../store/store.js';

export interface Backends {
  mode: 'embedded' | 'redis';
  store: Store;
  queue: JobQueue;
  /** Places bounded across the deployment (in-process when embedded, on Redis otherwise). */
  leases: LeaseLimiter;
  /** LLM rate limits and model pauses, shared like `leases`. */
  rateLimits: RateLimits;
  /** The ioredis client for shared rate-limit counters (redis mode only). */
  rateLimitRedis?: unknown;
  /** Closes the store and connections; call after `queue.close()`. */
  close(): Promise<void>;
}

export async function createBackends(config: Readonly<Config>, logger: Logger): Promise<Backends> {
  const limits: StoreLimits = {
    historyMaxMessages: config.historyMaxMessages,
    historyTtlSeconds: config.historyTtlSeconds,
    taskRetentionSeconds: config.taskRetentionSeconds,
  };
  if (config.redisUrl === null) {
    const { openSqliteDatabase } = await import('./sqlite/sqlite-database.js');
    const { createSqliteStore } = await import('../store/sqlite-store.js');
    const { createSqliteJobQueue } = await import('../queue/sqlite-job-queue.js');
    const db = openSqliteDatabase({
      path: join(config.dataDir, 'llm-webhook.db'),
      syncEveryCommit: config.sqliteSynchronous === 'full',
    });
    const store = createSqliteStore(db, limits);
    const queue = createSqliteJobQueue(db, { logger });
    const { createMemoryLeaseLimiter } = await import('../limits/memory-lease-limiter.js');
    const { createMemoryRateLimits } = await import('../limits/memory-limits.js');
    return {
      mode: 'embedded',
      store,
      queue,
      leases: createMemoryLeaseLimiter(),
      rateLimits: createMemoryRateLimits(),
      close: async () => {
        await store.close();
        db.close();
      },
    };
  }
  const { createRedisClient } = await import('./redis/redis-connection.js');
  const { createRedisStore } = await import('../store/redis-store.js');
  const { createBullmqJobQueue } = await import('../queue/bullmq/bullmq-job-queue.js');
  const { createRedisLeaseLimiter } = await import('../limits/redis-lease-limiter.js');
  const { createRedisRateLimits } = await import('../limits/redis-limits.js');
  const client = createRedisClient(config.redisUrl, { role: 'command', logger });
  const store = createRedisStore(client, limits, { keyPrefix: `${config.queuePrefix}:` });
  const queue = createBullmqJobQueue({
    url: config.redisUrl,
    prefix: config.queuePrefix,
    logger,
    lockDurationMs: config.queueLockDurationMs,
  });
  return {
    mode: 'redis',
    store,
    queue,
    leases: createRedisLeaseLimiter(client, `${config.queuePrefix}:`),
    rateLimits: createRedisRateLimits(client, `${config.queuePrefix}:`),
    rateLimitRedis: client,
    close: async () => {
      await store.close();
      client.disconnect();
    },
  };
}
