import { describe, expect, it } from 'vitest';
import { buildTestServer } from '../../../test/support/http-harness.js';
import { BackendUnavailableError } from '../../shared/errors.js';

describe('probes', () => {
  it('GET /healthz answers ok', async () => {
    const { app } = await buildTestServer();
    const response = await app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers ready when the store and the queue answer', async () => {
    const { app } = await buildTestServer();
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ready' });
  });

  it('GET /readyz answers 503 when the store ping rejects', async () => {
    const { app } = await buildTestServer(
      {},
      { storeOverrides: { ping: () => Promise.reject(new BackendUnavailableError('down')) } },
    );
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ detail: expect.any(String) });
  });

  it('GET /readyz answers 503, not a hang, when the queue never answers', async () => {
    const { app } = await buildTestServer(
      {},
      { queueOverrides: { ping: () => new Promise<void>(() => {}) } },
    );
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(503);
  });
});

describe('GET /metrics', () => {
  it('serves the Prometheus text format with the accepted count and queue depth', async () => {
    const { app } = await buildTestServer();
    for (let n = 0; n < 3; n++) {
      const accepted = await app.inject({
        method: 'POST',
        url: '/webhook',
        payload: { message: 'hi', callback_url: `https://example.com/cb/${n}` },
      });
      expect(accepted.statusCode).toBe(200);
    }
    const response = await app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const samples = new Map<string, number>();
    for (const line of response.body.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const match = /^([a-zA-Z_:][\w:]*(?:\{.*\})?) (\S+)$/.exec(line);
      expect(match, line).not.toBeNull();
      samples.set(match![1]!, Number(match![2]));
    }
    expect(samples.get('llm_webhook_tasks_accepted_total')).toBe(3);
    expect(samples.get('llm_webhook_queue_jobs{state="waiting"}')).toBe(3);
    expect(
      samples.get(
        'llm_webhook_http_request_duration_seconds_count{method="POST",route="/webhook",status_code="200"}',
      ),
    ).toBe(3);
  });
});
