import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config.js';
import { createSqliteJobQueue } from '../../queue/sqlite-job-queue.js';
import { createLogger } from '../../shared/logger.js';
import { createMetrics } from '../../shared/metrics.js';
import { openSqliteDatabase } from '../../store/sqlite-database.js';
import { createSqliteStore } from '../../store/sqlite-store.js';
import { buildServer } from '../server.js';
import { CALLBACK_HISTORY_SIZE } from './callback.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function setup() {
  const config = loadConfig({ RATE_LIMIT: 'off', LOG_LEVEL: 'silent' });
  const db = openSqliteDatabase({ path: ':memory:' });
  const store = createSqliteStore(db, {
    historyMaxMessages: 20,
    historyTtlSeconds: 3600,
    taskRetentionSeconds: 3600,
  });
  const queue = createSqliteJobQueue(db, {});
  const app = await buildServer({
    config,
    logger: createLogger('silent'),
    store,
    queue,
    metrics: createMetrics(),
  });
  closers.push(async () => {
    await app.close();
    await queue.close({ timeoutMs: 1000 });
    await store.close();
    db.close();
  });
  return app;
}

describe('/callback', () => {
  it('receives a completed and a failed callback and lists them, newest last', async () => {
    const app = await setup();
    const completed = { task_id: 't1', status: 'completed', generated_response: 'Hello', metadata: { a: 1 } };
    const failed = { task_id: 't2', status: 'failed', error: { type: 'llm_auth', message: 'bad key' } };
    for (const payload of [completed, failed]) {
      const response = await app.inject({ method: 'POST', url: '/callback', payload });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ status: 'received' });
    }
    const list = await app.inject({ method: 'GET', url: '/callback' });
    expect(list.json()).toEqual({ received: [completed, failed] });
  });

  it(`keeps only the last ${CALLBACK_HISTORY_SIZE} payloads`, async () => {
    const app = await setup();
    for (let n = 0; n < CALLBACK_HISTORY_SIZE + 5; n++) {
      await app.inject({ method: 'POST', url: '/callback', payload: { generated_response: `r${n}` } });
    }
    const { received } = (await app.inject({ method: 'GET', url: '/callback' })).json() as {
      received: Array<{ generated_response: string }>;
    };
    expect(received).toHaveLength(CALLBACK_HISTORY_SIZE);
    expect(received[0]?.generated_response).toBe('r5');
    expect(received.at(-1)?.generated_response).toBe(`r${CALLBACK_HISTORY_SIZE + 4}`);
  });

  it('answers 422 for a non-string generated_response or a body that is not an object', async () => {
    const app = await setup();
    const bad = await app.inject({ method: 'POST', url: '/callback', payload: { generated_response: 5 } });
    expect(bad.statusCode).toBe(422);
    expect(bad.json()).toEqual({
      detail: [
        {
          type: 'string_type',
          loc: ['body', 'generated_response'],
          msg: 'Input should be a valid string',
          input: 5,
        },
      ],
      body: { generated_response: 5 },
    });
    const notObject = await app.inject({
      method: 'POST',
      url: '/callback',
      headers: { 'content-type': 'application/json' },
      payload: '"text"',
    });
    expect(notObject.statusCode).toBe(422);
    expect((await app.inject({ method: 'GET', url: '/callback' })).json()).toEqual({ received: [] });
  });
});
