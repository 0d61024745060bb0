/** POST /webhook accepting a message, and answering 503 or 500 when the backend fails. */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../dev/harness.js';
import type { Job } from '../../queue/job-queue.js';
import { BackendUnavailableError } from '../../shared/errors.js';
import { conversationKey } from '../../store/store.js';
import { postWebhook, setup, VALID } from './webhook.test-support.js';

describe('POST /webhook: accepted', () => {
  it('answers the task id, stores the task as queued and enqueues its generation in the conversation group', async () => {
    const { app, store, queue, metrics } = await setup();
    const response = await postWebhook(app, { ...VALID, metadata: { ticket: 7 }, extra: 'ignored' });
    expect(response.statusCode).toBe(200);
    const body = response.json() as { task_id: string; status: string };
    expect(body).toEqual({ task_id: expect.any(String), status: 'Processing' });
    expect(body.task_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

    const task = await store.getTask('', body.task_id);
    expect(task).toMatchObject({
      taskId: body.task_id,
      status: 'queued',
      namespace: '',
      conversationId: VALID.callback_url,
      message: 'Hello',
      callbackUrl: VALID.callback_url,
      metadata: { ticket: 7 },
    });

    const jobs: Job[] = [];
    queue.consume(
      async (job) => {
        jobs.push(job);
        return { type: 'done' };
      },
      { concurrency: 1 },
    );
    const job = await waitFor(() => jobs[0], 'the generate job', { timeoutMs: 10_000 });
    expect(job).toMatchObject({
      id: body.task_id,
      name: 'generate',
      taskId: body.task_id,
      group: conversationKey('', VALID.callback_url),
    });
    expect((await metrics.render()).body).toMatch(/^llm_webhook_tasks_accepted_total 1$/m);
  });

  it('uses conversation_id when given', async () => {
    const { app, store } = await setup();
    const response = await postWebhook(app, { ...VALID, conversation_id: 'customer-42' });
    const task = await store.getTask('', (response.json() as { task_id: string }).task_id);
    expect(task?.conversationId).toBe('customer-42');
  });

  it('accepts a message of exactly MESSAGE_MAX_CHARS characters, counted as characters not UTF-16 units', async () => {
    const { app } = await setup();
    expect((await postWebhook(app, { ...VALID, message: '😀'.repeat(50) })).statusCode).toBe(200);
  });
});

describe('POST /webhook: backend unavailable', () => {
  it('answers 503 with a detail when the store rejects with BackendUnavailableError', async () => {
    const { app, queue } = await setup(
      {},
      { createTask: () => Promise.reject(new BackendUnavailableError('down')) },
    );
    const response = await postWebhook(app, VALID);
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ detail: expect.any(String) });
    expect((await queue.counts()).waiting).toBe(0);
  });

  it('answers 503 within the deadline when the store never answers', async () => {
    const { app } = await setup({}, { createTask: () => new Promise<void>(() => {}) });
    const startedAt = Date.now();
    const response = await postWebhook(app, VALID);
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ detail: expect.any(String) });
    expect(Date.now() - startedAt).toBeLessThan(10_000);
  });

  it('never leaks an unexpected error: 500 with a generic detail', async () => {
    const { app } = await setup(
      {},
      { createTask: () => Promise.reject(new Error('secret internals at /srv/db')) },
    );
    const response = await postWebhook(app, VALID);
    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ detail: 'Internal Server Error' });
    expect(response.body).not.toContain('secret internals');
  });
});
