/**
 * API tokens end to end (SPEC §6), over real HTTP with the worker running real tasks against the
 * mock LLM: what needs a token, what stays open, the rate limit per token, and what each token
 * keeps to itself (history, tasks, idempotency keys) even when two tokens share a callback URL.
 */
import { describe, expect, it } from 'vitest';
import { postWebhook, startTestApp, useUpstreams, waitForTask } from '../../test/support/in-process-app.js';

const TOKEN_A = 'token-alpha-7c1e';
const TOKEN_B = 'token-bravo-93fd';
const asA = { authorization: `Bearer ${TOKEN_A}` };
const asB = { authorization: `Bearer ${TOKEN_B}` };

const { llm, receiver } = useUpstreams();

async function start(env: Record<string, string> = {}): Promise<string> {
  const app = await startTestApp({
    API_KEY: 'test-key',
    LLM_BASE_URL: llm.url,
    CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
    API_TOKENS: `${TOKEN_A},${TOKEN_B}`,
    ...env,
  });
  return app.url;
}

async function call(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: unknown,
): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

const TASK = '3b241101-e2bb-4255-8caf-4136c566a962';
const VALID = { message: 'hi', callback_url: 'https://example.com/cb' };

describe('which endpoints need a token', () => {
  // Method, path, what each answers once let through (TASK is unknown), and the body.
  const protectedEndpoints: Array<[string, string, number, unknown?]> = [
    ['POST', '/webhook', 200, VALID],
    ['GET', `/tasks/${TASK}`, 404],
    ['POST', `/tasks/${TASK}/redeliver`, 404],
    ['GET', '/conversations/customer-42/messages', 200],
    ['DELETE', '/conversations/customer-42', 204],
    ['GET', '/metrics', 200],
  ];
  const badAuthorizations: Array<Record<string, string>> = [
    {},
    { authorization: '' },
    { authorization: 'Bearer' },
    { authorization: `Bearer ${TOKEN_A}x` },
    { authorization: `Bearer ${TOKEN_A.slice(0, -1)}` },
    { authorization: `Basic ${Buffer.from(`user:${TOKEN_A}`).toString('base64')}` },
    { authorization: TOKEN_A },
    { authorization: `Bearer ${TOKEN_A} ${TOKEN_B}` },
    { authorization: `Bearer ${TOKEN_A.toUpperCase()}` },
  ];

  it('answers 401 with a JSON detail on every protected endpoint, over real HTTP', async () => {
    const base = await start();
    const failures: string[] = [];
    for (const [method, path, status, body] of protectedEndpoints) {
      for (const headers of badAuthorizations) {
        const response = await call(base, method, path, headers, body);
        const json = (await response.json()) as { detail?: unknown };
        if (response.status !== 401 || typeof json.detail !== 'string') {
          failures.push(`${method} ${path} ${JSON.stringify(headers)} → ${response.status}`);
        }
        expect(response.headers.get('www-authenticate')).toBe('Bearer');
      }
      const authorised = await call(base, method, path, asB, body);
      expect(authorised.status, `${method} ${path}`).toBe(status);
      await authorised.arrayBuffer();
    }
    expect(failures).toEqual([]);
  });

  it('keeps probes, docs, the OpenAPI document and the callback receiver open', async () => {
    const base = await start();
    for (const path of [
      '/healthz',
      '/readyz',
      '/docs',
      '/docs/static/index.html',
      '/redoc',
      '/redoc/redoc.standalone.js',
      '/openapi.json',
      '/callback',
    ]) {
      const response = await call(base, 'GET', path, { authorization: 'Bearer wrong' });
      expect(response.status, path).toBe(200);
      await response.arrayBuffer();
    }
    const callback = await call(base, 'POST', '/callback', {}, { generated_response: 'x' });
    expect(callback.status).toBe(200);
  });
});

describe('rate limit per token', () => {
  it('gives two tokens from one address 5 requests a minute each', async () => {
    const base = await start({ RATE_LIMIT: '5/minute' });
    const statuses = { a: [] as number[], b: [] as number[] };
    for (let n = 0; n < 6; n++) {
      statuses.a.push((await postWebhook(base, VALID, asA)).status);
      statuses.b.push((await postWebhook(base, VALID, asB)).status);
    }
    expect(statuses.a).toEqual([200, 200, 200, 200, 200, 429]);
    expect(statuses.b).toEqual([200, 200, 200, 200, 200, 429]);
    // Requests with a wrong token are refused before they can spend anyone's quota.
    const refused = await postWebhook(base, VALID, { authorization: 'Bearer nope' });
    expect(refused.status).toBe(401);
  });
});

describe('what each token keeps to itself', () => {
  it('never shows one token the history of another using the same callback URL', async () => {
    const base = await start();
    const callbackUrl = `${receiver.url}/shared`;
    const run = async (headers: Record<string, string>, message: string): Promise<string> => {
      const { status, json } = await postWebhook(base, { message, callback_url: callbackUrl }, headers);
      expect(status).toBe(200);
      const task = await waitForTask(base, json.task_id as string, ['completed', 'failed'], headers);
      expect(task.status).toBe('completed');
      return json.task_id as string;
    };

    await run(asA, 'alpha private one');
    await run(asA, 'alpha private two');
    await run(asB, 'bravo first');
    await run(asA, 'alpha private three');
    await run(asB, 'bravo second');

    const prompts = llm.requests.map((request) => request.messages.map((m) => m.content));
    expect(prompts.map((prompt) => prompt.length)).toEqual([1, 3, 1, 5, 3]);
    const bravoPrompts = JSON.stringify([prompts[2], prompts[4]]);
    expect(bravoPrompts).not.toContain('alpha');
    expect(JSON.stringify([prompts[0], prompts[1], prompts[3]])).not.toContain('bravo');

    const path = `/conversations/${encodeURIComponent(callbackUrl)}`;
    const historyOf = async (headers: Record<string, string>) =>
      (
        (await (await call(base, 'GET', `${path}/messages`, headers)).json()) as {
          messages: Array<{ content: string }>;
        }
      ).messages;
    expect((await historyOf(asA)).filter((m) => m.content.startsWith('alpha'))).toHaveLength(3);
    expect(JSON.stringify(await historyOf(asB))).not.toContain('alpha');

    // B erasing "its" conversation leaves A's untouched.
    expect((await call(base, 'DELETE', path, asB)).status).toBe(204);
    expect(await historyOf(asB)).toEqual([]);
    expect(await historyOf(asA)).toHaveLength(6);
  });

  it("answers 404 for another token's task, to read or to redeliver", async () => {
    const base = await start();
    const { json } = await postWebhook(base, { message: 'hi', callback_url: `${receiver.url}/mine` }, asA);
    const taskId = json.task_id as string;
    await waitForTask(base, taskId, ['completed'], asA);

    const read = await call(base, 'GET', `/tasks/${taskId}`, asB);
    expect(read.status).toBe(404);
    expect(await read.json()).toEqual({ detail: 'Task not found' });
    const redeliver = await call(base, 'POST', `/tasks/${taskId}/redeliver`, asB);
    expect(redeliver.status).toBe(404);
    expect((await call(base, 'POST', `/tasks/${taskId}/redeliver`, asA)).status).toBe(202);
  });

  it('keeps idempotency keys per token: the same key and body from two tokens are two tasks', async () => {
    const base = await start();
    const body = { message: 'once', callback_url: `${receiver.url}/idem` };
    const key = { 'idempotency-key': 'order-1234' };
    const first = await fetch(`${base}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...asA, ...key },
      body: JSON.stringify(body),
    });
    const other = await fetch(`${base}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...asB, ...key },
      body: JSON.stringify(body),
    });
    const replay = await fetch(`${base}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...asA, ...key },
      body: JSON.stringify(body),
    });
    const ids = await Promise.all(
      [first, other, replay].map(async (r) => ((await r.json()) as { task_id: string }).task_id),
    );
    expect([first.status, other.status, replay.status]).toEqual([200, 200, 200]);
    expect(other.headers.get('idempotent-replayed')).toBeNull();
    expect(ids[1]).not.toBe(ids[0]);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(ids[2]).toBe(ids[0]);
    // Each token sees its own task only.
    expect((await call(base, 'GET', `/tasks/${ids[1]}`, asB)).status).toBe(200);
    expect((await call(base, 'GET', `/tasks/${ids[1]}`, asA)).status).toBe(404);
  });
});
