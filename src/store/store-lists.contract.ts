/**
 * The listing side of the store seam (SPEC §12), run by every driver beside the main contract
 * suite: newest-first task pages with filters and cursors, counts, conversations by activity,
 * and the per-minute roll-ups written with each task event.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { StoreContractFactory } from './store.contract.js';
import { conversationKey, type NewTask, type Store, type StoreLimits } from './store.js';
import { latencyBucket, minuteOf, type TaskFilter } from './task-lists.js';

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

/** Every page of a listing, followed through its cursors. */
export async function allPages(
  store: Store,
  namespace: string,
  filter: TaskFilter,
  limit: number,
): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | null = null;
  do {
    const page = await store.listTasks(namespace, filter, limit, cursor);
    pages.push(page.tasks.map((task) => task.taskId));
    cursor = page.nextCursor;
  } while (cursor !== null && pages.length < 50);
  return pages;
}

export function defineStoreListContractTests(name: string, factory: StoreContractFactory): void {
  const withStore = async (run: (store: Store) => Promise<void>) => {
    const { store, cleanup } = await factory(LIMITS);
    try {
      await run(store);
    } finally {
      await cleanup();
    }
  };

  describe(`Store listing contract: ${name}`, () => {
    it('lists tasks newest first, page by page through the cursor, ties broken by id', () =>
      withStore(async (store) => {
        const base = Date.now() - 10_000;
        const tasks = Array.from({ length: 7 }, (_, index) =>
          // Two tasks share each millisecond but the last.
          newTask({ createdAt: new Date(base + Math.floor(index / 2)).toISOString() }),
        );
        for (const task of tasks) await store.createTask(task);
        const expected = [...tasks]
          .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.taskId.localeCompare(b.taskId))
          .reverse()
          .map((task) => task.taskId);
        const pages = await allPages(store, '', {}, 3);
        expect(pages.map((page) => page.length)).toEqual([3, 3, 1]);
        expect(pages.flat()).toEqual(expected);
        const page = await store.listTasks('', {}, 10, null);
        expect(page.nextCursor).toBeNull();
        expect(page.tasks[0]).toMatchObject({
          taskId: expected[0],
          status: 'queued',
          callbackUrl: tasks[0]!.callbackUrl,
        });
        expect(await store.listTasks('other', {}, 10, null)).toEqual({ tasks: [], nextCursor: null });
      }));

    it('filters by status, conversation, destination and time, and counts the same', () =>
      withStore(async (store) => {
        const t0 = Date.now() - 60_000;
        const a = newTask({
          conversationId: 'c1',
          callbackUrl: 'https://a.example/x',
          createdAt: new Date(t0).toISOString(),
        });
        const b = newTask({
          conversationId: 'c1',
          callbackUrl: 'https://a.example:443/y',
          createdAt: new Date(t0 + 10).toISOString(),
        });
        const c = newTask({
          conversationId: 'c2',
          callbackUrl: 'http://b.example:8080/z',
          createdAt: new Date(t0 + 20).toISOString(),
        });
        const other = newTask({
          namespace: 'ns2',
          conversationId: 'c1',
          createdAt: new Date(t0 + 30).toISOString(),
        });
        for (const task of [a, b, c, other]) await store.createTask(task);
        await store.setStatus(a.taskId, 'failed');
        await store.recordLlmAttempt(b.taskId);

        const ids = async (filter: TaskFilter) =>
          (await store.listTasks('', filter, 10, null)).tasks.map((t) => t.taskId);
        expect(await ids({ statuses: ['failed'] })).toEqual([a.taskId]);
        expect(await ids({ statuses: ['processing'] })).toEqual([b.taskId]);
        expect(await ids({ statuses: ['queued'] })).toEqual([c.taskId]);
        expect(await ids({ statuses: ['failed', 'queued'] })).toEqual([c.taskId, a.taskId]);
        expect(await ids({ conversationId: 'c1' })).toEqual([b.taskId, a.taskId]);
        expect(await ids({ destination: 'https://a.example:443' })).toEqual([b.taskId, a.taskId]);
        expect(await ids({ destination: 'http://b.example:8080' })).toEqual([c.taskId]);
        expect(await ids({ conversationId: 'c1', statuses: ['failed'] })).toEqual([a.taskId]);
        expect(await ids({ destination: 'https://a.example:443', statuses: ['processing'] })).toEqual([
          b.taskId,
        ]);
        expect(await ids({ sinceMs: t0 + 10 })).toEqual([c.taskId, b.taskId]);
        expect(await ids({ untilMs: t0 + 10 })).toEqual([a.taskId]);
        expect(await ids({ sinceMs: t0 + 5, untilMs: t0 + 15 })).toEqual([b.taskId]);

        expect(await store.countTasks('', {})).toBe(3);
        expect(await store.countTasks('', { statuses: ['failed', 'processing'] })).toBe(2);
        expect(await store.countTasks('', { conversationId: 'c1' })).toBe(2);
        expect(await store.countTasks('', { conversationId: 'c1', statuses: ['queued'] })).toBe(0);
        expect(await store.countTasks('', { destination: 'https://a.example:443', sinceMs: t0 + 1 })).toBe(1);
        expect(await store.countTasks('ns2', {})).toBe(1);

        expect(await store.oldestTaskAt('', 'queued')).toBe(c.createdAt);
        expect(await store.oldestTaskAt('', 'completed')).toBeNull();
      }));

    it('leaves tasks past their retention out of listings and counts', async () => {
      const { store, cleanup } = await factory({ ...LIMITS, taskRetentionSeconds: 1 });
      try {
        const old = newTask({ createdAt: new Date(Date.now() - 2000).toISOString() });
        const fresh = newTask({ conversationId: old.conversationId });
        await store.createTask(old);
        await store.createTask(fresh);
        expect((await store.listTasks('', {}, 10, null)).tasks.map((t) => t.taskId)).toEqual([fresh.taskId]);
        expect(await store.countTasks('', {})).toBe(1);
        expect(await store.countTasks('', { conversationId: old.conversationId })).toBe(1);
        expect(await store.countTasks('', { statuses: ['queued'] })).toBe(1);
      } finally {
        await cleanup();
      }
    });

    it('follows a task from status to status in the listing', () =>
      withStore(async (store) => {
        const task = newTask();
        await store.createTask(task);
        await store.recordLlmAttempt(task.taskId);
        await store.failGeneration(
          task.taskId,
          { type: 'llm_auth', message: 'no' },
          new Date().toISOString(),
        );
        expect(await store.countTasks('', { statuses: ['delivering'] })).toBe(1);
        await store.recordDelivery(
          task.taskId,
          { at: new Date().toISOString(), status_code: 200, duration_ms: 3 },
          {
            status: 'failed',
            error: { type: 'llm_auth', message: 'no' },
          },
        );
        for (const status of ['queued', 'processing', 'delivering'] as const) {
          expect(await store.countTasks('', { statuses: [status] })).toBe(0);
        }
        const page = await store.listTasks('', { statuses: ['failed'] }, 10, null);
        expect(page.tasks.map((t) => [t.taskId, t.status, t.deliveries.length])).toEqual([
          [task.taskId, 'failed', 1],
        ]);
      }));

    it('lists conversations most recently active first, with their message counts', () =>
      withStore(async (store) => {
        const exchange = async (namespace: string, conversationId: string) => {
          const task = newTask({ namespace, conversationId });
          await store.createTask(task);
          const done = await store.completeGeneration(
            task.taskId,
            conversationKey(namespace, conversationId),
            {
              reply: 'hi',
              model: 'm',
              usage: null,
              completedAt: new Date().toISOString(),
            },
          );
          expect(done).toBe(true);
          // Distinct activity times, so the order is the order of the exchanges.
          await new Promise((resolve) => setTimeout(resolve, 3));
        };
        await exchange('', 'first');
        await exchange('', 'second');
        await exchange('', 'third');
        await exchange('', 'first');
        await exchange('ns2', 'hidden');

        const all = await store.listConversations('', 10, null);
        expect(all.conversations.map((c) => [c.conversationId, c.messages])).toEqual([
          ['first', 4],
          ['third', 2],
          ['second', 2],
        ]);
        expect(all.nextCursor).toBeNull();
        expect(Number.isNaN(Date.parse(all.conversations[0]!.lastActivityAt))).toBe(false);

        const first = await store.listConversations('', 2, null);
        expect(first.conversations.map((c) => c.conversationId)).toEqual(['first', 'third']);
        const rest = await store.listConversations('', 2, first.nextCursor);
        expect(rest.conversations.map((c) => c.conversationId)).toEqual(['second']);
        expect(rest.nextCursor).toBeNull();

        await store.deleteHistory(conversationKey('', 'third'));
        expect(
          (await store.listConversations('', 10, null)).conversations.map((c) => c.conversationId),
        ).toEqual(['first', 'second']);
        expect(
          (await store.listConversations('ns2', 10, null)).conversations.map((c) => c.conversationId),
        ).toEqual(['hidden']);
      }));

    it('rolls task events up per minute, counting a redelivered task once', () =>
      withStore(async (store) => {
        const before = Date.now();
        const ok = newTask({ namespace: 'r' });
        const bad = newTask({ namespace: 'r' });
        await store.createTask(ok);
        await store.createTask(bad);
        await store.createTask(newTask({ namespace: 'elsewhere' }));
        await store.completeGeneration(ok.taskId, conversationKey('r', ok.conversationId), {
          reply: 'x',
          model: 'm',
          usage: null,
          completedAt: new Date().toISOString(),
          llmDurationMs: 700,
        });
        const at = new Date().toISOString();
        await store.recordDelivery(ok.taskId, { at, status_code: 500, duration_ms: 1 });
        await store.recordDelivery(
          ok.taskId,
          { at, status_code: 204, duration_ms: 1 },
          { status: 'completed', error: null },
        );
        // A redelivery: one more attempt and the same final status, not a second completed task.
        await store.recordDelivery(
          ok.taskId,
          { at, status_code: 200, duration_ms: 1 },
          { status: 'completed', error: null },
        );
        await store.failGeneration(bad.taskId, { type: 'llm_auth', message: 'no' }, at);
        await store.recordDelivery(
          bad.taskId,
          { at, error: 'refused', duration_ms: 1 },
          {
            status: 'failed',
            error: { type: 'callback_failed', message: 'refused' },
          },
        );

        const rollups = await store.getRollups('r', before - 120_000, Date.now() + 1);
        const sum = (pick: (r: (typeof rollups)[number]) => number) =>
          rollups.reduce((n, r) => n + pick(r), 0);
        expect(sum((r) => r.accepted)).toBe(2);
        expect(sum((r) => r.completed)).toBe(1);
        expect(sum((r) => r.failed)).toBe(1);
        expect(sum((r) => r.callbackOk)).toBe(2);
        expect(sum((r) => r.callbackFailed)).toBe(2);
        const latency = rollups.reduce((n, r) => n + (r.llmLatency[latencyBucket(700)] ?? 0), 0);
        expect(latency).toBe(1);
        for (const rollup of rollups) expect(rollup.minuteMs).toBe(minuteOf(rollup.minuteMs));
        expect(await store.getRollups('nobody', before - 120_000, Date.now() + 1)).toEqual([]);
      }));
  });
}
