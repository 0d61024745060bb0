import { describe, expect, it } from 'vitest';
import { buildTestServer } from '../../../test/support/http-harness.js';
import { CALLBACK_HISTORY_SIZE } from './callback.js';

describe('/callback', () => {
  it('receives a completed and a failed callback and lists them, newest last', async () => {
    const { app } = await buildTestServer();
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
    const { app } = await buildTestServer();
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
    const { app } = await buildTestServer();
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
