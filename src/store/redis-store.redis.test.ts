import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectUnavailableWhileStopped,
  type RedisServer,
  startRedisServer,
} from '../../test/support/redis-server.js';
import { createRedisClient } from '../backends/redis/redis-connection.js';
import { createRedisStore } from './redis-store.js';
import { defineStoreContractTests, type StoreContractFactory } from './store.contract.js';
import { conversationKey, type NewTask, type StoreLimits } from './store.js';
import { defineStoreListContractTests } from './store-lists.contract.js';

let server: RedisServer;
let client: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  client = createRedisClient(server.url, { role: 'command' });
});

afterAll(async () => {
  client?.disconnect();
  await server?.stop();
});

const LIMITS: StoreLimits = { historyMaxMessages: 20, historyTtlSeconds: 3600, taskRetentionSeconds: 3600 };

function newTask(overrides: Partial<NewTask> = {}): NewTask {
  return {
    taskId: randomUUID(),
    namespace: '',
    conversationId: `conv-${randomUUID()}`,
    message: 'hello',
    callbackUrl: 'https://example.com/callback',
    metadata: null,
    createdAt: new Date().toISOString(),
    ...overrides,
  };
}

const factory: StoreContractFactory = async (limits) => {
  const store = createRedisStore(client, limits, { keyPrefix: `{t-${randomUUID()}}:` });
  return { store, cleanup: () => store.close() };
};
defineStoreContractTests('redis', factory);
defineStoreListContractTests('redis', factory);

describe('redis store', () => {
  it('keeps every key under its hash-tagged prefix, with expiry on tasks and history', async () => {
    const prefix = `{t-${randomUUID()}}:`;
    const store = createRedisStore(client, LIMITS, { keyPrefix: prefix });
    const task = newTask();
    await store.createTask(task);
    await store.recordDelivery(task.taskId, {
      at: new Date().toISOString(),
      status_code: 200,
      duration_ms: 1,
    });
    await store.completeGeneration(task.taskId, conversationKey('', task.conversationId), {
      reply: 'hi',
      model: 'm',
      usage: null,
      completedAt: new Date().toISOString(),
    });
    await store.claimIdempotencyKey('k', 'fp', task.taskId, 60);
    const keys = await client.keys(`*${prefix.slice(1, -2)}*`);
    expect(keys.length).toBeGreaterThanOrEqual(4);
    for (const key of keys) expect(key.startsWith(prefix)).toBe(true);
    for (const key of keys) expect(await client.pttl(key)).toBeGreaterThan(0);
  });

  it('keeps the last exchanges only, trimmed to the history limit', async () => {
    const store = createRedisStore(
      client,
      { ...LIMITS, historyMaxMessages: 4 },
      { keyPrefix: `{t-${randomUUID()}}:` },
    );
    const conversationId = `conv-${randomUUID()}`;
    const key = conversationKey('', conversationId);
    for (let index = 1; index <= 3; index++) {
      const task = newTask({ conversationId, message: `m${index}\nwith a newline` });
      await store.createTask(task);
      await store.completeGeneration(task.taskId, key, {
        reply: `r${index}`,
        model: 'm',
        usage: null,
        completedAt: new Date().toISOString(),
      });
    }
    expect((await store.getHistory(key, 100)).map((m) => m.content)).toEqual([
      'm2\nwith a newline',
      'r2',
      'm3\nwith a newline',
      'r3',
    ]);
  });

  it('rejects with BackendUnavailableError within 2 s while Redis is down, and works after a restart', async () => {
    const store = createRedisStore(client, LIMITS, { keyPrefix: `{t-${randomUUID()}}:` });
    await store.createTask(newTask());
    await expectUnavailableWhileStopped(
      server,
      [() => store.createTask(newTask()), () => store.ping()],
      () => store.ping(),
      15_000,
    );
    const task = newTask();
    await store.createTask(task);
    expect((await store.getTaskById(task.taskId))?.status).toBe('queued');
  });

  it('adds up the per-minute counts of several processes within a second, and those pending at close', async () => {
    const namespace = `ns-${randomUUID()}`;
    const prefix = `{rollups-${randomUUID()}}:`;
    const workerA = createRedisStore(client, LIMITS, { keyPrefix: prefix });
    const workerB = createRedisStore(client, LIMITS, { keyPrefix: prefix });
    const reader = createRedisStore(client, LIMITS, { keyPrefix: prefix });
    const accepted = async () =>
      (await reader.getRollups(namespace, Date.now() - 120_000, Date.now() + 60_000)).reduce(
        (sum, minute) => sum + minute.accepted,
        0,
      );
    await workerA.createTask(newTask({ namespace }));
    await workerB.createTask(newTask({ namespace }));
    await workerB.createTask(newTask({ namespace }));
    // Written once a second by each process, seen by any other.
    await expect.poll(accepted, { timeout: 3000 }).toBe(3);
    await workerA.createTask(newTask({ namespace }));
    await workerA.close();
    expect(await accepted()).toBe(4);
    await workerB.close();
    await reader.close();
  });
});
