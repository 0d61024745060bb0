/**
 * What each step of a task's life in the redis store costs Redis, per task, for a built checkout
 * (`npm run build` in it first):
 *
 *   npx tsx bench/redis-store-cost.ts <checkout> [tasks=20000]
 *
 * Redis' CPU time (user + system) and the commands it ran (those called by scripts included),
 * step by step: create, read, LLM attempt, completion (history, usage roll-ups), final delivery
 * record, each run for every task before the next, 50 tasks at a time over 1,000 conversations,
 * against a redis-server of its own. The steps are the same for any checkout, so two checkouts'
 * figures compare; run them one after the other (a run's figures move by a few percent from the
 * last). Prints one JSON line.
 */
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import type { Redis as RedisClient } from 'ioredis';
import type { Store } from '../src/store/store.js';
import { startRedisServer } from '../test/support/redis-server.js';
import { redisCli, redisStats } from './redis-stats.js';

const repo = resolve(process.argv[2] ?? '.');
const tasks = Number(process.argv[3] ?? 20_000);
const AT_ONCE = 50;

/** The checkout's own store and ioredis (its built `dist/` and its `node_modules`). */
const { createRedisStore } = (await import(`${repo}/dist/store/redis-store.js`)) as {
  createRedisStore(client: RedisClient, limits: Record<string, number>): Store;
};
const { Redis } = (await import(`${repo}/node_modules/ioredis/built/index.js`)) as {
  Redis: new (url: string, options: Record<string, unknown>) => RedisClient;
};

const redis = await startRedisServer();
const client = new Redis(redis.url, { enableAutoPipelining: true });
const store = createRedisStore(client, {
  historyMaxMessages: 20,
  historyTtlSeconds: 604_800,
  taskRetentionSeconds: 604_800,
});

const ids = Array.from({ length: tasks }, () => randomUUID());
const conversation = (index: number): string => `c${index % 1000}`;
const now = (): string => new Date().toISOString();
const figures: Record<string, { redisCpuUs: number; commands: number }> = {};

async function step(name: string, run: (taskId: string, index: number) => Promise<unknown>): Promise<void> {
  redisCli(redis.url, 'CONFIG', 'RESETSTAT');
  const before = redisStats(redis.url);
  for (let start = 0; start < tasks; start += AT_ONCE) {
    await Promise.all(ids.slice(start, start + AT_ONCE).map((id, offset) => run(id, start + offset)));
  }
  const after = redisStats(redis.url);
  figures[name] = {
    redisCpuUs: +(((after.cpuMs - before.cpuMs) * 1000) / tasks).toFixed(1),
    commands: +(after.commands / tasks).toFixed(1),
  };
}

try {
  await step('create', (taskId, index) =>
    store.createTask({
      taskId,
      namespace: '',
      client: 'ip:127.0.0.1',
      conversationId: conversation(index),
      message: `run ${index}`,
      callbackUrl: 'http://127.0.0.1:9/cb',
      metadata: null,
      createdAt: now(),
    }),
  );
  await step('read', (taskId) => store.getTaskById(taskId));
  await step('llmAttempt', (taskId) => store.recordLlmAttempt(taskId));
  await step('complete', (taskId, index) =>
    store.completeGeneration(taskId, conversation(index), {
      reply: `Reply to run ${index}`,
      model: 'openai/gpt-4o-mini',
      usage: { prompt_tokens: 100, completion_tokens: 8, total_tokens: 108, cost: 0.0001 },
      completedAt: now(),
      namespace: '',
      conversationId: conversation(index),
      client: 'ip:127.0.0.1',
      llmDurationMs: 3,
    }),
  );
  await step('delivery', (taskId) =>
    store.recordDelivery(
      taskId,
      { at: now(), status_code: 200, duration_ms: 2 },
      { status: 'completed', error: null },
    ),
  );
  const total = Object.values(figures).reduce((sum, { redisCpuUs }) => sum + redisCpuUs, 0);
  console.log(JSON.stringify({ repo, tasks, ...figures, redisCpuUsPerTask: +total.toFixed(1) }));
} finally {
  await store.close();
  client.disconnect();
  await redis.stop();
}
