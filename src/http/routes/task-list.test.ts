import { describe, expect, it } from 'vitest';
import { buildTestServer, type TestServer } from '../../../test/support/http-harness.js';
import type { Job } from '../../queue/job-queue.js';
import { conversationKey } from '../../store/store.js';

const TOKEN_A = 'token-a-0123456789abcdef';
const TOKEN_B = 'token-b-0123456789abcdef';

async function submit(
  app: TestServer['app'],
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<string> {
  const response = await app.inject({
    method: 'POST',
    url: '/webhook',
    payload: { message: 'Hi', ...body },
    headers,
  });
  expect(response.statusCode).toBe(200);
  return (response.json() as { task_id: string }).task_id;
}

async function finish(server: TestServer, taskId: string, status: 'completed' | 'failed'): Promise<void> {
  const task = (await server.store.getTaskById(taskId))!;
  await server.store.completeGeneration(taskId, conversationKey(task.namespace, task.conversationId), {
    reply: 'Hello',
    model: 'm',
    usage: null,
    completedAt: new Date().toISOString(),
    llmDurationMs: 300,
  });
  await server.store.recordDelivery(
    taskId,
    { at: new Date().toISOString(), status_code: status === 'completed' ? 200 : 500, duration_ms: 5 },
    { status, error: status === 'failed' ? { type: 'callback_failed', message: 'HTTP 500' } : null },
  );
}

describe('GET /tasks', () => {
  it('lists tasks newest first, filtered and paged through next_cursor', async () => {
    const server = await buildTestServer();
    const { app } = server;
    const ids: string[] = [];
    for (let index = 0; index < 5; index++) {
      ids.push(
        await submit(app, {
          callback_url: `https://r${index % 2}.example/hook`,
          conversation_id: `c${index % 2}`,
        }),
      );
    }
    await finish(server, ids[0]!, 'failed');
    await finish(server, ids[1]!, 'completed');

    const first = await app.inject({ method: 'GET', url: '/tasks?limit=2' });
    expect(first.statusCode).toBe(200);
    const page1 = first.json() as {
      tasks: Array<{ task_id: string; destination: string }>;
      next_cursor: string;
    };
    const page2 = (
      await app.inject({ method: 'GET', url: `/tasks?limit=2&cursor=${page1.next_cursor}` })
    ).json() as { tasks: Array<{ task_id: string }>; next_cursor: string };
    const page3 = (
      await app.inject({ method: 'GET', url: `/tasks?limit=2&cursor=${page2.next_cursor}` })
    ).json() as { tasks: Array<{ task_id: string }>; next_cursor: string | null };
    expect([...page1.tasks, ...page2.tasks, ...page3.tasks].map((t) => t.task_id).sort()).toEqual(
      [...ids].sort(),
    );
    expect(page3.next_cursor).toBeNull();
    expect(page1.tasks[0]!.destination).toMatch(/^https:\/\/r[01]\.example:443$/);

    const failed = (await app.inject({ method: 'GET', url: '/tasks?status=failed' })).json() as {
      tasks: Array<{ task_id: string; status: string; error: unknown; completed_at: string }>;
    };
    expect(failed.tasks.map((t) => t.task_id)).toEqual([ids[0]]);
    expect(failed.tasks[0]).toMatchObject({ status: 'failed', error: { type: 'callback_failed' } });
    const byConversation = (await app.inject({ method: 'GET', url: '/tasks?conversation_id=c1' })).json() as {
      tasks: Array<{ task_id: string }>;
    };
    expect(byConversation.tasks.map((t) => t.task_id).sort()).toEqual([ids[1], ids[3]].sort());
    const destination = encodeURIComponent('https://r0.example:443');
    const byDestination = (
      await app.inject({ method: 'GET', url: `/tasks?destination=${destination}` })
    ).json() as {
      tasks: unknown[];
    };
    expect(byDestination.tasks).toHaveLength(3);
    const future = encodeURIComponent(new Date(Date.now() + 60_000).toISOString());
    expect((await app.inject({ method: 'GET', url: `/tasks?since=${future}` })).json()).toEqual({
      tasks: [],
      next_cursor: null,
    });
  });

  it('refuses a bad cursor, limit, status or time with a 4xx and a detail', async () => {
    const { app } = await buildTestServer();
    const bad = await app.inject({ method: 'GET', url: '/tasks?cursor=nonsense' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({ detail: 'Invalid cursor' });
    for (const query of ['limit=0', 'limit=1000', 'limit=abc', 'status=done', 'since=yesterday']) {
      const response = await app.inject({ method: 'GET', url: `/tasks?${query}` });
      expect(response.statusCode, query).toBe(422);
      expect(response.json(), query).toHaveProperty('detail');
    }
  });

  it("shows a token only its own client's tasks, conversations and figures", async () => {
    const server = await buildTestServer({ API_TOKENS: `${TOKEN_A},${TOKEN_B}` });
    const { app } = server;
    const a = { authorization: `Bearer ${TOKEN_A}` };
    const b = { authorization: `Bearer ${TOKEN_B}` };
    const taskA = await submit(app, { callback_url: 'https://same.example/hook' }, a);
    await finish(server, taskA, 'completed');
    for (const url of ['/tasks', '/conversations', '/stats']) {
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(401);
    }
    const listA = (await app.inject({ method: 'GET', url: '/tasks', headers: a })).json() as {
      tasks: unknown[];
    };
    const listB = (await app.inject({ method: 'GET', url: '/tasks', headers: b })).json() as {
      tasks: unknown[];
    };
    expect([listA.tasks.length, listB.tasks.length]).toEqual([1, 0]);
    const convA = (await app.inject({ method: 'GET', url: '/conversations', headers: a })).json() as {
      conversations: unknown[];
    };
    const convB = (await app.inject({ method: 'GET', url: '/conversations', headers: b })).json() as {
      conversations: unknown[];
    };
    expect([convA.conversations.length, convB.conversations.length]).toEqual([1, 0]);
    const statsA = (await app.inject({ method: 'GET', url: '/stats?minutes=5', headers: a })).json() as {
      totals: { accepted: number };
    };
    const statsB = (await app.inject({ method: 'GET', url: '/stats?minutes=5', headers: b })).json() as {
      totals: { accepted: number };
    };
    expect([statsA.totals.accepted, statsB.totals.accepted]).toEqual([1, 0]);
    const dryB = await app.inject({
      method: 'POST',
      url: '/tasks/redeliver',
      payload: { dry_run: true },
      headers: b,
    });
    expect(dryB.json()).toEqual({ matched: 0 });
  });
});

describe('GET /conversations', () => {
  it('lists conversations with their message counts, most recent first', async () => {
    const server = await buildTestServer();
    const older = await submit(server.app, {
      callback_url: 'https://x.example/hook',
      conversation_id: 'older',
    });
    await finish(server, older, 'completed');
    await new Promise((resolve) => setTimeout(resolve, 5));
    const newer = await submit(server.app, {
      callback_url: 'https://x.example/hook',
      conversation_id: 'newer',
    });
    await finish(server, newer, 'completed');
    const response = await server.app.inject({ method: 'GET', url: '/conversations?limit=1' });
    const page = response.json() as { conversations: unknown[]; next_cursor: string };
    expect(page.conversations).toEqual([
      { conversation_id: 'newer', messages: 2, last_activity_at: expect.any(String) },
    ]);
    const rest = (
      await server.app.inject({ method: 'GET', url: `/conversations?limit=1&cursor=${page.next_cursor}` })
    ).json() as { conversations: Array<{ conversation_id: string }>; next_cursor: string | null };
    expect(rest.conversations.map((c) => c.conversation_id)).toEqual(['older']);
    expect(rest.next_cursor).toBeNull();
  });
});

describe('POST /tasks/redeliver', () => {
  it('counts with dry_run, then redelivers every matching finished task', async () => {
    const server = await buildTestServer();
    const failed = await submit(server.app, { callback_url: 'https://f.example/hook' });
    const completed = await submit(server.app, { callback_url: 'https://c.example/hook' });
    // Not finished: never redelivered.
    await submit(server.app, { callback_url: 'https://f.example/hook' });
    await finish(server, failed, 'failed');
    await finish(server, completed, 'completed');

    const count = async (payload: Record<string, unknown>) =>
      (
        await server.app.inject({
          method: 'POST',
          url: '/tasks/redeliver',
          payload: { ...payload, dry_run: true },
        })
      ).json();
    expect(await count({})).toEqual({ matched: 2 });
    expect(await count({ status: 'failed' })).toEqual({ matched: 1 });
    expect(await count({ destination: 'https://f.example:443' })).toEqual({ matched: 1 });
    const refused = await server.app.inject({
      method: 'POST',
      url: '/tasks/redeliver',
      payload: { status: 'queued' },
    });
    expect(refused.statusCode).toBe(422);

    const jobs: Job[] = [];
    server.deliveries.consume(
      async (job) => {
        jobs.push(job);
        return { type: 'done' };
      },
      { concurrency: 4 },
    );
    const response = await server.app.inject({
      method: 'POST',
      url: '/tasks/redeliver',
      payload: { status: 'failed' },
    });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ redelivering: 1 });
    expect((await server.store.getTaskById(failed))?.status).toBe('delivering');
    await expect
      .poll(() => jobs.filter((job) => job.name === 'deliver').map((job) => job.taskId))
      .toEqual([failed]);
  });
});

describe('GET /stats', () => {
  it('gives one entry per minute from the roll-ups, with totals and the queue', async () => {
    const server = await buildTestServer();
    const ok = await submit(server.app, { callback_url: 'https://s.example/hook' });
    const bad = await submit(server.app, { callback_url: 'https://s.example/hook' });
    await submit(server.app, { callback_url: 'https://s.example/hook' });
    await finish(server, ok, 'completed');
    await finish(server, bad, 'failed');
    const response = await server.app.inject({ method: 'GET', url: '/stats?minutes=3' });
    expect(response.statusCode).toBe(200);
    const stats = response.json() as {
      minutes: number;
      series: Array<{ minute: string; accepted: number }>;
      totals: Record<string, number | null>;
      queue: { waiting: number };
      oldest_queued_at: string | null;
    };
    expect(stats.minutes).toBe(3);
    expect(stats.series.length).toBeGreaterThanOrEqual(3);
    expect(stats.series.reduce((n, minute) => n + minute.accepted, 0)).toBe(3);
    expect(stats.totals).toMatchObject({ accepted: 3, completed: 1, failed: 1, callback_success_rate: 0.5 });
    expect(stats.totals.llm_p50_ms).toBeGreaterThan(250);
    expect(stats.totals.llm_p50_ms).toBeLessThanOrEqual(500);
    expect(stats.queue.waiting).toBeGreaterThanOrEqual(1);
    expect(stats.oldest_queued_at).not.toBeNull();
    expect((await server.app.inject({ method: 'GET', url: '/stats?minutes=0' })).statusCode).toBe(422);
  });
});
