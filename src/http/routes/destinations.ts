/**
 * GET /destinations and POST /destinations/:destination/reset (SPEC §9): each callback origin's
 * circuit breaker, attempts in flight, held deliveries, success rate and last error, and a way to
 * close a breaker by hand. Per client: a token sees the destinations of its own tasks.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { DestinationsApi } from '../../destinations/destinations-api.js';
import { ERROR_CODES, HttpError } from '../../shared/errors.js';
import { withBackendDeadline } from '../backend-deadline.js';
import { errorResponse, unauthorizedResponse, unavailableResponse } from '../error-responses.js';
import type { SecurityDoc } from './docs.js';

export interface DestinationRouteOptions {
  destinations: DestinationsApi;
  /** The OpenAPI `security` of protected routes (nothing when tokens are off). */
  security: SecurityDoc;
}

const destinationSchema = {
  type: 'object',
  required: ['destination', 'state', 'in_flight', 'held', 'success_rate', 'last_error', 'open_until'],
  properties: {
    destination: {
      type: 'string',
      description: 'The callback origin: scheme, host and port.',
      examples: ['https://example.com:443'],
    },
    state: { type: 'string', enum: ['closed', 'open', 'half_open'] },
    in_flight: { type: 'integer', description: 'Attempts running now, across all workers.' },
    held: { type: 'integer', description: 'Deliveries held by the open breaker.' },
    success_rate: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      description: "Over the breaker's window; 1 with no attempts in it.",
    },
    last_error: { type: ['string', 'null'] },
    open_until: {
      type: ['string', 'null'],
      format: 'date-time',
      description: 'While open: when the next probe may go.',
    },
  },
} as const;

const destinationsSchema = {
  type: 'object',
  required: ['destinations'],
  properties: { destinations: { type: 'array', items: destinationSchema } },
} as const;

type ResetParams = { Params: { destination: string } };

export function registerDestinationRoutes(app: FastifyInstance, options: DestinationRouteOptions): void {
  const { destinations } = options;

  app.get(
    '/destinations',
    {
      schema: {
        summary: "Each callback destination's circuit breaker and deliveries",
        tags: ['destinations'],
        ...options.security,
        response: {
          200: { description: 'The destinations, by origin.', ...destinationsSchema },
          401: unauthorizedResponse,
          503: unavailableResponse,
        },
      },
    },
    async (request: FastifyRequest) => ({
      destinations: await withBackendDeadline(destinations.list(request.namespace)),
    }),
  );

  app.post<ResetParams>(
    '/destinations/:destination/reset',
    {
      schema: {
        summary: "Close a destination's circuit breaker and release its held deliveries",
        tags: ['destinations'],
        ...options.security,
        params: {
          type: 'object',
          required: ['destination'],
          properties: {
            destination: {
              type: 'string',
              description: 'The origin, URL-encoded: `https%3A%2F%2Fexample.com%3A443`.',
            },
          },
        },
        response: {
          204: { description: 'Closed.', type: 'null' },
          401: unauthorizedResponse,
          404: errorResponse('No such destination.', 'Destination not found'),
          503: unavailableResponse,
        },
      },
    },
    async (request: FastifyRequest<ResetParams>, reply: FastifyReply) => {
      const { destination } = request.params;
      if (!(await withBackendDeadline(destinations.reset(request.namespace, destination)))) {
        throw new HttpError(404, 'Destination not found', ERROR_CODES.destinationNotFound);
      }
      request.log.info({ destination }, 'circuit breaker reset');
      return reply.code(204).send();
    },
  );
}
