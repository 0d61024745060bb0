/**
 * Request and response schemas of the console's JSON API (SPEC §12): the task and conversation
 * listings, bulk redelivery and the per-minute statistics. Query strings are not coerced (the
 * server's Ajv keeps types strict), so numbers arrive as digit strings.
 */
import type { FromSchema } from 'json-schema-to-ts';
import { TASK_STATUSES } from '../store/store.js';
import { CALLBACK_URL_MAX_CHARS, CONVERSATION_ID_MAX_CHARS, taskSchema } from './schemas.js';

export const LIST_LIMIT_DEFAULT = 50;
export const LIST_LIMIT_MAX = 200;
export const STATS_MINUTES_DEFAULT = 60;
export const STATS_MINUTES_MAX = 1440;

const digits = (description: string) => ({ type: 'string', pattern: '^[0-9]{1,5}$', description }) as const;
const cursor = {
  type: 'string',
  minLength: 1,
  maxLength: 1024,
  description: '`next_cursor` of the page before.',
} as const;
const time = (description: string) => ({ type: 'string', format: 'date-time', description }) as const;

export const taskListQuerySchema = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: TASK_STATUSES },
    conversation_id: { type: 'string', minLength: 1, maxLength: CONVERSATION_ID_MAX_CHARS },
    destination: {
      type: 'string',
      minLength: 1,
      maxLength: CALLBACK_URL_MAX_CHARS,
      description: 'A callback origin as `scheme://host:port` (the port always written).',
    },
    since: time('Tasks created at or after this time (ISO 8601).'),
    until: time('Tasks created before this time (ISO 8601).'),
    limit: digits(`Tasks per page, 1..${LIST_LIMIT_MAX} (default ${LIST_LIMIT_DEFAULT}).`),
    cursor,
  },
} as const;
export type TaskListQuery = FromSchema<typeof taskListQuerySchema>;

export const taskListSchema = {
  type: 'object',
  required: ['tasks', 'next_cursor'],
  properties: {
    tasks: { type: 'array', description: 'Newest first.', items: taskSchema },
    next_cursor: {
      type: ['string', 'null'],
      description: 'Pass as `cursor` for the next page; `null` on the last.',
    },
  },
} as const;

export const conversationListQuerySchema = {
  type: 'object',
  properties: {
    limit: digits(`Conversations per page, 1..${LIST_LIMIT_MAX} (default ${LIST_LIMIT_DEFAULT}).`),
    cursor,
  },
} as const;
export type ConversationListQuery = FromSchema<typeof conversationListQuerySchema>;

export const conversationListSchema = {
  type: 'object',
  required: ['conversations', 'next_cursor'],
  properties: {
    conversations: {
      type: 'array',
      description: 'Most recently active first.',
      items: {
        type: 'object',
        required: ['conversation_id', 'messages', 'last_activity_at'],
        properties: {
          conversation_id: { type: 'string' },
          messages: { type: 'integer', description: 'Messages stored now.' },
          last_activity_at: { type: 'string', format: 'date-time' },
        },
      },
    },
    next_cursor: { type: ['string', 'null'] },
  },
  examples: [
    {
      conversations: [
        { conversation_id: 'support-42', messages: 6, last_activity_at: '2025-01-01T12:00:02.000Z' },
      ],
      next_cursor: null,
    },
  ],
} as const;

export const bulkRedeliverBodySchema = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['completed', 'failed'], description: 'Default: both.' },
    conversation_id: { type: 'string', minLength: 1, maxLength: CONVERSATION_ID_MAX_CHARS },
    destination: { type: 'string', minLength: 1, maxLength: CALLBACK_URL_MAX_CHARS },
    since: time('Tasks created at or after this time.'),
    until: time('Tasks created before this time.'),
    dry_run: { type: 'boolean', description: 'Count the matching tasks; redeliver nothing.' },
  },
  examples: [{ status: 'failed', destination: 'https://example.com:443', dry_run: true }],
} as const;
export type BulkRedeliverBody = FromSchema<typeof bulkRedeliverBodySchema>;

export const bulkRedeliveringSchema = {
  type: 'object',
  required: ['redelivering'],
  properties: { redelivering: { type: 'integer' } },
  examples: [{ redelivering: 12 }],
} as const;

export const bulkMatchedSchema = {
  type: 'object',
  required: ['matched'],
  properties: { matched: { type: 'integer' } },
  examples: [{ matched: 12 }],
} as const;

export const statsQuerySchema = {
  type: 'object',
  properties: {
    minutes: digits(`Minutes to the present, 1..${STATS_MINUTES_MAX} (default ${STATS_MINUTES_DEFAULT}).`),
  },
} as const;
export type StatsQuery = FromSchema<typeof statsQuerySchema>;

const figures = {
  accepted: { type: 'integer' },
  completed: { type: 'integer' },
  failed: { type: 'integer' },
  llm_p50_ms: {
    type: ['number', 'null'],
    description: 'Median latency of answered LLM calls (bucketed estimate).',
  },
  llm_p95_ms: { type: ['number', 'null'] },
  callback_success_rate: {
    type: ['number', 'null'],
    description: '2xx callback attempts over all attempts, 0..1.',
  },
} as const;

const queueCounts = {
  type: 'object',
  required: ['waiting', 'active', 'delayed'],
  properties: { waiting: { type: 'integer' }, active: { type: 'integer' }, delayed: { type: 'integer' } },
} as const;

export const statsSchema = {
  type: 'object',
  required: ['minutes', 'series', 'totals', 'queue', 'delivery_queue', 'oldest_queued_at'],
  properties: {
    minutes: { type: 'integer' },
    series: {
      type: 'array',
      description: 'One entry per minute, oldest first, the current minute last.',
      items: {
        type: 'object',
        required: ['minute', ...Object.keys(figures)],
        properties: { minute: { type: 'string', format: 'date-time' }, ...figures },
      },
    },
    totals: { type: 'object', required: Object.keys(figures), properties: figures },
    queue: {
      description: "The deployment's generation queue (LLM calls), whatever the client.",
      ...queueCounts,
    },
    delivery_queue: {
      description: "The deployment's delivery queue (callbacks), whatever the client.",
      ...queueCounts,
    },
    oldest_queued_at: {
      type: ['string', 'null'],
      description: "Creation time of the client's oldest task still waiting for its LLM call.",
    },
  },
} as const;
