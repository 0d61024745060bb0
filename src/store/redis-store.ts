/**
 * The redis mode's `Store`: task records, conversation history and idempotency keys in Redis.
 *
 * Keys (all under one prefix, by default `{llm-webhook}:`, whose hash tag puts every key in one
 * Redis Cluster slot, so the multi-key scripts are legal there):
 * - `task:<id>` hash: the record's fields; absent field = null. Expires `taskRetentionSeconds`
 *   after creation (PEXPIREAT, kept by later HSETs).
 * - `task:<id>:deliveries` list of delivery attempts (JSON), expiring with its task.
 * - `history:<conversation key>` list of `role \n at \n content` entries, trimmed to the last
 *   `max(2, historyMaxMessages)`, expiring `historyTtlSeconds` after the last append.
 * - `idem:<key>` hash {fingerprint, taskId} with the claim's TTL.
 * - `usage:<namespace>:<YYYY-MM-DD>` hash of the day's usage roll-ups: field = metric letter
 *   (`r` requests, `p` prompt, `c` completion, `t` total tokens, `n` cost in nano-USD) followed by
 *   the JSON `[model, conversation id]`; `usage-total:<client>:d:<day>` and
 *   `usage-total:<client>:m:<YYYY-MM>` hashes of the same letters, for budgets. Kept
 *   `USAGE_RETENTION_DAYS` after their last update (redis-store-usage.ts reads them).
 *
 * Every state change that reads before it writes is one Lua script (atomic on the server;
 * redis-store-scripts.ts): a job run twice after a crash, or two workers racing, can never append
 * an exchange twice.
 */
import type { Redis } from 'ioredis';
import { pingRedis, withRedis } from '../backends/redis/redis-connection.js';
import type { ScriptArg } from '../backends/redis/redis-scripts.js';
import { destinationOf } from '../shared/destination.js';
import { createRedisLists, createRedisRollups, indexMember } from './redis-store-lists.js';
import { defineStoreScripts } from './redis-store-scripts.js';
import { createRedisUsage } from './redis-store-usage.js';
import type {
  DeliveryAttempt,
  HistoryMessage,
  IdempotencyClaim,
  LlmOptions,
  Store,
  StoreLimits,
  TaskError,
  TaskRecord,
  TaskStatus,
  Usage,
} from './store.js';

export interface RedisStoreOptions {
  /** Prefix of every key (default `{llm-webhook}:`); keep a `{hash tag}` for Redis Cluster. */
  keyPrefix?: string;
}

function parseJson<T>(text: string | undefined): T | null {
  return text === undefined || text === '' ? null : (JSON.parse(text) as T);
}

function toRecord(taskId: string, fields: Record<string, string>, deliveries: string[]): TaskRecord {
  return {
    taskId,
    namespace: fields.namespace ?? '',
    conversationId: fields.conversationId ?? '',
    message: fields.message ?? '',
    callbackUrl: fields.callbackUrl ?? '',
    metadata: parseJson<Record<string, unknown>>(fields.metadata),
    createdAt: fields.createdAt ?? '',
    options: parseJson<LlmOptions>(fields.options),
    client: fields.client ?? fields.namespace ?? '',
    status: (fields.status ?? 'queued') as TaskStatus,
    updatedAt: fields.updatedAt ?? fields.createdAt ?? '',
    generatedResponse: fields.generatedResponse ?? null,
    model: fields.model ?? null,
    usage: parseJson<Usage>(fields.usage),
    error: parseJson<TaskError>(fields.error),
    completedAt: fields.completedAt ?? null,
    attempts: { llm: Number(fields.llmAttempts ?? 0), callback: Number(fields.callbackAttempts ?? 0) },
    deliveries: deliveries.map((entry) => JSON.parse(entry) as DeliveryAttempt),
  };
}

function toHistoryMessage(entry: string): HistoryMessage {
  const roleEnd = entry.indexOf('\n');
  const atEnd = entry.indexOf('\n', roleEnd + 1);
  return {
    role: entry.slice(0, roleEnd) === 'user' ? 'user' : 'assistant',
    at: entry.slice(roleEnd + 1, atEnd),
    content: entry.slice(atEnd + 1),
  };
}

/**
 * Creates a `Store` on `client` (a `command` client from backends/redis/redis-connection.ts). The client stays
 * the caller's: `close()` does not disconnect it.
 */
export function createRedisStore(client: Redis, limits: StoreLimits, options: RedisStoreOptions = {}): Store {
  const prefix = options.keyPrefix ?? '{llm-webhook}:';
  const taskKey = (taskId: string): string => `${prefix}task:${taskId}`;
  const deliveriesKey = (taskId: string): string => `${prefix}task:${taskId}:deliveries`;
  const historyKey = (key: string): string => `${prefix}history:${key}`;
  const idempotencyKey = (key: string): string => `${prefix}idem:${key}`;
  const taskRetentionMs = limits.taskRetentionSeconds * 1000;
  // The newest exchange is always kept, whatever the prompt limit, so a conversation stays visible.
  const historyKeep = Math.max(2, limits.historyMaxMessages);
  const run = defineStoreScripts(client);
  const usage = createRedisUsage(client, prefix);
  const rollups = createRedisRollups(client, prefix);

  const getTaskById = (taskId: string): Promise<TaskRecord | null> =>
    withRedis('read task', async () => {
      const replies = await client
        .multi()
        .hgetall(taskKey(taskId))
        .lrange(deliveriesKey(taskId), 0, -1)
        .exec();
      if (replies === null) throw new Error('transaction aborted');
      const [[fieldsError, fields], [deliveriesError, deliveries]] = replies as [
        [Error | null, Record<string, string>],
        [Error | null, string[]],
      ];
      if (fieldsError !== null) throw fieldsError;
      if (deliveriesError !== null) throw deliveriesError;
      if (fields.status === undefined) return null;
      return toRecord(taskId, fields, deliveries);
    });

  return {
    ...createRedisLists(client, prefix, taskRetentionMs, toRecord, rollups),

    createTask: (task) =>
      withRedis('create task', async () => {
        const createdMs = Date.parse(task.createdAt);
        const createdAtMs = Number.isFinite(createdMs) ? createdMs : Date.now();
        const fields: ScriptArg[] = [
          'namespace',
          task.namespace,
          'conversationId',
          task.conversationId,
          'message',
          task.message,
          'callbackUrl',
          task.callbackUrl,
          'createdAt',
          task.createdAt,
          'status',
          'queued',
          'updatedAt',
          task.createdAt,
          'llmAttempts',
          0,
          'callbackAttempts',
          0,
          'expiresAtMs',
          createdAtMs + taskRetentionMs,
          'createdAtMs',
          createdAtMs,
          'destination',
          destinationOf(task.callbackUrl),
          'indexMember',
          indexMember(createdAtMs, task.taskId),
        ];
        if (task.metadata !== null) fields.push('metadata', JSON.stringify(task.metadata));
        if (task.client !== undefined) fields.push('client', task.client);
        if (task.options !== undefined && task.options !== null) {
          fields.push('options', JSON.stringify(task.options));
        }
        const created = await run(
          'llmwStoreCreateTask',
          [taskKey(task.taskId), deliveriesKey(task.taskId)],
          [createdAtMs + taskRetentionMs, ...fields],
        );
        if (created === 1) rollups.bump(task.namespace, Date.now(), 'accepted');
      }),

    async getTask(namespace, taskId) {
      const task = await getTaskById(taskId);
      return task !== null && task.namespace === namespace ? task : null;
    },

    getTaskById,

    setStatus: (taskId, status, error) =>
      withRedis('update task', async () => {
        const mode = error === undefined ? 'keep' : error === null ? 'clear' : 'set';
        await run(
          'llmwStoreSetStatus',
          [taskKey(taskId)],
          [status, new Date().toISOString(), mode, error ? JSON.stringify(error) : ''],
        );
      }),

    recordLlmAttempt: (taskId) =>
      withRedis('update task', async () => {
        await run('llmwStoreLlmAttempt', [taskKey(taskId)], [new Date().toISOString()]);
      }),

    completeGeneration: (taskId, key, generation) =>
      withRedis('complete generation', async () => {
        let { namespace, conversationId, client: charged } = generation;
        if (namespace === undefined || conversationId === undefined || charged === undefined) {
          const [storedNamespace, storedConversation, storedClient] = await client.hmget(
            taskKey(taskId),
            'namespace',
            'conversationId',
            'client',
          );
          namespace = storedNamespace ?? '';
          conversationId = storedConversation ?? '';
          charged = storedClient ?? namespace;
        }
        const rollup = usage.rollupOf(namespace, charged, conversationId, generation);
        const applied = await run(
          'llmwStoreComplete',
          [taskKey(taskId), historyKey(key), ...rollup.keys],
          [
            generation.reply,
            generation.model,
            generation.usage === null ? '' : JSON.stringify(generation.usage),
            generation.completedAt,
            new Date().toISOString(),
            limits.historyTtlSeconds,
            historyKeep,
            ...rollup.args,
          ],
        );
        if (!Array.isArray(applied)) return false;
        if (generation.llmDurationMs !== undefined) {
          rollups.bumpLlm(String(applied[0]), Date.now(), generation.llmDurationMs);
        }
        return true;
      }),

    failGeneration: (taskId, error, completedAt) =>
      withRedis('fail generation', async () => {
        const applied = await run(
          'llmwStoreFail',
          [taskKey(taskId)],
          [JSON.stringify(error), completedAt, new Date().toISOString()],
        );
        return applied === 1;
      }),

    recordDelivery: (taskId, attempt, final) =>
      withRedis('record delivery', async () => {
        const recorded = await run(
          'llmwStoreDelivery',
          [taskKey(taskId), deliveriesKey(taskId)],
          [
            JSON.stringify(attempt),
            new Date().toISOString(),
            final?.status ?? '',
            final?.error ? JSON.stringify(final.error) : '',
          ],
        );
        if (!Array.isArray(recorded)) return;
        const firstFinal = final !== undefined && recorded[1] === 1 ? final.status : null;
        rollups.bumpDelivery(String(recorded[0]), attempt, firstFinal);
      }),

    getHistory: (key, limit) =>
      withRedis('read history', async () => {
        if (limit <= 0) return [];
        const entries = await client.lrange(historyKey(key), -Math.trunc(limit), -1);
        return entries.map(toHistoryMessage);
      }),

    deleteHistory: (key) => withRedis('delete history', async () => (await client.del(historyKey(key))) > 0),

    claimIdempotencyKey: (key, fingerprint, taskId, ttlSeconds) =>
      withRedis('claim idempotency key', async (): Promise<IdempotencyClaim> => {
        const reply = (await run(
          'llmwStoreClaim',
          [idempotencyKey(key)],
          [fingerprint, taskId, Math.max(1, Math.ceil(ttlSeconds))],
        )) as [string, string?];
        const [outcome, firstTaskId = ''] = reply;
        if (outcome === 'created') return { outcome: 'created' };
        return { outcome: outcome === 'replay' ? 'replay' : 'conflict', taskId: firstTaskId };
      }),

    releaseIdempotencyKey: (key, taskId) =>
      withRedis('release idempotency key', async () => {
        await run('llmwStoreRelease', [idempotencyKey(key)], [taskId]);
      }),

    getUsage: (namespace, query) => withRedis('read usage', () => usage.query(namespace, query)),

    getUsageTotal: (charged, period) => withRedis('read usage', () => usage.total(charged, period)),

    ping: () => pingRedis(client),

    async close() {
      await rollups.close().catch(() => {});
    },
  };
}
