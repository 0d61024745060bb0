/**
 * The documented error responses of the OpenAPI document: `{"detail": "..."}` with an example
 * per status, and FastAPI's 422 body. The error handler writes these bodies as built; the
 * schemas here only describe them (and keep the response serialisers out of their way).
 */
import { VALIDATION_ERROR_TYPES } from './validation-errors.js';

/** `{"detail": "..."}`: every error but a validation error. */
export const errorSchema = {
  type: 'object',
  required: ['detail'],
  properties: { detail: { type: 'string' } },
} as const;

/** The documented response of one error status, with an example `detail`. */
export function errorResponse(description: string, detail: string) {
  return { description, ...errorSchema, examples: [{ detail }] } as const;
}

/** The documented 401 of a protected route. */
export const unauthorizedResponse = errorResponse('Missing or wrong bearer token.', 'Not authenticated');
/** The documented 503 of a route that reads or writes the backend. */
export const unavailableResponse = errorResponse(
  'The backend did not answer within 2 s.',
  'Service unavailable: the queue backend cannot be reached',
);

/** FastAPI's validation error body. */
export const validationErrorSchema = {
  type: 'object',
  required: ['detail'],
  properties: {
    detail: {
      type: 'array',
      items: {
        type: 'object',
        required: ['type', 'loc', 'msg'],
        properties: {
          type: { type: 'string', enum: VALIDATION_ERROR_TYPES },
          loc: { type: 'array', items: { type: ['string', 'integer'] } },
          msg: { type: 'string' },
          input: {},
          ctx: { type: 'object', additionalProperties: true },
        },
      },
    },
    body: { description: 'The parsed request body, or null.' },
  },
  examples: [
    {
      detail: [
        {
          type: 'url_parsing',
          loc: ['body', 'callback_url'],
          msg: 'Input should be a valid URL, relative URL without a base',
          input: 'web/callback',
          ctx: { error: 'relative URL without a base' },
        },
      ],
      body: { message: 'text', callback_url: 'web/callback' },
    },
  ],
} as const;

/** The documented errors of a rate-limited route taking a JSON body (413, 415, 422, 429). */
export const jsonBodyErrorResponses = {
  413: errorResponse('Body larger than BODY_LIMIT_BYTES.', 'Request body is larger than 262144 bytes'),
  415: errorResponse('Body is not application/json.', 'Unsupported media type: send application/json'),
  422: { description: 'Validation error.', ...validationErrorSchema },
  429: errorResponse(
    'Over the rate limit, or over CLIENT_BUDGET (with Retry-After until the budget period ends).',
    'Rate limit exceeded: 5 per 1 minute',
  ),
} as const;
