/**
 * THE store seam: task records, conversation history and idempotency keys. Every driver
 * (SQLite for the embedded mode, Redis for the redis mode) implements `Store` and passes
 * `defineStoreContractTests` (store.contract.ts).
 *
 * Invariants every driver keeps:
 * - Durable: once a write resolves, it survives a SIGKILL.
 * - `completeGeneration` and `failGeneration` apply once: a second call for the same task (a job
 *   that ran again after a crash) changes nothing and resolves `false`, so history never holds
 *   one exchange twice.
 * - The user message and the reply enter the history in one atomic step.
 * - Tasks are namespaced: `getTask(namespace, id)` does not see another namespace's task.
 * - Expiry: tasks after `taskRetentionSeconds` from creation, history `historyTtlSeconds` after
 *   its last append, idempotency keys after their `ttlSeconds`.
 */

import type { TaskErrorType } from '../shared/errors.js';

export const TASK_STATUSES = ['queued', 'processing', 'delivering', 'completed', 'failed'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface TaskError {
  /** Stable, machine-readable: `llm_auth`, `llm_unavailable`, `config_missing_api_key`, `callback_failed`, ... */
  type: TaskErrorType;
  message: string;
}

export interface DeliveryAttempt {
  /** ISO time the attempt started. */
  at: string;
  status_code?: number;
  error?: string;
  duration_ms: number;
  /** The probe of the destination's half-open breaker (it counts for the destination, not the task's schedule). */
  probe?: true;
}

/** How a task's delivery ended. */
export interface DeliveryEnd {
  status: 'completed' | 'failed';
  error: TaskError | null;
}

export interface NewTask {
  taskId: string;
  /** The client namespace: '' when API tokens are off, else derived from the token. */
  namespace: string;
  /** The conversation id as the client sees it (the callback URL when none was given). */
  conversationId: string;
  message: string;
  callbackUrl: string;
  metadata: Record<string, unknown> | null;
  /** ISO time. */
  createdAt: string;
}

export interface TaskRecord extends NewTask {
  status: TaskStatus;
  updatedAt: string;
  generatedResponse: string | null;
  model: string | null;
  usage: Usage | null;
  error: TaskError | null;
  /** ISO time the generation ended (reply stored or failure decided). */
  completedAt: string | null;
  attempts: { llm: number; callback: number };
  deliveries: DeliveryAttempt[];
}

export interface HistoryMessage {
  role: 'user' | 'assistant';
  content: string;
  /** ISO time the message was stored. */
  at: string;
}

export interface Generation {
  reply: string;
  model: string;
  usage: Usage | null;
  /** ISO time. */
  completedAt: string;
}

export type IdempotencyClaim =
  | { outcome: 'created' }
  | { outcome: 'replay'; taskId: string }
  | { outcome: 'conflict'; taskId: string };

export interface StoreLimits {
  historyMaxMessages: number;
  historyTtlSeconds: number;
  taskRetentionSeconds: number;
}

export interface Store {
  /** Stores a new task with status `queued`. */
  createTask(task: NewTask): Promise<void>;
  /** The task, or `null` when unknown, expired, or of another namespace. */
  getTask(namespace: string, taskId: string): Promise<TaskRecord | null>;
  /** The task by id alone (for workers). */
  getTaskById(taskId: string): Promise<TaskRecord | null>;
  /** Moves a task to `status` (never backwards out of `completed`/`failed`, except to `delivering` for a redelivery). */
  setStatus(taskId: string, status: TaskStatus, error?: TaskError | null): Promise<void>;
  /** Counts one LLM call; a `queued` task moves to `processing` in the same write. */
  recordLlmAttempt(taskId: string): Promise<void>;
  /**
   * Atomically: appends the task's user message and `generation.reply` to the history of
   * `conversationKey`, refreshes its TTL, stores the reply on the task and sets `delivering`.
   * Resolves `false` (changing nothing) when the generation already ended for this task.
   */
  completeGeneration(taskId: string, conversationKey: string, generation: Generation): Promise<boolean>;
  /** Stores the failure on the task and sets `delivering`; history is untouched. `false` when already ended. */
  failGeneration(taskId: string, error: TaskError, completedAt: string): Promise<boolean>;
  /**
   * Appends one delivery attempt and counts it. With `final` (the delivery ended), the same write
   * sets the task's final status and its error (`null` clears it).
   */
  recordDelivery(taskId: string, attempt: DeliveryAttempt, final?: DeliveryEnd): Promise<void>;
  /** The last `limit` messages of the conversation, oldest first. */
  getHistory(conversationKey: string, limit: number): Promise<HistoryMessage[]>;
  /** Erases the conversation's history; resolves whether anything was there. */
  deleteHistory(conversationKey: string): Promise<boolean>;
  /**
   * Claims `key` for `taskId` atomically: `created` the first time, `replay` with the first
   * task id when the fingerprint matches, `conflict` when it does not.
   */
  claimIdempotencyKey(
    key: string,
    fingerprint: string,
    taskId: string,
    ttlSeconds: number,
  ): Promise<IdempotencyClaim>;
  /** Releases a claim whose task could not be created (so a retry can succeed). */
  releaseIdempotencyKey(key: string, taskId: string): Promise<void>;
  /** Resolves when the backend answers; rejects with `BackendUnavailableError` otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The history key of a conversation: namespaced so tokens never share history. */
export function conversationKey(namespace: string, conversationId: string): string {
  return namespace === '' ? conversationId : `${namespace}:${conversationId}`;
}
