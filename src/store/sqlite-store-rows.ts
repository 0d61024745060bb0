/**
 * The SQLite store's side of the file: its tables (`STORE_MIGRATIONS`), the shapes of the rows
 * it reads, and the mapping of a `tasks` row to the seam's `TaskRecord`.
 */
import { USAGE_MIGRATION } from './sqlite-store-usage.js';
import type { DeliveryAttempt, LlmOptions, TaskError, TaskRecord, TaskStatus, Usage } from './store.js';

export interface TaskRow {
  task_id: string;
  namespace: string;
  conversation_id: string;
  message: string;
  callback_url: string;
  metadata: string | null;
  created_at: string;
  status: TaskStatus;
  updated_at: string;
  generated_response: string | null;
  model: string | null;
  usage: string | null;
  error: string | null;
  completed_at: string | null;
  llm_attempts: number;
  callback_attempts: number;
  deliveries: string;
  options: string | null;
  client: string | null;
}

export interface GenerationStateRow {
  message: string;
  completed_at: string | null;
  namespace: string;
  conversation_id: string;
  client: string | null;
}

export interface ConversationRow {
  next_position: number;
  expires_at_ms: number;
}

export interface IdempotencyRow {
  fingerprint: string;
  task_id: string;
  expires_at_ms: number;
}

/**
 * The store's tables, by version (`SqliteDatabase.migrate`). Append only: a released migration
 * is never edited.
 */
export const STORE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE tasks (
    task_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    message TEXT NOT NULL,
    callback_url TEXT NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    generated_response TEXT,
    model TEXT,
    usage TEXT,
    error TEXT,
    completed_at TEXT,
    llm_attempts INTEGER NOT NULL DEFAULT 0,
    callback_attempts INTEGER NOT NULL DEFAULT 0,
    deliveries TEXT NOT NULL DEFAULT '[]',
    expires_at_ms INTEGER NOT NULL
  );
  CREATE INDEX tasks_expiry ON tasks (expires_at_ms);

  CREATE TABLE conversations (
    conversation_key TEXT PRIMARY KEY,
    next_position INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
  );
  CREATE INDEX conversations_expiry ON conversations (expires_at_ms);

  CREATE TABLE history (
    conversation_key TEXT NOT NULL,
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    at TEXT NOT NULL
  );
  CREATE UNIQUE INDEX history_by_position ON history (conversation_key, position);

  CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    task_id TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
  );
  CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at_ms);
  `,
  USAGE_MIGRATION,
  // The console's listings (SPEC §12): an index per filter, newest first within the namespace;
  // conversations by last activity; per-minute roll-ups of task events.
  `
  ALTER TABLE tasks ADD COLUMN destination TEXT NOT NULL DEFAULT '';
  ALTER TABLE tasks ADD COLUMN rolled_up INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX tasks_by_time ON tasks (namespace, created_at, task_id);
  CREATE INDEX tasks_by_status ON tasks (namespace, status, created_at, task_id);
  CREATE INDEX tasks_by_conversation ON tasks (namespace, conversation_id, created_at, task_id);
  CREATE INDEX tasks_by_destination ON tasks (namespace, destination, created_at, task_id);

  ALTER TABLE conversations ADD COLUMN namespace TEXT;
  ALTER TABLE conversations ADD COLUMN conversation_id TEXT;
  ALTER TABLE conversations ADD COLUMN last_activity_ms INTEGER;
  CREATE INDEX conversations_by_activity ON conversations (namespace, last_activity_ms, conversation_id);

  CREATE TABLE rollups (
    namespace TEXT NOT NULL,
    minute_ms INTEGER NOT NULL,
    accepted INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    callback_ok INTEGER NOT NULL DEFAULT 0,
    callback_failed INTEGER NOT NULL DEFAULT 0,
    llm_0 INTEGER NOT NULL DEFAULT 0, llm_1 INTEGER NOT NULL DEFAULT 0, llm_2 INTEGER NOT NULL DEFAULT 0,
    llm_3 INTEGER NOT NULL DEFAULT 0, llm_4 INTEGER NOT NULL DEFAULT 0, llm_5 INTEGER NOT NULL DEFAULT 0,
    llm_6 INTEGER NOT NULL DEFAULT 0, llm_7 INTEGER NOT NULL DEFAULT 0, llm_8 INTEGER NOT NULL DEFAULT 0,
    llm_9 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, minute_ms)
  ) WITHOUT ROWID;
  `,
  // A conversation's expiry is its last activity plus the history TTL: the purge finds expired
  // conversations through conversations_by_activity, so an exchange moves one index entry, not two.
  `
  DROP INDEX IF EXISTS conversations_expiry;
  `,
  // The listing indexes without task_id: the rowid already makes each entry unique, and a page's
  // ties on created_at (the same millisecond) are few, sorted after the index walk. Each accepted
  // task writes entries a third smaller, so fewer pages per commit.
  `
  DROP INDEX IF EXISTS tasks_by_time;
  DROP INDEX IF EXISTS tasks_by_status;
  DROP INDEX IF EXISTS tasks_by_conversation;
  DROP INDEX IF EXISTS tasks_by_destination;
  CREATE INDEX tasks_by_time ON tasks (namespace, created_at);
  CREATE INDEX tasks_by_status ON tasks (namespace, status, created_at);
  CREATE INDEX tasks_by_conversation ON tasks (namespace, conversation_id, created_at);
  CREATE INDEX tasks_by_destination ON tasks (namespace, destination, created_at);
  `,
];

function parseJson<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

export function toRecord(row: TaskRow): TaskRecord {
  return {
    taskId: row.task_id,
    namespace: row.namespace,
    conversationId: row.conversation_id,
    message: row.message,
    callbackUrl: row.callback_url,
    metadata: parseJson<Record<string, unknown>>(row.metadata),
    createdAt: row.created_at,
    options: parseJson<LlmOptions>(row.options),
    client: row.client ?? row.namespace,
    status: row.status,
    updatedAt: row.updated_at,
    generatedResponse: row.generated_response,
    model: row.model,
    usage: parseJson<Usage>(row.usage),
    error: parseJson<TaskError>(row.error),
    completedAt: row.completed_at,
    attempts: { llm: row.llm_attempts, callback: row.callback_attempts },
    deliveries: parseJson<DeliveryAttempt[]>(row.deliveries) ?? [],
  };
}
