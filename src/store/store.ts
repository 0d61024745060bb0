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
  /** Prompt tokens served from the provider's cache, when it reports them. */
  cached_tokens?: number;
  /** Reply tokens spent on reasoning, when the provider reports them. */
  reasoning_tokens?: number;
  /** USD: the provider's own figure (`usage.cost`), else computed from `LLM_PRICES`; absent when neither. */
  cost?: number;
}

/** Per-request LLM options (SPEC §10), as accepted at `POST /webhook`. */
export interface LlmOptions {
  model?: string;
  temperature?: number;
  max_tokens?: number;
}

export const USAGE_GROUPS = ['day', 'model', 'conversation'] as const;
export type UsageGroup = (typeof USAGE_GROUPS)[number];

/** Usage summed over completed tasks. `costNanoUsd` is in 10⁻⁹ USD, so sums are exact. */
export interface UsageTotals {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  costNanoUsd: number;
}

/** What a budget counts (`CLIENT_BUDGET`): a client's tokens and cost over a day or a month. */
export type BudgetTotals = Pick<UsageTotals, 'totalTokens' | 'costNanoUsd'>;

export interface UsageRow extends UsageTotals {
  /** The day (`YYYY-MM-DD`, UTC), the model or the conversation id, as grouped. */
  key: string;
}

export interface UsageQuery {
  /** First and last day included, `YYYY-MM-DD` (UTC). */
  sinceDay: string;
  untilDay: string;
  groupBy: UsageGroup;
}

/** A budget period: a UTC day (`YYYY-MM-DD`) or month (`YYYY-MM`). */
export type UsagePeriod = { unit: 'day'; day: string } | { unit: 'month'; month: string };

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
  /** The request's LLM options; absent or `null`: none. */
  options?: LlmOptions | null;
  /**
   * Whom the task's usage counts against for `CLIENT_BUDGET`: the namespace when API tokens are
   * on, `ip:<address>` when they are off. Default: the namespace.
   */
  client?: string;
}

export interface TaskRecord extends NewTask {
  options: LlmOptions | null;
  client: string;
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
  /** ISO time; its UTC day is the day the usage is counted on. */
  completedAt: string;
  /**
   * The task's namespace and conversation id, for its usage roll-up keys (a driver that needs them
   * before its atomic step reads them from the task when they are not given).
   */
  namespace?: string;
  conversationId?: string;
  client?: string;
  /** How long the answering LLM call took, for the latency roll-up (absent: not counted). */
  llmDurationMs?: number | undefined;
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

/** Which tasks a listing or count takes; every field narrows it, none set = all of the namespace's. */
export interface TaskFilter {
  /** Any of these statuses (absent or empty: any status). */
  statuses?: readonly TaskStatus[] | undefined;
  conversationId?: string | undefined;
  /** A destination as `destinationOf` writes it. */
  destination?: string | undefined;
  /** Created at or after this time (epoch ms). */
  sinceMs?: number | undefined;
  /** Created before this time (epoch ms). */
  untilMs?: number | undefined;
}

export interface TaskListPage<T> {
  tasks: T[];
  nextCursor: string | null;
}

export interface ConversationSummary {
  conversationId: string;
  /** Messages stored now. */
  messages: number;
  /** ISO time of the last exchange appended. */
  lastActivityAt: string;
}

export interface ConversationListPage {
  conversations: ConversationSummary[];
  nextCursor: string | null;
}

/** One minute of one namespace's task events. */
export interface MinuteRollup {
  /** Start of the minute, epoch ms (a multiple of 60 000). */
  minuteMs: number;
  accepted: number;
  completed: number;
  failed: number;
  callbackOk: number;
  callbackFailed: number;
  /** Answered LLM calls per latency bucket (`LLM_LATENCY_BOUNDS_MS`). */
  llmLatency: number[];
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
   * `conversationKey`, refreshes its TTL, stores the reply on the task, sets `delivering`, and adds
   * the generation's usage (one request, its tokens and cost) to the task's namespace's usage
   * roll-ups of the day of `completedAt` (by model and conversation) and to its client's day and
   * month totals. Resolves `false` (changing nothing, roll-ups included) when the generation already
   * ended for this task.
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
  /**
   * Usage of `namespace`'s completed tasks on the days of `query`, one row per day, model or
   * conversation (as grouped), read from the roll-ups (never from the tasks). Rows in key order.
   */
  getUsage(namespace: string, query: UsageQuery): Promise<UsageRow[]>;
  /** A client's (`NewTask.client`) tokens and cost over one day or month (zero when none). */
  getUsageTotal(client: string, period: UsagePeriod): Promise<BudgetTotals>;
  /**
   * The namespace's tasks matching `filter`, newest first (creation time, then id), at most
   * `limit`, after `cursor` (an opaque string from an earlier page's `nextCursor`). `nextCursor`
   * is `null` on the last page. Served from indexes: never a scan of every task.
   */
  listTasks(
    namespace: string,
    filter: TaskFilter,
    limit: number,
    cursor: string | null,
  ): Promise<TaskListPage<TaskRecord>>;
  /** How many of the namespace's tasks match `filter`. */
  countTasks(namespace: string, filter: TaskFilter): Promise<number>;
  /** Creation time (ISO) of the namespace's oldest task in `status`, or `null`. */
  oldestTaskAt(namespace: string, status: TaskStatus): Promise<string | null>;
  /** The namespace's conversations with stored history, most recently active first. */
  listConversations(namespace: string, limit: number, cursor: string | null): Promise<ConversationListPage>;
  /**
   * The namespace's per-minute roll-ups from `sinceMs` to `untilMs` (epoch ms), oldest first;
   * minutes with no event are left out. Written with each task event (accepted, LLM answered,
   * delivery attempt, final status), in the same write.
   */
  getRollups(namespace: string, sinceMs: number, untilMs: number): Promise<MinuteRollup[]>;
  /** Resolves when the backend answers; rejects with `BackendUnavailableError` otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** How long usage roll-ups are kept: 400 days, so a year compares with the one before. */
export const USAGE_RETENTION_DAYS = 400;

export const ZERO_USAGE: Readonly<UsageTotals> = Object.freeze({
  requests: 0,
  promptTokens: 0,
  completionTokens: 0,
  totalTokens: 0,
  costNanoUsd: 0,
});

/** The UTC day (`YYYY-MM-DD`) of an ISO time. */
export function dayOf(iso: string): string {
  const ms = Date.parse(iso);
  return new Date(Number.isFinite(ms) ? ms : Date.now()).toISOString().slice(0, 10);
}

/** The history key of a conversation: namespaced so tokens never share history. */
export function conversationKey(namespace: string, conversationId: string): string {
  return namespace === '' ? conversationId : `${namespace}:${conversationId}`;
}
