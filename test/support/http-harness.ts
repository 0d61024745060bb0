/**
 * The HTTP server over a real in-memory SQLite store and queue, for tests that drive it with
 * `inject` (or make it listen on 127.0.0.1 themselves), with what it logs captured.
 */
import { Writable } from 'node:stream';
import { onTestFinished } from 'vitest';
import { openSqliteDatabase } from '../../src/backends/sqlite/sqlite-database.js';
import { type Config, loadConfig } from '../../src/config.js';
import { createDestinationsApi } from '../../src/destinations/destinations-api.js';
import { createSqliteDestinationStore } from '../../src/destinations/sqlite-destination-store.js';
import { buildServer, type ServerDeps, type ServerTimeouts } from '../../src/http/server.js';
import { createMemoryLeaseLimiter } from '../../src/limits/memory-lease-limiter.js';
import type { JobQueue } from '../../src/queue/job-queue.js';
import { createSqliteJobQueue } from '../../src/queue/sqlite-job-queue.js';
import { createLogger } from '../../src/shared/logger.js';
import { createMetrics, type Metrics } from '../../src/shared/metrics.js';
import { createSqliteStore } from '../../src/store/sqlite-store.js';
import type { Store } from '../../src/store/store.js';

export interface TestServerOptions {
  routes?: 'api' | 'operations';
  timeouts?: ServerTimeouts;
  /** Methods the server sees in place of the store's own, to simulate failures. */
  storeOverrides?: Partial<Store>;
  /** Methods the server sees in place of the queue's own, to simulate failures. */
  queueOverrides?: Partial<JobQueue>;
  /** Passed to `buildServer`; the caller owns (and disconnects) the client. */
  rateLimitRedis?: unknown;
}

export interface TestServer {
  app: Awaited<ReturnType<typeof buildServer>>;
  /** The real store, without `storeOverrides`. */
  store: Store;
  /** The real generation queue, without `queueOverrides`; the metrics count its jobs. */
  queue: JobQueue;
  /** The real delivery queue (redeliveries go there). */
  deliveries: JobQueue;
  metrics: Metrics;
  config: Readonly<Config>;
  /** Every line logged, parsed; empty at the default `LOG_LEVEL=silent`. */
  logLines: Array<Record<string, unknown>>;
  /** Closes the server, then the queue, the store and the database. */
  close(): Promise<void>;
}

/**
 * Builds the server with `env` over test defaults (`RATE_LIMIT=off`, `LOG_LEVEL=silent`). The
 * caller closes it; inside a test, {@link buildTestServer} does that itself.
 */
export async function createTestServer(
  env: Record<string, string> = {},
  options: TestServerOptions = {},
): Promise<TestServer> {
  const config = loadConfig({ RATE_LIMIT: 'off', LOG_LEVEL: 'silent', ...env });
  const db = openSqliteDatabase({ path: ':memory:' });
  const store = createSqliteStore(db, {
    historyMaxMessages: 20,
    historyTtlSeconds: 3600,
    taskRetentionSeconds: 3600,
  });
  const queue = createSqliteJobQueue(db, {});
  const deliveries = createSqliteJobQueue(db, { table: 'delivery_jobs' });
  const metrics = createMetrics({ queueCounts: () => queue.counts() });
  const logLines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line !== '') logLines.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  });
  const deps: ServerDeps = {
    config,
    logger: createLogger(config.logLevel, sink),
    store: options.storeOverrides ? overriding(store, options.storeOverrides) : store,
    queue: options.queueOverrides ? overriding(queue, options.queueOverrides) : queue,
    deliveries,
    destinations: createDestinationsApi({
      store: createSqliteDestinationStore(db),
      leases: createMemoryLeaseLimiter(),
      windowMs: config.callbackBreaker.windowMs,
    }),
    metrics,
  };
  if (options.routes !== undefined) deps.routes = options.routes;
  if (options.timeouts !== undefined) deps.timeouts = options.timeouts;
  if (options.rateLimitRedis !== undefined) deps.rateLimitRedis = options.rateLimitRedis;
  const app = await buildServer(deps);
  return {
    app,
    store,
    queue,
    deliveries,
    metrics,
    config,
    logLines,
    async close() {
      await app.close();
      await queue.close({ timeoutMs: 1000 });
      await deliveries.close({ timeoutMs: 1000 });
      await store.close();
      db.close();
    },
  };
}

/** {@link createTestServer}, closed when the calling test finishes. Call it inside a test only. */
export async function buildTestServer(
  env: Record<string, string> = {},
  options: TestServerOptions = {},
): Promise<TestServer> {
  const server = await createTestServer(env, options);
  onTestFinished(() => server.close());
  return server;
}

/** `target` with the members of `override` in place of its own. */
function overriding<T extends object>(target: T, override: Partial<T>): T {
  return new Proxy(target, {
    get: (object, property, receiver) =>
      Object.hasOwn(override, property)
        ? override[property as keyof T]
        : Reflect.get(object, property, receiver),
  });
}
