/** POST /webhook with an Idempotency-Key: replays, conflicts, bursts and refused keys. */
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '../../shared/errors.js';
import { postWebhook, setup, VALID } from './webhook.test-support.js';

describe('POST /webhook: Idempotency-Key', () => {
  it('replays the first answer with Idempotent-Replayed and creates no second task', async () => {
    const { app, store, queue } = await setup();
    const first = await postWebhook(app, VALID, { 'idempotency-key': 'order-1' });
    expect(first.statusCode).toBe(200);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const second = await postWebhook(app, VALID, { 'idempotency-key': 'order-1' });
    expect(second.statusCode).toBe(200);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json()).toEqual(first.json());
    expect((await store.getTask('', (first.json() as { task_id: string }).task_id))?.status).toBe('queued');
    expect((await queue.counts()).waiting).toBe(1);
  });

  it('answers 409 for the same key with another body', async () => {
    const { app } = await setup();
    await postWebhook(app, VALID, { 'idempotency-key': 'order-2' });
    const response = await postWebhook(app, { ...VALID, message: 'Other' }, { 'idempotency-key': 'order-2' });
    expect(response.statusCode).toBe(409);
    expect(response.json()).toEqual({ detail: expect.any(String) });
  });

  it('creates exactly one task for 20 concurrent requests with one key', async () => {
    const { app, store, queue } = await setup();
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => postWebhook(app, VALID, { 'idempotency-key': 'burst' })),
    );
    expect(responses.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
    const ids = new Set(responses.map((r) => (r.json() as { task_id: string }).task_id));
    expect(ids.size).toBe(1);
    expect(responses.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(19);
    expect((await store.getTask('', [...ids][0]!))?.status).toBe('queued');
    expect((await queue.counts()).waiting).toBe(1);
  });

  it('refuses a key that is empty, too long or not visible ASCII', async () => {
    const { app, queue } = await setup();
    for (const key of ['', 'k'.repeat(256), 'has space', 'ключ']) {
      const response = await app.inject({
        method: 'POST',
        url: '/webhook',
        payload: VALID,
        headers: { 'idempotency-key': Buffer.from(key, 'utf8').toString('latin1') },
      });
      expect(response.statusCode, JSON.stringify(key)).toBe(400);
      expect(response.json()).toEqual({ detail: expect.any(String) });
    }
    expect((await queue.counts()).waiting).toBe(0);
    expect((await postWebhook(app, VALID, { 'idempotency-key': 'k'.repeat(255) })).statusCode).toBe(200);
  });

  it('frees the key when the task cannot be stored, so a retry succeeds', async () => {
    let failures = 1;
    const harness = await setup(
      {},
      {
        createTask: async (task) => {
          if (failures-- > 0) throw new BackendUnavailableError('store down');
          return realStore.createTask(task);
        },
      },
    );
    const realStore = harness.store;
    const first = await postWebhook(harness.app, VALID, { 'idempotency-key': 'retry-me' });
    expect(first.statusCode).toBe(503);
    const second = await postWebhook(harness.app, VALID, { 'idempotency-key': 'retry-me' });
    expect(second.statusCode).toBe(200);
    expect(second.headers['idempotent-replayed']).toBeUndefined();
  });
});
