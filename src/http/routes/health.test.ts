import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config.js';
import type { JobQueue } from '../../queue/job-queue.js';
import { createSqliteJobQueue } from '../../queue/sqlite-job-queue.js';
import { BackendUnavailableError } from '../../shared/errors.js';
import { createLogger } from '../../shared/logger.js';
import { createMetrics } from '../../shared/metrics.js';
import { openSqliteDatabase } from '../../store/sqlite-database.js';
import { createSqliteStore } from '../../store/sqlite-store.js';
import type { Store } from '../../store/store.js';
import { buildServer } from '../server.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

function overriding<T extends object>(target: T, override: Partial<T>): T {
  return new Proxy(target, {
    get: (object, property, receiver) =>
      property in override ? override[property as keyof T] : Reflect.get(object, property, receiver),
  });
}

async function setup(storeOverride: Partial<Store> = {}, queueOverride: Partial<JobQueue> = {}) {
  const config = loadConfig({ RATE_LIMIT: 'off', LOG_LEVEL: 'silent' });
  const db = openSqliteDatabase({ path: ':memory:' });
  const store = createSqliteStore(db, {
    historyMaxMessages: 20,
    historyTtlSeconds: 3600,
    taskRetentionSeconds: 3600,
  });
  const queue = createSqliteJobQueue(db, {});
  const metrics = createMetrics({ queueCounts: () => queue.counts() });
  const app = await buildServer({
    config,
    logger: createLogger('silent'),
    store: overriding(store, storeOverride),
    queue: overriding(queue, queueOverride),
    metrics,
  });
  closers.push(async () => {
    await app.close();
    await queue.close({ timeoutMs: 1000 });
    await store.close();
    db.close();
  });
  return app;
}

describe('probes', () => {
  it('GET /healthz answers ok', async () => {
    const app = await setup();
    const response = await app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers ready when the store and the queue answer', async () => {
    const app = await setup();
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ready' });
  });

  it('GET /readyz answers 503 when the store ping rejects', async () => {
    const app = await setup({ ping: () => Promise.reject(new BackendUnavailableError('down')) });
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ detail: expect.any(String) });
  });

  it('GET /readyz answers 503, not a hang, when the queue never answers', async () => {
    const app = await setup({}, { ping: () => new Promise<void>(() => {}) });
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(503);
  });
});

describe('GET /metrics', () => {
  it('serves the Prometheus text format with the accepted count and queue depth', async () => {
    const app = await setup();
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
