/**
 * Assembles the service for one role from a configuration: backends, metrics, the HTTP API
 * (roles `all` and `api`) and the worker (roles `all` and `worker`). `main.ts` owns the process
 * (signals, exit codes); tests build the same service in-process.
 */
import type { LookupFunction } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createBackends } from './backends/create-backends.js';
import type { Config, Role } from './config.js';
import { createSigner } from './delivery/sign.js';
import { createDestinationsApi } from './destinations/destinations-api.js';
import { buildServer } from './http/server.js';
import { createJobHandler } from './jobs/handle-job.js';
import { createLlmGate } from './jobs/llm-gate.js';
import { createOutbound } from './outbound/create-outbound.js';
import { outboundSettings } from './outbound/outbound-calls.js';
import { ConfigError } from './shared/errors.js';
import type { Logger } from './shared/logger.js';
import { createMetrics } from './shared/metrics.js';
import { USER_AGENT } from './shared/version.js';
import { traceJobQueue } from './tracing/traced-job-queue.js';

export interface Service {
  /** Listens (API on HOST:PORT; a worker's operations server on WORKER_PORT when set); resolves the base URL, if any. */
  start(): Promise<string | null>;
  /**
   * Stops accepting requests, lets running jobs finish for up to SHUTDOWN_TIMEOUT_MS, hands the
   * rest back to the queue, and closes every connection. Idempotent.
   */
  close(): Promise<void>;
  readonly server: FastifyInstance | null;
}

/** Test seams; production passes none. */
export interface ServiceOverrides {
  /** The resolver behind the callback SSRF guard (default `dns.lookup`), so tests can make a name resolve anywhere. */
  lookup?: LookupFunction;
}

export async function createService(
  config: Readonly<Config>,
  logger: Logger,
  role: Role,
  overrides: ServiceOverrides = {},
): Promise<Service> {
  if (config.redisUrl === null && role !== 'all') {
    throw new ConfigError([
      `Role "${role}" needs REDIS_URL: without it the service runs as one process (role "all")`,
    ]);
  }
  const backends = await createBackends(config, logger);
  const { store } = backends;
  // With tracing on, a span per enqueue and per run, the trace context stored with each job.
  const system = backends.mode === 'redis' ? 'bullmq' : 'sqlite';
  const queue = config.tracing ? traceJobQueue(backends.queue, system) : backends.queue;
  const deliveries = config.tracing ? traceJobQueue(backends.deliveries, system) : backends.deliveries;
  const metrics = createMetrics({
    queueCounts: async () => {
      const [generations, callbacks] = await Promise.all([queue.counts(), deliveries.counts()]);
      return {
        waiting: generations.waiting + callbacks.waiting,
        active: generations.active + callbacks.active,
        delayed: generations.delayed + callbacks.delayed,
      };
    },
  });

  const destinations = createDestinationsApi({
    store: backends.destinations,
    leases: backends.leases,
    windowMs: config.callbackBreaker.windowMs,
  });

  const runsApi = role !== 'worker';
  const runsWorker = role !== 'api';

  const outbound = runsWorker
    ? createOutbound({
        settings: outboundSettings(config, USER_AGENT),
        thread: config.outboundThread,
        logger,
        ...(overrides.lookup === undefined ? {} : { lookup: overrides.lookup }),
      })
    : null;

  const serverDeps = { config, logger, store, queue, deliveries, destinations, metrics };
  const server = runsApi
    ? await buildServer({
        ...serverDeps,
        ...(backends.rateLimitRedis === undefined ? {} : { rateLimitRedis: backends.rateLimitRedis }),
      })
    : config.workerPort > 0
      ? await buildServer({ ...serverDeps, routes: 'operations' })
      : null;

  let closing: Promise<void> | null = null;

  return {
    server,
    async start() {
      if (outbound !== null) {
        const handler = createJobHandler({
          config,
          logger,
          store,
          deliveries,
          destinations: backends.destinations,
          leases: backends.leases,
          llm: outbound.llm,
          sender: outbound.sender,
          sign: createSigner(config.webhookSecret),
          metrics,
          llmGate: createLlmGate(config, backends.leases, backends.rateLimits),
        });
        // Each queue has slots of its own: no receiver ever takes a generation's place.
        queue.consume(handler, { concurrency: config.workerConcurrency });
        deliveries.consume(handler, { concurrency: config.deliveryConcurrency });
        logger.info(
          {
            concurrency: config.workerConcurrency,
            delivery_concurrency: config.deliveryConcurrency,
            mode: backends.mode,
          },
          'worker started',
        );
      }
      if (server === null) return null;
      const port = runsApi ? config.port : config.workerPort;
      const url = await server.listen({ host: config.host, port });
      logger.info({ url, role, mode: backends.mode }, 'listening');
      return url;
    },
    close() {
      closing ??= (async () => {
        // One deadline for the whole drain: what has not finished by then is handed back to
        // the queue (a restart or another worker completes it), and its calls are cut off.
        const deadline = Date.now() + config.shutdownTimeoutMs;
        const remainingMs = (): number => Math.max(0, deadline - Date.now());
        // Stop taking requests first (in-flight ones finish), then drain the worker.
        await server?.close();
        await Promise.all([
          queue.close({ timeoutMs: remainingMs() }),
          deliveries.close({ timeoutMs: remainingMs() }),
        ]);
        await outbound?.close(remainingMs());
        await backends.close();
      })();
      return closing;
    },
  };
}
