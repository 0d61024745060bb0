import { describe, expect, it } from 'vitest';
import { buildTestServer } from '../../test/support/http-harness.js';
import { conversationKey } from '../store/store.js';
import { createAuthenticator, isOpenRoute, namespaceOf } from './auth.js';

const VALID = { message: 'Hello', callback_url: 'https://example.com/callback' };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('namespaceOf and createAuthenticator', () => {
  it('derives a short, stable namespace that is not the token', () => {
    expect(namespaceOf(null)).toBe('');
    const namespace = namespaceOf('token-a');
    expect(namespace).toMatch(/^[0-9a-f]{16}$/);
    expect(namespaceOf('token-a')).toBe(namespace);
    expect(namespaceOf('token-b')).not.toBe(namespace);
    expect(namespace).not.toContain('token');
  });

  it('accepts exactly the configured bearer tokens', () => {
    const auth = createAuthenticator(['token-a', 'token-b']);
    expect(auth.enabled).toBe(true);
    expect(auth.authenticate('Bearer token-a')).toBe(namespaceOf('token-a'));
    expect(auth.authenticate('bearer token-b')).toBe(namespaceOf('token-b'));
    for (const header of [
      undefined,
      '',
      'Bearer',
      'Bearer token-c',
      'Bearer token-a2',
      'Basic token-a',
      'token-a',
    ]) {
      expect(auth.authenticate(header), String(header)).toBeNull();
    }
    expect(createAuthenticator([]).enabled).toBe(false);
  });

  it('knows the open routes', () => {
    for (const url of [
      '/healthz',
      '/readyz',
      '/openapi.json',
      '/callback',
      '/docs',
      '/docs/static/*',
      '/redoc',
    ]) {
      expect(isOpenRoute(url), url).toBe(true);
    }
    for (const url of [
      '/webhook',
      '/tasks/:task_id',
      '/metrics',
      '/conversations/:conversation_id',
      undefined,
    ]) {
      expect(isOpenRoute(url), String(url)).toBe(false);
    }
  });
});

describe('API_TOKENS over HTTP', () => {
  // With `status`, what each answers once let through (the task id is unknown).
  const protectedRequests = [
    { method: 'POST', url: '/webhook', payload: VALID, status: 200 },
    { method: 'GET', url: '/tasks/00000000-0000-4000-8000-000000000000', status: 404 },
    { method: 'POST', url: '/tasks/00000000-0000-4000-8000-000000000000/redeliver', status: 404 },
    { method: 'GET', url: '/conversations/abc/messages', status: 200 },
    { method: 'DELETE', url: '/conversations/abc', status: 204 },
    { method: 'GET', url: '/metrics', status: 200 },
  ] as const;

  it('answers 401 with WWW-Authenticate on every protected endpoint without a valid token', async () => {
    const { app } = await buildTestServer({ API_TOKENS: 'token-a' });
    for (const { status, ...request } of protectedRequests) {
      for (const headers of [{}, bearer('wrong'), { authorization: 'Basic dG9rZW4tYQ==' }]) {
        const response = await app.inject({ ...request, headers });
        expect(response.statusCode, `${request.method} ${request.url}`).toBe(401);
        expect(response.headers['www-authenticate']).toBe('Bearer');
        expect(response.json()).toEqual({ detail: expect.any(String) });
      }
      const authorised = await app.inject({ ...request, headers: bearer('token-a') });
      expect(authorised.statusCode, `${request.method} ${request.url}`).toBe(status);
    }
  });

  it('keeps probes, docs and the callback receiver open', async () => {
    const { app } = await buildTestServer({ API_TOKENS: 'token-a' });
    for (const url of [
      '/healthz',
      '/readyz',
      '/openapi.json',
      '/docs',
      '/docs/static/swagger-ui.css',
      '/redoc',
      '/callback',
    ]) {
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    }
    const callback = await app.inject({
      method: 'POST',
      url: '/callback',
      payload: { generated_response: 'x' },
    });
    expect(callback.statusCode).toBe(200);
  });

  it('leaves everything open when no token is configured', async () => {
    const { app } = await buildTestServer();
    for (const { status, ...request } of protectedRequests) {
      expect((await app.inject(request)).statusCode, `${request.method} ${request.url}`).toBe(status);
    }
  });

  it("keeps one token's tasks, conversations and idempotency keys out of another's reach", async () => {
    const { app, store } = await buildTestServer({ API_TOKENS: 'token-a,token-b' });
    const posted = await app.inject({
      method: 'POST',
      url: '/webhook',
      payload: VALID,
      headers: bearer('token-a'),
    });
    const taskId = (posted.json() as { task_id: string }).task_id;

    const asA = await app.inject({ method: 'GET', url: `/tasks/${taskId}`, headers: bearer('token-a') });
    expect(asA.statusCode).toBe(200);
    const asB = await app.inject({ method: 'GET', url: `/tasks/${taskId}`, headers: bearer('token-b') });
    expect(asB.statusCode).toBe(404);
    expect(asB.json()).toEqual({ detail: 'Task not found' });

    // The same callback URL is a different conversation for each token.
    await store.completeGeneration(taskId, conversationKey(namespaceOf('token-a'), VALID.callback_url), {
      reply: 'Hi A',
      model: 'm',
      usage: null,
      completedAt: new Date().toISOString(),
    });
    const path = `/conversations/${encodeURIComponent(VALID.callback_url)}`;
    const listA = await app.inject({ method: 'GET', url: `${path}/messages`, headers: bearer('token-a') });
    expect((listA.json() as { messages: unknown[] }).messages).toHaveLength(2);
    const listB = await app.inject({ method: 'GET', url: `${path}/messages`, headers: bearer('token-b') });
    expect((listB.json() as { messages: unknown[] }).messages).toEqual([]);
    expect((await app.inject({ method: 'DELETE', url: path, headers: bearer('token-b') })).statusCode).toBe(
      204,
    );
    const stillA = await app.inject({ method: 'GET', url: `${path}/messages`, headers: bearer('token-a') });
    expect((stillA.json() as { messages: unknown[] }).messages).toHaveLength(2);

    // One key, two tokens, two bodies: no conflict, two tasks.
    const keyA = await app.inject({
      method: 'POST',
      url: '/webhook',
      payload: VALID,
      headers: { ...bearer('token-a'), 'idempotency-key': 'shared' },
    });
    const keyB = await app.inject({
      method: 'POST',
      url: '/webhook',
      payload: { ...VALID, message: 'Other' },
      headers: { ...bearer('token-b'), 'idempotency-key': 'shared' },
    });
    expect([keyA.statusCode, keyB.statusCode]).toEqual([200, 200]);
    expect(keyB.headers['idempotent-replayed']).toBeUndefined();
    expect((keyA.json() as { task_id: string }).task_id).not.toBe(
      (keyB.json() as { task_id: string }).task_id,
    );

    const stored = await store.getTaskById((keyB.json() as { task_id: string }).task_id);
    expect(stored?.namespace).toBe(namespaceOf('token-b'));
  });
});
