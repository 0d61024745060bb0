/**
 * POST /callback and GET /callback: a receiver for trying the service out, as the original had.
 * It keeps only the last `CALLBACK_HISTORY_SIZE` payloads, so it cannot grow without bound.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { jsonBodyErrorResponses } from '../error-responses.js';
import {
  type CallbackBody,
  callbackBodySchema,
  callbackListSchema,
  callbackReceivedSchema,
} from '../schemas.js';

export const CALLBACK_HISTORY_SIZE = 100;

export interface CallbackRouteOptions {
  /** Route `config` (the rate limit), shared with POST /webhook. */
  routeConfig: object;
}

export function registerCallbackRoutes(app: FastifyInstance, options: CallbackRouteOptions): void {
  const received: CallbackBody[] = [];

  app.post(
    '/callback',
    {
      config: options.routeConfig,
      schema: {
        summary: 'Receive a callback (for trying the service out)',
        tags: ['callback'],
        body: callbackBodySchema,
        response: {
          200: { description: 'Received.', ...callbackReceivedSchema },
          ...jsonBodyErrorResponses,
        },
      },
    },
    async (request: FastifyRequest<{ Body: CallbackBody }>) => {
      const body = request.body;
      received.push(body);
      if (received.length > CALLBACK_HISTORY_SIZE)
        received.splice(0, received.length - CALLBACK_HISTORY_SIZE);
      const taskId = typeof body.task_id === 'string' ? body.task_id : undefined;
      const status = typeof body.status === 'string' ? body.status : undefined;
      request.log.info({ task_id: taskId, status }, 'callback received');
      request.log.debug({ task_id: taskId, generated_response: body.generated_response }, 'callback text');
      return { status: 'received' } as const;
    },
  );

  app.get(
    '/callback',
    {
      schema: {
        summary: 'List the last 100 callbacks received, newest last',
        tags: ['callback'],
        response: { 200: { description: 'Received payloads.', ...callbackListSchema } },
      },
    },
    async () => ({ received }),
  );
}
