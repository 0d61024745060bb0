/**
 * Request and response schemas (JSON Schema): the one source for Fastify's validation, the
 * response serialisers, the OpenAPI document and the TypeScript types of bodies, parameters and
 * replies (derived with `FromSchema`, never written beside them). Limits that JSON Schema cannot
 * express (the metadata size, the callback host policy) are checked in the route, with the same
 * 422 shape. The documented error responses are in error-responses.ts.
 */
import type { FromSchema } from 'json-schema-to-ts';
import { TASK_STATUSES } from '../store/store.js';

export const CALLBACK_URL_MAX_CHARS = 2048;
export const CONVERSATION_ID_MAX_CHARS = 256;
export const METADATA_MAX_BYTES = 4096;

const EXAMPLE_TASK_ID = 'fff755e1-5131-4bec-b76c-537e0b10b6e6';
const EXAMPLE_CALLBACK_URL = 'https://example.com/callback';

export function webhookBodySchema(messageMaxChars: number) {
  return {
    type: 'object',
    required: ['message', 'callback_url'],
    properties: {
      message: {
        type: 'string',
        minLength: 1,
        maxLength: messageMaxChars,
        // Not only whitespace.
        pattern: '\\S',
        description: 'The user message to answer.',
        examples: ['Hello! What can you do?'],
      },
      callback_url: {
        type: 'string',
        // Overridden in the server's Ajv: an absolute http or https URL.
        format: 'uri',
        maxLength: CALLBACK_URL_MAX_CHARS,
        description:
          'Where the reply is POSTed. Literal private, loopback and link-local addresses and `localhost` are refused.',
        examples: [EXAMPLE_CALLBACK_URL],
      },
      conversation_id: {
        type: 'string',
        minLength: 1,
        maxLength: CONVERSATION_ID_MAX_CHARS,
        description: 'The conversation whose history the reply takes into account; default: `callback_url`.',
        examples: ['customer-42'],
      },
      metadata: {
        type: 'object',
        additionalProperties: true,
        description: `Echoed in the callback; at most ${METADATA_MAX_BYTES} bytes as JSON.`,
        examples: [{ ticket: 1234 }],
      },
    },
    additionalProperties: true,
    examples: [{ message: 'Hello! What can you do?', callback_url: EXAMPLE_CALLBACK_URL }],
  } as const;
}

/** POST /webhook, as validated. Unknown fields are kept (and ignored). */
export type WebhookBody = FromSchema<ReturnType<typeof webhookBodySchema>>;

export const callbackBodySchema = {
  type: 'object',
  properties: {
    task_id: { type: 'string' },
    generated_response: { type: 'string', description: 'The reply of a completed task.' },
    error: {
      type: 'object',
      additionalProperties: true,
      description: 'The error of a failed task (`type`, `message`).',
    },
  },
  additionalProperties: true,
  examples: [{ generated_response: 'text' }],
} as const;

/** POST /callback: what the service itself delivers, or anything object-shaped. */
export type CallbackBody = FromSchema<typeof callbackBodySchema>;

export const idempotencyKeyHeaderSchema = {
  type: 'object',
  properties: {
    'idempotency-key': {
      type: 'string',
      description:
        'Optional, 1..255 visible ASCII characters: a repeat with the same key and body within 24 h returns the first task.',
    },
  },
} as const;

export const taskIdParamsSchema = {
  type: 'object',
  required: ['task_id'],
  properties: {
    task_id: { type: 'string', minLength: 1, description: 'The task id answered by POST /webhook.' },
  },
} as const;

export type TaskIdParams = FromSchema<typeof taskIdParamsSchema>;

export const conversationIdParamsSchema = {
  type: 'object',
  required: ['conversation_id'],
  properties: {
    conversation_id: {
      type: 'string',
      minLength: 1,
      maxLength: CALLBACK_URL_MAX_CHARS,
      description: 'The conversation id, URL-encoded (`encodeURIComponent`) — a callback URL included.',
    },
  },
} as const;

export type ConversationIdParams = FromSchema<typeof conversationIdParamsSchema>;

export const webhookAcceptedSchema = {
  type: 'object',
  required: ['task_id', 'status'],
  properties: {
    task_id: { type: 'string', format: 'uuid' },
    status: { type: 'string', enum: ['Processing'] },
  },
  examples: [{ task_id: EXAMPLE_TASK_ID, status: 'Processing' }],
} as const;

export type WebhookAccepted = FromSchema<typeof webhookAcceptedSchema>;

export const callbackReceivedSchema = {
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string', enum: ['received'] } },
  examples: [{ status: 'received' }],
} as const;

export const callbackListSchema = {
  type: 'object',
  required: ['received'],
  properties: {
    received: {
      type: 'array',
      description: 'The last 100 payloads received, newest last.',
      items: { type: 'object', additionalProperties: true },
    },
  },
} as const;

export const taskSchema = {
  type: 'object',
  required: ['task_id', 'status', 'conversation_id', 'created_at', 'updated_at', 'attempts', 'deliveries'],
  properties: {
    task_id: { type: 'string' },
    status: { type: 'string', enum: TASK_STATUSES },
    conversation_id: { type: 'string' },
    created_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
    generated_response: { type: 'string' },
    error: {
      type: 'object',
      required: ['type', 'message'],
      properties: { type: { type: 'string' }, message: { type: 'string' } },
    },
    attempts: {
      type: 'object',
      required: ['llm', 'callback'],
      properties: { llm: { type: 'integer' }, callback: { type: 'integer' } },
    },
    deliveries: {
      type: 'array',
      items: {
        type: 'object',
        required: ['at', 'duration_ms'],
        properties: {
          at: { type: 'string', format: 'date-time' },
          status_code: { type: 'integer' },
          error: { type: 'string' },
          duration_ms: { type: 'number' },
          probe: {
            type: 'boolean',
            description:
              "Made as the probe of the destination's half-open circuit breaker: a failed probe does not count against the task's retry schedule.",
          },
        },
      },
    },
  },
  examples: [
    {
      task_id: EXAMPLE_TASK_ID,
      status: 'completed',
      conversation_id: EXAMPLE_CALLBACK_URL,
      created_at: '2025-01-01T12:00:00.000Z',
      updated_at: '2025-01-01T12:00:02.000Z',
      generated_response: 'Hello!',
      attempts: { llm: 1, callback: 1 },
      deliveries: [{ at: '2025-01-01T12:00:01.500Z', status_code: 200, duration_ms: 42 }],
    },
  ],
} as const;

/** A task as `GET /tasks/:task_id` shows it: no message text, callback URL or metadata. */
export type TaskView = FromSchema<typeof taskSchema>;

export const redeliverSchema = {
  type: 'object',
  required: ['task_id', 'status'],
  properties: { task_id: { type: 'string' }, status: { type: 'string', enum: ['delivering'] } },
  examples: [{ task_id: EXAMPLE_TASK_ID, status: 'delivering' }],
} as const;

export const conversationMessagesSchema = {
  type: 'object',
  required: ['conversation_id', 'messages'],
  properties: {
    conversation_id: { type: 'string' },
    messages: {
      type: 'array',
      description: 'Oldest first.',
      items: {
        type: 'object',
        required: ['role', 'content', 'at'],
        properties: {
          role: { type: 'string', enum: ['user', 'assistant'] },
          content: { type: 'string' },
          at: { type: 'string', format: 'date-time' },
        },
      },
    },
  },
  examples: [
    {
      conversation_id: EXAMPLE_CALLBACK_URL,
      messages: [
        { role: 'user', content: 'Hello!', at: '2025-01-01T12:00:02.000Z' },
        { role: 'assistant', content: 'Hi! How can I help?', at: '2025-01-01T12:00:02.000Z' },
      ],
    },
  ],
} as const;

export const statusSchema = (status: string) =>
  ({
    type: 'object',
    required: ['status'],
    properties: { status: { type: 'string', enum: [status] } },
    examples: [{ status }],
  }) as const;
