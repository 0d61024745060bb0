/**
 * The redis store's listings and roll-ups (SPEC §12), on the indexes its Lua scripts keep
 * (redis-store-scripts.ts): sorted sets whose members `<created ms, 16 digits>:<task id>` all sit
 * at score 0, so a newest-first page is one `ZRANGE ... BYLEX REV` from the cursor, exact even
 * for tasks of the same millisecond. A filter picks the narrowest set (conversation, destination,
 * status, else all); what that set does not cover is checked on the records read, reading at most
 * `SCAN_BUDGET` members per request (a page can then come back short, with a cursor to go on).
 */
import type { Redis } from 'ioredis';
import { withRedis } from '../backends/redis/redis-connection.js';
import { createRollupCounts, type RollupCounts } from './rollup-counts.js';
import { conversationKey, type Store, type TaskRecord } from './store.js';
import {
  type ConversationSummary,
  decodeConversationCursor,
  decodeTaskCursor,
  emptyRollup,
  encodeConversationCursor,
  encodeTaskCursor,
  type MinuteRollup,
  minuteOf,
  type TaskFilter,
} from './task-lists.js';

/** Most index members one listing request reads before it answers with what it found. */
const SCAN_BUDGET = 2000;
const HOUR_MS = 3_600_000;
/** Roll-up hash fields to `MinuteRollup` counters. */
const COUNTERS: Record<string, 'accepted' | 'completed' | 'failed' | 'callbackOk' | 'callbackFailed'> = {
  accepted: 'accepted',
  completed: 'completed',
  failed: 'failed',
  callbackOk: 'callbackOk',
  callbackFailed: 'callbackFailed',
};
const BATCH = 200;

/** The index member of a task: sorts by creation time, then id. */
export function indexMember(createdMs: number, taskId: string): string {
  return `${String(createdMs).padStart(16, '0')}:${taskId}`;
}

function parseMember(member: string): { createdMs: number; taskId: string } {
  return { createdMs: Number(member.slice(0, 16)), taskId: member.slice(17) };
}

type ToRecord = (taskId: string, fields: Record<string, string>, deliveries: string[]) => TaskRecord;

/** A roll-up hash lives this long past its first count (its minutes are kept 48 h). */
const ROLLUP_TTL_SECONDS = 172_800;

/**
 * The redis mode's roll-up counts (rollup-counts.ts): one hash an hour
 * `rollup:<ns>:<hour ms>`, fields `<minute ms>:<counter>`, added to by every process in one
 * pipeline a second.
 */
export function createRedisRollups(client: Redis, prefix: string): RollupCounts {
  return createRollupCounts((due) =>
    withRedis('write roll-ups', async () => {
      const pipeline = client.pipeline();
      for (const [namespace, minutes] of due) {
        const hours = new Set<string>();
        for (const [minuteMs, counters] of minutes) {
          const key = `${prefix}rollup:${namespace}:${Math.floor(minuteMs / HOUR_MS) * HOUR_MS}`;
          hours.add(key);
          for (const [counter, count] of counters) pipeline.hincrby(key, `${minuteMs}:${counter}`, count);
        }
        for (const key of hours) pipeline.expire(key, ROLLUP_TTL_SECONDS, 'NX');
      }
      for (const [error] of (await pipeline.exec()) ?? []) if (error !== null) throw error;
    }),
  );
}
type Lists = Pick<Store, 'listTasks' | 'countTasks' | 'oldestTaskAt' | 'listConversations' | 'getRollups'>;

export function createRedisLists(
  client: Redis,
  prefix: string,
  taskRetentionMs: number,
  toRecord: ToRecord,
  rollups: RollupCounts,
): Lists {
  const tasksKey = (namespace: string, part: string): string => `${prefix}tasks:${namespace}:${part}`;

  /** The set a filter reads, and whether its statuses still need checking on each record. */
  const baseOf = (namespace: string, filter: TaskFilter): { key: string; residual: boolean } => {
    const statuses = filter.statuses ?? [];
    if (filter.conversationId !== undefined) {
      return {
        key: tasksKey(namespace, `conv:${filter.conversationId}`),
        residual: statuses.length > 0 || filter.destination !== undefined,
      };
    }
    if (filter.destination !== undefined) {
      return { key: tasksKey(namespace, `dest:${filter.destination}`), residual: statuses.length > 0 };
    }
    if (statuses.length === 1) return { key: tasksKey(namespace, `status:${statuses[0]}`), residual: false };
    return { key: tasksKey(namespace, 'all'), residual: statuses.length > 1 };
  };

  const matches = (filter: TaskFilter, fields: Record<string, string>): boolean =>
    (filter.statuses === undefined ||
      filter.statuses.length === 0 ||
      filter.statuses.includes(fields.status as TaskRecord['status'])) &&
    (filter.conversationId === undefined || fields.conversationId === filter.conversationId) &&
    (filter.destination === undefined || fields.destination === filter.destination);

  /**
   * The lex range of a filter's time bounds, below `cursor` when given. Expiry is a lower bound
   * (a task lives `taskRetentionMs` from creation), so members of expired tasks are never counted.
   */
  const rangeOf = (filter: TaskFilter, afterMember: string | null): { max: string; min: string } => {
    let max = '+';
    const candidates: string[] = [];
    if (afterMember !== null) candidates.push(afterMember);
    if (filter.untilMs !== undefined) candidates.push(String(filter.untilMs).padStart(16, '0'));
    if (candidates.length > 0) max = `(${candidates.sort()[0]}`;
    const oldestMs = Date.now() - taskRetentionMs + 1;
    const sinceMs = Math.max(filter.sinceMs ?? 0, oldestMs);
    const min = `[${String(sinceMs).padStart(16, '0')}`;
    return { max, min };
  };

  /** The hashes and delivery lists of `members`' tasks, `null` where expired. */
  const readTasks = async (members: string[]) => {
    const pipeline = client.pipeline();
    for (const member of members) {
      const { taskId } = parseMember(member);
      pipeline.hgetall(`${prefix}task:${taskId}`);
      pipeline.lrange(`${prefix}task:${taskId}:deliveries`, 0, -1);
    }
    const replies = (await pipeline.exec()) ?? [];
    return members.map((member, index) => {
      const [fieldsError, fields] = replies[index * 2] as [Error | null, Record<string, string>];
      if (fieldsError !== null) throw fieldsError;
      if (fields.status === undefined) return null;
      const deliveries = (replies[index * 2 + 1]?.[1] as string[] | undefined) ?? [];
      return { member, fields, deliveries };
    });
  };

  /** The filtered-on fields of `members`' tasks, `null` where expired (cheaper than whole records). */
  const readFilterFields = async (members: string[]) => {
    const pipeline = client.pipeline();
    for (const member of members) {
      pipeline.hmget(
        `${prefix}task:${parseMember(member).taskId}`,
        'status',
        'conversationId',
        'destination',
      );
    }
    const replies = (await pipeline.exec()) ?? [];
    return members.map((member, index) => {
      const [error, values] = replies[index] as [Error | null, Array<string | null>];
      if (error !== null) throw error;
      const [status, conversationId, destination] = values;
      if (status === null || status === undefined) return null;
      return {
        member,
        fields: { status, conversationId: conversationId ?? '', destination: destination ?? '' },
      };
    });
  };

  return {
    listTasks: (namespace, filter, limit, cursor) =>
      withRedis('list tasks', async () => {
        const base = baseOf(namespace, filter);
        const after = cursor === null ? null : decodeTaskCursor(cursor);
        const range = rangeOf(filter, after === null ? null : indexMember(after.createdMs, after.taskId));
        const min = range.min;
        let max = range.max;
        const found: TaskRecord[] = [];
        let scanned = 0;
        // The last member read when the scan budget ran out before the page filled.
        let resumeAt: string | null = null;
        for (;;) {
          const want = base.residual ? BATCH : limit + 1 - found.length;
          const members = await client.zrevrangebylex(base.key, max, min, 'LIMIT', 0, want);
          scanned += members.length;
          // With a filter the set does not cover, only the members that match are read whole.
          const wanted = base.residual
            ? (await readFilterFields(members))
                .filter((entry) => entry !== null && matches(filter, entry.fields))
                .map((entry) => entry!.member)
            : members;
          for (const entry of await readTasks(wanted)) {
            if (entry !== null)
              found.push(toRecord(parseMember(entry.member).taskId, entry.fields, entry.deliveries));
            if (found.length > limit) break;
          }
          if (found.length > limit || members.length < want) break;
          const last = members[members.length - 1]!;
          max = `(${last}`;
          if (scanned >= SCAN_BUDGET) {
            resumeAt = last;
            break;
          }
        }
        const tasks = found.slice(0, limit);
        const tail = tasks[tasks.length - 1];
        let nextCursor: string | null = null;
        if (found.length > limit && tail !== undefined) {
          nextCursor = encodeTaskCursor({ createdMs: Date.parse(tail.createdAt), taskId: tail.taskId });
        } else if (resumeAt !== null) {
          nextCursor = encodeTaskCursor(parseMember(resumeAt));
        }
        return { tasks, nextCursor };
      }),

    countTasks: (namespace, filter) =>
      withRedis('count tasks', async () => {
        const { max, min } = rangeOf(filter, null);
        const statuses = filter.statuses ?? [];
        if (filter.conversationId === undefined && filter.destination === undefined) {
          if (statuses.length === 0) return client.zlexcount(tasksKey(namespace, 'all'), min, max);
          const counts = await Promise.all(
            statuses.map((status) => client.zlexcount(tasksKey(namespace, `status:${status}`), min, max)),
          );
          return counts.reduce((sum, n) => sum + n, 0);
        }
        const base = baseOf(namespace, filter);
        if (!base.residual) return client.zlexcount(base.key, min, max);
        let count = 0;
        let upper = max;
        for (;;) {
          const members = await client.zrevrangebylex(base.key, upper, min, 'LIMIT', 0, 1000);
          if (members.length === 0) break;
          for (const entry of await readFilterFields(members)) {
            if (entry !== null && matches(filter, entry.fields)) count++;
          }
          if (members.length < 1000) break;
          upper = `(${members[members.length - 1]}`;
        }
        return count;
      }),

    oldestTaskAt: (namespace, status) =>
      withRedis('read oldest task', async () => {
        const members = await client.zrangebylex(
          tasksKey(namespace, `status:${status}`),
          '-',
          '+',
          'LIMIT',
          0,
          20,
        );
        for (const entry of await readFilterFields(members)) {
          if (entry !== null && entry.fields.status === status) {
            return new Date(parseMember(entry.member).createdMs).toISOString();
          }
        }
        return null;
      }),

    listConversations: (namespace, limit, cursor) =>
      withRedis('list conversations', async () => {
        const key = `${prefix}convs:${namespace}`;
        const after = cursor === null ? null : decodeConversationCursor(cursor);
        const found: ConversationSummary[] = [];
        const gone: string[] = [];
        let offset = 0;
        let exhausted = false;
        while (found.length <= limit && !exhausted) {
          const reply = await client.zrevrangebyscore(
            key,
            after === null ? '+inf' : after.lastActivityMs,
            '-inf',
            'WITHSCORES',
            'LIMIT',
            offset,
            BATCH,
          );
          offset += reply.length / 2;
          exhausted = reply.length / 2 < BATCH;
          const entries: Array<{ id: string; ms: number }> = [];
          for (let index = 0; index < reply.length; index += 2) {
            const id = reply[index]!;
            const ms = Number(reply[index + 1]);
            // Same millisecond as the cursor: members come in reverse order, so those at or above it are done.
            if (after !== null && ms === after.lastActivityMs && id >= after.conversationId) continue;
            entries.push({ id, ms });
          }
          if (entries.length === 0) continue;
          const pipeline = client.pipeline();
          for (const entry of entries)
            pipeline.llen(`${prefix}history:${conversationKey(namespace, entry.id)}`);
          const lengths = (await pipeline.exec()) ?? [];
          entries.forEach((entry, index) => {
            const messages = Number(lengths[index]?.[1] ?? 0);
            // Erased or expired history: the index entry goes too.
            if (messages === 0) gone.push(entry.id);
            else if (found.length <= limit) {
              found.push({
                conversationId: entry.id,
                messages,
                lastActivityAt: new Date(entry.ms).toISOString(),
              });
            }
          });
        }
        if (gone.length > 0) await client.zrem(key, ...gone);
        const conversations = found.slice(0, limit);
        const tail = conversations[conversations.length - 1];
        return {
          conversations,
          nextCursor:
            found.length > limit && tail !== undefined
              ? encodeConversationCursor({
                  lastActivityMs: Date.parse(tail.lastActivityAt),
                  conversationId: tail.conversationId,
                })
              : null,
        };
      }),

    getRollups: (namespace, sinceMs, untilMs) =>
      withRedis('read roll-ups', async () => {
        // One hash an hour, fields `<minute ms>:<counter>`: a day is 25 reads, not 1,440.
        const firstMinute = minuteOf(sinceMs);
        const pipeline = client.pipeline();
        for (let hour = Math.floor(firstMinute / HOUR_MS) * HOUR_MS; hour < untilMs; hour += HOUR_MS) {
          pipeline.hgetall(`${prefix}rollup:${namespace}:${hour}`);
        }
        const byMinute = new Map<number, MinuteRollup>();
        for (const [error, reply] of (await pipeline.exec()) ?? []) {
          if (error !== null) throw error;
          for (const [field, value] of Object.entries(reply as Record<string, string>)) {
            const separator = field.indexOf(':');
            const minuteMs = Number(field.slice(0, separator));
            if (minuteMs < firstMinute || minuteMs >= untilMs) continue;
            let rollup = byMinute.get(minuteMs);
            if (rollup === undefined) {
              rollup = emptyRollup(minuteMs);
              byMinute.set(minuteMs, rollup);
            }
            const name = field.slice(separator + 1);
            const count = Number(value);
            if (name.startsWith('llm')) rollup.llmLatency[Number(name.slice(3))] = count;
            else if (Object.hasOwn(COUNTERS, name)) rollup[COUNTERS[name]!] = count;
          }
        }
        const stored = [...byMinute.values()].sort((a, b) => a.minuteMs - b.minuteMs);
        return rollups.withPending(namespace, stored, sinceMs, untilMs);
      }),
  };
}
