import { describe, expect, it } from 'vitest';
import { buildTestServer, type TestServer } from '../../../test/support/http-harness.js';
import { waitFor } from '../../dev/harness.js';
import type { Job } from '../../queue/job-queue.js';
import { BackendUnavailableError } from '../../shared/errors.js';
import { conversationKey, type Store } from '../../store/store.js';

/** The server with messages of at most 50 characters; `override` replaces store methods. */
function setup(env: Record<string, string> = {}, override: Partial<Store> = {}): Promise<TestServer> {
  return buildTestServer({ MESSAGE_MAX_CHARS: '50', ...env }, { storeOverrides: override });
}

const VALID = { message: 'Hello', callback_url: 'https://example.com/callback' };

async function postWebhook(app: TestServer['app'], payload: unknown, headers: Record<string, string> = {}) {
  return app.inject({ method: 'POST', url: '/webhook', payload: payload as object, headers });
}

describe('POST /webhook: accepted', () => {
  it('answers the task id, stores the task as queued and enqueues its generation in the conversation group', async () => {
    const { app, store, queue, metrics } = await setup();
    const response = await postWebhook(app, { ...VALID, metadata: { ticket: 7 }, extra: 'ignored' });
    expect(response.statusCode).toBe(200);
    const body = response.json() as { task_id: string; status: string };
    expect(body).toEqual({ task_id: expect.any(String), status: 'Processing' });
    expect(body.task_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

    const task = await store.getTask('', body.task_id);
    expect(task).toMatchObject({
      taskId: body.task_id,
      status: 'queued',
      namespace: '',
      conversationId: VALID.callback_url,
      message: 'Hello',
      callbackUrl: VALID.callback_url,
      metadata: { ticket: 7 },
    });

    const jobs: Job[] = [];
    queue.consume(
      async (job) => {
        jobs.push(job);
        return { type: 'done' };
      },
      { concurrency: 1 },
    );
    const job = await waitFor(() => jobs[0], 'the generate job', { timeoutMs: 10_000 });
    expect(job).toMatchObject({
      id: body.task_id,
      name: 'generate',
      taskId: body.task_id,
      group: conversationKey('', VALID.callback_url),
    });
    expect((await metrics.render()).body).toMatch(/^llm_webhook_tasks_accepted_total 1$/m);
  });

  it('uses conversation_id when given', async () => {
    const { app, store } = await setup();
    const response = await postWebhook(app, { ...VALID, conversation_id: 'customer-42' });
    const task = await store.getTask('', (response.json() as { task_id: string }).task_id);
    expect(task?.conversationId).toBe('customer-42');
  });

  it('accepts a message of exactly MESSAGE_MAX_CHARS characters, counted as characters not UTF-16 units', async () => {
    const { app } = await setup();
    expect((await postWebhook(app, { ...VALID, message: '😀'.repeat(50) })).statusCode).toBe(200);
  });
});

describe('POST /webhook: 422 in FastAPI shape', () => {
  it('missing fields: input is the object they are missing from', async () => {
    const { app } = await setup();
    const response = await postWebhook(app, { message: 'hi' });
    expect(response.statusCode).toBe(422);
    expect(response.json()).toEqual({
      detail: [
        { type: 'missing', loc: ['body', 'callback_url'], msg: 'Field required', input: { message: 'hi' } },
      ],
      body: { message: 'hi' },
    });
  });

  it('string_type for a non-string message and conversation_id', async () => {
    const { app } = await setup();
    const payload = { message: 5, callback_url: VALID.callback_url, conversation_id: ['x'] };
    expect((await postWebhook(app, payload)).json()).toEqual({
      detail: [
        { type: 'string_type', loc: ['body', 'message'], msg: 'Input should be a valid string', input: 5 },
        {
          type: 'string_type',
          loc: ['body', 'conversation_id'],
          msg: 'Input should be a valid string',
          input: ['x'],
        },
      ],
      body: payload,
    });
  });

  it('string_too_short for an empty or whitespace-only message and an empty conversation_id', async () => {
    const { app } = await setup();
    for (const message of ['', ' \n\t ']) {
      const payload = { ...VALID, message, conversation_id: '' };
      expect((await postWebhook(app, payload)).json()).toEqual({
        detail: [
          {
            type: 'string_too_short',
            loc: ['body', 'message'],
            msg: 'String should have at least 1 character',
            input: message,
            ctx: { min_length: 1 },
          },
          {
            type: 'string_too_short',
            loc: ['body', 'conversation_id'],
            msg: 'String should have at least 1 character',
            input: '',
            ctx: { min_length: 1 },
          },
        ],
        body: payload,
      });
    }
  });

  it('string_too_long for message, conversation_id and callback_url', async () => {
    const { app } = await setup();
    const longUrl = `https://example.com/${'a'.repeat(2048)}`;
    const payload = { message: 'x'.repeat(51), callback_url: longUrl, conversation_id: 'c'.repeat(257) };
    const response = await postWebhook(app, payload);
    expect(response.statusCode).toBe(422);
    expect(response.json()).toEqual({
      detail: [
        {
          type: 'string_too_long',
          loc: ['body', 'message'],
          msg: 'String should have at most 50 characters',
          input: payload.message,
          ctx: { max_length: 50 },
        },
        {
          type: 'string_too_long',
          loc: ['body', 'callback_url'],
          msg: 'String should have at most 2048 characters',
          input: longUrl,
          ctx: { max_length: 2048 },
        },
        {
          type: 'string_too_long',
          loc: ['body', 'conversation_id'],
          msg: 'String should have at most 256 characters',
          input: payload.conversation_id,
          ctx: { max_length: 256 },
        },
      ],
      body: payload,
    });
  });

  it('url_parsing, as in the original README', async () => {
    const { app } = await setup();
    const payload = { message: 'text', callback_url: 'hйцуttp://web:8000/callback' };
    expect((await postWebhook(app, payload)).json()).toEqual({
      detail: [
        {
          type: 'url_parsing',
          loc: ['body', 'callback_url'],
          msg: 'Input should be a valid URL, relative URL without a base',
          input: 'hйцуttp://web:8000/callback',
          ctx: { error: 'relative URL without a base' },
        },
      ],
      body: payload,
    });
  });

  it('url_scheme for a URL that is not http or https', async () => {
    const { app } = await setup();
    const payload = { message: 'text', callback_url: 'ftp://example.com/callback' };
    expect((await postWebhook(app, payload)).json()).toEqual({
      detail: [
        {
          type: 'url_scheme',
          loc: ['body', 'callback_url'],
          msg: "URL scheme should be 'http' or 'https'",
          input: 'ftp://example.com/callback',
          ctx: { expected_schemes: "'http' or 'https'" },
        },
      ],
      body: payload,
    });
  });

  it('dict_type for a body that is JSON but not an object, and for non-object metadata', async () => {
    const { app } = await setup();
    for (const payload of [[VALID], 'text', 42]) {
      const response = await app.inject({
        method: 'POST',
        url: '/webhook',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      });
      expect(response.statusCode).toBe(422);
      expect(response.json()).toEqual({
        detail: [
          { type: 'dict_type', loc: ['body'], msg: 'Input should be a valid dictionary', input: payload },
        ],
        body: payload,
      });
    }
    const payload = { ...VALID, metadata: 'x' };
    expect((await postWebhook(app, payload)).json()).toEqual({
      detail: [
        {
          type: 'dict_type',
          loc: ['body', 'metadata'],
          msg: 'Input should be a valid dictionary',
          input: 'x',
        },
      ],
      body: payload,
    });
  });

  it('json_invalid for malformed JSON and for prototype-poisoning keys, with body null', async () => {
    const { app, queue } = await setup();
    for (const text of [
      '{"message": "hi",',
      '{"__proto__": {"polluted": true}, "message": "x"}',
      '{"constructor": {"prototype": {"polluted": true}}}',
    ]) {
      const response = await app.inject({
        method: 'POST',
        url: '/webhook',
        headers: { 'content-type': 'application/json' },
        payload: text,
      });
      expect(response.statusCode).toBe(422);
      const body = response.json() as { detail: Array<Record<string, unknown>>; body: unknown };
      expect(body.body).toBeNull();
      expect(body.detail).toHaveLength(1);
      expect(body.detail[0]).toMatchObject({ type: 'json_invalid', msg: 'JSON decode error', input: {} });
      expect(body.detail[0]!.loc).toEqual(expect.arrayContaining(['body']));
      expect((body.detail[0]!.ctx as { error: string }).error).toEqual(expect.any(String));
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((await queue.counts()).waiting).toBe(0);
  });

  it('json_invalid for nesting deeper than 64 levels, counting brackets in strings as text', async () => {
    const { app } = await setup();
    const post = (metadataDepth: number, text = 'x') =>
      app.inject({
        method: 'POST',
        url: '/webhook',
        headers: { 'content-type': 'application/json' },
        // The body object is one level, metadata the next: `metadataDepth` levels in metadata.
        payload: `{"message":${JSON.stringify(text)},"callback_url":"https://example.com/hook","metadata":${'{"a":'.repeat(metadataDepth - 1)}{}${'}'.repeat(metadataDepth - 1)}}`,
      });
    expect((await post(63)).statusCode).toBe(200);
    expect((await post(63, '[[[[{{{{ \\" {[')).statusCode).toBe(200);
    const deep = await post(64);
    expect(deep.statusCode).toBe(422);
    expect(deep.json()).toMatchObject({
      detail: [{ type: 'json_invalid', ctx: { error: 'JSON nested deeper than 64 levels' } }],
      body: null,
    });
  });

  it('missing at ["body"] for an empty body', async () => {
    const { app } = await setup();
    for (const headers of [{ 'content-type': 'application/json' }, {}]) {
      const response = await app.inject({ method: 'POST', url: '/webhook', headers, payload: '' });
      expect(response.statusCode).toBe(422);
      expect(response.json()).toEqual({
        detail: [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }],
        body: null,
      });
    }
  });

  it('callback_url_forbidden for literal private addresses and localhost', async () => {
    const { app } = await setup();
    for (const url of [
      'http://127.0.0.1:8000/cb',
      'http://10.1.2.3/cb',
      'http://169.254.169.254/latest/meta-data',
      'http://[::1]/cb',
      'http://[::ffff:192.168.0.1]/cb',
      'http://localhost:8000/cb',
    ]) {
      const payload = { message: 'text', callback_url: url };
      const response = await postWebhook(app, payload);
      expect(response.statusCode, url).toBe(422);
      const body = response.json() as { detail: Array<Record<string, unknown>>; body: unknown };
      expect(body.body).toEqual(payload);
      expect(body.detail).toEqual([
        {
          type: 'callback_url_forbidden',
          loc: ['body', 'callback_url'],
          msg: expect.stringMatching(/^Callback URL is not allowed: /),
          input: url,
          ctx: { reason: expect.any(String) },
        },
      ]);
    }
  });

  it('lets an allow-listed address through', async () => {
    const { app } = await setup({ CALLBACK_ALLOWED_HOSTS: '127.0.0.1' });
    expect((await postWebhook(app, { message: 'x', callback_url: 'http://127.0.0.1:9/cb' })).statusCode).toBe(
      200,
    );
  });

  it('refuses metadata over 4 KiB as JSON', async () => {
    const { app } = await setup();
    expect((await postWebhook(app, { ...VALID, metadata: { text: 'x'.repeat(4000) } })).statusCode).toBe(200);
    const payload = { ...VALID, metadata: { text: 'x'.repeat(4096) } };
    const response = await postWebhook(app, payload);
    expect(response.statusCode).toBe(422);
    expect(response.json()).toMatchObject({
      detail: [{ type: 'too_long', loc: ['body', 'metadata'], ctx: { max_length: 4096 } }],
      body: payload,
    });
  });

  it('reports every problem at once, in field order', async () => {
    const { app } = await setup();
    const response = await postWebhook(app, { metadata: [], conversation_id: 3 });
    expect(
      (response.json() as { detail: Array<{ type: string; loc: unknown[] }> }).detail.map((d) => [
        d.type,
        d.loc,
      ]),
    ).toEqual([
      ['missing', ['body', 'message']],
      ['missing', ['body', 'callback_url']],
      ['string_type', ['body', 'conversation_id']],
      ['dict_type', ['body', 'metadata']],
    ]);
  });
});

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

describe('POST /webhook: backend unavailable', () => {
  it('answers 503 with a detail when the store rejects with BackendUnavailableError', async () => {
    const { app, queue } = await setup(
      {},
      { createTask: () => Promise.reject(new BackendUnavailableError('down')) },
    );
    const response = await postWebhook(app, VALID);
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ detail: expect.any(String) });
    expect((await queue.counts()).waiting).toBe(0);
  });

  it('answers 503 within the deadline when the store never answers', async () => {
    const { app } = await setup({}, { createTask: () => new Promise<void>(() => {}) });
    const startedAt = Date.now();
    const response = await postWebhook(app, VALID);
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ detail: expect.any(String) });
    expect(Date.now() - startedAt).toBeLessThan(10_000);
  });

  it('never leaks an unexpected error: 500 with a generic detail', async () => {
    const { app } = await setup(
      {},
      { createTask: () => Promise.reject(new Error('secret internals at /srv/db')) },
    );
    const response = await postWebhook(app, VALID);
    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ detail: 'Internal Server Error' });
    expect(response.body).not.toContain('secret internals');
  });
});
