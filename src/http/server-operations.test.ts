/** buildServer: request logs and metrics, and the operations routes of a worker process. */
import { describe, expect, it } from 'vitest';
import { setup, VALID } from './server.test-support.js';

describe('buildServer: logging and metrics', () => {
  it('logs one line per request without headers, query or body, and never the message text at info', async () => {
    const { app, logLines } = await setup({ LOG_LEVEL: 'info', API_TOKENS: 'sekret-token' });
    await app.inject({
      method: 'POST',
      url: '/webhook?secret=query',
      payload: { ...VALID, message: 'very private words' },
      headers: { authorization: 'Bearer sekret-token', cookie: 'session=abc' },
    });
    const requestLines = logLines.filter((line) => line.msg === 'request');
    expect(requestLines).toHaveLength(1);
    expect(requestLines[0]).toMatchObject({
      method: 'POST',
      url: '/webhook',
      status: 200,
      ms: expect.any(Number),
    });
    const everything = JSON.stringify(logLines);
    expect(everything).not.toContain('sekret-token');
    expect(everything).not.toContain('session=abc');
    expect(everything).not.toContain('secret=query');
    expect(everything).not.toContain('very private words');
    expect(logLines.some((line) => line.msg === 'task accepted' && typeof line.task_id === 'string')).toBe(
      true,
    );
  });

  it('observes request durations by route pattern, not raw URL', async () => {
    const { app, metrics } = await setup();
    await app.inject({ method: 'GET', url: '/tasks/one' });
    await app.inject({ method: 'GET', url: '/tasks/two' });
    await app.inject({ method: 'GET', url: '/nowhere/at/all' });
    const { body } = await metrics.render();
    expect(body).toContain(
      'llm_webhook_http_request_duration_seconds_count{method="GET",route="/tasks/:task_id",status_code="404"} 2',
    );
    expect(body).toContain('route="unmatched"');
    expect(body).not.toContain('/nowhere');
  });
});

describe('buildServer: the operations routes of a worker process', () => {
  it('serves /healthz, /readyz and /metrics and no public API', async () => {
    const { app } = await setup({}, 'operations');
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toContain('llm_webhook_tasks_accepted_total');
    for (const [method, url] of [
      ['POST', '/webhook'],
      ['GET', '/callback'],
      ['GET', '/tasks/x'],
      ['GET', '/docs'],
    ] as const) {
      const response = await app.inject({ method, url, payload: method === 'POST' ? VALID : undefined });
      expect(response.statusCode, `${method} ${url}`).toBe(404);
      expect(response.json()).toHaveProperty('detail');
    }
  });

  it('guards /metrics with the API tokens like the API does', async () => {
    const { app } = await setup({ API_TOKENS: 'ops-token' }, 'operations');
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const ok = await app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: 'Bearer ops-token' },
    });
    expect(ok.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});
