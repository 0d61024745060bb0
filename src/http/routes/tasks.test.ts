import { describe, expect, it } from 'vitest';
import { buildTestServer, type TestServer } from '../../../test/support/http-harness.js';
import { waitFor } from '../../dev/harness.js';
import type { Job } from '../../queue/job-queue.js';
import { conversationKey } from '../../store/store.js';

const CALLBACK_URL = 'https://example.com/callback';

async function submit(app: TestServer['app']): Promise<string> {
  const response = await app.inject({
    method: 'POST',
    url: '/webhook',
    payload: { message: 'Hi', callback_url: CALLBACK_URL },
  });
  expect(response.statusCode).toBe(200);
  return (response.json() as { task_id: string }).task_id;
}

describe('GET /tasks/:task_id', () => {
  it('answers 404 with a detail for an unknown id', async () => {
    const { app } = await buildTestServer();
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid']) {
      const response = await app.inject({ method: 'GET', url: `/tasks/${id}` });
      expect(response.statusCode).toBe(404);
      expect(response.json()).toEqual({ detail: 'Task not found' });
    }
  });

  it('shows a queued task, then its reply, attempts and deliveries', async () => {
    const { app, store } = await buildTestServer();
    const taskId = await submit(app);
    const queued = await app.inject({ method: 'GET', url: `/tasks/${taskId}` });
    expect(queued.statusCode).toBe(200);
    expect(queued.json()).toEqual({
      task_id: taskId,
      status: 'queued',
      conversation_id: CALLBACK_URL,
      created_at: expect.any(String),
      updated_at: expect.any(String),
      attempts: { llm: 0, callback: 0 },
      deliveries: [],
    });

    await store.recordLlmAttempt(taskId);
    await store.completeGeneration(taskId, conversationKey('', CALLBACK_URL), {
      reply: 'Hello there',
      model: 'm',
      usage: null,
      completedAt: new Date().toISOString(),
    });
    await store.recordDelivery(taskId, {
      at: new Date().toISOString(),
      error: 'connection refused',
      duration_ms: 3,
    });
    await store.recordDelivery(taskId, { at: new Date().toISOString(), status_code: 200, duration_ms: 12 });
    await store.setStatus(taskId, 'completed');

    const done = await app.inject({ method: 'GET', url: `/tasks/${taskId}` });
    expect(done.json()).toEqual({
      task_id: taskId,
      status: 'completed',
      conversation_id: CALLBACK_URL,
      created_at: expect.any(String),
      updated_at: expect.any(String),
      generated_response: 'Hello there',
      attempts: { llm: 1, callback: 2 },
      deliveries: [
        { at: expect.any(String), error: 'connection refused', duration_ms: 3 },
        { at: expect.any(String), status_code: 200, duration_ms: 12 },
      ],
    });
  });

  it('shows the error of a failed task', async () => {
    const { app, store } = await buildTestServer();
    const taskId = await submit(app);
    await store.failGeneration(taskId, { type: 'llm_auth', message: 'bad key' }, new Date().toISOString());
    await store.setStatus(taskId, 'failed');
    const response = await app.inject({ method: 'GET', url: `/tasks/${taskId}` });
    expect(response.json()).toMatchObject({
      status: 'failed',
      error: { type: 'llm_auth', message: 'bad key' },
    });
    expect(response.json()).not.toHaveProperty('generated_response');
  });
});

describe('POST /tasks/:task_id/redeliver', () => {
  it('queues a new delivery of a finished task on the delivery queue: 202, status delivering', async () => {
    const { app, store, deliveries } = await buildTestServer();
    const taskId = await submit(app);
    await store.completeGeneration(taskId, conversationKey('', CALLBACK_URL), {
      reply: 'r',
      model: 'm',
      usage: null,
      completedAt: new Date().toISOString(),
    });
    await store.setStatus(taskId, 'completed');

    const jobs: Job[] = [];
    deliveries.consume(
      async (job) => {
        jobs.push(job);
        return { type: 'done' };
      },
      { concurrency: 4 },
    );
    const response = await app.inject({ method: 'POST', url: `/tasks/${taskId}/redeliver` });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ task_id: taskId, status: 'delivering' });
    expect((await store.getTaskById(taskId))?.status).toBe('delivering');

    const deliver = await waitFor(() => jobs.find((job) => job.name === 'deliver'), 'the deliver job', {
      timeoutMs: 10_000,
    });
    expect(deliver).toMatchObject({ name: 'deliver', taskId });
    expect(deliver?.id).toMatch(new RegExp(`^redeliver:${taskId}:\\d+:`));
  });

  it('answers 409 while the task is not finished, 404 when unknown', async () => {
    const { app } = await buildTestServer();
    const taskId = await submit(app);
    const early = await app.inject({ method: 'POST', url: `/tasks/${taskId}/redeliver` });
    expect(early.statusCode).toBe(409);
    expect(early.json()).toEqual({ detail: expect.any(String) });
    const unknown = await app.inject({
      method: 'POST',
      url: '/tasks/00000000-0000-4000-8000-000000000000/redeliver',
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ detail: 'Task not found' });
  });
});
