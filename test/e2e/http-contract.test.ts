/**
 * The HTTP contract of SPEC §3, asked of a real process in each mode and role that serves the
 * API: embedded (role `all`), and redis (role `api`, with a worker beside it). Every header,
 * status and body that one of them honours, the other must too.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../src/dev/harness.js';
import { useDeployment } from '../support/deployment.js';
import type { ServiceProcess } from '../support/start-service.js';

const { receiver, env, tempDir, freshRun, start } = useDeployment();

const TOKEN = 'contract-token-0123456789abcdef';

async function deploy(mode: 'embedded' | 'redis'): Promise<{ api: ServiceProcess; worker?: ServiceProcess }> {
  const settings = { RATE_LIMIT: '3/minute', API_TOKENS: TOKEN };
  if (mode === 'embedded') return { api: await start('all', env({ DATA_DIR: tempDir(), ...settings })) };
  const run = await freshRun();
  // The worker's operations server listens on WORKER_PORT (a free port, set by `start`).
  const [api, worker] = await Promise.all([
    start('api', run.env(settings)),
    start('worker', run.env(settings)),
  ]);
  return { api, worker };
}

const auth = { authorization: `Bearer ${TOKEN}` };

async function call(
  base: string,
  path: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const response = await fetch(`${base}${path}`, {
    method: init.method ?? 'GET',
    headers: {
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...auth,
      ...init.headers,
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: left null
  }
  return { status: response.status, headers: response.headers, json, text };
}

describe.each(['embedded', 'redis'] as const)('%s mode', (mode) => {
  it('keeps the HTTP contract: auth, idempotency, rate-limit headers, tasks, conversations, errors', async () => {
    const { api, worker } = await deploy(mode);
    const base = api.url;
    const body = { message: 'contract', callback_url: `${receiver.url}/contract`, conversation_id: 'c-1' };

    const unauthorised = await call(base, '/webhook', {
      method: 'POST',
      body,
      headers: { authorization: '' },
    });
    expect(unauthorised.status).toBe(401);
    expect(unauthorised.headers.get('www-authenticate')).toBe('Bearer');
    expect(unauthorised.json).toEqual({ detail: expect.any(String) });

    const post = (payload: unknown, headers: Record<string, string> = {}) =>
      call(base, '/webhook', { method: 'POST', body: payload, headers });
    const first = await post(body, { 'idempotency-key': 'k-1' });
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-limit')).toBe('3');
    expect(first.headers.get('ratelimit-remaining')).toBe('2');
    expect(Number(first.headers.get('ratelimit-reset'))).toBeGreaterThan(0);
    const taskId = (first.json as { task_id: string }).task_id;

    const replay = await post(body, { 'idempotency-key': 'k-1' });
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.json).toEqual(first.json);

    const conflict = await post({ ...body, message: 'another' }, { 'idempotency-key': 'k-1' });
    expect(conflict.status).toBe(409);
    expect(conflict.json).toEqual({ detail: expect.any(String) });

    const limited = await post(body);
    expect(limited.status).toBe(429);
    expect(limited.json).toEqual({ detail: 'Rate limit exceeded: 3 per 1 minute' });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.headers.get('ratelimit-remaining')).toBe('0');

    await receiver.waitFor((entry) => entry.json?.task_id === taskId, 20_000);
    await waitFor(async () => {
      const task = await call(base, `/tasks/${taskId}`);
      return (task.json as { status?: string }).status === 'completed';
    }, 'the task to complete');
    const task = await call(base, `/tasks/${taskId}`);
    expect(task.json).toMatchObject({
      task_id: taskId,
      status: 'completed',
      conversation_id: 'c-1',
      attempts: { llm: 1, callback: 1 },
      deliveries: [{ status_code: 200, duration_ms: expect.any(Number), at: expect.any(String) }],
    });
    expect((await call(base, '/tasks/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    const redeliver = await call(base, `/tasks/${taskId}/redeliver`, { method: 'POST' });
    expect(redeliver.status).toBe(202);
    await receiver.waitUntil(
      (all) => all.filter((entry) => entry.json?.task_id === taskId).length === 2,
      20_000,
    );
    await waitFor(async () => {
      const record = (await call(base, `/tasks/${taskId}`)).json as { status: string; deliveries: unknown[] };
      return record.status === 'completed' && record.deliveries.length === 2;
    }, 'the redelivery to be recorded');
    // One task completed, however many times its callback was delivered.
    const workerMetrics = (await call(worker?.url ?? base, '/metrics')).text;
    expect(workerMetrics).toMatch(/^llm_webhook_tasks_completed_total 1$/m);
    expect(workerMetrics).toMatch(/^llm_webhook_callback_attempts_total\{outcome="delivered"\} 2$/m);

    const messages = await call(base, '/conversations/c-1/messages');
    expect(messages.status).toBe(200);
    expect(
      (messages.json as { messages: Array<{ role: string; content: string }> }).messages.map((m) => m.role),
    ).toEqual(['user', 'assistant']);
    expect((await call(base, '/conversations/c-1', { method: 'DELETE' })).status).toBe(204);
    expect(
      ((await call(base, '/conversations/c-1/messages')).json as { messages: unknown[] }).messages,
    ).toEqual([]);

    for (const path of ['/healthz', '/readyz', '/docs', '/redoc', '/openapi.json']) {
      expect((await call(base, path, { headers: { authorization: '' } })).status, path).toBe(200);
    }
    expect((await call(base, '/metrics')).text).toContain('llm_webhook_tasks_accepted_total 1');
    const missing = await call(base, '/nowhere');
    expect(missing.status).toBe(404);
    expect(missing.json).toEqual({ detail: expect.any(String) });
    const wrongMethod = await call(base, '/webhook', { method: 'PUT', body });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.json).toEqual({ detail: expect.any(String) });

    if (worker !== undefined) {
      // A worker serves its operations endpoints only, with its own counts.
      for (const path of ['/healthz', '/readyz'])
        expect((await call(worker.url, path)).status, path).toBe(200);
      expect((await call(worker.url, '/webhook', { method: 'POST', body })).status).toBe(404);
    }
  });
});
