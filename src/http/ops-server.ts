/**
 * The operations server of a worker process (role `worker`, WORKER_PORT set): `/healthz`,
 * `/readyz` and `/metrics` only; a worker serves no public API.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { JobQueue } from '../queue/job-queue.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import type { Store } from '../store/store.js';

export interface OpsServerDeps {
  logger: Logger;
  store: Store;
  queue: JobQueue;
  metrics: Metrics;
}

const READY_TIMEOUT_MS = 2000;

export async function buildOpsServer(deps: OpsServerDeps): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: deps.logger as FastifyBaseLogger, disableRequestLogging: true });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('backend did not answer in time')), READY_TIMEOUT_MS);
    });
    try {
      await Promise.race([Promise.all([deps.store.ping(), deps.queue.ping()]), timeout]);
      return { status: 'ready' };
    } catch {
      return reply.code(503).send({ detail: 'Backend unavailable' });
    } finally {
      clearTimeout(timer);
    }
  });
  app.get('/metrics', async (_request, reply) => {
    const { contentType, body } = await deps.metrics.render();
    return reply.type(contentType).send(body);
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ detail: 'Not Found' }));
  await app.ready();
  return app;
}
