import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildTestServer } from '../../../test/support/http-harness.js';
import { conversationKey, type Store } from '../../store/store.js';

/** Stores one exchange (user message + reply) in the conversation, as the worker does. */
async function exchange(store: Store, conversationId: string, message: string, reply: string): Promise<void> {
  const taskId = randomUUID();
  await store.createTask({
    taskId,
    namespace: '',
    conversationId,
    message,
    callbackUrl: 'https://example.com/cb',
    metadata: null,
    createdAt: new Date().toISOString(),
  });
  await store.completeGeneration(taskId, conversationKey('', conversationId), {
    reply,
    model: 'm',
    usage: null,
    completedAt: new Date().toISOString(),
  });
}

describe('conversations', () => {
  it('lists the whole history, oldest first, of a conversation whose id is an encoded callback URL', async () => {
    const { app, store } = await buildTestServer();
    const id = 'https://example.com/hooks/reply?user=42&lang=en#x';
    await exchange(store, id, 'one', 'first reply');
    await exchange(store, id, 'two', 'second reply');
    await exchange(store, id, 'three', 'third reply');

    const response = await app.inject({
      method: 'GET',
      url: `/conversations/${encodeURIComponent(id)}/messages`,
    });
    expect(response.statusCode).toBe(200);
    const body = response.json() as { conversation_id: string; messages: Array<Record<string, unknown>> };
    expect(body.conversation_id).toBe(id);
    expect(body.messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'one'],
      ['assistant', 'first reply'],
      ['user', 'two'],
      ['assistant', 'second reply'],
      ['user', 'three'],
      ['assistant', 'third reply'],
    ]);
    for (const message of body.messages)
      expect(Object.keys(message).sort()).toEqual(['at', 'content', 'role']);
  });

  it('answers an empty list for an unknown conversation', async () => {
    const { app } = await buildTestServer();
    const response = await app.inject({ method: 'GET', url: '/conversations/nobody/messages' });
    expect(response.json()).toEqual({ conversation_id: 'nobody', messages: [] });
  });

  it('takes ids with non-ASCII characters and ids longer than the router default', async () => {
    const { app, store } = await buildTestServer();
    const id = `разговор/${'x'.repeat(200)}`;
    await exchange(store, id, 'q', 'a');
    const response = await app.inject({
      method: 'GET',
      url: `/conversations/${encodeURIComponent(id)}/messages`,
    });
    expect(response.statusCode).toBe(200);
    expect((response.json() as { conversation_id: string }).conversation_id).toBe(id);
    expect((response.json() as { messages: unknown[] }).messages).toHaveLength(2);
  });

  it('takes a callback URL of 2048 characters as id, however long once encoded', async () => {
    const { app, store } = await buildTestServer();
    const prefix = 'https://example.com/?q=';
    const id = prefix + '/'.repeat(2048 - prefix.length);
    await exchange(store, id, 'q', 'a');
    const response = await app.inject({
      method: 'GET',
      url: `/conversations/${encodeURIComponent(id)}/messages`,
    });
    expect(response.statusCode).toBe(200);
    expect((response.json() as { messages: unknown[] }).messages).toHaveLength(2);
    const erased = await app.inject({ method: 'DELETE', url: `/conversations/${encodeURIComponent(id)}` });
    expect(erased.statusCode).toBe(204);
  });

  it('erases a conversation: 204, then an empty history; other conversations stay', async () => {
    const { app, store } = await buildTestServer();
    const id = 'https://example.com/callback';
    await exchange(store, id, 'q', 'a');
    await exchange(store, 'other', 'q', 'a');
    const response = await app.inject({ method: 'DELETE', url: `/conversations/${encodeURIComponent(id)}` });
    expect(response.statusCode).toBe(204);
    expect(response.body).toBe('');
    expect(await store.getHistory(conversationKey('', id), 100)).toEqual([]);
    expect(await store.getHistory(conversationKey('', 'other'), 100)).toHaveLength(2);
    const again = await app.inject({ method: 'DELETE', url: `/conversations/${encodeURIComponent(id)}` });
    expect(again.statusCode).toBe(204);
  });
});
