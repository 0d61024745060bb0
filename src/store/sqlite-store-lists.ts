/**
 * The SQLite store's listings and roll-ups (SPEC §12): tasks newest first through the
 * `tasks_by_*` indexes (keyset pagination on `(created_at, task_id)`, so a page costs the same
 * however deep), conversations by last activity, and the per-minute `rollups` rows, counted in
 * memory as events commit and written once a second.
 */
import type { SqliteDatabase, SqlValue } from '../backends/sqlite/sqlite-database.js';
import { type TaskRow, toRecord } from './sqlite-store-rows.js';
import type { Store, TaskStatus } from './store.js';
import {
  type ConversationListPage,
  decodeConversationCursor,
  decodeTaskCursor,
  encodeConversationCursor,
  encodeTaskCursor,
  LLM_LATENCY_BUCKETS,
  latencyBucket,
  type MinuteRollup,
  minuteOf,
  ROLLUP_RETENTION_MS,
  type TaskFilter,
} from './task-lists.js';

export type RollupCounter = 'accepted' | 'completed' | 'failed' | 'callback_ok' | 'callback_failed';

export interface SqliteRollups {
  /** Counts one event; call once the write that made it has committed. */
  bump(namespace: string, nowMs: number, counter: RollupCounter): void;
  /** Counts one answered LLM call; call once the write that stored it has committed. */
  bumpLlm(namespace: string, nowMs: number, durationMs: number): void;
  /** The counts not written yet of `namespace`, by minute (added to the table's when read). */
  pending(namespace: string): ReadonlyMap<number, ReadonlyMap<string, number>>;
  /** Writes the pending counts now (also on a timer, a second after the first pending one). */
  flush(): Promise<void>;
  /** Writes the pending counts; later ones wait for an explicit `flush`. */
  close(): Promise<void>;
}

const LLM_COLUMNS = Array.from({ length: LLM_LATENCY_BUCKETS }, (_, index) => `llm_${index}`);
const ROLLUP_COLUMNS = ['accepted', 'completed', 'failed', 'callback_ok', 'callback_failed', ...LLM_COLUMNS];
/** How long counts wait in memory before they are written. */
const ROLLUP_FLUSH_MS = 1000;

/**
 * The embedded mode's per-minute counts: kept in memory and written once a second, one row per
 * namespace and minute for all counters at once, instead of an upsert inside every task write
 * (reads add what is pending, so they are exact in this process). A crash loses at most the
 * last second's counts; the tasks themselves are never touched.
 */
export function createSqliteRollups(db: SqliteDatabase): SqliteRollups {
  const upsert = db.prepare(
    `INSERT INTO rollups (namespace, minute_ms, ${ROLLUP_COLUMNS.join(', ')})
     VALUES (?, ?, ${ROLLUP_COLUMNS.map(() => '?').join(', ')})
     ON CONFLICT (namespace, minute_ms) DO UPDATE SET
       ${ROLLUP_COLUMNS.map((column) => `${column} = ${column} + excluded.${column}`).join(', ')}`,
  );
  /** Namespace → minute → column → count. */
  let counts = new Map<string, Map<number, Map<string, number>>>();
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  const add = (namespace: string, nowMs: number, column: string): void => {
    const minute = minuteOf(nowMs);
    let minutes = counts.get(namespace);
    if (minutes === undefined) counts.set(namespace, (minutes = new Map()));
    let columns = minutes.get(minute);
    if (columns === undefined) minutes.set(minute, (columns = new Map()));
    columns.set(column, (columns.get(column) ?? 0) + 1);
    if (timer === null && !closed) {
      timer = setTimeout(() => void flush().catch(() => {}), ROLLUP_FLUSH_MS);
      timer.unref();
    }
  };

  const flush = async (): Promise<void> => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    const due = counts;
    if (due.size === 0) return;
    counts = new Map();
    try {
      await db.write(() => {
        for (const [namespace, minutes] of due) {
          for (const [minute, columns] of minutes) {
            upsert.run(namespace, minute, ...ROLLUP_COLUMNS.map((column) => columns.get(column) ?? 0));
          }
        }
      });
    } catch (error) {
      // Kept for the next flush: added back to what was counted meanwhile.
      for (const [namespace, minutes] of due) {
        for (const [minute, columns] of minutes) {
          for (const [column, count] of columns) {
            for (let n = 0; n < count; n++) add(namespace, minute, column);
          }
        }
      }
      throw error;
    }
  };

  return {
    bump: (namespace, nowMs, counter) => add(namespace, nowMs, counter),
    bumpLlm: (namespace, nowMs, durationMs) => add(namespace, nowMs, `llm_${latencyBucket(durationMs)}`),
    pending: (namespace) => counts.get(namespace) ?? new Map(),
    flush,
    close: async () => {
      closed = true;
      await flush();
    },
  };
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

export function createSqliteLists(
  db: SqliteDatabase,
  taskRetentionMs: number,
  rollups: SqliteRollups,
): Lists {
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
          sql += ' AND (created_at, task_id) < (?, ?)';
          where.params.push(new Date(after.createdMs).toISOString(), after.taskId);
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
      const sinceMinute = minuteOf(sinceMs);
      return db.read(() => {
        const byMinute = new Map<number, Record<string, number>>();
        for (const row of selectRollups.all(namespace, sinceMinute, untilMs))
          byMinute.set(row.minute_ms, { ...row });
        for (const [minute, columns] of rollups.pending(namespace)) {
          if (minute < sinceMinute || minute >= untilMs) continue;
          const row = byMinute.get(minute) ?? {};
          for (const [column, count] of columns) row[column] = (row[column] ?? 0) + count;
          byMinute.set(minute, row);
        }
        return [...byMinute.entries()]
          .sort(([a], [b]) => a - b)
          .map(
            ([minuteMs, row]): MinuteRollup => ({
              minuteMs,
              accepted: row.accepted ?? 0,
              completed: row.completed ?? 0,
              failed: row.failed ?? 0,
              callbackOk: row.callback_ok ?? 0,
              callbackFailed: row.callback_failed ?? 0,
              llmLatency: LLM_COLUMNS.map((column) => row[column] ?? 0),
            }),
          );
      });
    },
  };
}
