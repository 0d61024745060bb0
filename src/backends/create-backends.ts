/**
 * Picks the drivers behind the two seams from the configuration (SPEC §2): SQLite in one file
 * under DATA_DIR when REDIS_URL is unset, Redis otherwise. The Redis drivers are imported
 * lazily, so the embedded mode never loads BullMQ or ioredis.
 */
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { DestinationStore } from '../destinations/destination-store.js';
import type { LeaseLimiter } from '../limits/lease-limiter.js';
import type { RateLimits } from '../limits/rate-limits.js';
import type { JobQueue } from '../queue/job-queue.js';
import type { Logger } from '../shared/logger.js';
import type { Store, StoreLimits } from '../store/store.js';

export interface Backends {
  mode: 'embedded' | 'redis';
  store: Store;
  /** The generation queue. */
  queue: JobQueue;
  /** The delivery queue: callback attempts, with worker slots of their own. */
  deliveries: JobQueue;
  /** Each destination's breaker, recent outcomes and held deliveries. */
  destinations: DestinationStore;
  /** Places bounded across the deployment (in-process when embedded, on Redis otherwise). */
  leases: LeaseLimiter;
  /** LLM rate limits and model pauses, shared like `leases`. */
  rateLimits: RateLimits;
  /** The ioredis client for shared rate-limit counters (redis mode only). */
  rateLimitRedis?: unknown;
  /** Closes the store and connections; call after closing both queues. */
  close(): Promise<void>;
}

/**
 * A redis-mode lease released is kept this long for the process's next attempt at the same place
 * (no round trip), and reused for at most this long after Redis granted it.
 */
const LEASE_KEPT_IDLE_MS = 100;
const LEASE_REUSE_MS = 1_000;

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
    const deliveries = createSqliteJobQueue(db, { logger, table: 'delivery_jobs' });
    const { createMemoryLeaseLimiter } = await import('../limits/memory-lease-limiter.js');
    const { createMemoryRateLimits } = await import('../limits/memory-limits.js');
    const { createSqliteDestinationStore } = await import('../destinations/sqlite-destination-store.js');
    return {
      mode: 'embedded',
      store,
      queue,
      deliveries,
      destinations: createSqliteDestinationStore(db),
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
  const { createReusingLeaseLimiter } = await import('../limits/reusing-lease-limiter.js');
  const { createRedisRateLimits } = await import('../limits/redis-limits.js');
  const { createRedisDestinationStore } = await import('../destinations/redis-destination-store.js');
  const client = createRedisClient(config.redisUrl, { role: 'command', logger });
  const store = createRedisStore(client, limits, { keyPrefix: `${config.queuePrefix}:` });
  const queueOptions = {
    url: config.redisUrl,
    prefix: config.queuePrefix,
    logger,
    lockDurationMs: config.queueLockDurationMs,
  };
  const queue = createBullmqJobQueue(queueOptions);
  const deliveries = createBullmqJobQueue({ ...queueOptions, queueName: 'deliveries' });
  const leases = createReusingLeaseLimiter(createRedisLeaseLimiter(client, `${config.queuePrefix}:`), {
    reuseMs: LEASE_REUSE_MS,
    idleMs: LEASE_KEPT_IDLE_MS,
  });
  const redisUrl = config.redisUrl;
  // Its subscriber connection opens with the first LLM call's check (a worker's, not the API's).
  const rateLimits = createRedisRateLimits(client, `${config.queuePrefix}:`, () =>
    createRedisClient(redisUrl, { role: 'blocking', logger }),
  );
  return {
    mode: 'redis',
    store,
    queue,
    deliveries,
    destinations: createRedisDestinationStore(client, {
      keyPrefix: `${config.queuePrefix}:`,
      // Kept while a held delivery may still wait, and a week at least.
      idleTtlMs: Math.max(
        7 * 86_400_000,
        2 * config.callbackRetryScheduleMs.reduce((sum, ms) => sum + ms, 0),
      ),
    }),
    leases,
    rateLimits,
    rateLimitRedis: client,
    close: async () => {
      await leases.close();
      await rateLimits.close?.();
      await store.close();
      client.disconnect();
    },
  };
}
