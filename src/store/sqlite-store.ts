/**
 * The embedded mode's `Store`: tasks, conversation history and idempotency keys in the SQLite
 * file opened by backends/sqlite/sqlite-database.ts. Every change goes through `db.write`, so it is committed
 * (group commit) before its promise resolves; reads are synchronous prepared statements.
 *
 * Expiry is enforced on read (an expired row is invisible at once) and rows are purged later, in
 * small batches, by an unref'd timer (sqlite-store-purge.ts). The tables and the row mapping:
 * sqlite-store-rows.ts.
 */
import type { SqliteDatabase } from '../backends/sqlite/sqlite-database.js';
import { destinationOf } from '../shared/destination.js';
import { createSqliteLists, createSqliteRollups } from './sqlite-store-lists.js';
import { startSqlitePurge } from './sqlite-store-purge.js';
import {
  type ConversationRow,
  type GenerationStateRow,
  type IdempotencyRow,
  STORE_MIGRATIONS,
  type TaskRow,
  toRecord,
} from './sqlite-store-rows.js';
import { createSqliteUsage } from './sqlite-store-usage.js';
import type {
  DeliveryAttempt,
  DeliveryEnd,
  Generation,
  HistoryMessage,
  IdempotencyClaim,
  NewTask,
  Store,
  StoreLimits,
  TaskError,
  TaskRecord,
} from './store.js';

export { STORE_MIGRATIONS } from './sqlite-store-rows.js';

export interface SqliteStoreOptions {
  /** How often expired rows are deleted (default 60 000). */
  purgeIntervalMs?: number;
}

export function createSqliteStore(
  db: SqliteDatabase,
  limits: StoreLimits,
  options: SqliteStoreOptions = {},
): Store {
  db.migrate('store', STORE_MIGRATIONS);
  const historyTtlMs = limits.historyTtlSeconds * 1000;
  const taskRetentionMs = limits.taskRetentionSeconds * 1000;
  // The newest exchange is always kept, whatever the prompt limit, so a conversation stays visible.
  const historyKeep = Math.max(2, limits.historyMaxMessages);

  const insertTask = db.prepare(
    `INSERT INTO tasks (task_id, namespace, conversation_id, message, callback_url, metadata, created_at,
       status, updated_at, expires_at_ms, options, client, destination)
     VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)`,
  );
  const selectTask = db.prepare<TaskRow>('SELECT * FROM tasks WHERE task_id = ? AND expires_at_ms > ?');
  const selectGenerationState = db.prepare<GenerationStateRow>(
    'SELECT message, completed_at, namespace, conversation_id, client FROM tasks WHERE task_id = ? AND expires_at_ms > ?',
  );
  const updateStatus = db.prepare(
    `UPDATE tasks SET status = ?, updated_at = ?, error = CASE WHEN ? THEN ? ELSE error END
     WHERE task_id = ? AND NOT (status IN ('completed', 'failed') AND ? IN ('queued', 'processing'))`,
  );
  const incrementLlmAttempts = db.prepare(
    `UPDATE tasks SET llm_attempts = llm_attempts + 1, updated_at = ?,
       status = CASE WHEN status = 'queued' THEN 'processing' ELSE status END
     WHERE task_id = ?`,
  );
  const updateCompleted = db.prepare(
    `UPDATE tasks SET generated_response = ?, model = ?, usage = ?, completed_at = ?, status = 'delivering',
       updated_at = ? WHERE task_id = ?`,
  );
  const updateFailed = db.prepare(
    `UPDATE tasks SET error = ?, completed_at = ?, status = 'delivering', updated_at = ?
     WHERE task_id = ? AND completed_at IS NULL AND expires_at_ms > ?`,
  );
  const appendDelivery = db.prepare<{ namespace: string; rolled_up: number }>(
    `UPDATE tasks SET deliveries = json_insert(deliveries, '$[#]', json(?)),
       callback_attempts = callback_attempts + 1, updated_at = ? WHERE task_id = ?
     RETURNING namespace, rolled_up`,
  );
  // rolled_up counts the final statuses recorded: 1 the first time (the one the roll-ups count).
  const appendLastDelivery = db.prepare<{ namespace: string; rolled_up: number }>(
    `UPDATE tasks SET deliveries = json_insert(deliveries, '$[#]', json(?)),
       callback_attempts = callback_attempts + 1, updated_at = ?, status = ?, error = ?,
       rolled_up = rolled_up + 1 WHERE task_id = ?
     RETURNING namespace, rolled_up`,
  );
  const rollups = createSqliteRollups(db);

  const selectConversation = db.prepare<ConversationRow>(
    'SELECT next_position, expires_at_ms FROM conversations WHERE conversation_key = ?',
  );
  const upsertConversation = db.prepare(
    `INSERT INTO conversations (conversation_key, next_position, expires_at_ms, namespace, conversation_id,
       last_activity_ms) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (conversation_key) DO UPDATE
       SET next_position = excluded.next_position, expires_at_ms = excluded.expires_at_ms,
         namespace = excluded.namespace, conversation_id = excluded.conversation_id,
         last_activity_ms = excluded.last_activity_ms`,
  );
  const deleteConversation = db.prepare('DELETE FROM conversations WHERE conversation_key = ?');
  const insertMessage = db.prepare(
    'INSERT INTO history (conversation_key, position, role, content, at) VALUES (?, ?, ?, ?, ?)',
  );
  const deleteMessagesBefore = db.prepare('DELETE FROM history WHERE conversation_key = ? AND position < ?');
  const deleteMessages = db.prepare('DELETE FROM history WHERE conversation_key = ?');
  // Positions are contiguous (appendExchange), so the last `limit` messages are a range of the
  // index read in order: no sort, no scan past the window.
  const selectHistory = db.prepare<HistoryMessage>(
    `SELECT h.role, h.content, h.at FROM conversations c
     JOIN history h ON h.conversation_key = c.conversation_key AND h.position >= c.next_position - ?
     WHERE c.conversation_key = ? AND c.expires_at_ms > ?
     ORDER BY h.position`,
  );

  const selectIdempotencyKey = db.prepare<IdempotencyRow>(
    'SELECT fingerprint, task_id, expires_at_ms FROM idempotency_keys WHERE key = ?',
  );
  const upsertIdempotencyKey = db.prepare(
    'INSERT OR REPLACE INTO idempotency_keys (key, fingerprint, task_id, expires_at_ms) VALUES (?, ?, ?, ?)',
  );
  const deleteIdempotencyKey = db.prepare('DELETE FROM idempotency_keys WHERE key = ? AND task_id = ?');

  const usage = createSqliteUsage(db);
  const purge = startSqlitePurge(db, options.purgeIntervalMs ?? 60_000, historyTtlMs);

  const getTaskById = (taskId: string): Promise<TaskRecord | null> =>
    db.read(() => {
      const row = selectTask.get(taskId, Date.now());
      return row === undefined ? null : toRecord(row);
    });

  /** Appends the exchange; a conversation past its TTL starts afresh. */
  const appendExchange = (
    key: string,
    owner: { namespace: string; conversation_id: string },
    userMessage: string,
    reply: string,
    now: number,
  ): void => {
    const conversation = selectConversation.get(key);
    let position = 0;
    if (conversation !== undefined) {
      if (conversation.expires_at_ms <= now) deleteMessages.run(key);
      position = conversation.next_position;
    }
    const at = new Date(now).toISOString();
    insertMessage.run(key, position, 'user', userMessage, at);
    insertMessage.run(key, position + 1, 'assistant', reply, at);
    upsertConversation.run(
      key,
      position + 2,
      now + historyTtlMs,
      owner.namespace,
      owner.conversation_id,
      now,
    );
    deleteMessagesBefore.run(key, position + 2 - historyKeep);
  };

  return {
    ...createSqliteLists(db, taskRetentionMs, rollups),

    async createTask(task: NewTask) {
      const createdMs = Date.parse(task.createdAt);
      const expiresAtMs = (Number.isFinite(createdMs) ? createdMs : Date.now()) + taskRetentionMs;
      await db.write(() => {
        insertTask.run(
          task.taskId,
          task.namespace,
          task.conversationId,
          task.message,
          task.callbackUrl,
          task.metadata === null ? null : JSON.stringify(task.metadata),
          task.createdAt,
          task.createdAt,
          expiresAtMs,
          task.options === undefined || task.options === null ? null : JSON.stringify(task.options),
          task.client ?? null,
          destinationOf(task.callbackUrl),
        );
      });
      rollups.bump(task.namespace, Date.now(), 'accepted');
    },

    async getTask(namespace, taskId) {
      const task = await getTaskById(taskId);
      return task !== null && task.namespace === namespace ? task : null;
    },

    getTaskById,

    async setStatus(taskId, status, error) {
      const hasError = error !== undefined;
      await db.write(() =>
        updateStatus.run(
          status,
          new Date().toISOString(),
          hasError ? 1 : 0,
          hasError && error !== null ? JSON.stringify(error) : null,
          taskId,
          status,
        ),
      );
    },

    async recordLlmAttempt(taskId) {
      await db.write(() => incrementLlmAttempts.run(new Date().toISOString(), taskId));
    },

    async completeGeneration(taskId: string, key: string, generation: Generation) {
      const namespace = await db.write((): string | null => {
        const now = Date.now();
        const task = selectGenerationState.get(taskId, now);
        // Ended already: this is a job run again after a crash; the history holds the exchange.
        if (task === undefined || task.completed_at !== null) return null;
        appendExchange(key, task, task.message, generation.reply, now);
        updateCompleted.run(
          generation.reply,
          generation.model,
          generation.usage === null ? null : JSON.stringify(generation.usage),
          generation.completedAt,
          new Date(now).toISOString(),
          taskId,
        );
        usage.add(
          task.namespace,
          task.client ?? task.namespace,
          task.conversation_id,
          generation.model,
          generation.usage,
          generation.completedAt,
        );
        return task.namespace;
      });
      if (namespace === null) return false;
      if (generation.llmDurationMs !== undefined)
        rollups.bumpLlm(namespace, Date.now(), generation.llmDurationMs);
      return true;
    },

    failGeneration(taskId: string, error: TaskError, completedAt: string) {
      return db.write(() => {
        const now = Date.now();
        const result = updateFailed.run(
          JSON.stringify(error),
          completedAt,
          new Date(now).toISOString(),
          taskId,
          now,
        );
        return result.changes > 0;
      });
    },

    async recordDelivery(taskId: string, attempt: DeliveryAttempt, final?: DeliveryEnd) {
      const at = new Date().toISOString();
      const recorded = await db.write(() =>
        final === undefined
          ? appendDelivery.get(JSON.stringify(attempt), at, taskId)
          : appendLastDelivery.get(
              JSON.stringify(attempt),
              at,
              final.status,
              final.error === null ? null : JSON.stringify(final.error),
              taskId,
            ),
      );
      if (recorded === undefined) return;
      const firstFinal = final !== undefined && recorded.rolled_up === 1 ? final.status : null;
      rollups.bumpDelivery(recorded.namespace, attempt, firstFinal);
    },

    getHistory(key: string, limit: number) {
      if (limit <= 0) return Promise.resolve([]);
      return db.read(() => selectHistory.all(Math.trunc(limit), key, Date.now()));
    },

    deleteHistory(key: string) {
      return db.write(() => {
        const conversation = selectConversation.get(key);
        if (conversation === undefined) return false;
        deleteMessages.run(key);
        deleteConversation.run(key);
        return conversation.expires_at_ms > Date.now();
      });
    },

    claimIdempotencyKey(key, fingerprint, taskId, ttlSeconds): Promise<IdempotencyClaim> {
      // Writes run one after another in the batch, so check-then-insert is atomic.
      return db.write((): IdempotencyClaim => {
        const now = Date.now();
        const existing = selectIdempotencyKey.get(key);
        if (existing !== undefined && existing.expires_at_ms > now) {
          return existing.fingerprint === fingerprint
            ? { outcome: 'replay', taskId: existing.task_id }
            : { outcome: 'conflict', taskId: existing.task_id };
        }
        upsertIdempotencyKey.run(key, fingerprint, taskId, now + ttlSeconds * 1000);
        return { outcome: 'created' };
      });
    },

    async releaseIdempotencyKey(key, taskId) {
      await db.write(() => deleteIdempotencyKey.run(key, taskId));
    },

    getUsage: (namespace, query) => usage.query(namespace, query),

    getUsageTotal: (client, period) => usage.total(client, period),

    ping() {
      return db.ping();
    },

    async close() {
      purge.stop();
      await rollups.close().catch(() => {});
    },
  };
}
