/**
 * The SQLite store's purge: expired tasks, idempotency keys and conversations (with their
 * history) deleted in small batches by an unref'd timer. Reads already hide expired rows; this
 * only gives their space back.
 */
import type { SqliteDatabase } from '../backends/sqlite/sqlite-database.js';
import { purgeRollupsStatement } from './sqlite-store-lists.js';

/** Rows deleted per table and purge run, so a purge never holds the write lock for long. */
const PURGE_BATCH = 1000;

export interface SqlitePurge {
  /** Stops the timer. Idempotent. */
  stop(): void;
}

/**
 * Purges every `intervalMs`, first after one interval. A conversation's rows are written with
 * `expires_at_ms` = `last_activity_ms` + `historyTtlMs` (sqlite-store.ts), so its expired ones are
 * a prefix of each namespace's run of conversations_by_activity; the namespaces are read from the
 * same index, one seek each. Rows written under a longer TTL than today's are purged once today's
 * has passed too; rows of the first schema (no namespace, no activity) through their expiry.
 */
export function startSqlitePurge(db: SqliteDatabase, intervalMs: number, historyTtlMs: number): SqlitePurge {
  const purgeTasks = db.prepare(
    'DELETE FROM tasks WHERE rowid IN (SELECT rowid FROM tasks WHERE expires_at_ms <= ? LIMIT ?)',
  );
  const purgeIdempotencyKeys = db.prepare(
    `DELETE FROM idempotency_keys WHERE rowid IN
       (SELECT rowid FROM idempotency_keys WHERE expires_at_ms <= ? LIMIT ?)`,
  );
  const selectNamespaces = db.prepare<{ namespace: string }>(
    `WITH RECURSIVE ns(namespace) AS (
       SELECT MIN(namespace) FROM conversations
       UNION ALL
       SELECT (SELECT MIN(namespace) FROM conversations WHERE namespace > ns.namespace) FROM ns
       WHERE ns.namespace IS NOT NULL
     )
     SELECT namespace FROM ns WHERE namespace IS NOT NULL`,
  );
  const selectExpiredConversations = db.prepare<{ conversation_key: string }>(
    `SELECT conversation_key FROM conversations
     WHERE namespace = ? AND last_activity_ms <= ? AND expires_at_ms <= ? LIMIT ?`,
  );
  const selectExpiredFirstSchemaConversations = db.prepare<{ conversation_key: string }>(
    'SELECT conversation_key FROM conversations WHERE namespace IS NULL AND expires_at_ms <= ? LIMIT ?',
  );
  // The store prepares these too: `prepare` caches by text, so both use the same statements.
  const deleteConversation = db.prepare('DELETE FROM conversations WHERE conversation_key = ?');
  const deleteMessages = db.prepare('DELETE FROM history WHERE conversation_key = ?');
  const purgeRollups = purgeRollupsStatement(db);

  const purge = (): Promise<void> =>
    db.write(() => {
      const now = Date.now();
      purgeTasks.run(now, PURGE_BATCH);
      purgeIdempotencyKeys.run(now, PURGE_BATCH);
      purgeRollups();
      const expired = selectExpiredFirstSchemaConversations.all(now, PURGE_BATCH);
      for (const { namespace } of selectNamespaces.all()) {
        if (expired.length >= PURGE_BATCH) break;
        expired.push(
          ...selectExpiredConversations.all(namespace, now - historyTtlMs, now, PURGE_BATCH - expired.length),
        );
      }
      for (const { conversation_key } of expired) {
        deleteMessages.run(conversation_key);
        deleteConversation.run(conversation_key);
      }
    });

  let purgeTimer: NodeJS.Timeout | null = setInterval(() => {
    // A failed purge is retried on the next tick; expired rows are already invisible to reads.
    purge().catch(() => {});
  }, intervalMs);
  purgeTimer.unref();

  return {
    stop() {
      if (purgeTimer !== null) {
        clearInterval(purgeTimer);
        purgeTimer = null;
      }
    },
  };
}
