/** GET /healthz, GET /readyz and GET /metrics: probes and Prometheus scraping. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { JobQueue } from '../../queue/job-queue.js';
import type { Metrics } from '../../shared/metrics.js';
import type { Store } from '../../store/store.js';
import { withBackendDeadline } from '../backend-deadline.js';
import { errorResponse, unauthorizedResponse } from '../error-responses.js';
import { statusSchema } from '../schemas.js';
import type { SecurityDoc } from './docs.js';

export interface HealthRouteOptions {
  store: Store;
  queue: JobQueue;
  metrics: Metrics;
  /** The OpenAPI `security` of protected routes (nothing when tokens are off). */
  security: SecurityDoc;
}

export function registerHealthRoutes(app: FastifyInstance, options: HealthRouteOptions): void {
  const { store, queue, metrics } = options;

  app.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness: 200 while the process runs',
        tags: ['operations'],
        response: { 200: { description: 'Alive.', ...statusSchema('ok') } },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: 200 when the store and the queue answer within 2 s',
        tags: ['operations'],
        response: {
          200: { description: 'Ready.', ...statusSchema('ready') },
          503: errorResponse('A backend did not answer within 2 s.', 'Backend unavailable'),
        },
      },
    },
    async (request, reply: FastifyReply) => {
      try {
        await withBackendDeadline(Promise.all([store.ping(), queue.ping()]));
        return { status: 'ready' };
      } catch (error) {
        request.log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'not ready');
        return reply.code(503).send({ detail: 'Backend unavailable' });
      }
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text format)',
        tags: ['operations'],
        ...options.security,
        response: {
          200: { description: 'Prometheus text exposition format.', type: 'string' },
          401: unauthorizedResponse,
        },
      },
    },
    async (_request, reply: FastifyReply) => {
      const { contentType, body } = await metrics.render();
      return reply.type(contentType).send(body);
    },
  );
}
