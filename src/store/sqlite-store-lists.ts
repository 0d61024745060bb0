/**
 * The SQLite store's listings and roll-ups (SPEC §12): tasks newest first through the
 * `tasks_by_*` indexes (keyset pagination on `(created_at, task_id)`, so a page costs the same
 * however deep), conversations by last activity, and the per-minute `rollups` rows, counted in
 * memory as events commit and written once a second.
 */
import type { SqliteDatabase, SqlValue } from '../backends/sqlite/sqlite-database.js';
import { createRollupCounts, type RollupCounter, type RollupCounts } from './rollup-counts.js';
import { type TaskRow, toRecord } from './sqlite-store-rows.js';
import type { Store, TaskStatus } from './store.js';
import {
  type ConversationListPage,
  decodeConversationCursor,
  decodeTaskCursor,
  encodeConversationCursor,
  encodeTaskCursor,
  LLM_LATENCY_BUCKETS,
  type MinuteRollup,
  minuteOf,
  ROLLUP_RETENTION_MS,
  type TaskFilter,
} from './task-lists.js';

const LLM_COLUMNS = Array.from({ length: LLM_LATENCY_BUCKETS }, (_, index) => `llm_${index}`);
const ROLLUP_COLUMNS = ['accepted', 'completed', 'failed', 'callback_ok', 'callback_failed', ...LLM_COLUMNS];

/** The `rollups` column of a counter. */
function columnOf(counter: RollupCounter): string {
  if (counter === 'callbackOk') return 'callback_ok';
  if (counter === 'callbackFailed') return 'callback_failed';
  return counter.startsWith('llm') ? `llm_${counter.slice(3)}` : counter;
}

/** The embedded mode's roll-up counts (rollup-counts.ts): one upsert per namespace and minute. */
export function createSqliteRollups(db: SqliteDatabase): RollupCounts {
  const upsert = db.prepare(
    `INSERT INTO rollups (namespace, minute_ms, ${ROLLUP_COLUMNS.join(', ')})
     VALUES (?, ?, ${ROLLUP_COLUMNS.map(() => '?').join(', ')})
     ON CONFLICT (namespace, minute_ms) DO UPDATE SET
       ${ROLLUP_COLUMNS.map((column) => `${column} = ${column} + excluded.${column}`).join(', ')}`,
  );
  return createRollupCounts((due) =>
    db.write(() => {
      for (const [namespace, minutes] of due) {
        for (const [minuteMs, counters] of minutes) {
          const values = new Map([...counters].map(([counter, count]) => [columnOf(counter), count]));
          upsert.run(namespace, minuteMs, ...ROLLUP_COLUMNS.map((column) => values.get(column) ?? 0));
        }
      }
    }),
  );
}

/** Deletes roll-ups past `ROLLUP_RETENTION_MS` (the purge loop calls it). */
export function purgeRollupsStatement(db: SqliteDatabase): () => void {
  const purge = db.prepare('DELETE FROM rollups WHERE minute_ms < ?');
  return () => purge.run(Date.now() - ROLLUP_RETENTION_MS);
}

interface RollupRow {
  minute_ms: number;
  accepted: number;
  completed: number;
  failed: number;
  callback_ok: number;
  callback_failed: number;
  [llm: `llm_${number}`]: number;
}

interface ConversationListRow {
  conversation_id: string;
  last_activity_ms: number;
  messages: number;
}

type Lists = Pick<Store, 'listTasks' | 'countTasks' | 'oldestTaskAt' | 'listConversations' | 'getRollups'>;

/**
 * The WHERE clause and parameters of a task filter. Expiry is a bound on `created_at` (a task
 * lives `taskRetentionMs` from creation), which the indexes cover: a count never reads a row.
 */
function whereOf(
  namespace: string,
  filter: TaskFilter,
  oldestMs: number,
): { sql: string; params: SqlValue[] } {
  const clauses = ['namespace = ?', 'created_at > ?'];
  const params: SqlValue[] = [namespace, new Date(oldestMs).toISOString()];
  const statuses = filter.statuses ?? [];
  if (statuses.length === 1) {
    clauses.push('status = ?');
    params.push(statuses[0]!);
  } else if (statuses.length > 1) {
    clauses.push(`status IN (${statuses.map(() => '?').join(', ')})`);
    params.push(...statuses);
  }
  if (filter.conversationId !== undefined) {
    clauses.push('conversation_id = ?');
    params.push(filter.conversationId);
  }
  if (filter.destination !== undefined) {
    clauses.push('destination = ?');
    params.push(filter.destination);
  }
  if (filter.sinceMs !== undefined) {
    clauses.push('created_at >= ?');
    params.push(new Date(filter.sinceMs).toISOString());
  }
  if (filter.untilMs !== undefined) {
    clauses.push('created_at < ?');
    params.push(new Date(filter.untilMs).toISOString());
  }
  return { sql: clauses.join(' AND '), params };
}

export function createSqliteLists(db: SqliteDatabase, taskRetentionMs: number, rollups: RollupCounts): Lists {
  const oldest = () => Date.now() - taskRetentionMs;
  const selectRollups = db.prepare<RollupRow>(
    'SELECT * FROM rollups WHERE namespace = ? AND minute_ms >= ? AND minute_ms < ? ORDER BY minute_ms',
  );
  const selectOldest = db.prepare<{ created_at: string }>(
    `SELECT created_at FROM tasks WHERE namespace = ? AND status = ? AND created_at > ?
     ORDER BY created_at, task_id LIMIT 1`,
  );
  const conversationsSql = (after: boolean) =>
    `SELECT c.conversation_id, c.last_activity_ms,
       (SELECT count(*) FROM history h WHERE h.conversation_key = c.conversation_key) AS messages
     FROM conversations c
     WHERE c.namespace = ? AND c.expires_at_ms > ?
       ${after ? 'AND (c.last_activity_ms, c.conversation_id) < (?, ?)' : ''}
     ORDER BY c.last_activity_ms DESC, c.conversation_id DESC LIMIT ?`;
  const selectConversations = db.prepare<ConversationListRow>(conversationsSql(false));
  const selectConversationsAfter = db.prepare<ConversationListRow>(conversationsSql(true));

  return {
    listTasks(namespace, filter, limit, cursor) {
      return db.read(() => {
        const where = whereOf(namespace, filter, oldest());
        let sql = `SELECT * FROM tasks WHERE ${where.sql}`;
        const after = cursor === null ? null : decodeTaskCursor(cursor);
        if (after !== null) {
          // (created_at, task_id) < (?, ?), written so the index's created_at bounds the walk.
          const createdAt = new Date(after.createdMs).toISOString();
          sql += ' AND created_at <= ? AND (created_at < ? OR task_id < ?)';
          where.params.push(createdAt, createdAt, after.taskId);
        }
        sql += ' ORDER BY created_at DESC, task_id DESC LIMIT ?';
        const rows = db.prepare<TaskRow>(sql).all(...where.params, limit + 1);
        const tasks = rows.slice(0, limit).map(toRecord);
        const last = tasks[tasks.length - 1];
        const nextCursor =
          rows.length > limit && last !== undefined
            ? encodeTaskCursor({ createdMs: Date.parse(last.createdAt), taskId: last.taskId })
            : null;
        return { tasks, nextCursor };
      });
    },

    countTasks(namespace, filter) {
      return db.read(() => {
        const where = whereOf(namespace, filter, oldest());
        const row = db
          .prepare<{ n: number }>(`SELECT count(*) AS n FROM tasks WHERE ${where.sql}`)
          .get(...where.params);
        return row?.n ?? 0;
      });
    },

    oldestTaskAt(namespace, status: TaskStatus) {
      return db.read(
        () => selectOldest.get(namespace, status, new Date(oldest()).toISOString())?.created_at ?? null,
      );
    },

    listConversations(namespace, limit, cursor): Promise<ConversationListPage> {
      return db.read(() => {
        const after = cursor === null ? null : decodeConversationCursor(cursor);
        const now = Date.now();
        const rows =
          after === null
            ? selectConversations.all(namespace, now, limit + 1)
            : selectConversationsAfter.all(
                namespace,
                now,
                after.lastActivityMs,
                after.conversationId,
                limit + 1,
              );
        const page = rows.slice(0, limit);
        const last = page[page.length - 1];
        return {
          conversations: page.map((row) => ({
            conversationId: row.conversation_id,
            messages: row.messages,
            lastActivityAt: new Date(row.last_activity_ms).toISOString(),
          })),
          nextCursor:
            rows.length > limit && last !== undefined
              ? encodeConversationCursor({
                  lastActivityMs: last.last_activity_ms,
                  conversationId: last.conversation_id,
                })
              : null,
        };
      });
    },

    getRollups(namespace, sinceMs, untilMs) {
      return db.read(() =>
        rollups.withPending(
          namespace,
          selectRollups.all(namespace, minuteOf(sinceMs), untilMs).map(
            (row): MinuteRollup => ({
              minuteMs: row.minute_ms,
              accepted: row.accepted,
              completed: row.completed,
              failed: row.failed,
              callbackOk: row.callback_ok,
              callbackFailed: row.callback_failed,
              llmLatency: LLM_COLUMNS.map((column) => row[column as `llm_${number}`] ?? 0),
            }),
          ),
          sinceMs,
          untilMs,
        ),
      );
    },
  };
}
