import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteDatabase, type SqliteDatabase } from '../backends/sqlite/sqlite-database.js';
import { waitFor } from '../dev/harness.js';
import { createSqliteStore } from './sqlite-store.js';
import { STORE_MIGRATIONS } from './sqlite-store-rows.js';
import { defineStoreContractTests, type StoreContractFactory } from './store.contract.js';
import { conversationKey, type NewTask, type StoreLimits } from './store.js';
import { allPages, defineStoreListContractTests } from './store-lists.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'sqlite-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LIMITS: StoreLimits = { historyMaxMessages: 20, historyTtlSeconds: 3600, taskRetentionSeconds: 3600 };

function newTask(overrides: Partial<NewTask> = {}): NewTask {
  return {
    taskId: randomUUID(),
    namespace: '',
    conversationId: 'conv',
    message: 'hello',
    callbackUrl: 'https://example.com/cb',
    metadata: { a: 1 },
    createdAt: new Date().toISOString(),
    ...overrides,
  };
}

const factory: StoreContractFactory = async (limits) => {
  const db = openSqliteDatabase({ path: join(dir, `${randomUUID()}.sqlite`) });
  const store = createSqliteStore(db, limits);
  return {
    store,
    cleanup: async () => {
      await store.close();
      db.close();
    },
  };
};
defineStoreContractTests('sqlite', factory);
defineStoreListContractTests('sqlite', factory);

describe('createSqliteStore', () => {
  it('keeps tasks, history and idempotency keys across close and reopen of the file', async () => {
    const path = join(dir, `${randomUUID()}.sqlite`);
    const db = openSqliteDatabase({ path });
    const store = createSqliteStore(db, LIMITS);
    const task = newTask();
    const key = conversationKey('', task.conversationId);
    await store.createTask(task);
    const completedAt = new Date().toISOString();
    await store.completeGeneration(task.taskId, key, { reply: 'hi', model: 'm', usage: null, completedAt });
    await store.recordDelivery(task.taskId, { at: completedAt, status_code: 200, duration_ms: 5 });
    await store.claimIdempotencyKey('k', 'fp', task.taskId, 3600);
    const before = await store.getTaskById(task.taskId);
    await store.close();
    db.close();

    const reopened = openSqliteDatabase({ path });
    const again = createSqliteStore(reopened, LIMITS);
    expect(await again.getTaskById(task.taskId)).toEqual(before);
    expect((await again.getHistory(key, 10)).map((m) => m.content)).toEqual(['hello', 'hi']);
    expect(await again.claimIdempotencyKey('k', 'fp', randomUUID(), 3600)).toEqual({
      outcome: 'replay',
      taskId: task.taskId,
    });
    await again.close();
    reopened.close();
  });

  it('purges expired rows in the background', async () => {
    const db = openSqliteDatabase({ path: ':memory:' });
    const store = createSqliteStore(
      db,
      { historyMaxMessages: 20, historyTtlSeconds: 1, taskRetentionSeconds: 1 },
      { purgeIntervalMs: 50 },
    );
    const task = newTask();
    await store.createTask(task);
    await store.completeGeneration(task.taskId, 'conv', {
      reply: 'r',
      model: 'm',
      usage: null,
      completedAt: new Date().toISOString(),
    });
    await store.claimIdempotencyKey('k', 'fp', task.taskId, 1);
    const count = (table: string) => db.prepare<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).get()!.n;
    expect(count('tasks') + count('history') + count('conversations') + count('idempotency_keys')).toBe(5);
    await waitFor(
      () => count('tasks') + count('history') + count('conversations') + count('idempotency_keys') === 0,
      'expired rows to be purged',
      { timeoutMs: 10_000 },
    );
    await store.close();
    db.close();
  });

  it("purges each namespace's expired conversations through the activity index, and the first schema's", async () => {
    const db = openSqliteDatabase({ path: ':memory:' });
    const store = createSqliteStore(
      db,
      { historyMaxMessages: 20, historyTtlSeconds: 1, taskRetentionSeconds: 3600 },
      { purgeIntervalMs: 50 },
    );
    const exchange = async (namespace: string, conversationId: string): Promise<void> => {
      const task = newTask({ namespace, conversationId });
      await store.createTask(task);
      await store.completeGeneration(task.taskId, conversationKey(namespace, conversationId), {
        reply: 'r',
        model: 'm',
        usage: null,
        completedAt: new Date().toISOString(),
      });
    };
    await exchange('', 'c1');
    await exchange('tenant-a', 'c1');
    await exchange('tenant-b', 'c2');
    // A row of the first schema: no namespace, no activity, only its expiry.
    await db.write(() =>
      db
        .prepare(
          'INSERT INTO conversations (conversation_key, next_position, expires_at_ms) VALUES (?, 0, ?)',
        )
        .run('legacy', Date.now() - 1),
    );
    const keys = () =>
      db
        .prepare<{ conversation_key: string }>('SELECT conversation_key FROM conversations ORDER BY 1')
        .all()
        .map((row) => row.conversation_key);
    expect(keys()).toEqual(['c1', 'legacy', 'tenant-a:c1', 'tenant-b:c2']);
    await waitFor(() => keys().length === 0, 'expired conversations to be purged', { timeoutMs: 10_000 });
    expect(db.prepare<{ n: number }>('SELECT count(*) AS n FROM history').get()!.n).toBe(0);

    // A conversation within its TTL stays through several purges.
    await exchange('tenant-a', 'live');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(keys()).toEqual(['tenant-a:live']);
    // One index of conversations moves with each exchange: the activity index, not an expiry one.
    const indexes = db
      .prepare<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'conversations' AND sql IS NOT NULL",
      )
      .all()
      .map((row) => row.name);
    expect(indexes).toEqual(['conversations_by_activity']);
    await store.close();
    db.close();
  });

  it('upgrades a file of the fourth schema: its listing indexes lose task_id, its tasks list as before', async () => {
    const path = join(dir, `${randomUUID()}.sqlite`);
    const old = openSqliteDatabase({ path });
    old.migrate('store', STORE_MIGRATIONS.slice(0, 4));
    const base = Date.now() - 10_000;
    // Five tasks, the newest three in the same millisecond (a page boundary among them), written as
    // the fourth schema's build did.
    const ids = Array.from({ length: 5 }, () => randomUUID());
    await old.write(() => {
      const insert = old.prepare(
        `INSERT INTO tasks (task_id, namespace, conversation_id, message, callback_url, created_at, status,
           updated_at, expires_at_ms, destination)
         VALUES (?, '', 'conv', 'hello', 'https://example.com/cb', ?, 'queued', ?, ?, 'https://example.com:443')`,
      );
      ids.forEach((id, index) => {
        const createdAt = new Date(base + Math.min(index, 2)).toISOString();
        insert.run(id, createdAt, createdAt, Date.now() + 3_600_000);
      });
    });
    const columnsOf = (db: SqliteDatabase, index: string): string[] =>
      db
        .prepare<{ name: string }>(`SELECT name FROM pragma_index_info('${index}') ORDER BY seqno`)
        .all()
        .map((row) => row.name);
    expect(columnsOf(old, 'tasks_by_status')).toEqual(['namespace', 'status', 'created_at', 'task_id']);
    old.close();

    const db = openSqliteDatabase({ path });
    const store = createSqliteStore(db, LIMITS);
    expect(columnsOf(db, 'tasks_by_time')).toEqual(['namespace', 'created_at']);
    expect(columnsOf(db, 'tasks_by_status')).toEqual(['namespace', 'status', 'created_at']);
    expect(columnsOf(db, 'tasks_by_conversation')).toEqual(['namespace', 'conversation_id', 'created_at']);
    expect(columnsOf(db, 'tasks_by_destination')).toEqual(['namespace', 'destination', 'created_at']);
    const expected = ids
      .map((id, index) => ({ id, at: base + Math.min(index, 2) }))
      .sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1))
      .map((task) => task.id);
    expect((await allPages(store, '', { statuses: ['queued'] }, 2)).flat()).toEqual(expected);
    expect(await store.countTasks('', { conversationId: 'conv' })).toBe(5);
    await store.close();
    db.close();
  });

  it('keeps at most historyMaxMessages messages per conversation', async () => {
    const db = openSqliteDatabase({ path: ':memory:' });
    const store = createSqliteStore(db, { ...LIMITS, historyMaxMessages: 4 });
    for (let index = 1; index <= 4; index++) {
      const task = newTask({ message: `m${index}` });
      await store.createTask(task);
      await store.completeGeneration(task.taskId, 'conv', {
        reply: `r${index}`,
        model: 'm',
        usage: null,
        completedAt: new Date().toISOString(),
      });
    }
    expect((await store.getHistory('conv', 100)).map((m) => m.content)).toEqual(['m3', 'r3', 'm4', 'r4']);
    expect(db.prepare<{ n: number }>('SELECT count(*) AS n FROM history').get()!.n).toBe(4);
    await store.close();
    db.close();
  });

  it('writes the per-minute counts within a second, and the ones pending at close, so a reopened file has them', async () => {
    const path = join(dir, `${randomUUID()}.sqlite`);
    const db = openSqliteDatabase({ path });
    const store = createSqliteStore(db, LIMITS);
    const rowsInTable = () =>
      db.read(() => db.prepare<{ accepted: number }>('SELECT accepted FROM rollups').all());
    const task = newTask();
    await store.createTask(task);
    const since = Date.now() - 120_000;
    // Read at once: the pending count is added to the table's.
    expect((await store.getRollups('', since, Date.now() + 60_000)).map((minute) => minute.accepted)).toEqual(
      [1],
    );
    await waitFor(async () => (await rowsInTable()).length === 1, 'the counts to be written', {
      timeoutMs: 3000,
    });
    await store.createTask(newTask());
    await store.close();
    db.close();
    const reopened = openSqliteDatabase({ path });
    const again = createSqliteStore(reopened, LIMITS);
    expect((await again.getRollups('', since, Date.now() + 60_000)).map((minute) => minute.accepted)).toEqual(
      [2],
    );
    await again.close();
    reopened.close();
  });
});
